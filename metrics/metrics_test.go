package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/metrics"
)

// TestToolCallTime: a call that ran counts in the tool-time histogram; one
// denied, or cancelled before it ran (the user went on without deciding),
// counts only in the calls' total.
func TestToolCallTime(t *testing.T) {
	m := metrics.New(nil)
	m.ToolCallEnded(switchboard.ToolCall{Server: "files", Tool: "delete", Status: switchboard.CallSucceeded, Duration: 3 * time.Millisecond})
	m.ToolCallEnded(switchboard.ToolCall{Server: "files", Tool: "delete", Status: switchboard.CallCancelled})
	m.ToolCallEnded(switchboard.ToolCall{Server: "files", Tool: "delete", Status: switchboard.CallDenied})
	m.ToolCallEnded(switchboard.ToolCall{Server: "files", Tool: "delete", Status: switchboard.CallCancelled, Duration: 2 * time.Millisecond})
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	raw, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`switchboard_tool_calls_total{server="files",status="cancelled",tool="delete"} 2`,
		`switchboard_tool_calls_total{server="files",status="denied",tool="delete"} 1`,
		`switchboard_tool_calls_total{server="files",status="succeeded",tool="delete"} 1`,
		`switchboard_tool_call_duration_seconds_count{server="files",tool="delete"} 2`, // the one that ran, and the one cancelled while running
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAgentTurns: turns count by the agent each ended as, with their
// handoffs; turns of no agent make no agent series.
func TestAgentTurns(t *testing.T) {
	m := metrics.New(nil)
	m.TurnEnded(switchboard.Turn{Status: switchboard.TurnCompleted, Agent: "tasks", Handoffs: 1})
	m.TurnEnded(switchboard.Turn{Status: switchboard.TurnCompleted, Agent: "tasks", Handoffs: 2})
	m.TurnEnded(switchboard.Turn{Status: switchboard.TurnGuardrailTripped, Agent: "triage"})
	m.TurnEnded(switchboard.Turn{Status: switchboard.TurnCompleted})
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	raw, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`switchboard_agent_turns_total{agent="tasks",status="completed"} 2`,
		`switchboard_agent_turns_total{agent="triage",status="guardrail_tripped"} 1`,
		`switchboard_agent_handoffs_total{agent="tasks"} 3`,
		`switchboard_turns_total{status="completed"} 3`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(raw), `agent=""`) {
		t.Errorf("a turn of no agent made an agent series")
	}
}
