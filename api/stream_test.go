package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

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
	want := "start start-step tool-input-available tool-output-available data-tool-call finish-step start-step " +
		"text-start text-delta text-delta text-delta text-end finish-step finish [DONE]"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("parts:\ngot  %s\nwant %s", got, want)
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
