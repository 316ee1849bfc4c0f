package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// chatRequest is the seed's chat body: {"message": {"content": "..."}}, with
// conversation_id in the body or the query.
type chatRequest struct {
	Message *struct {
		Content *string `json:"content"`
	} `json:"message"`
	ConversationID string `json:"conversation_id"`
}

// decodeChat reads and validates a chat request. Errors wrap ErrInvalid or
// ErrTooLarge with a message that says what to fix.
func (h *Handler) decodeChat(c *gin.Context) (orchestrator.Request, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrTooLarge, "body_too_large", "the request body is larger than %d bytes", h.opts.MaxBodyBytes)
	}
	if err != nil {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_body", "the request body could not be read")
	}
	return parseChat(body, c.Query("conversation_id"), h.opts.MaxMessageChars)
}

// parseChat validates a chat body; query is the conversation_id query
// parameter.
func parseChat(body []byte, query string, maxChars int) (orchestrator.Request, error) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_json", "the request body is not valid JSON: %s", jsonProblem(err))
	}
	if req.Message == nil || req.Message.Content == nil {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "missing_content", `the body must be {"message": {"content": "..."}}`)
	}
	content := *req.Message.Content
	if strings.TrimSpace(content) == "" {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "empty_content", "message.content is empty")
	}
	if !utf8.ValidString(content) {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_content", "message.content is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(content); n > maxChars {
		return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrTooLarge, "message_too_long", "message.content has %d characters; the limit is %d", n, maxChars)
	}
	conv := req.ConversationID
	if query != "" {
		if conv != "" && conv != query {
			return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "conflicting_conversation_id", "conversation_id differs between the query and the body")
		}
		conv = query
	}
	return orchestrator.Request{ConversationID: conv, Content: content}, nil
}

// jsonProblem describes a JSON decoding error without echoing input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "syntax error at byte " + itoa(syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return typ.Field + " must be a " + typ.Type.String()
		}
		return "the body must be a JSON object"
	}
	return "unexpected end of input"
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// chatResponse is the seed's reply, plus the turn's tool calls.
type chatResponse struct {
	Success        bool           `json:"success"`
	Message        messageDTO     `json:"message"`
	ConversationID string         `json:"conversation_id"`
	TurnID         string         `json:"turn_id"`
	Status         string         `json:"status"`
	ToolCalls      []toolCallDTO  `json:"tool_calls"`
	Usage          map[string]int `json:"usage"`
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
	Status      string          `json:"status"`
	Error       string          `json:"error"`
	DurationMS  float64         `json:"duration_ms"`
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toMessageDTO(m switchboard.Message) messageDTO {
	d := messageDTO{ID: m.ID, Content: m.Content, Role: string(m.Role), Timestamp: timestamp(m.Timestamp),
		Type: string(m.Type), ToolCallID: m.ToolCallID, ToolName: m.ToolName, TurnID: m.TurnID}
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
	return toolCallDTO{ID: tc.ID, CallID: tc.CallID, Server: tc.Server, Tool: tc.Tool, ExposedName: tc.ExposedName,
		Arguments: args, Result: tc.Result, Structured: tc.StructuredResult, Status: string(tc.Status),
		Error: tc.Error, DurationMS: ms(tc.Duration)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (h *Handler) postChat(c *gin.Context) {
	req, err := h.decodeChat(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	req.UserID = identity(c).UserID
	res, err := h.Chat.Run(c.Request.Context(), req, nil)
	if err != nil {
		h.writeError(c, err)
		return
	}
	resp := chatResponse{
		Success:        true,
		Message:        toMessageDTO(res.Message),
		ConversationID: res.Turn.ConversationID,
		TurnID:         res.Turn.ID,
		Status:         string(res.Turn.Status),
		ToolCalls:      make([]toolCallDTO, len(res.ToolCalls)),
		Usage:          map[string]int{"prompt_tokens": res.Turn.PromptTokens, "completion_tokens": res.Turn.CompletionTokens, "steps": res.Turn.Steps},
	}
	for i, tc := range res.ToolCalls {
		resp.ToolCalls[i] = toToolCallDTO(tc)
	}
	c.Header("Server-Timing", serverTiming(res.Turn.Timing))
	c.JSON(http.StatusOK, resp)
}

// serverTiming renders a turn's time split as a Server-Timing header.
func serverTiming(t switchboard.TurnTiming) string {
	return "model;dur=" + fmtMS(t.LLM) + ", tools;dur=" + fmtMS(t.Tools) + ", store;dur=" + fmtMS(t.Store) + ", overhead;dur=" + fmtMS(t.Overhead)
}

func fmtMS(d time.Duration) string {
	b, _ := json.Marshal(ms(d))
	return string(b)
}
