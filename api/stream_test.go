package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// streamTurn writes a typical streamed turn to a recorder: a step that
// runs a tool, then a step that answers in words.
func streamTurn(c *gin.Context, words int) {
	s := &uiStream{c: c}
	turn := switchboard.Turn{ID: "0b7e1f3a-8d6c-4a53-9c1e-2f4a5b6c7d8e", ConversationID: "1c8f2e4b-9e7d-4b64-8d2f-3a5b6c7d8e9f", Status: switchboard.TurnRunning}
	call := switchboard.ToolCall{ID: "2d9a3f5c-af8e-4c75-9e3a-4b6c7d8e9fa0", Server: "tasks", Tool: "add_task", ExposedName: "tasks__add_task",
		Arguments: json.RawMessage(`{"title":"buy milk","user_id":"u"}`), Status: switchboard.CallRunning}
	s.TurnStarted(turn)
	s.StepStarted(1)
	s.ToolStarted(call)
	call.Status, call.Result, call.Duration = switchboard.CallSucceeded, `{"id":1,"title":"buy milk","completed":false}`, 600*time.Microsecond
	s.ToolFinished(call)
	s.StepFinished(1)
	s.StepStarted(2)
	for range words {
		s.TextDelta("word ")
	}
	s.StepFinished(2)
	turn.Status = switchboard.TurnCompleted
	s.finish(&orchestrator.Result{Turn: turn}, nil)
}

func newStreamContext() (*gin.Context, *httptest.ResponseRecorder) {
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest("POST", "/api/u/chat/stream", nil)
	return c, w
}

func TestStreamParts(t *testing.T) {
	c, w := newStreamContext()
	streamTurn(c, 3)
	body := w.Body.String()
	var types []string
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			types = append(types, data)
			continue
		}
		var p struct{ Type string }
		if err := json.Unmarshal([]byte(data), &p); err != nil {
			t.Fatalf("part %s: %v", data, err)
		}
		types = append(types, p.Type)
	}
	want := "start start-step tool-input-available data-tool-call tool-output-available data-tool-call finish-step start-step " +
		"text-start text-delta text-delta text-delta text-end finish-step finish [DONE]"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("parts:\ngot  %s\nwant %s", got, want)
	}
}

// TestStreamToolCallData: a call's server and tool come as fields, in its
// data part, from the moment it starts or waits for approval; the part
// sent at its end (same id, an update for the AI SDK) adds the duration.
func TestStreamToolCallData(t *testing.T) {
	c, w := newStreamContext()
	s := &uiStream{c: c}
	call := switchboard.ToolCall{ID: "2d9a3f5c-af8e-4c75-9e3a-4b6c7d8e9fa0", Server: "tasks", Tool: "delete_task", ExposedName: "tasks__delete_task",
		Arguments: json.RawMessage(`{"task_id":1}`), Status: switchboard.CallAwaitingApproval}
	s.TurnStarted(switchboard.Turn{ID: "0b7e1f3a-8d6c-4a53-9c1e-2f4a5b6c7d8e", Status: switchboard.TurnRunning})
	s.ApprovalRequested(call)
	call.Status = switchboard.CallRunning
	s.ToolStarted(call)
	call.Status, call.Duration = switchboard.CallFailed, 2*time.Millisecond
	call.Error = "no task 1"
	s.ToolFinished(call)
	var got []string
	for _, line := range strings.Split(w.Body.String(), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"data-tool-call"`) {
			got = append(got, data)
		}
	}
	data := `"type":"data-tool-call","id":"2d9a3f5c-af8e-4c75-9e3a-4b6c7d8e9fa0","data":{"id":"2d9a3f5c-af8e-4c75-9e3a-4b6c7d8e9fa0","server":"tasks","tool":"delete_task",`
	want := []string{
		"{" + data + `"status":"awaiting_approval"}}`,
		"{" + data + `"status":"running"}}`,
		"{" + data + `"status":"failed","duration_ms":2,"error":"no task 1"}}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("data parts (-want +got):\n%s", diff)
	}
}

// BenchmarkUIStream measures encoding a streamed turn as the AI SDK's UI
// message stream: a tool step and a text step of 50 deltas (16 + 50 parts).
func BenchmarkUIStream(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	c, w := newStreamContext()
	b.ReportAllocs()
	for b.Loop() {
		w.Body.Reset()
		streamTurn(c, 50)
	}
}

// flushRecorder records what a handler wrote and what it flushed.
type flushRecorder struct {
	*httptest.ResponseRecorder
	pending int // bytes written since the last flush
	flushes int
}

func (r *flushRecorder) Write(b []byte) (int, error) {
	r.pending += len(b)
	return r.ResponseRecorder.Write(b)
}

func (r *flushRecorder) Flush() {
	r.pending = 0
	r.flushes++
	r.ResponseRecorder.Flush()
}

// TestStreamFlushesWhereTheTurnWaits: the parts of a streamed turn reach
// the client before each wait — a model call (start-step), a tool's run,
// the model's next delta, a person's decision, the end — and not one write
// each: what goes out before a step starts waits for it.
func TestStreamFlushesWhereTheTurnWaits(t *testing.T) {
	w := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest("POST", "/api/u/chat/stream", nil)
	s := &uiStream{c: c}
	turn := switchboard.Turn{ID: "0b7e1f3a-8d6c-4a53-9c1e-2f4a5b6c7d8e", ConversationID: "1c8f2e4b-9e7d-4b64-8d2f-3a5b6c7d8e9f", Status: switchboard.TurnRunning}
	call := switchboard.ToolCall{ID: "2d9a3f5c-af8e-4c75-9e3a-4b6c7d8e9fa0", Server: "tasks", Tool: "add_task", ExposedName: "tasks__add_task",
		Arguments: json.RawMessage(`{"title":"buy milk"}`), Status: switchboard.CallRunning}
	done := call
	done.Status, done.Result = switchboard.CallSucceeded, "ok"
	for _, step := range []struct {
		name    string
		event   func()
		flushed bool // nothing written is left unsent
	}{
		{"turn started", func() { s.TurnStarted(turn) }, false},
		{"step started (a model call follows)", func() { s.StepStarted(1) }, true},
		{"tool started (it runs)", func() { s.ToolStarted(call) }, true},
		{"tool finished (others may still run)", func() { s.ToolFinished(done) }, true},
		{"step finished", func() { s.StepFinished(1) }, false},
		{"step started", func() { s.StepStarted(2) }, true},
		{"text delta (the next one follows)", func() { s.TextDelta("Done") }, true},
		{"another", func() { s.TextDelta(".") }, true},
		{"approval requested (a person decides)", func() { s.ApprovalRequested(call) }, true},
		{"step finished", func() { s.StepFinished(2) }, false},
		{"the end", func() { s.finish(&orchestrator.Result{Turn: turn}, nil) }, true},
	} {
		step.event()
		if flushed := w.pending == 0; flushed != step.flushed {
			t.Errorf("%s: %d bytes unsent, want them sent: %v", step.name, w.pending, step.flushed)
		}
	}
	if w.flushes != 8 {
		t.Errorf("flushes: got %d, want 8 (one per wait)", w.flushes)
	}
}

// TestStreamOfACancelledTurn: a stream that ends with a cancelled turn —
// live, or replayed for a retried request — says so in its finish part.
func TestStreamOfACancelledTurn(t *testing.T) {
	for name, err := range map[string]error{
		"live":     fmt.Errorf("%w: %w", switchboard.Errorf(switchboard.ErrConflict, "turn_cancelled", "the turn was cancelled"), context.Canceled),
		"replayed": switchboard.Errorf(switchboard.ErrConflict, "turn_cancelled", "the turn of the first request with this Idempotency-Key was cancelled"),
	} {
		c, w := newStreamContext()
		s := &uiStream{c: c}
		s.TurnStarted(switchboard.Turn{ID: "0b7e1f3a-8d6c-4a53-9c1e-2f4a5b6c7d8e", Status: switchboard.TurnRunning})
		s.finish(nil, err)
		if !strings.Contains(w.Body.String(), `"status":"cancelled","errorCode":"turn_cancelled"`) {
			t.Errorf("%s: the finish part does not say cancelled, with the code:\n%s", name, w.Body.String())
		}
	}
}
