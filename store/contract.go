package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// Store is the contract that [Memory] and [Postgres] implement, documented
// here once, and that package storetest tests against both. Its consumers
// declare the few methods they need.
//
// A method that takes a user id finds only that user's records: another
// user's conversation, turn or call is not found (ErrNotFound), as one that
// does not exist, so that nobody learns whether it does. AdminConversation,
// AdminToolCall, ListToolCalls and ToolCallStats read every user's, for
// admins.
//
// Besides the errors each method names, a method returns an error wrapping
// switchboard.ErrUnavailable when the store cannot be reached or does not
// answer before ctx's deadline (wrapping context.DeadlineExceeded too), and
// one wrapping context.Canceled when ctx is cancelled.
type Store interface {
	// BeginTurn commits, at once, the start of a turn: it creates the
	// conversation when s.Conversation.ID is empty (titled after the user's
	// message unless s.Conversation.Title is set) or bumps its updated_at,
	// then stores the turn as running and the user's message; it cancels
	// the conversation's calls still awaiting approval, and the turn
	// awaiting them (the user went on without deciding: they can no longer
	// run), and reports them in s.Cancelled. A running turn of the
	// conversation that no live instance holds (its lease ran out, or it
	// names an earlier boot of this store's instance) is failed first, with
	// its calls, and reported in s.Interrupted; one that a live instance
	// holds makes the start fail with turn_running. It fills the generated
	// ids and times, and the conversation as stored, back into s, and
	// returns the history window: the latest s.HistoryLimit messages of the
	// conversation in order (all if 0), the new message last. The slice is
	// the caller's, with room to append to; its messages are not (a store
	// may share them with the windows of later turns): the caller does not
	// modify them, nor their ToolCalls, Attachments, Structured or Handoff.
	//
	// With s.Regenerate, it stores no message: the messages after the one
	// to answer again leave the transcript, and the window ends with that
	// message. With s.Edit, the message it names and those after it leave
	// the transcript, and the user's message is stored after them. Messages
	// that leave the transcript are kept (ListAllMessages), and the turns
	// among theirs that await an approval are cancelled with their calls.
	//
	// It returns an error wrapping switchboard.ErrNotFound if the
	// conversation to continue is not s.Turn.UserID's (it does not exist,
	// has a malformed id or is another user's), or s.Regenerate is set for
	// a new conversation; ErrConflict if the user has a turn with the same
	// idempotency key (a *switchboard.Error with code
	// "idempotency_key_reused"), another turn of the conversation runs
	// ("turn_running"), the user has a conversation with
	// s.Conversation.ExternalID already ("conversation_exists"), an id is
	// taken, or the message s.Regenerate names is missing
	// ("nothing_to_regenerate") or differs from s.UserMessage
	// ("regenerate_mismatch"); ErrInvalid if s is invalid (no user id,
	// unknown role or message type, malformed turn or message id, negative
	// history limit, regenerate or edit, an edit with a regenerate, text
	// too long). Nothing is stored when it fails.
	BeginTurn(ctx context.Context, s *switchboard.TurnStart) ([]switchboard.Message, error)
	// SaveTurn commits, at once, a turn's progress: it updates the turn
	// (status, steps, tokens, timing, error, finished time), appends
	// u.Messages to the conversation, and upserts u.ToolCalls by id: a new
	// id inserts a ledger row; an existing one updates its status, result,
	// structured result, error, error class, duration, result size,
	// truncated flag and finished time. The messages and calls belong to
	// the turn: their ConversationID, TurnID and (for calls) UserID are the
	// turn's. A turn saved as running renews its lease; one that leaves
	// running (it ends or waits for an approval) frees its conversation and
	// bumps its updated_at. It fills generated ids and times, the turn's
	// conversation and user, and each call's stored StartedAt back into u.
	//
	// It returns an error wrapping switchboard.ErrNotFound if the turn does
	// not exist or its id is malformed; ErrConflict if a message id is
	// taken or a call id belongs to another turn's call; ErrInvalid if u is
	// invalid (unknown status, role or message type, malformed id, JSON
	// that does not parse, names too long). Nothing is stored when it
	// fails.
	SaveTurn(ctx context.Context, u *switchboard.TurnUpdate) error

	// GetConversation returns the user's conversation with the given id.
	// It returns an error wrapping switchboard.ErrNotFound if the user has
	// none of that id.
	GetConversation(ctx context.Context, userID, id string) (switchboard.Conversation, error)
	// AdminConversation returns the conversation with the given id,
	// whichever user's it is: for admins. It returns an error wrapping
	// switchboard.ErrNotFound if there is none or id is malformed.
	AdminConversation(ctx context.Context, id string) (switchboard.Conversation, error)
	// ConversationByExternalID returns the user's conversation that the
	// client named externalID. It returns an error wrapping
	// switchboard.ErrNotFound if the user has none (an empty id names
	// none).
	ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error)
	// ListConversations returns the user's conversations, the most
	// recently updated first, at most limit of them (DefaultPageSize if
	// limit is 0, at most MaxPageSize). A user without conversations has an
	// empty list.
	ListConversations(ctx context.Context, userID string, limit int) ([]switchboard.Conversation, error)
	// UpdateConversation sets the title and, if c.Status is not empty, the
	// status of the user's conversation c.ID, bumps its updated_at and
	// returns it as stored; other fields of c are ignored. It returns an
	// error wrapping switchboard.ErrNotFound if the user has no such
	// conversation, and ErrInvalid if the title or the status is too long.
	UpdateConversation(ctx context.Context, userID string, c switchboard.Conversation) (switchboard.Conversation, error)
	// DeleteConversation deletes the user's conversation with its
	// messages, turns and tool calls. It returns an error wrapping
	// switchboard.ErrNotFound if the user has no such conversation.
	DeleteConversation(ctx context.Context, userID, id string) error
	// ListMessages returns the whole transcript of the user's conversation
	// in order, without the messages that a regenerate or an edit took out
	// of it. It returns an error wrapping switchboard.ErrNotFound if the
	// user has no such conversation.
	ListMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error)
	// ListAllMessages is ListMessages with the messages taken out of the
	// transcript, in their place, their SupersededBy set: what happened,
	// for admins.
	ListAllMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error)
	// SetFeedback records kind (switchboard.FeedbackPositive or
	// FeedbackNegative) as the user's rating of the messages of their
	// conversation (superseded ones included), replacing an earlier one;
	// ListMessages and ListAllMessages return it in Message.Feedback. It
	// sets all or none: it returns an error wrapping switchboard.ErrNotFound
	// if the user has no such conversation or an id names none of its
	// messages, and ErrInvalid if kind is another word, or there are no
	// ids or more than MaxFeedbackMessages.
	SetFeedback(ctx context.Context, userID, conversationID string, messageIDs []string, kind string) error

	// CreateInput stores a server's question to a user (an elicitation) as
	// pending, for the tool call in.ToolCallID of in.UserID's turn
	// in.TurnID in in.ConversationID, and fills in.ID (when empty),
	// in.Status and in.CreatedAt. It returns an error wrapping ErrNotFound
	// when that call is not the user's in that turn, ErrInvalid when in is
	// invalid (no user, a malformed id, an unknown mode, a form without a
	// valid schema, a url input without a url), ErrConflict when the id is
	// taken.
	CreateInput(ctx context.Context, in *switchboard.Input) error
	// GetInput returns the user's input id; ErrNotFound
	// (input_not_found) if it is absent or another user's.
	GetInput(ctx context.Context, userID, id string) (switchboard.Input, error)
	// AnswerInput answers the user's pending input, exactly once: it is
	// answered with action (accept, decline or cancel) and, for accept,
	// content; and returns it. When no live instance holds the input's
	// turn it is closed first, as a turn orphaned is (failed, or stored
	// awaiting_input when a modern server's question waits in it); an
	// answer to a turn awaiting input takes the turn over (running, under
	// this store's instance's lease) and says so (Resumed): the caller is
	// to continue it. It returns ErrNotFound (input_not_found) as GetInput
	// does; ErrConflict (input_closed) for an input answered or closed
	// before, or whose turn no instance can continue (the input then
	// closes as failed: the request that asked is gone); ErrInvalid
	// (invalid_action) for another action. Postgres tells every instance
	// (InputChannel).
	AnswerInput(ctx context.Context, userID, id, action string, content json.RawMessage) (switchboard.AnsweredInput, error)
	// TakeInput records that the call took the answer of input id to send
	// it on (a modern server's question): from then on nobody continues
	// the call with it. ErrConflict (input_closed) when it has no answer,
	// or was taken before: then it must not be sent.
	TakeInput(ctx context.Context, id string) error
	// AdoptTurn takes over the user's turn turnID when no live instance
	// holds it and one of its modern server's answers waits to be sent
	// (answered, not taken): it closes the turn as orphaned first (see
	// AnswerInput), and reports whether it now holds the turn, running
	// under its lease, with the turn as interrupted if it was closed on
	// the way.
	AdoptTurn(ctx context.Context, userID, turnID string) (adopted bool, interrupted *switchboard.Interrupted, err error)
	// CloseInput closes a pending input without an answer, as status
	// (completed, cancelled, expired or failed) for reason; an input no
	// longer pending stays as it is. It returns the input as it is then:
	// the caller learns of an answer that came first. ErrNotFound if id is
	// absent; ErrInvalid for another status.
	CloseInput(ctx context.Context, id string, status switchboard.InputStatus, reason string) (switchboard.Input, error)
	// ListInputs returns the user's inputs of the conversation, oldest
	// first, only the pending ones with pendingOnly; none for a
	// conversation that is not the user's.
	ListInputs(ctx context.Context, userID, conversationID string, pendingOnly bool) ([]switchboard.Input, error)

	// RecordSampling stores the ledger row of a server's sampling request
	// made during the tool call s.ToolCallID of s.UserID's turn s.TurnID,
	// and fills s.ID when empty. It returns an error wrapping ErrNotFound
	// when that call is not the user's in that turn, ErrInvalid when s is
	// invalid.
	RecordSampling(ctx context.Context, s *switchboard.Sampling) error
	// ListSamplings returns the sampling rows of a tool call, oldest
	// first, for admins (every user's).
	ListSamplings(ctx context.Context, toolCallID string) ([]switchboard.Sampling, error)

	// GetTurn returns the user's turn with the given id. It returns an
	// error wrapping switchboard.ErrNotFound if the user has none of that
	// id.
	GetTurn(ctx context.Context, userID, id string) (switchboard.Turn, error)
	// ListTurns returns the turns of the user's conversation, oldest
	// first. It returns an error wrapping switchboard.ErrNotFound if the
	// user has no such conversation.
	ListTurns(ctx context.Context, userID, conversationID string) ([]switchboard.Turn, error)
	// TurnByIdempotencyKey returns the user's turn that was begun with the
	// given idempotency key. It returns an error wrapping
	// switchboard.ErrNotFound if there is none (an empty key has none).
	TurnByIdempotencyKey(ctx context.Context, userID, key string) (switchboard.Turn, error)

	// RenewTurn extends the lease of a running turn by LeaseDuration, so
	// that a turn longer than the lease is not taken for abandoned, and
	// reports whether its cancellation was requested (RequestCancel). It
	// returns an error wrapping switchboard.ErrNotFound if the turn does
	// not exist or is not running.
	RenewTurn(ctx context.Context, id string) (cancelRequested bool, err error)
	// RequestCancel asks for the running turn of the user's conversation
	// to be cancelled, whichever instance runs it: the turn is flagged
	// (RenewTurn reports it), and its id is returned. A turn that no live
	// instance holds (its lease ran out, or it names an earlier boot of
	// this store's instance) has nobody to stop it: it is failed at once
	// instead, with its calls, and returned as interrupted. It returns an
	// error wrapping switchboard.ErrConflict (code no_running_turn) when no
	// turn of the user runs in the conversation (another user's
	// conversation has none).
	RequestCancel(ctx context.Context, userID, conversationID string) (turnID string, interrupted *switchboard.Interrupted, err error)
	// RecoverTurns fails, at once, the turns that earlier boots of this
	// store's instance left running, with their calls (see
	// switchboard.Interrupted): their leases may not have run out, but a
	// process that started again cannot be running them. It returns them,
	// oldest first. It does nothing for a store without an instance id.
	//
	// Call it once the process is sure to be the only live one with its
	// identity (cmd/switchboard calls it once it holds its listen
	// address), before it takes requests.
	RecoverTurns(ctx context.Context) ([]switchboard.Interrupted, error)

	// GetToolCall returns the user's ledger row with the given id. It
	// returns an error wrapping switchboard.ErrNotFound if the user has
	// none of that id.
	GetToolCall(ctx context.Context, userID, id string) (switchboard.ToolCall, error)
	// AdminToolCall returns the ledger row with the given id, whichever
	// user's it is: for admins. It returns an error wrapping
	// switchboard.ErrNotFound if there is none or id is malformed.
	AdminToolCall(ctx context.Context, id string) (switchboard.ToolCall, error)
	// GetToolCallContent returns the binary content part of the user's
	// ledger row id at index (see switchboard.ContentPart), bytes
	// included. It returns an error wrapping switchboard.ErrNotFound if the
	// user has no such call or the call no such part, with code
	// "content_pruned" if retention removed it.
	GetToolCallContent(ctx context.Context, userID, id string, index int) (switchboard.ContentPart, error)
	// DecideToolCall moves the user's call that awaits approval to running
	// (approve) or denied, and its turn from awaiting_approval to running
	// under a new lease, atomically: of two deciders, one wins, and from
	// the decision on the turn holds its conversation (a regenerate or a
	// new turn waits for it, a cancel reaches it). A running turn of the
	// conversation that no live instance holds is failed first, with its
	// calls, as BeginTurn does. It returns the call as stored before the
	// decision. It returns an error wrapping switchboard.ErrNotFound if the
	// user has no such call, and ErrConflict with code "already_decided"
	// if the call does not await approval any more, or "turn_running" if
	// its turn or another turn of the conversation runs.
	DecideToolCall(ctx context.Context, userID, id string, approve bool) (switchboard.ToolCall, error)
	// ListToolCalls returns one page of the ledger rows that pass f,
	// newest first (by started_at, then id), and the cursor of the next
	// page, which is empty on the last page. A page has f.Limit rows
	// (DefaultPageSize if 0, at most MaxPageSize); f.After is the cursor of
	// the previous page. Rows stored while paging never make a later page
	// repeat or skip a row.
	//
	// It returns an error wrapping switchboard.ErrInvalid if the cursor is
	// malformed, the status unknown, or a conversation or turn id
	// malformed.
	ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error)
	// ToolCallStats aggregates the ledger rows that pass f (After and
	// Limit are ignored) per tool (groupBy GroupByTool: Group is the
	// server's tool name) or per server (GroupByServer: Group is the
	// server), ordered by server and group. Count counts all rows; Errors,
	// ErrorRate, P50 and P95 consider finished calls only (not running or
	// awaiting approval), and an error is any final status but succeeded.
	//
	// It returns an error wrapping switchboard.ErrInvalid if groupBy is
	// unknown or the filter is invalid.
	ToolCallStats(ctx context.Context, f switchboard.ToolCallFilter, groupBy string) ([]switchboard.ToolCallStats, error)
	// AgentStats aggregates every user's turns started in [since, until)
	// by the agent each ended as, ordered by agent (turns of no agent,
	// run without agents configured, under ""): their count, handoffs and
	// tokens, and the P50 and P95 of the wall time of those that ended.
	AgentStats(ctx context.Context, since, until time.Time) ([]switchboard.AgentStats, error)
	// PruneToolCallPayloads removes the arguments, results and binary
	// content of at most batch ledger rows of ended calls that started
	// before before, oldest first, keeping the rows and their metadata (the
	// content's kind, type, size and hash); it returns how many it pruned.
	// A call still running (or awaiting an approval) keeps its arguments
	// until it ends. Call it until it returns less than batch. It returns an error wrapping
	// switchboard.ErrInvalid if batch is not above 0.
	PruneToolCallPayloads(ctx context.Context, before time.Time, batch int) (int, error)

	// GetMCPSession returns the kept streamable HTTP session of the user on
	// the server; ErrNotFound if none is kept.
	GetMCPSession(ctx context.Context, server, userID string) (switchboard.MCPSession, error)
	// PutMCPSession keeps s (its UpdatedAt is set), replacing the one kept
	// for its user and server. It returns an error wrapping ErrInvalid
	// without a server, user or session id.
	PutMCPSession(ctx context.Context, s switchboard.MCPSession) error

	// Per-user credentials (package credentials): what is secret in them
	// arrives sealed, and the store keeps the sealed bytes as they are,
	// beside the id of their key; it never sees plaintext.

	// GetCredential returns the user's credential for the server. It
	// returns an error wrapping switchboard.ErrNotFound if the user has
	// none for it (another user's is not found).
	GetCredential(ctx context.Context, userID, server string) (switchboard.Credential, error)
	// PutCredential stores c, replacing the user's credential for the
	// server if there is one; a zero CreatedAt or UpdatedAt is now. It
	// waits for an UpdateCredential of that credential in progress. It
	// returns an error wrapping switchboard.ErrInvalid without a user,
	// server, kind, key id or sealed value, or with one too long.
	PutCredential(ctx context.Context, c switchboard.Credential) error
	// UpdateCredential runs update on the user's credential for the server
	// under a lock that every instance on the store shares (Postgres: the
	// row's, SELECT ... FOR UPDATE, in a transaction that holds a
	// connection while update runs), and stores what update leaves in it:
	// its user and server stay, its times are as update leaves them. Two
	// updates of a credential run one after the other, the second seeing
	// what the first stored, and a Put or Delete of it waits, until ctx
	// ends; a read does not wait (it sees the credential as it was until
	// update's changes are stored), nor does a write of other records.
	// update must not write that credential through the store: it would
	// wait for itself. If update returns an error, nothing changes and
	// that error is returned as it is. It returns an error wrapping
	// switchboard.ErrNotFound if there is no such credential (update does
	// not run), and ErrInvalid if update leaves it invalid (as
	// PutCredential).
	UpdateCredential(ctx context.Context, userID, server string, update func(*switchboard.Credential) error) error
	// DeleteCredential deletes the user's credential for the server. It
	// returns an error wrapping switchboard.ErrNotFound if there was none.
	DeleteCredential(ctx context.Context, userID, server string) error
	// ListCredentials returns the user's credentials, or everyone's for
	// "" (for admins and key rotations), ordered by user and then server
	// (by bytes). None is an empty list.
	ListCredentials(ctx context.Context, userID string) ([]switchboard.Credential, error)
	// PutOAuthState stores a connect flow's state; a zero CreatedAt is
	// now. It returns an error wrapping switchboard.ErrConflict if a state
	// has its id, and ErrInvalid without an id, user, server, key id,
	// sealed value or expiry, or with one too long.
	PutOAuthState(ctx context.Context, s switchboard.OAuthState) error
	// TakeOAuthState returns the state with the given id and deletes it,
	// at once: of two takes, one gets it and the other finds nothing. It
	// returns an expired state too (its caller says it expired), unless
	// PruneOAuthStates removed it. It returns an error wrapping
	// switchboard.ErrNotFound if there is none.
	TakeOAuthState(ctx context.Context, id string) (switchboard.OAuthState, error)
	// PruneOAuthStates deletes the states that expired before before (the
	// flows that never came back) and returns how many it deleted.
	PruneOAuthStates(ctx context.Context, before time.Time) (int, error)
	// GetOAuthClient returns the client registered for the server at the
	// authorization server issuer. It returns an error wrapping
	// switchboard.ErrNotFound if there is none.
	GetOAuthClient(ctx context.Context, server, issuer string) (switchboard.OAuthClient, error)
	// PutOAuthClient stores c, replacing the client of its server and
	// issuer if there is one; a zero CreatedAt is now. It returns an error
	// wrapping switchboard.ErrInvalid without a server, issuer, client id,
	// key id or sealed value, or with one too long.
	PutOAuthClient(ctx context.Context, c switchboard.OAuthClient) error
	// ListOAuthClients returns every registered client, ordered by server
	// and then issuer (by bytes). None is an empty list.
	ListOAuthClients(ctx context.Context) ([]switchboard.OAuthClient, error)
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Postgres)(nil)
)
