package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// chatkitStream writes a turn as ChatKit's response stream: server-sent
// events, data: <json> each, in chatkit-python's order (thread.created and
// the user's message first on threads.create, the user's message on
// threads.add_user_message, then stream_options, then the response's items;
// a failure is an error event, and the stream ends). It implements
// orchestrator.Events. Nothing is written until the turn has started, so
// that errors before it are plain JSON errors with their status, as on the
// other chat routes.
type chatkitStream struct {
	c    *gin.Context
	kind string // the request type
	// connect tells what a user must do to connect a server a call of
	// which needs the user's credentials.
	connect func(server string) connectionRequiredDTO
	// conversation reads the thread a threads.create made, for
	// thread.created.
	conversation func(ctx context.Context, userID, id string) (switchboard.Conversation, error)
	userContent  string // the user's message, of a request that sends one
	decided      string // the call a threads.custom_action decided

	started  bool
	turn     switchboard.Turn
	step     int           // the model call under way
	text     *openText     // the assistant message being streamed
	flow     *openWorkflow // the workflow of the step's calls
	streamed map[int]bool  // steps whose text was streamed
	asked    map[string]bool
	waiting  []ckWidgetItem // connection cards, sent once the workflow is done
	// inputs are the servers' questions whose widgets were sent; sent the
	// items a threads.custom_action answering one sent whole, from the
	// stored transcript.
	inputs map[string]bool
	sent   map[string]bool
	enc    *partEncoder
}

type openText struct {
	id, created string
	text        strings.Builder
}

type openWorkflow struct {
	id, created string
	calls       []switchboard.ToolCall
	index       map[string]int // by ledger id
}

// Stream events (chatkit/types.py's ThreadStreamEvent variants) and item
// updates.
type (
	ckThreadEvent struct {
		Type   string           `json:"type"`
		Thread chatkitThreadDTO `json:"thread"`
	}
	ckItemEvent struct {
		Type string `json:"type"`
		Item any    `json:"item"`
	}
	ckItemUpdated struct {
		Type   string `json:"type"`
		ItemID string `json:"item_id"`
		Update any    `json:"update"`
	}
	ckContentPart struct {
		Type         string       `json:"type"`
		ContentIndex int          `json:"content_index"`
		Content      ckOutputText `json:"content"`
	}
	ckTextDelta struct {
		Type         string `json:"type"`
		ContentIndex int    `json:"content_index"`
		Delta        string `json:"delta"`
	}
	ckTaskUpdate struct {
		Type      string `json:"type"`
		TaskIndex int    `json:"task_index"`
		Task      ckTask `json:"task"`
	}
	ckStreamOptions struct {
		Type          string `json:"type"`
		StreamOptions struct {
			AllowCancel bool `json:"allow_cancel"`
		} `json:"stream_options"`
	}
	ckProgress struct {
		Type string `json:"type"`
		Icon string `json:"icon,omitempty"`
		Text string `json:"text"`
	}
	ckNotice struct {
		Type    string `json:"type"`
		Level   string `json:"level"`
		Message string `json:"message"`
	}
	ckError struct {
		Type       string `json:"type"`
		Code       string `json:"code"`
		Message    string `json:"message"`
		AllowRetry bool   `json:"allow_retry"`
	}
)

// event writes one event into the response's buffer; flush sends what was
// written, before the turn waits (for the model, a tool, the next delta).
func (s *chatkitStream) event(v any) {
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

func (s *chatkitStream) flush() { s.c.Writer.Flush() }

func (s *chatkitStream) item(typ string, item any) { s.event(ckItemEvent{Type: typ, Item: item}) }

func (s *chatkitStream) update(itemID string, update any) {
	s.event(ckItemUpdated{Type: "thread.item.updated", ItemID: itemID, Update: update})
}

func nowStamp() string { return timestamp(time.Now()) }

// TurnStarted opens the stream.
func (s *chatkitStream) TurnStarted(t switchboard.Turn) {
	h := s.c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Trailer", "Server-Timing")
	s.c.Status(http.StatusOK)
	s.started, s.turn = true, t
	if s.kind == ckThreadsCreate {
		conv, err := s.conversation(s.c.Request.Context(), t.UserID, t.ConversationID)
		if err != nil { // the turn goes on; the thread is told without its title
			conv = switchboard.Conversation{ID: t.ConversationID, CreatedAt: t.StartedAt, Status: switchboard.ConversationActive}
		}
		s.event(ckThreadEvent{Type: "thread.created", Thread: toThread(conv)})
	}
	if s.kind == ckThreadsCreate || s.kind == ckThreadsAddUserMessage {
		id := userItemID(t.ID)
		s.item("thread.item.done", userMessageItem(id, t.ConversationID, timestamp(t.StartedAt), s.userContent))
	}
	opts := ckStreamOptions{Type: "stream_options"}
	opts.StreamOptions.AllowCancel = true
	s.event(opts)
	s.flush()
}

func (s *chatkitStream) StepStarted(step int) {
	s.step = step
	s.flush()
}

// TextDelta streams the model's text as an assistant message of the
// step, one output_text part.
func (s *chatkitStream) TextDelta(delta string) {
	if s.text == nil {
		step := s.step
		s.text = &openText{id: textItemID(s.turn.ID, step), created: nowStamp()}
		if s.streamed == nil {
			s.streamed = map[int]bool{}
		}
		s.streamed[step] = true
		s.item("thread.item.added", assistantMessageItem(s.text.id, s.turn.ConversationID, s.text.created, []ckOutputText{}))
		s.update(s.text.id, ckContentPart{Type: "assistant_message.content_part.added", Content: outputText("")})
	}
	s.text.text.WriteString(delta)
	s.update(s.text.id, ckTextDelta{Type: "assistant_message.content_part.text_delta", Delta: delta})
	s.flush()
}

func (s *chatkitStream) closeText() {
	if s.text == nil {
		return
	}
	full := outputText(s.text.text.String())
	s.update(s.text.id, ckContentPart{Type: "assistant_message.content_part.done", Content: full})
	s.item("thread.item.done", assistantMessageItem(s.text.id, s.turn.ConversationID, s.text.created, []ckOutputText{full}))
	s.text = nil
}

// ToolStarted adds the call to its step's workflow as a loading task; the
// call a custom_action approved updates its card instead.
func (s *chatkitStream) ToolStarted(c switchboard.ToolCall) {
	s.closeText()
	if c.ID == s.decided {
		s.item("thread.item.replaced", widgetItem(approvalItemID(c.ID), s.turn.ConversationID, timestamp(c.StartedAt), approvalCard(c, decisionLabel(c))))
		s.flush()
		return
	}
	if s.flow == nil {
		s.flow = &openWorkflow{id: workflowItemID(s.turn.ID, c.Step), created: nowStamp(), index: map[string]int{}}
		s.item("thread.item.added", workflowItem(s.flow.id, s.turn.ConversationID, s.flow.created, ckWorkflow{Type: "custom", Tasks: []ckTask{}}))
	}
	i := len(s.flow.calls)
	s.flow.calls = append(s.flow.calls, c)
	s.flow.index[c.ID] = i
	s.update(s.flow.id, ckTaskUpdate{Type: "workflow.task.added", TaskIndex: i, Task: task(c)})
	s.flush()
}

// ToolProgress passes an MCP server's progress report of a call on as a
// progress_update: "server · tool: message (3/6)".
func (s *chatkitStream) ToolProgress(c switchboard.ToolCall, p switchboard.ToolProgress) {
	s.event(ckProgress{Type: "progress_update", Icon: "bolt", Text: progressText(c, p)})
	s.flush()
}

// progressText words a progress report for people.
func progressText(c switchboard.ToolCall, p switchboard.ToolProgress) string {
	text := c.Server + " · " + c.Tool
	if p.Message != "" {
		text += ": " + p.Message
	}
	switch {
	case p.Total > 0:
		text += fmt.Sprintf(" (%s/%s)", strconv.FormatFloat(p.Progress, 'f', -1, 64), strconv.FormatFloat(p.Total, 'f', -1, 64))
	case p.Message == "":
		text += fmt.Sprintf(" (%s)", strconv.FormatFloat(p.Progress, 'f', -1, 64))
	}
	return text
}

// ToolFinished completes the call's task; a failure the model is told of
// (the turn goes on) is a notice too, and a call that needs the user to
// connect its server a card saying how.
func (s *chatkitStream) ToolFinished(c switchboard.ToolCall) {
	if c.ID == s.decided {
		s.item("thread.item.replaced", widgetItem(approvalItemID(c.ID), s.turn.ConversationID, timestamp(c.StartedAt), approvalCard(c, decisionLabel(c))))
		s.askToConnect(c)
		s.sendWaiting()
		s.flush()
		return
	}
	if s.flow != nil {
		if i, ok := s.flow.index[c.ID]; ok {
			s.flow.calls[i] = c
			s.update(s.flow.id, ckTaskUpdate{Type: "workflow.task.updated", TaskIndex: i, Task: task(c)})
		}
	}
	switch {
	case c.ErrorClass == switchboard.ErrorClassConnectionRequired:
		s.askToConnect(c)
	case c.Status != switchboard.CallSucceeded && c.Status != switchboard.CallDenied:
		s.event(ckNotice{Type: "notice", Level: "warning", Message: c.Server + " · " + c.Tool + " " + strings.ReplaceAll(string(c.Status), "_", " ") + ": " + callError(c)})
	}
	s.flush()
}

// askToConnect queues a card asking the user to connect the server of a
// call that needs their credentials, once per server and stream.
func (s *chatkitStream) askToConnect(c switchboard.ToolCall) {
	if c.ErrorClass != switchboard.ErrorClassConnectionRequired || s.connect == nil || s.asked[c.Server] {
		return
	}
	if s.asked == nil {
		s.asked = map[string]bool{}
	}
	s.asked[c.Server] = true
	need := s.connect(c.Server)
	s.waiting = append(s.waiting, widgetItem("connect-"+c.ID, s.turn.ConversationID, nowStamp(), connectionCard(need, s.turn.UserID)))
}

func (s *chatkitStream) sendWaiting() {
	for _, w := range s.waiting {
		s.item("thread.item.done", w)
	}
	s.waiting = s.waiting[:0]
}

// closeFlow ends the step's workflow, with a summary, and sends the cards
// its calls queued.
func (s *chatkitStream) closeFlow() {
	if s.flow != nil {
		wf := ckWorkflow{Type: "custom", Tasks: make([]ckTask, len(s.flow.calls)), Summary: summary(s.flow.calls)}
		for i, c := range s.flow.calls {
			wf.Tasks[i] = task(c)
		}
		s.item("thread.item.done", workflowItem(s.flow.id, s.turn.ConversationID, s.flow.created, wf))
		s.flow = nil
	}
	s.sendWaiting()
}

// ApprovalRequested shows a call that waits for the user as a card with
// Approve and Deny buttons.
func (s *chatkitStream) ApprovalRequested(c switchboard.ToolCall) {
	s.closeText()
	s.closeFlow()
	s.item("thread.item.done", widgetItem(approvalItemID(c.ID), s.turn.ConversationID, timestamp(c.StartedAt), approvalCard(c, "")))
	s.flush()
}

// InputRequested shows a server's question as a widget: a form from its
// requested schema, or a link to open, with Decline and Cancel. The turn
// then stops awaiting_input; the answer continues it (chatkitAnswer).
func (s *chatkitStream) InputRequested(in switchboard.Input) {
	s.closeText()
	s.closeFlow()
	s.inputWidget(in)
	s.flush()
}

func (s *chatkitStream) inputWidget(in switchboard.Input) {
	if s.inputs[in.ID] {
		return
	}
	if s.inputs == nil {
		s.inputs = map[string]bool{}
	}
	s.inputs[in.ID] = true
	s.item("thread.item.done", widgetItem(inputItemID(in.ID), in.ConversationID, timestamp(in.CreatedAt), inputCard(in)))
}

func (s *chatkitStream) StepFinished(int) {
	s.closeText()
	s.closeFlow()
}

// finish ends a stream whose turn ended, well or not; res is nil when it
// failed. An answer that was not streamed (the note of a turn stopped at
// its step limit) is sent whole.
func (s *chatkitStream) finish(res *orchestrator.Result, err error) {
	s.closeText()
	s.closeFlow()
	if res != nil {
		t := res.Turn
		step := t.Steps // the step of a model's answer
		if t.Status != switchboard.TurnCompleted {
			step++ // a note after the last step
		}
		waiting := t.Status == switchboard.TurnAwaitingApproval || t.Status == switchboard.TurnAwaitingInput
		if m := res.Message; !waiting && m.Content != "" && !s.streamed[step] && !s.sent[textItemID(t.ID, step)] {
			s.item("thread.item.done", assistantMessageItem(textItemID(t.ID, step), t.ConversationID, timestamp(m.Timestamp),
				[]ckOutputText{outputText(m.Content)}))
		}
		// The questions the turn stopped at that no event showed (the
		// next question after an answer, one asked as the turn detached).
		for _, in := range res.Inputs {
			if !s.sent[inputItemID(in.ID)] {
				s.inputWidget(in)
			}
		}
	}
	if err != nil {
		status, d := describe(err)
		cancelled := errors.Is(err, context.Canceled) || switchboard.IsCode(err, switchboard.CodeTurnCancelled)
		if cancelled {
			d.Message = "the turn was cancelled"
		}
		s.event(ckError{Type: "error", Code: "custom", Message: d.Message, AllowRetry: status >= 500 || cancelled})
	}
	if s.enc != nil && s.enc.buf.Cap() <= 64<<10 {
		partEncoders.Put(s.enc)
	}
	s.enc = nil
	if res != nil && !res.Replayed {
		s.c.Writer.Header().Set("Server-Timing", serverTiming(res.Turn.Timing))
	}
	s.flush()
}
