package switchboard

import (
	"encoding/json"
	"time"
)

// Input is a question an MCP server asked the user in the middle of a tool
// call (an elicitation): its turn waits for the answer, which is given
// once. Over a connection of the legacy era the server's request stays open
// on the instance that received it (the call's), which the answer reaches
// wherever it is posted.
type Input struct {
	ID             string
	UserID         string
	ConversationID string
	TurnID         string
	// ToolCallID is the ledger id of the call that asked.
	ToolCallID string
	Server     string
	// Mode is InputForm or InputURL.
	Mode    string
	Message string
	// RequestedSchema is the form's JSON schema, as the server sent it
	// (form mode).
	RequestedSchema json.RawMessage
	// URL and ElicitationID are the link to open and the id the server's
	// completion notice names (url mode).
	URL           string
	ElicitationID string
	// RequestKey and RequestState are set for a question of a modern
	// server (MCP 2026-07-28), which asks by answering the call with
	// input_required: the key it gave the question in inputRequests, and
	// the requestState to echo when the call is made again with the answer
	// (inputResponses). Nothing is held open on any connection for it.
	RequestKey   string
	RequestState string
	// InputRequests is the whole round a modern server's question came in
	// (the result's inputRequests, a JSON object by key), so that the call
	// made again answers every one of them, also from another instance.
	InputRequests json.RawMessage
	Status        InputStatus
	// Action is the answer: accept, decline or cancel; Content the form's
	// content when accepted.
	Action  string
	Content json.RawMessage
	// Reason says why an input that was not answered closed.
	Reason     string
	CreatedAt  time.Time
	AnsweredAt time.Time // zero until answered or closed
	// TakenAt is when the call took the answer to send it on (a modern
	// server's question; see TakeInput): zero until then. An answer not
	// yet taken is sent by whoever continues the call; one taken never
	// again.
	TakenAt time.Time
}

// AnsweredInput is what answering an input did (the stores' AnswerInput).
type AnsweredInput struct {
	Input Input
	// Resumed says that the answer took over the input's turn, which no
	// instance held (stored awaiting_input: its instance stopped while a
	// modern server's question waited). The caller now holds the turn,
	// running under its lease, and is to continue its asking calls.
	Resumed bool
	// Interrupted is the input's turn if the answer found it held by no
	// live instance and closed it on the way (failed, or stored
	// awaiting_input and then Resumed).
	Interrupted *Interrupted
}

// Modes of an Input.
const (
	InputForm = "form"
	InputURL  = "url"
)

// Actions that answer an Input.
const (
	ActionAccept  = "accept"
	ActionDecline = "decline"
	ActionCancel  = "cancel"
)

// InputStatus is where an Input is.
type InputStatus string

const (
	// InputPending waits for the user's answer.
	InputPending InputStatus = "pending"
	// InputAnswered was answered by the user (Action says how).
	InputAnswered InputStatus = "answered"
	// InputCompleted is a url-mode input the server reported complete
	// before the user answered.
	InputCompleted InputStatus = "completed"
	// InputCancelled closed without an answer: a new message, or the turn
	// cancelled.
	InputCancelled InputStatus = "cancelled"
	// InputExpired closed when its wait (elicitation_timeout) ran out.
	InputExpired InputStatus = "expired"
	// InputFailed closed because the call that asked ended another way:
	// its connection died, it timed out, the server gave up.
	InputFailed InputStatus = "failed"
)

// Error codes of inputs.
const (
	// CodeInputNotFound means there is no such input, or it is not the caller's (ErrNotFound).
	CodeInputNotFound = "input_not_found"
	// CodeInputClosed means the input was answered before, or closed without an answer (ErrConflict).
	CodeInputClosed = "input_closed"
	// CodeInputInvalid means the answer does not fit the requested schema (ErrInvalid).
	CodeInputInvalid = "invalid_input"
)
