package store

import (
	"container/list"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/switchboard-dev/switchboard"
)

// The memory store is bounded: it counts the bytes it keeps for each
// conversation (the conversation, its messages, superseded ones included,
// its turns, its tool calls with their arguments, results and binary
// content, the servers' questions (inputs) and sampling requests of its
// calls, and the entries of the maps that find them) as it writes them, and when the total passes
// MemoryOptions.MaxBytes it drops whole conversations, least recently used
// first. A conversation with a running
// turn is never dropped. Each count is a sum of lengths over one record,
// taken when that record changes: no write walks more than the record it
// writes.

// DefaultMemoryMaxBytes is the bound of a memory store when
// MemoryOptions.MaxBytes is 0.
const DefaultMemoryMaxBytes = 256 << 20

// MemoryOptions configure a memory store; nil means the defaults.
type MemoryOptions struct {
	// MaxBytes bounds what the store keeps of conversations (see
	// memory_bound.go for what is counted); 0 means DefaultMemoryMaxBytes,
	// below 0 no bound.
	MaxBytes int64
	// Logger receives the evictions; nil discards them.
	Logger *slog.Logger
}

// OpenMemory returns an empty in-memory store configured by opts.
func OpenMemory(opts *MemoryOptions) *Memory {
	if opts == nil {
		opts = &MemoryOptions{}
	}
	m := NewMemory()
	switch {
	case opts.MaxBytes > 0:
		m.maxBytes = opts.MaxBytes
	case opts.MaxBytes < 0:
		m.maxBytes = 0
	}
	if opts.Logger != nil {
		m.logger = opts.Logger
	}
	return m
}

// evictLogEvery spaces the logs of evictions: at the bound, every new
// conversation evicts one.
const evictLogEvery = 10 * time.Second

// bound is a memory store's accounting.
type bound struct {
	maxBytes int64 // 0: none
	logger   *slog.Logger
	bytes    int64                 // in all
	usage    map[string]*convUsage // by conversation id
	lru      list.List             // of *convUsage, the most recently used in front
	clock    atomic.Int64          // stamps of use
	// Evictions since the last log, and when that was.
	evicted, evictedBytes int64
	loggedAt              time.Time
	evictedTotal          atomic.Int64
}

// convUsage is what a conversation costs, and what it holds that is not
// found from the conversation's id alone.
type convUsage struct {
	id, user string
	bytes    int64
	turns    []string // ids
	calls    []string // ids
	inputs   []string // ids
	elem     *list.Element
	// listed is the stamp of the last write, which moved the conversation
	// to the list's front; used that of the last read (under the read
	// lock, which cannot move it): eviction gives a conversation read since
	// it was listed another round.
	listed int64
	used   atomic.Int64
}

func newBound() bound {
	return bound{maxBytes: DefaultMemoryMaxBytes, logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		usage: make(map[string]*convUsage)}
}

// Bytes returns what the store counts it keeps of conversations.
func (m *Memory) Bytes() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.bytes
}

// Evicted returns the conversations evicted since the store was made.
func (m *Memory) Evicted() int64 { return m.evictedTotal.Load() }

// use returns the accounting of a conversation, made on its first use,
// and moves it to the front of the list. Callers hold m.mu.
func (m *Memory) use(c *switchboard.Conversation) *convUsage {
	u := m.usage[c.ID]
	if u == nil {
		u = &convUsage{id: c.ID, user: c.UserID}
		m.usage[c.ID] = u
		u.elem = m.lru.PushFront(u)
	} else {
		m.lru.MoveToFront(u.elem)
	}
	u.listed = m.clock.Add(1)
	return u
}

// read marks a conversation used by a reader. Callers hold m.mu, read or
// write.
func (m *Memory) read(id string) {
	if u := m.usage[id]; u != nil {
		u.used.Store(m.clock.Add(1))
	}
}

// grow adds n bytes (n may be negative) to a conversation's count. Callers
// hold m.mu.
func (m *Memory) grow(conversationID string, n int64) {
	if u := m.usage[conversationID]; u != nil {
		u.bytes += n
		m.bytes += n
	}
}

// changeCall applies f to a stored call, counting what it changes.
// Callers hold m.mu.
func (m *Memory) changeCall(c *switchboard.ToolCall, f func()) {
	before := storedCallSize(c)
	f()
	m.grow(c.ConversationID, storedCallSize(c)-before)
}

// changeInput applies f to a stored input, counting what it changes.
// Callers hold m.mu.
func (m *Memory) changeInput(in *switchboard.Input, f func()) {
	before := storedInputSize(in)
	f()
	m.grow(in.ConversationID, storedInputSize(in)-before)
}

// changeTurn applies f to a stored turn, counting what it changes.
// Callers hold m.mu.
func (m *Memory) changeTurn(t *switchboard.Turn, f func()) {
	before := storedTurnSize(t)
	f()
	m.grow(t.ConversationID, storedTurnSize(t)-before)
}

// evict drops conversations, least recently used first, until the store
// keeps no more than its bound, or until none is left that can go: a
// conversation with a running turn stays. Callers hold m.mu.
func (m *Memory) evict(now time.Time) {
	if m.maxBytes <= 0 || m.bytes <= m.maxBytes {
		return
	}
	for n := m.lru.Len(); n > 0 && m.bytes > m.maxBytes; n-- {
		u := m.lru.Back().Value.(*convUsage)
		if u.used.Load() > u.listed || m.inFlight(u.id) {
			// Read since it was written, or busy: another round.
			m.lru.MoveToFront(u.elem)
			u.listed = m.clock.Add(1)
			continue
		}
		m.evicted++
		m.evictedBytes += u.bytes
		m.evictedTotal.Add(1)
		m.drop(u.id)
	}
	if m.evicted > 0 && now.Sub(m.loggedAt) >= evictLogEvery {
		m.logger.Info("memory store full: evicted the least recently used conversations",
			"conversations", m.evicted, "bytes", m.evictedBytes, "kept_bytes", m.bytes,
			"kept_conversations", len(m.usage), "max_bytes", m.maxBytes)
		m.evicted, m.evictedBytes, m.loggedAt = 0, 0, now
	}
}

// inFlight reports whether a turn runs in a conversation. Callers hold
// m.mu.
func (m *Memory) inFlight(id string) bool {
	l, ok := m.running[id]
	if !ok {
		return false
	}
	t := m.turns[l.turn]
	return t != nil && t.Status == switchboard.TurnRunning
}

// drop removes a conversation and everything it holds. Callers hold m.mu.
func (m *Memory) drop(key string) {
	u := m.usage[key]
	delete(m.conversations, key)
	for _, list := range [][]switchboard.Message{m.messages[key], m.superseded[key]} {
		for _, msg := range list {
			delete(m.messageIDs, msg.ID)
			delete(m.order, msg.ID)
		}
	}
	delete(m.messages, key)
	delete(m.superseded, key)
	delete(m.waiting, key)
	delete(m.running, key)
	if u == nil {
		return
	}
	for _, id := range u.inputs {
		delete(m.inputs, id)
	}
	for _, id := range u.turns {
		if t := m.turns[id]; t != nil {
			delete(m.idempotency, idempotencyKey{t.UserID, t.IdempotencyKey})
			delete(m.turns, id)
		}
	}
	for _, id := range u.calls {
		delete(m.calls, id)
		delete(m.samplings, id)
	}
	m.bytes -= u.bytes
	m.lru.Remove(u.elem)
	delete(m.usage, key)
}

// Sizes of what the store keeps, in bytes: a record's struct, the bytes of
// its strings and slices, and its entries in the maps that find it.
var (
	conversationBytes = int64(unsafe.Sizeof(switchboard.Conversation{})) +
		int64(unsafe.Sizeof(convUsage{})) + 6*mapEntryBytes // conversations, messages, superseded, usage, running, waiting
	messageBytes       = int64(unsafe.Sizeof(switchboard.Message{})) + 2*mapEntryBytes // messageIDs, order
	requestedCallBytes = int64(unsafe.Sizeof(switchboard.RequestedCall{}))
	partBytes          = int64(unsafe.Sizeof(switchboard.ContentPart{}))
	handoffBytes       = int64(unsafe.Sizeof(switchboard.Handoff{}))
	turnBytes          = int64(unsafe.Sizeof(switchboard.Turn{})) + mapEntryBytes + idBytes
	callBytes          = int64(unsafe.Sizeof(switchboard.ToolCall{})) + mapEntryBytes + idBytes
	inputBytes         = int64(unsafe.Sizeof(switchboard.Input{})) + mapEntryBytes + idBytes
	// A sampling row sits in its call's slice (the map's entry is the
	// call's, counted once in callBytes' share).
	samplingBytes = int64(unsafe.Sizeof(switchboard.Sampling{}))
)

const (
	// mapEntryBytes is a map entry's share of its table (key, value,
	// control bytes and free slots), for keys and values of a few words.
	mapEntryBytes = 64
	// idBytes is an id in a conversation's list of its turns or calls.
	idBytes = 16
)

func storedConversationSize(c *switchboard.Conversation) int64 {
	return conversationBytes + int64(2*len(c.ID)+len(c.UserID)+len(c.ExternalID)+len(c.Title)+len(c.Status)+len(c.Agent))
}

func storedMessageSize(msg *switchboard.Message) int64 {
	n := messageBytes + int64(3*len(msg.ID)+len(msg.ConversationID)+len(msg.TurnID)+len(msg.Role)+
		len(msg.Content)+len(msg.Type)+len(msg.ToolCallID)+len(msg.ToolName)+len(msg.SupersededBy)+len(msg.Feedback)+
		len(msg.Agent)+len(msg.Structured))
	if msg.Handoff != nil {
		n += handoffBytes + int64(len(msg.Handoff.From)+len(msg.Handoff.To))
	}
	for _, rc := range msg.ToolCalls {
		n += requestedCallBytes + int64(len(rc.ID)+len(rc.Name)+len(rc.Arguments))
	}
	for i := range msg.Attachments {
		n += storedPartSize(&msg.Attachments[i])
	}
	return n
}

func storedPartSize(p *switchboard.ContentPart) int64 {
	return partBytes + int64(len(p.ToolCallID)+len(p.Kind)+len(p.MIMEType)+len(p.URI)+len(p.SHA256)+len(p.Data))
}

func storedInputSize(in *switchboard.Input) int64 {
	return inputBytes + int64(2*len(in.ID)+len(in.UserID)+len(in.ConversationID)+len(in.TurnID)+len(in.ToolCallID)+
		len(in.Server)+len(in.Mode)+len(in.Message)+len(in.RequestedSchema)+len(in.URL)+len(in.ElicitationID)+
		len(in.Status)+len(in.Action)+len(in.Content)+len(in.Reason)+len(in.RequestKey)+len(in.RequestState)+len(in.InputRequests))
}

func storedSamplingSize(s *switchboard.Sampling) int64 {
	return samplingBytes + int64(len(s.ID)+len(s.UserID)+len(s.ConversationID)+len(s.TurnID)+len(s.ToolCallID)+
		len(s.Server)+len(s.Kind)+len(s.Model)+len(s.Status)+len(s.Error))
}

func storedTurnSize(t *switchboard.Turn) int64 {
	n := turnBytes + int64(2*len(t.ID)+len(t.ConversationID)+len(t.UserID)+len(t.Status)+
		len(t.IdempotencyKey)+len(t.RequestHash)+len(t.Error)+len(t.Agent))
	if t.IdempotencyKey != "" {
		n += mapEntryBytes + int64(len(t.UserID)+len(t.IdempotencyKey)+len(t.ID))
	}
	return n
}

func storedCallSize(c *switchboard.ToolCall) int64 {
	n := callBytes + int64(2*len(c.ID)+len(c.CallID)+len(c.UserID)+len(c.ConversationID)+len(c.TurnID)+
		len(c.Server)+len(c.Tool)+len(c.ExposedName)+len(c.Arguments)+len(c.Result)+len(c.StructuredResult)+
		len(c.Status)+len(c.ErrorClass)+len(c.Error)+len(c.SessionScope)+len(c.SessionKey)+
		len(c.TaskID)+len(c.TaskStatus)+len(c.Agent)+len(c.ParentID))
	for i := range c.Content {
		n += storedPartSize(&c.Content[i])
	}
	return n
}

// recount counts again, walking everything, what m keeps of each
// conversation, and returns the conversations whose count differs from the
// one kept as it wrote (recounted, counted), and the records kept of no
// conversation. Callers hold m.mu; tests check the accounting with it.
func (m *Memory) recount() (diffs map[string][2]int64, total int64, strays int) {
	sizes := make(map[string]int64)
	for id, c := range m.conversations {
		n := storedConversationSize(c)
		for _, list := range [][]switchboard.Message{m.messages[id], m.superseded[id]} {
			for i := range list {
				n += storedMessageSize(&list[i])
			}
		}
		sizes[id] = n
	}
	for _, t := range m.turns {
		if _, ok := sizes[t.ConversationID]; !ok {
			strays++
		}
		sizes[t.ConversationID] += storedTurnSize(t)
	}
	for _, c := range m.calls {
		if _, ok := sizes[c.ConversationID]; !ok {
			strays++
		}
		sizes[c.ConversationID] += storedCallSize(c)
	}
	for _, in := range m.inputs {
		if _, ok := sizes[in.ConversationID]; !ok {
			strays++
		}
		sizes[in.ConversationID] += storedInputSize(in)
	}
	for id, list := range m.samplings {
		c := m.calls[id]
		if c == nil {
			strays++
			continue
		}
		for i := range list {
			sizes[c.ConversationID] += storedSamplingSize(&list[i])
		}
	}
	messages := 0
	for id := range m.conversations {
		messages += len(m.messages[id]) + len(m.superseded[id])
	}
	strays += len(m.messageIDs) - messages + len(m.order) - messages
	for k, id := range m.idempotency {
		if t := m.turns[id]; t == nil || t.UserID != k.user {
			strays++
		}
	}
	for _, l := range m.running {
		if m.turns[l.turn] == nil {
			strays++
		}
	}
	diffs = make(map[string][2]int64)
	for id, n := range sizes {
		total += n
		var kept int64
		if u := m.usage[id]; u != nil {
			kept = u.bytes
		}
		if kept != n {
			diffs[id] = [2]int64{n, kept}
		}
	}
	for id, u := range m.usage {
		if _, ok := sizes[id]; !ok {
			diffs[id] = [2]int64{0, u.bytes}
		}
	}
	return diffs, total, strays
}
