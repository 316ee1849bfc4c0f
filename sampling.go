package switchboard

import "time"

// Sampling is a ledger row of its own for a server's request to sample the
// model (MCP sampling/createMessage) during a tool call, linked to that
// call.
type Sampling struct {
	ID             string
	UserID         string
	ConversationID string
	TurnID         string
	ToolCallID     string
	Server         string
	// Kind is what the server asked for: "sampling" (createMessage).
	Kind string
	// Model is the configured model that answered.
	Model  string
	Status SamplingStatus
	// Error says why it failed or was denied.
	Error string
	// MaxTokens is the cap the model was given (the server's ask within
	// sampling_max_tokens).
	MaxTokens        int
	PromptTokens     int
	CompletionTokens int
	Duration         time.Duration
	StartedAt        time.Time
	FinishedAt       time.Time
}

// SamplingStatus is how a sampling request ended.
type SamplingStatus string

const (
	SamplingSucceeded SamplingStatus = "succeeded"
	SamplingFailed    SamplingStatus = "failed"
	// SamplingDenied is a request the user did not approve.
	SamplingDenied SamplingStatus = "denied"
)
