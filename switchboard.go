// Package switchboard is the domain vocabulary of Switchboard, a service that
// puts an LLM and any number of MCP tool servers behind one chat API.
//
// The root package holds only types, statuses and sentinel errors; every
// capability (storage, MCP connections, the tool catalog, the model client,
// the agent loop, the HTTP API) lives in its own package and imports this one.
package switchboard

import (
	"encoding/json"
	"time"
)

// Role says who wrote a message, in OpenAI's chat vocabulary.
type Role string

// Roles of a message.
const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
	RoleSystem    Role = "system"
)

// MessageType is the kind of a stored message. The seed's `message_type`
// column holds it.
type MessageType string

// Message types. A tool_call message is an assistant message that asked for
// tools (its ToolCalls are set); a tool_result message answers one of them
// (its ToolCallID is set); an error message records a turn that ended badly.
const (
	MessageText       MessageType = "text"
	MessageToolCall   MessageType = "tool_call"
	MessageToolResult MessageType = "tool_result"
	MessageError      MessageType = "error"
	// MessageHandoff records that the turn went on as another agent (a
	// transfer_to_<agent> call): its Handoff says from which to which. It
	// is not replayed to the model, which reads the transfer call and its
	// result instead.
	MessageHandoff MessageType = "handoff"
)

// Valid reports whether t is one of the known message types.
func (t MessageType) Valid() bool {
	switch t {
	case MessageText, MessageToolCall, MessageToolResult, MessageError, MessageHandoff:
		return true
	}
	return false
}

// Conversation is one chat thread of one user.
type Conversation struct {
	ID     string
	UserID string
	// ExternalID is a client's own id for the conversation (the AI SDK's
	// chat id), unique per user; empty when the client uses ours.
	ExternalID string
	Title      string
	Status     string
	// Agent is the conversation's current agent: the one its next turn
	// starts with unless the request names another (empty: the default
	// agent).
	Agent     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConversationActive is the status of a conversation that takes new messages.
const ConversationActive = "active"

// Message is one entry of a conversation's transcript.
type Message struct {
	ID             string
	ConversationID string
	TurnID         string
	Role           Role
	Content        string
	Type           MessageType
	Timestamp      time.Time
	// ToolCalls are the calls an assistant message of type tool_call asked for.
	ToolCalls []RequestedCall
	// ToolCallID names the call a tool_result message answers (the model's id).
	ToolCallID string
	// ToolName is the exposed name of the tool a tool_result message answers.
	ToolName string
	// SupersededBy, when set, is the turn that answered again the question
	// this message answered (the AI SDK's regenerate): the message is kept
	// but is out of the transcript and of the history the model sees.
	SupersededBy string
	// Attachments, on a tool_result message, are the binary parts of the
	// call's result (without their bytes), so that the images among them
	// can be shown to a model that sees images, also when history is
	// replayed.
	Attachments []ContentPart
	// Agent is the agent that wrote an assistant message (empty when no
	// agents are configured).
	Agent string
	// Handoff, on a message of type handoff, says which agent handed the
	// turn to which.
	Handoff *Handoff
	// Structured is the parsed answer of an agent with an output schema,
	// on its final text message.
	Structured json.RawMessage
	// Feedback is the user's rating of the message, FeedbackPositive or
	// FeedbackNegative (ChatKit's items.feedback); empty when none. Stores
	// set it with SetFeedback, never when they store the message.
	Feedback string
}

// Handoff is one agent handing a turn to another.
type Handoff struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// The ratings a user gives a message.
const (
	FeedbackPositive = "positive"
	FeedbackNegative = "negative"
)

// ContentPart is one binary part of a tool result, kept beside the call's
// text: an image, audio, or a resource whose content is not text. Its bytes
// are stored in a row of their own and read with
// GetToolCallContent; listings carry the rest.
type ContentPart struct {
	// ToolCallID is the ledger id of the call whose result holds it.
	ToolCallID string `json:"tool_call_id"`
	// Index is its position among the call's binary parts, from 0.
	Index    int         `json:"index"`
	Kind     ContentKind `json:"kind"`
	MIMEType string      `json:"mime_type"`
	// URI is the resource's, for a resource part.
	URI    string `json:"uri,omitempty"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"` // of the bytes, hex
	// Data are the bytes: set when a call's result is saved and when read
	// with GetToolCallContent, nil in listings.
	Data []byte `json:"-"`
}

// ContentKind is the kind of a binary content part.
type ContentKind string

// Kinds of content parts, as MCP names them.
const (
	ContentImage    ContentKind = "image"
	ContentAudio    ContentKind = "audio"
	ContentResource ContentKind = "resource"
)

// RequestedCall is a tool call as the model asked for it: the model's call id,
// the exposed tool name and the raw JSON arguments.
type RequestedCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// TurnStatus is the state of a turn.
type TurnStatus string

// Turn statuses.
const (
	TurnRunning          TurnStatus = "running"
	TurnCompleted        TurnStatus = "completed"
	TurnFailed           TurnStatus = "failed"
	TurnMaxSteps         TurnStatus = "max_steps"
	TurnCancelled        TurnStatus = "cancelled"
	TurnAwaitingApproval TurnStatus = "awaiting_approval"
	// TurnMaxHandoffs ends a turn whose agents handed it on more often
	// than the service allows.
	TurnMaxHandoffs TurnStatus = "max_handoffs"
	// TurnGuardrailTripped ends a turn whose message or answer a guardrail
	// refused.
	TurnGuardrailTripped TurnStatus = "guardrail_tripped"
	// TurnAwaitingInput is a turn whose call waits for the user's answer
	// to a question of its server (an Input). While its instance runs it,
	// it is reported, not stored: the turn's row stays running. It is
	// stored when that instance stopped while a modern server's question
	// waited: then no instance holds it, and the answer continues it
	// wherever it is posted.
	TurnAwaitingInput TurnStatus = "awaiting_input"
)

// Turn is one chat request: the user's message and everything the loop did to
// answer it.
type Turn struct {
	ID             string
	ConversationID string
	UserID         string
	Status         TurnStatus
	IdempotencyKey string
	// RequestHash identifies the request that started the turn, so that a
	// retry with the same idempotency key can be told from another request.
	RequestHash string
	// Agent is the agent the turn runs as: the one it started with, then
	// the target of each handoff (empty when no agents are configured).
	Agent string
	// Handoffs counts the turn's handoffs.
	Handoffs int
	// Steps counts model calls.
	Steps            int
	PromptTokens     int
	CompletionTokens int
	// Timing splits the turn's wall time into model calls, tool calls and the
	// rest (our own overhead, storage included).
	Timing     TurnTiming
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// TurnTiming splits a turn's wall time.
type TurnTiming struct {
	LLM      time.Duration
	Tools    time.Duration
	Store    time.Duration
	Overhead time.Duration
}

// ToolCallStatus is the state of one tool call in the ledger.
type ToolCallStatus string

// Tool call statuses.
const (
	CallRunning   ToolCallStatus = "running"
	CallSucceeded ToolCallStatus = "succeeded"
	CallFailed    ToolCallStatus = "failed"
	CallTimedOut  ToolCallStatus = "timed_out"
	CallCancelled ToolCallStatus = "cancelled"
	CallDenied    ToolCallStatus = "denied"
	// CallAwaitingApproval is a call that waits for a person to approve or
	// deny it; it has not run.
	CallAwaitingApproval ToolCallStatus = "awaiting_approval"
)

// Valid reports whether s is one of the known tool call statuses.
func (s ToolCallStatus) Valid() bool {
	switch s {
	case CallRunning, CallSucceeded, CallFailed, CallTimedOut, CallCancelled, CallDenied, CallAwaitingApproval:
		return true
	}
	return false
}

// Error classes of a failed tool call, for aggregation.
const (
	ErrorClassTool      = "tool_error"      // the tool answered with isError
	ErrorClassInvalid   = "invalid_request" // unknown tool, arguments not JSON, rejected by the server
	ErrorClassTransport = "transport"       // the connection to the server failed
	ErrorClassTimeout   = "timeout"
	ErrorClassCancelled = "cancelled"
	ErrorClassDenied    = "denied" // a person refused the call
	// ErrorClassTooLarge is an answer over the server's max_result_bytes,
	// dropped as it was read.
	ErrorClassTooLarge = "too_large"
	// ErrorClassMalformed is an answer that cannot be read (nested deeper
	// than a JSON decoder follows).
	ErrorClassMalformed = "malformed"
	// ErrorClassBusy is a call that found every session of its server in
	// use, at the server's max_sessions, for as long as it could wait.
	ErrorClassBusy = "busy"
	// ErrorClassConnectionRequired is a call of a server that acts as the
	// user, who has not connected it (or whose grant it no longer takes).
	ErrorClassConnectionRequired = "connection_required"
	// ErrorClassInvalidResult is a result whose structured content does not
	// match the output schema its tool declared (or is missing): MCP tells
	// clients to validate it, and an invalid one is an error for the model.
	ErrorClassInvalidResult = "invalid_result"
	// ErrorClassInterrupted is a call that was running when the instance
	// running its turn died (a crash, kill -9, a lost host): the call ends
	// failed when the turn is found orphaned, and whether the tool did its
	// work is unknown.
	ErrorClassInterrupted = "interrupted"
)

// ToolCall is one row of the tool-call ledger.
type ToolCall struct {
	ID             string
	CallID         string // the model's id for the call
	UserID         string
	ConversationID string
	TurnID         string
	Step           int
	// Agent is the agent whose model asked for the call (empty when no
	// agents are configured).
	Agent string
	// ParentID is the ledger id of the call of an agent used as a tool
	// that this call ran inside (empty for a call of the turn itself).
	ParentID    string
	Server      string
	Tool        string // the server's own name
	ExposedName string // the name the model sees
	// Arguments are the arguments sent to the server, injected ones included.
	Arguments        json.RawMessage
	Result           string
	StructuredResult json.RawMessage
	// Content are the result's binary parts (images, audio, blobs), in the
	// order the server sent them; the text of Result names each one.
	Content    []ContentPart
	Status     ToolCallStatus
	ErrorClass string
	Error      string
	Duration   time.Duration
	ResultSize int
	Truncated  bool
	// PayloadPruned marks a row whose arguments and results were removed
	// by retention; its metadata stays for statistics.
	PayloadPruned bool
	// SessionScope, SessionKey and SessionGeneration name the server
	// session the call ran on: its scope (shared, user, conversation), its
	// key (the user or conversation id; empty when shared) and the
	// generation of the connection (it changes when the session restarts).
	SessionScope      string
	SessionKey        string
	SessionGeneration int64
	StartedAt         time.Time
	FinishedAt        time.Time
	// TaskID and TaskStatus are those of the MCP task a call ran as (a tool
	// that can only be called as a task): the server's id for it and the
	// last status the call saw (working, input_required, completed,
	// failed, cancelled). Empty for a call that ran as a plain request.
	TaskID     string
	TaskStatus string
}

// ToolProgress is what an MCP server reported of a call while it ran (its
// notifications/progress): Progress and Total as the server counts them
// (Total is 0 when it does not know the total), and its Message, if any.
type ToolProgress struct {
	Progress float64
	Total    float64
	Message  string
}

// Finished reports whether the call has reached a final status.
func (c *ToolCall) Finished() bool {
	return c.Status != CallRunning && c.Status != CallAwaitingApproval && c.Status != ""
}

// ToolDefinition is a tool as the model sees it: an exposed name that is
// valid for OpenAI (^[a-zA-Z0-9_-]{1,64}$), a description and the JSON Schema
// of its parameters.
type ToolDefinition struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

// ModelRequest is one call to the model: the history window and the tools it
// may ask for.
type ModelRequest struct {
	Messages []Message
	Tools    []ToolDefinition
	// Model, when set, is the model name sent instead of the client's own
	// (an agent's model on a shared provider, or the model a server's
	// sampling request prefers).
	Model string
	// MaxTokens, when positive, caps the reply's tokens (a sampling
	// request's cap); it wins over Settings.MaxTokens.
	MaxTokens int
	// Settings tune the call (an agent's model_settings); zero values are
	// not sent.
	Settings ModelSettings
	// OutputSchema, when set, asks for an answer that is a JSON object of
	// this JSON Schema (response_format json_schema, strict).
	OutputSchema *OutputSchema
}

// ModelSettings are the sampling settings of a model call; nil or empty
// means the model server's default.
type ModelSettings struct {
	Temperature       *float64 `json:"temperature,omitempty"`
	TopP              *float64 `json:"top_p,omitempty"`
	MaxTokens         int      `json:"max_tokens,omitempty"`
	ToolChoice        string   `json:"tool_choice,omitempty"` // auto, required, none, or a tool's name
	ParallelToolCalls *bool    `json:"parallel_tool_calls,omitempty"`
	ReasoningEffort   string   `json:"reasoning_effort,omitempty"`
}

// OutputSchema is the JSON Schema an answer must be an instance of.
type OutputSchema struct {
	Name   string
	Schema json.RawMessage
}

// ModelReply is the model's answer to one ModelRequest: text, or tool calls,
// or both.
type ModelReply struct {
	Content          string
	ToolCalls        []RequestedCall
	FinishReason     string
	PromptTokens     int
	CompletionTokens int
}
