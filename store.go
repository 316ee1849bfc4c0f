package switchboard

import "time"

// TurnStart is what a store commits, in one transaction, when a turn begins:
// the conversation (created when its ID is empty), the turn row and the
// user's message.
type TurnStart struct {
	// Conversation to continue, or to create when Conversation.ID is empty.
	// When continuing, it must belong to Turn.UserID (else ErrNotFound).
	// The store fills it in as stored; a Turn.Agent that is set becomes
	// its current agent.
	Conversation Conversation
	Turn         Turn
	UserMessage  Message
	// HistoryLimit bounds how many of the latest messages (the user's new
	// message included) the store returns as the history window; 0 means all.
	HistoryLimit int
	// Regenerate, above 0, makes the turn answer the conversation's
	// Regenerate-th user message (counting from 1 along its transcript)
	// again, instead of storing UserMessage, whose Content must equal that
	// message's; failing that, its last user message if that one's Content
	// does (a client whose count is off by messages we refused). The
	// messages after it leave the transcript and the history window; they
	// are kept, as are their turns and ledger rows. This is the AI SDK's
	// regenerate.
	Regenerate int
	// Edit, above 0, makes UserMessage replace the conversation's Edit-th
	// user message: that message and every one after it leave the
	// transcript (kept, as with Regenerate), and UserMessage is stored and
	// answered after them. With no such message, UserMessage is simply new.
	// This is the AI SDK's sendMessage({messageId}). Not with Regenerate.
	Edit int

	// Cancelled is filled by the store: the conversation's calls that
	// awaited an approval and that the start cancelled (the user went on
	// without deciding; see the stores' BeginTurn).
	Cancelled []ToolCall
	// Interrupted is filled by the store: the conversation's running turn
	// that no live instance held any more, which the start failed with its
	// calls; nil when there was none.
	Interrupted *Interrupted
}

// Interrupted is a running turn that a store failed because no live
// instance held it any more: the lease under which its instance held it ran
// out, or that instance started again (a crash, kill -9) and so cannot be
// running it. Calls are its ledger rows that the store closed with it: those
// running end failed with error class ErrorClassInterrupted, those awaiting
// an approval end cancelled.
type Interrupted struct {
	Turn  Turn
	Calls []ToolCall
}

// TurnUpdate is what a store commits, in one transaction, while a turn runs
// and when it ends: the turn's progress, new messages, and ledger rows
// (inserted, or updated when a row with that ID exists).
type TurnUpdate struct {
	Turn      Turn
	Messages  []Message
	ToolCalls []ToolCall
	// ConversationAgent, when set, becomes the conversation's current
	// agent (the turn handed off to it).
	ConversationAgent string
}

// ToolCallFilter selects ledger rows for admins. Zero fields do not filter.
// Rows come newest first; After is the keyset cursor returned with the
// previous page.
type ToolCallFilter struct {
	UserID         string
	ConversationID string
	TurnID         string
	Server         string
	Tool           string
	Status         ToolCallStatus
	Since, Until   time.Time // started_at >= Since and < Until
	After          string    // cursor from the previous page
	Limit          int       // 0 means a default page size
}

// ToolCallStats aggregates ledger rows of one group (a tool or a server).
type ToolCallStats struct {
	Group     string
	Server    string
	Count     int64
	Errors    int64
	ErrorRate float64
	P50       time.Duration
	P95       time.Duration
}

// AgentStats aggregates the turns of one agent: those that ended as it
// (a turn handed off counts for its last agent, with its handoffs).
type AgentStats struct {
	Agent            string
	Turns            int64
	Handoffs         int64
	PromptTokens     int64
	CompletionTokens int64
	// P50 and P95 are the wall time of its turns that ended.
	P50, P95 time.Duration
}
