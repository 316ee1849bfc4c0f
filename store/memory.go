package store

import (
	"context"
	"slices"
	"sync"

	"github.com/switchboard-dev/switchboard"
)

// Memory keeps conversations, turns and the tool-call ledger in process
// memory: the store of `go run` on a fresh machine, and of tests. Everything
// is lost when the process exits. It implements [Store] as [Postgres] does
// (same validation, same errors, same orders) and is safe for concurrent
// use.
type Memory struct {
	*memoryData
	// instance and boot name the holder of the leases this store takes,
	// as Postgres's do (see orphaned): a Memory of its own has no instance
	// and a boot of its own; views of one Memory's data as other instances
	// serve tests of several instances and of restarts.
	instance, boot string
}

// memoryData is what the views of one Memory share.
type memoryData struct {
	mu            sync.RWMutex
	conversations map[string]*switchboard.Conversation
	// messages holds each conversation's transcript in order.
	messages map[string][]switchboard.Message
	// superseded holds the messages a regenerated answer took out of each
	// conversation's transcript.
	superseded map[string][]switchboard.Message
	// order numbers messages as they are stored, to put superseded ones
	// back in their place.
	// mcpSessions are the kept streamable HTTP sessions, by server and
	// user.
	mcpSessions map[sessionKey]switchboard.MCPSession
	order       map[string]int64
	lastOrder   int64
	messageIDs  map[string]bool
	turns       map[string]*switchboard.Turn
	idempotency map[idempotencyKey]string // turn ids
	calls       map[string]*switchboard.ToolCall
	// running holds each conversation's running turn and its lease.
	running map[string]lease
	// waiting holds each conversation's last turn that came to await an
	// approval, for the next turn's start to cancel its calls that still
	// wait (and it, if it does): a turn resumed by a decision may end with
	// other calls undecided.
	waiting map[string]string
	// inputs are the questions of servers, by id.
	inputs map[string]*switchboard.Input
	// samplings are the sampling rows of calls, by call id.
	samplings map[string][]switchboard.Sampling

	// credentials are users' credentials by user and server; an update
	// of one holds its credentialLock (not mu, which it would hold while
	// the caller refreshes a token).
	credentials     map[credentialKey]switchboard.Credential
	credentialLocks map[credentialKey]*credentialLock
	// oauthStates are the connect flows waiting for their callback, by id;
	// oauthClients the registered clients by server and issuer.
	oauthStates  map[string]switchboard.OAuthState
	oauthClients map[oauthClientKey]switchboard.OAuthClient

	// bound counts what each conversation costs and evicts conversations
	// past its bound (memory_bound.go).
	bound
}

type idempotencyKey struct{ user, key string }

// NewMemory returns an empty in-memory store bounded at
// DefaultMemoryMaxBytes, logging nothing (see OpenMemory).
func NewMemory() *Memory {
	return &Memory{boot: switchboard.NewID(), memoryData: &memoryData{
		conversations: make(map[string]*switchboard.Conversation),
		messages:      make(map[string][]switchboard.Message),
		superseded:    make(map[string][]switchboard.Message),
		order:         make(map[string]int64),
		messageIDs:    make(map[string]bool),
		turns:         make(map[string]*switchboard.Turn),
		idempotency:   make(map[idempotencyKey]string),
		calls:         make(map[string]*switchboard.ToolCall),
		running:       make(map[string]lease),
		waiting:       make(map[string]string),
		bound:         newBound(),
	}}
}

// Ping reports whether the store can be used: always, unless ctx is done.
func (m *Memory) Ping(ctx context.Context) error { return ctxErr(ctx) }

// Close does nothing; it is there so that both stores close alike.
func (m *Memory) Close() {}

func cloneMessage(m switchboard.Message) switchboard.Message {
	m.ToolCalls = slices.Clone(m.ToolCalls)
	m.Attachments = contentListing(m.Attachments)
	m.Structured = cloneJSON(m.Structured)
	if m.Handoff != nil {
		h := *m.Handoff
		m.Handoff = &h
	}
	return m
}

// cloneCall copies a stored call for a reader: its content without the
// bytes, as listings carry it.
func cloneCall(c switchboard.ToolCall) switchboard.ToolCall {
	c.Arguments = cloneJSON(c.Arguments)
	c.StructuredResult = cloneJSON(c.StructuredResult)
	c.Content = contentListing(c.Content)
	return c
}

// storedContent copies the content of a call being saved, bytes included.
func storedContent(parts []switchboard.ContentPart) []switchboard.ContentPart {
	out := slices.Clone(parts)
	for i := range out {
		out[i].Data = slices.Clone(out[i].Data)
	}
	return out
}

// contentListing copies content parts without their bytes.
func contentListing(parts []switchboard.ContentPart) []switchboard.ContentPart {
	out := slices.Clone(parts)
	for i := range out {
		out[i].Data = nil
	}
	return out
}
