package switchboard

// Error codes that one package produces and another acts on. Clients see
// them as the code of an error reply, so their values never change; the web
// UI names those it reacts to (web/static/protocol.js, which a test in
// package api holds equal). A code that only its producer knows stays a
// literal at the Errorf that makes it.
const (
	// CodeTurnRunning means another turn of the conversation runs (ErrConflict).
	CodeTurnRunning = "turn_running"
	// CodeTurnCancelled means the turn was cancelled, live or in the replay of an idempotent request (ErrConflict).
	CodeTurnCancelled = "turn_cancelled"
	// CodeNoRunningTurn means a cancel found no running turn of the user in the conversation (ErrConflict).
	CodeNoRunningTurn = "no_running_turn"
	// CodeNothingToRegenerate means the conversation has no such user message to answer again (ErrConflict).
	CodeNothingToRegenerate = "nothing_to_regenerate"
	// CodeIdempotencyKeyReused means the user sent this idempotency key before (ErrConflict).
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	// CodeConversationExists means the user has a conversation with the client's id already (ErrConflict).
	CodeConversationExists = "conversation_exists"
	// CodeAlreadyDecided means the tool call was approved or denied before (ErrConflict).
	CodeAlreadyDecided = "already_decided"
	// CodeNotAwaitingApproval means the tool call, or its turn, does not await approval (ErrConflict).
	CodeNotAwaitingApproval = "not_awaiting_approval"
	// CodeSuperseded means the conversation went on after the tool call asked for approval (ErrConflict).
	CodeSuperseded = "superseded"
	// CodeToolCallNotFound means there is no such tool call, or it is not the caller's (ErrNotFound).
	CodeToolCallNotFound = "tool_call_not_found"
	// CodeAdminOnly means a route for admins was asked for by someone else (ErrForbidden).
	CodeAdminOnly = "admin_only"
	// CodeGuardrailTripped means a guardrail refused the user's message or withheld the answer (ErrUnprocessable);
	// it is also the error class of a guardrail's ledger row that tripped.
	CodeGuardrailTripped = "guardrail_tripped"
	// CodeConnectionRequired means the user must connect an MCP server (sign in, or give its secrets)
	// before its tools run as them (ErrForbidden).
	CodeConnectionRequired = "connection_required"
)

// IsCode reports whether the client-facing code of err (see ErrorCode) is
// code.
func IsCode(err error, code string) bool {
	return ErrorCode(err) == code
}
