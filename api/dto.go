package api

import (
	"encoding/json"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// The chat route's replies: the seed's JSON reply and the records it
// carries, as the conversation and admin routes show them too.

// chatResponse is the seed's reply, plus the turn's tool calls.
type chatResponse struct {
	Success        bool           `json:"success"`
	Message        messageDTO     `json:"message"`
	ConversationID string         `json:"conversation_id"`
	TurnID         string         `json:"turn_id"`
	Status         string         `json:"status"`
	ToolCalls      []toolCallDTO  `json:"tool_calls"`
	Usage          map[string]int `json:"usage"`
	// PendingApprovals are the calls waiting for approval when status is
	// awaiting_approval.
	PendingApprovals []toolCallDTO `json:"pending_approvals,omitempty"`
	// PendingInputs are the questions of servers waiting for the user's
	// answer when status is awaiting_input.
	PendingInputs []inputDTO `json:"pending_inputs,omitempty"`
	// ConnectionsRequired are the servers the user must connect before
	// calls of theirs run (calls that failed with connection_required).
	ConnectionsRequired []connectionRequiredDTO `json:"connections_required,omitempty"`
	// Agent is the agent that answered (the turn's last), and Handoffs
	// how often the turn changed agent, when agents are configured;
	// Structured the answer's parsed object, for an agent with an output
	// schema.
	Agent      string          `json:"agent,omitempty"`
	Handoffs   int             `json:"handoffs,omitempty"`
	Structured json.RawMessage `json:"structured,omitempty"`
}

type messageDTO struct {
	ID         string        `json:"id"`
	Content    string        `json:"content"`
	Role       string        `json:"role"`
	Timestamp  string        `json:"timestamp"`
	Type       string        `json:"type"`
	ToolCalls  []requestedTC `json:"tool_calls,omitempty"`
	ToolCallID string        `json:"tool_call_id,omitempty"`
	ToolName   string        `json:"tool_name,omitempty"`
	TurnID     string        `json:"turn_id,omitempty"`
	// SupersededBy, in an admin's view: the turn that answered this
	// message's question again.
	SupersededBy string `json:"superseded_by,omitempty"`
	// Feedback is the user's rating of the message (ChatKit's
	// items.feedback): positive or negative.
	Feedback string `json:"feedback,omitempty"`
	// Agent is the agent that wrote an assistant message; Handoff, on a
	// message of type handoff, which agent handed the turn to which;
	// Structured the parsed answer of an agent with an output schema.
	Agent      string               `json:"agent,omitempty"`
	Handoff    *switchboard.Handoff `json:"handoff,omitempty"`
	Structured json.RawMessage      `json:"structured,omitempty"`
}

type requestedTC struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type toolCallDTO struct {
	ID          string          `json:"id"`
	CallID      string          `json:"call_id"`
	Server      string          `json:"server"`
	Tool        string          `json:"tool"`
	ExposedName string          `json:"exposed_name"`
	Arguments   json.RawMessage `json:"arguments"`
	Result      string          `json:"result"`
	Structured  json.RawMessage `json:"structured_result,omitempty"`
	// ResultTruncated reports that result (or structured_result) is a
	// preview of a larger result of ResultSize bytes (see previewBytes).
	ResultTruncated bool    `json:"result_truncated,omitempty"`
	ResultSize      int     `json:"result_size"`
	Status          string  `json:"status"`
	Error           string  `json:"error"`
	DurationMS      float64 `json:"duration_ms"`
	// Content lists the result's binary parts (images, audio, blobs), each
	// with the URL of its bytes.
	Content []contentDTO `json:"content,omitempty"`
	// Agent is the agent that asked for the call; ParentID the call of an
	// agent used as a tool that it ran inside.
	Agent    string `json:"agent,omitempty"`
	ParentID string `json:"parent_id,omitempty"`
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toMessageDTO(m switchboard.Message) messageDTO {
	d := messageDTO{ID: m.ID, Content: m.Content, Role: string(m.Role), Timestamp: timestamp(m.Timestamp),
		Type: string(m.Type), ToolCallID: m.ToolCallID, ToolName: m.ToolName, TurnID: m.TurnID, SupersededBy: m.SupersededBy, Feedback: m.Feedback,
		Agent: m.Agent, Handoff: m.Handoff, Structured: m.Structured}
	for _, tc := range m.ToolCalls {
		d.ToolCalls = append(d.ToolCalls, requestedTC(tc))
	}
	return d
}

func toToolCallDTO(tc switchboard.ToolCall) toolCallDTO {
	args := tc.Arguments
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	p := previewOf(tc)
	return toolCallDTO{ID: tc.ID, CallID: tc.CallID, Server: tc.Server, Tool: tc.Tool, ExposedName: tc.ExposedName,
		Arguments: args, Result: p.Result, Structured: p.Structured, ResultTruncated: p.Truncated, ResultSize: p.Size,
		Status: string(tc.Status), Error: tc.Error, DurationMS: ms(tc.Duration), Content: ownContent(tc), Agent: tc.Agent, ParentID: tc.ParentID}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// toChatResponse is the seed's reply to a turn.
func toChatResponse(res *orchestrator.Result) chatResponse {
	resp := chatResponse{
		Success:        true,
		Message:        toMessageDTO(res.Message),
		ConversationID: res.Turn.ConversationID,
		TurnID:         res.Turn.ID,
		Status:         string(res.Turn.Status),
		ToolCalls:      make([]toolCallDTO, len(res.ToolCalls)),
		Usage:          map[string]int{"prompt_tokens": res.Turn.PromptTokens, "completion_tokens": res.Turn.CompletionTokens, "steps": res.Turn.Steps},
		Agent:          res.Turn.Agent,
		Handoffs:       res.Turn.Handoffs,
		Structured:     res.Message.Structured,
	}
	for i, tc := range res.ToolCalls {
		resp.ToolCalls[i] = toToolCallDTO(tc)
	}
	for _, tc := range res.Pending {
		resp.PendingApprovals = append(resp.PendingApprovals, toToolCallDTO(tc))
	}
	for _, in := range res.Inputs {
		resp.PendingInputs = append(resp.PendingInputs, toInputDTO(in))
	}
	return resp
}

// inputDTO is a question of a server to the user (an elicitation).
type inputDTO struct {
	ID         string `json:"id"`
	ToolCallID string `json:"tool_call_id"`
	Server     string `json:"server"`
	// Mode is form (answer with content fitting requested_schema) or url
	// (open url, then accept).
	Mode            string          `json:"mode"`
	Message         string          `json:"message"`
	RequestedSchema json.RawMessage `json:"requested_schema,omitempty"`
	URL             string          `json:"url,omitempty"`
	Status          string          `json:"status"`
	Action          string          `json:"action,omitempty"`
	CreatedAt       string          `json:"created_at"`
}

func toInputDTO(in switchboard.Input) inputDTO {
	return inputDTO{ID: in.ID, ToolCallID: in.ToolCallID, Server: in.Server, Mode: in.Mode, Message: in.Message,
		RequestedSchema: in.RequestedSchema, URL: in.URL, Status: string(in.Status), Action: in.Action, CreatedAt: timestamp(in.CreatedAt)}
}
