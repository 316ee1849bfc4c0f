package api

import (
	"bytes"
	"context"
	"encoding/base64"
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
	c *gin.Context
	// connect, when set, tells what a user must do to connect a server a
	// call of which needs the user's credentials.
	connect func(server string) connectionRequiredDTO
	asked   map[string]bool // servers told of already
	started bool
	turn    switchboard.Turn
	text    string // id of the open text part, "" when none
	texts   int
	enc     *partEncoder // from partEncoders while the stream runs
	// handoffs counts the data-agent parts of handoffs sent.
	handoffs int
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

// partType is the type of a part of the UI message stream. These are all
// the types the stream sends; the web UI names them too
// (web/static/protocol.js), and TestProtocolJS holds the two lists equal.
type partType string

// Part types, in the AI SDK's names.
const (
	partStart        partType = "start"
	partStartStep    partType = "start-step"
	partTextStart    partType = "text-start"
	partTextDelta    partType = "text-delta"
	partTextEnd      partType = "text-end"
	partToolInput    partType = "tool-input-available"
	partToolOutput   partType = "tool-output-available"
	partToolError    partType = "tool-output-error"
	partToolDenied   partType = "tool-output-denied"
	partToolApproval partType = "tool-approval-request"
	partToolCall     partType = "data-tool-call" // ours: the ledger's view of a call
	// ours: the user must connect a server (sign in, or give its secrets)
	// before its calls run as them.
	partConnectionRequired partType = "data-connection-required"
	// ours: the agent that answers from here on (sent as the turn starts
	// and at each handoff, when agents are configured).
	partAgent partType = "data-agent"
	// a question of a server to the user (an elicitation): its data is the
	// input, as the JSON reply's pending_inputs list it
	partElicitation partType = "data-elicitation"
	partError       partType = "error"
	partFinishStep  partType = "finish-step"
	partFinish      partType = "finish"
	// a file of the message: an image a tool returned
	partFile partType = "file"
)

type part struct {
	Type partType `json:"type"`
}

type idPart struct {
	Type partType `json:"type"`
	ID   string   `json:"id"`
}

type deltaPart struct {
	Type  partType `json:"type"`
	ID    string   `json:"id"`
	Delta string   `json:"delta"`
}

type startPart struct {
	Type            partType        `json:"type"`
	MessageID       string          `json:"messageId"`
	MessageMetadata messageMetadata `json:"messageMetadata"`
}

type messageMetadata struct {
	ConversationID string `json:"conversationId"`
	TurnID         string `json:"turnId"`
	Status         string `json:"status,omitempty"`
	// ErrorCode is the code of the error that ended the turn (the error
	// part has only its text): turn_cancelled for a cancelled turn. It is
	// metadata because the AI SDK's error part takes no other field: its
	// clients before 6.0.231 reject a part with one.
	ErrorCode string `json:"errorCode,omitempty"`
	// Agent is the agent that answered, when agents are configured.
	Agent string `json:"agent,omitempty"`
}

// agentData is the data of a data-agent part: the agent that answers
// from here on, and the one that handed it the turn.
type agentData struct {
	Agent string `json:"agent"`
	From  string `json:"from,omitempty"`
}

type toolInputPart struct {
	Type       partType        `json:"type"`
	ToolCallID string          `json:"toolCallId"`
	ToolName   string          `json:"toolName"`
	Input      json.RawMessage `json:"input"`
	Dynamic    bool            `json:"dynamic"`
	Title      string          `json:"title,omitempty"`
}

type toolOutputPart struct {
	Type       partType   `json:"type"`
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
	// Content lists the result's binary parts, each with the URL of its
	// bytes (read with the user's bearer token).
	Content []contentDTO `json:"content,omitempty"`
}

// filePart is a file of the message: an image a tool returned, as a data
// URL a page can show as it is, or, over inlineFileBytes, the URL of its
// bytes.
type filePart struct {
	Type      partType `json:"type"`
	URL       string   `json:"url"`
	MediaType string   `json:"mediaType"`
}

// inlineFileBytes is the largest image a file part carries as a data URL.
const inlineFileBytes = 1 << 20

type toolDeniedPart struct {
	Type       partType `json:"type"`
	ToolCallID string   `json:"toolCallId"`
}

type toolErrorPart struct {
	Type       partType `json:"type"`
	ToolCallID string   `json:"toolCallId"`
	ErrorText  string   `json:"errorText"`
	Dynamic    bool     `json:"dynamic"`
}

// dataPart carries what the protocol's own parts have no field for: a
// call's server and tool, ledger status and duration. A call's data part
// is sent when it starts (or waits for approval) and again when it ends,
// with the same id, which the AI SDK's clients take as an update of one
// part. (The AI SDK's tool parts take no fields of ours: its clients
// before 6.0.231 reject a known part with an unknown field.)
type dataPart struct {
	Type partType `json:"type"`
	ID   string   `json:"id"`
	Data any      `json:"data"`
}

type toolCallData struct {
	ID     string `json:"id"`
	Server string `json:"server"`
	Tool   string `json:"tool"`
	Status string `json:"status"`
	// DurationMS is set once the call has ended.
	DurationMS *float64 `json:"duration_ms,omitempty"`
	Error      string   `json:"error,omitempty"`
	// Progress is the server's last report of a running call.
	Progress *progressData `json:"progress,omitempty"`
}

// progressData is an MCP server's progress report of a call: progress of
// total (absent when the server does not know it), and its message.
type progressData struct {
	Progress float64  `json:"progress"`
	Total    *float64 `json:"total,omitempty"`
	Message  string   `json:"message,omitempty"`
}

func progressOf(p switchboard.ToolProgress) *progressData {
	d := &progressData{Progress: p.Progress, Message: p.Message}
	if p.Total > 0 {
		d.Total = &p.Total
	}
	return d
}

type approvalPart struct {
	Type       partType `json:"type"`
	ApprovalID string   `json:"approvalId"`
	ToolCallID string   `json:"toolCallId"`
}

type errorPart struct {
	Type      partType `json:"type"`
	ErrorText string   `json:"errorText"`
}

type finishPart struct {
	Type            partType        `json:"type"`
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
	s.part(startPart{Type: partStart, MessageID: t.ID, MessageMetadata: messageMetadata{ConversationID: t.ConversationID, TurnID: t.ID}})
	if t.Agent != "" {
		s.part(dataPart{Type: partAgent, ID: "agent-0", Data: agentData{Agent: t.Agent}})
	}
}

// AgentChanged tells of a handoff (orchestrator.AgentEvents): a data-agent
// part of its own id, so that a client keeps each.
func (s *uiStream) AgentChanged(from, to string) {
	s.closeText()
	s.handoffs++
	s.turn.Agent = to
	s.part(dataPart{Type: partAgent, ID: "agent-" + strconv.Itoa(s.handoffs), Data: agentData{Agent: to, From: from}})
	s.flush()
}

// StepStarted is followed by a model call, ToolStarted by a tool's run,
// ToolFinished maybe by other tools' ends, TextDelta by the model's next
// delta: each flushes. TurnStarted and StepFinished are always followed by
// one of them or by the turn's end, whose final commit (retried while the
// store is away, up to its timeout) comes before the last parts go out.
func (s *uiStream) StepStarted(int) {
	s.part(part{Type: partStartStep})
	s.flush()
}

func (s *uiStream) TextDelta(delta string) {
	if s.text == "" {
		s.texts++
		s.text = "text-" + strconv.Itoa(s.texts)
		s.part(idPart{Type: partTextStart, ID: s.text})
	}
	s.part(deltaPart{Type: partTextDelta, ID: s.text, Delta: delta})
	s.flush()
}

func (s *uiStream) closeText() {
	if s.text != "" {
		s.part(idPart{Type: partTextEnd, ID: s.text})
		s.text = ""
	}
}

func (s *uiStream) ToolStarted(c switchboard.ToolCall) {
	s.closeText()
	s.toolInput(c, switchboard.CallRunning)
	s.flush()
}

// toolInput announces a call: its input, for display titled "server ·
// tool", then its data part with the server and the tool as fields.
func (s *uiStream) toolInput(c switchboard.ToolCall, status switchboard.ToolCallStatus) {
	input := c.Arguments
	if !json.Valid(input) {
		input = json.RawMessage("{}")
	}
	s.part(toolInputPart{Type: partToolInput, ToolCallID: c.ID, ToolName: c.ExposedName, Input: input,
		Dynamic: true, Title: c.Server + " · " + c.Tool})
	s.part(dataPart{Type: partToolCall, ID: c.ID, Data: toolCallData{ID: c.ID, Server: c.Server, Tool: c.Tool,
		Status: string(status)}})
}

// ToolProgress sends the call's data part again, running, with the
// server's report: a useChat app's data part of that id is replaced.
func (s *uiStream) ToolProgress(c switchboard.ToolCall, p switchboard.ToolProgress) {
	s.part(dataPart{Type: partToolCall, ID: c.ID, Data: toolCallData{ID: c.ID, Server: c.Server, Tool: c.Tool,
		Status: string(switchboard.CallRunning), Progress: progressOf(p)}})
	s.flush()
}

func (s *uiStream) ToolFinished(c switchboard.ToolCall) {
	switch c.Status {
	case switchboard.CallSucceeded:
		p := previewOf(c)
		s.part(toolOutputPart{Type: partToolOutput, ToolCallID: c.ID, Dynamic: true, Output: toolOutput{
			Result: p.Result, Structured: p.Structured, Status: string(c.Status), DurationMS: ms(c.Duration),
			Server: c.Server, Tool: c.Tool, Truncated: c.Truncated, ResultTruncated: p.Truncated, ResultSize: p.Size,
			Content: ownContent(c)}})
		s.files(c)
	case switchboard.CallDenied:
		s.part(toolDeniedPart{Type: partToolDenied, ToolCallID: c.ID})
	default:
		msg := c.Error
		if msg == "" {
			msg = strings.TrimPrefix(c.Result, "error: ")
		}
		s.part(toolErrorPart{Type: partToolError, ToolCallID: c.ID, ErrorText: msg, Dynamic: true})
	}
	d := ms(c.Duration)
	s.part(dataPart{Type: partToolCall, ID: c.ID, Data: toolCallData{ID: c.ID, Server: c.Server, Tool: c.Tool,
		Status: string(c.Status), DurationMS: &d, Error: c.Error}})
	if c.ErrorClass == switchboard.ErrorClassConnectionRequired && s.connect != nil && !s.asked[c.Server] {
		if s.asked == nil {
			s.asked = map[string]bool{}
		}
		s.asked[c.Server] = true
		need := s.connect(c.Server)
		s.part(dataPart{Type: partConnectionRequired, ID: "connect-" + c.Server,
			Data: connectionRequiredData{Server: need.Server, AuthorizationURL: need.AuthorizationURL}})
	}
	s.flush()
}

// files sends the call's images as file parts.
func (s *uiStream) files(c switchboard.ToolCall) {
	for _, p := range c.Content {
		mediaType, inline := servedType(p.MIMEType)
		if p.Kind != switchboard.ContentImage || !inline {
			continue
		}
		u := contentURL(c, p.Index)
		if p.Data != nil && len(p.Data) <= inlineFileBytes {
			u = "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(p.Data)
		}
		s.part(filePart{Type: partFile, URL: u, MediaType: mediaType})
	}
}

// connectionRequiredData is the data of a data-connection-required part.
type connectionRequiredData struct {
	Server           string `json:"server"`
	AuthorizationURL string `json:"authorizationUrl,omitempty"`
}

func (s *uiStream) ApprovalRequested(c switchboard.ToolCall) {
	s.closeText()
	s.toolInput(c, switchboard.CallAwaitingApproval)
	s.part(approvalPart{Type: partToolApproval, ApprovalID: c.ID, ToolCallID: c.ID})
	s.flush()
}

// InputRequested sends a server's question as a data-elicitation part; the
// turn's finish follows (it is reported awaiting_input).
func (s *uiStream) InputRequested(in switchboard.Input) {
	s.closeText()
	s.part(dataPart{Type: partElicitation, ID: in.ID, Data: toInputDTO(in)})
	s.flush()
}

func (s *uiStream) StepFinished(int) {
	s.closeText()
	s.part(part{Type: partFinishStep})
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
	} else if switchboard.IsCode(err, switchboard.CodeGuardrailTripped) {
		t.Status = switchboard.TurnGuardrailTripped // the message refused, or the answer withheld
	} else {
		t.Status = switchboard.TurnFailed
	}
	reason, code := "stop", ""
	switch {
	case err != nil:
		_, d := describe(err)
		if t.Status == switchboard.TurnCancelled {
			d.Message, d.Code = "the turn was cancelled", switchboard.CodeTurnCancelled
		}
		s.part(errorPart{Type: partError, ErrorText: d.Message})
		reason, code = "error", d.Code
	case t.Status == switchboard.TurnMaxSteps:
		reason = "length"
	case t.Status == switchboard.TurnAwaitingApproval, t.Status == switchboard.TurnAwaitingInput:
		reason = "tool-calls"
	}
	s.part(finishPart{Type: partFinish, FinishReason: reason,
		MessageMetadata: messageMetadata{ConversationID: t.ConversationID, TurnID: t.ID, Status: string(t.Status), ErrorCode: code, Agent: t.Agent}})
	s.release()
	_, _ = s.c.Writer.Write([]byte("data: [DONE]\n\n"))
	if res != nil && !res.Replayed {
		s.c.Writer.Header().Set("Server-Timing", serverTiming(res.Turn.Timing))
	}
	s.c.Writer.Flush()
}
