package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// uiStream writes a turn as the Vercel AI SDK UI message stream (protocol
// v1: server-sent events of JSON parts, then [DONE]), so that useChat works
// unmodified. It implements orchestrator.Events. Nothing is written until
// the turn has started, so that errors before it (a bad conversation id, no
// model) are still plain JSON errors with their status.
type uiStream struct {
	c       *gin.Context
	started bool
	turn    switchboard.Turn
	text    string // id of the open text part, "" when none
	texts   int
	enc     *partEncoder // from partEncoders while the stream runs
}

// partEncoder encodes the parts of a stream into one buffer, reused from
// stream to stream: a streamed turn writes dozens of parts, a text delta
// each a few bytes long.
type partEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var partEncoders = sync.Pool{New: func() any {
	e := &partEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

// streamHeaders mark the response as the AI SDK's UI message stream.
func streamHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	h.Set("x-vercel-ai-ui-message-stream", "v1")
	// The turn's time split is known only at its end: it comes as a
	// trailer.
	h.Set("Trailer", "Server-Timing")
}

// part writes one part as an SSE event, into the response's buffer: the
// events after which the turn waits (for the model, a tool, or the next
// delta) flush the parts written before them, so that a burst of parts
// goes out in one write.
func (s *uiStream) part(v any) {
	if s.enc == nil {
		s.enc = partEncoders.Get().(*partEncoder)
	}
	b := &s.enc.buf
	b.Reset()
	b.WriteString("data: ")
	if err := s.enc.enc.Encode(v); err != nil { // Encode ends the line
		return
	}
	b.WriteByte('\n')
	_, _ = s.c.Writer.Write(b.Bytes())
}

// flush sends the parts written so far.
func (s *uiStream) flush() { s.c.Writer.Flush() }

// release gives the stream's encoder back for another stream.
func (s *uiStream) release() {
	if s.enc != nil && s.enc.buf.Cap() <= 64<<10 { // a huge tool result's buffer is not kept
		partEncoders.Put(s.enc)
	}
	s.enc = nil
}

type part struct {
	Type string `json:"type"`
}

type idPart struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type deltaPart struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Delta string `json:"delta"`
}

type startPart struct {
	Type            string          `json:"type"`
	MessageID       string          `json:"messageId"`
	MessageMetadata messageMetadata `json:"messageMetadata"`
}

type messageMetadata struct {
	ConversationID string `json:"conversationId"`
	TurnID         string `json:"turnId"`
	Status         string `json:"status,omitempty"`
}

type toolInputPart struct {
	Type       string          `json:"type"`
	ToolCallID string          `json:"toolCallId"`
	ToolName   string          `json:"toolName"`
	Input      json.RawMessage `json:"input"`
	Dynamic    bool            `json:"dynamic"`
	Title      string          `json:"title,omitempty"`
}

type toolOutputPart struct {
	Type       string     `json:"type"`
	ToolCallID string     `json:"toolCallId"`
	Output     toolOutput `json:"output"`
	Dynamic    bool       `json:"dynamic"`
}

// toolOutput is what a client sees of a finished call: the ledger's view.
type toolOutput struct {
	Result     string          `json:"result"`
	Structured json.RawMessage `json:"structured,omitempty"`
	Status     string          `json:"status"`
	DurationMS float64         `json:"duration_ms"`
	Server     string          `json:"server"`
	Tool       string          `json:"tool"`
	// Truncated reports that the model saw the result cut to its output
	// budget; ResultTruncated that result (or structured) is a preview of
	// a larger result of ResultSize bytes.
	Truncated       bool `json:"truncated,omitempty"`
	ResultTruncated bool `json:"result_truncated,omitempty"`
	ResultSize      int  `json:"result_size"`
}

type toolDeniedPart struct {
	Type       string `json:"type"`
	ToolCallID string `json:"toolCallId"`
}

type toolErrorPart struct {
	Type       string `json:"type"`
	ToolCallID string `json:"toolCallId"`
	ErrorText  string `json:"errorText"`
	Dynamic    bool   `json:"dynamic"`
}

// dataPart carries what the protocol's own parts have no field for: a
// call's ledger status and duration, whatever its outcome.
type dataPart struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data"`
}

type toolCallData struct {
	ID         string  `json:"id"`
	Server     string  `json:"server"`
	Tool       string  `json:"tool"`
	Status     string  `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

type approvalPart struct {
	Type       string `json:"type"`
	ApprovalID string `json:"approvalId"`
	ToolCallID string `json:"toolCallId"`
}

type errorPart struct {
	Type      string `json:"type"`
	ErrorText string `json:"errorText"`
}

type finishPart struct {
	Type            string          `json:"type"`
	FinishReason    string          `json:"finishReason,omitempty"`
	MessageMetadata messageMetadata `json:"messageMetadata"`
}

// TurnStarted opens the stream. The UI message is the turn: its id is the
// turn's, and its metadata names the conversation.
func (s *uiStream) TurnStarted(t switchboard.Turn) {
	streamHeaders(s.c.Writer)
	s.c.Status(http.StatusOK)
	s.started = true
	s.turn = t
	s.part(startPart{Type: "start", MessageID: t.ID, MessageMetadata: messageMetadata{ConversationID: t.ConversationID, TurnID: t.ID}})
}

// StepStarted is followed by a model call, ToolStarted by a tool's run,
// ToolFinished maybe by other tools' ends, TextDelta by the model's next
// delta: each flushes. TurnStarted and StepFinished are always followed by
// one of them or by the turn's end, whose final commit (retried while the
// store is away, up to its timeout) comes before the last parts go out.
func (s *uiStream) StepStarted(int) {
	s.part(part{Type: "start-step"})
	s.flush()
}

func (s *uiStream) TextDelta(delta string) {
	if s.text == "" {
		s.texts++
		s.text = "text-" + strconv.Itoa(s.texts)
		s.part(idPart{Type: "text-start", ID: s.text})
	}
	s.part(deltaPart{Type: "text-delta", ID: s.text, Delta: delta})
	s.flush()
}

func (s *uiStream) closeText() {
	if s.text != "" {
		s.part(idPart{Type: "text-end", ID: s.text})
		s.text = ""
	}
}

func (s *uiStream) ToolStarted(c switchboard.ToolCall) {
	s.closeText()
	s.toolInput(c)
	s.flush()
}

func (s *uiStream) toolInput(c switchboard.ToolCall) {
	input := c.Arguments
	if !json.Valid(input) {
		input = json.RawMessage("{}")
	}
	s.part(toolInputPart{Type: "tool-input-available", ToolCallID: c.ID, ToolName: c.ExposedName, Input: input,
		Dynamic: true, Title: c.Server + " · " + c.Tool})
}

func (s *uiStream) ToolFinished(c switchboard.ToolCall) {
	switch c.Status {
	case switchboard.CallSucceeded:
		p := previewOf(c)
		s.part(toolOutputPart{Type: "tool-output-available", ToolCallID: c.ID, Dynamic: true, Output: toolOutput{
			Result: p.Result, Structured: p.Structured, Status: string(c.Status), DurationMS: ms(c.Duration),
			Server: c.Server, Tool: c.Tool, Truncated: c.Truncated, ResultTruncated: p.Truncated, ResultSize: p.Size}})
	case switchboard.CallDenied:
		s.part(toolDeniedPart{Type: "tool-output-denied", ToolCallID: c.ID})
	default:
		msg := c.Error
		if msg == "" {
			msg = strings.TrimPrefix(c.Result, "error: ")
		}
		s.part(toolErrorPart{Type: "tool-output-error", ToolCallID: c.ID, ErrorText: msg, Dynamic: true})
	}
	s.part(dataPart{Type: "data-tool-call", ID: c.ID, Data: toolCallData{ID: c.ID, Server: c.Server, Tool: c.Tool,
		Status: string(c.Status), DurationMS: ms(c.Duration), Error: c.Error}})
	s.flush()
}

func (s *uiStream) ApprovalRequested(c switchboard.ToolCall) {
	s.closeText()
	s.toolInput(c)
	s.part(approvalPart{Type: "tool-approval-request", ApprovalID: c.ID, ToolCallID: c.ID})
	s.flush()
}

func (s *uiStream) StepFinished(int) {
	s.closeText()
	s.part(part{Type: "finish-step"})
}

// finish ends a stream whose turn ended, well or not; res is nil when it
// failed.
func (s *uiStream) finish(res *orchestrator.Result, err error) {
	s.closeText()
	t := s.turn
	if res != nil {
		t = res.Turn
	} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && s.c.Request.Context().Err() != nil ||
		switchboard.IsCode(err, switchboard.CodeTurnCancelled) { // a replay of a cancelled turn
		t.Status = switchboard.TurnCancelled
	} else {
		t.Status = switchboard.TurnFailed
	}
	reason := "stop"
	switch {
	case err != nil:
		_, d := describe(err)
		if t.Status == switchboard.TurnCancelled {
			d.Message = "the turn was cancelled"
		}
		s.part(errorPart{Type: "error", ErrorText: d.Message})
		reason = "error"
	case t.Status == switchboard.TurnMaxSteps:
		reason = "length"
	case t.Status == switchboard.TurnAwaitingApproval:
		reason = "tool-calls"
	}
	s.part(finishPart{Type: "finish", FinishReason: reason,
		MessageMetadata: messageMetadata{ConversationID: t.ConversationID, TurnID: t.ID, Status: string(t.Status)}})
	s.release()
	_, _ = s.c.Writer.Write([]byte("data: [DONE]\n\n"))
	if res != nil && !res.Replayed {
		s.c.Writer.Header().Set("Server-Timing", serverTiming(res.Turn.Timing))
	}
	s.c.Writer.Flush()
}
