package orchestrator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard"
)

func TestAnswered(t *testing.T) {
	user := switchboard.Message{Role: switchboard.RoleUser, Content: "u"}
	ask := func(ids ...string) switchboard.Message {
		m := switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall}
		for _, id := range ids {
			m.ToolCalls = append(m.ToolCalls, switchboard.RequestedCall{ID: id, Name: "t"})
		}
		return m
	}
	result := func(id string) switchboard.Message {
		return switchboard.Message{Role: switchboard.RoleTool, ToolCallID: id, Content: "r" + id}
	}
	text := switchboard.Message{Role: switchboard.RoleAssistant, Content: "a"}
	// describe renders a window: u, a, ask(ids), r<id>, or ?<id> for a
	// stand-in result.
	describe := func(h []switchboard.Message) string {
		var parts []string
		for _, m := range h {
			switch {
			case m.Role == switchboard.RoleTool && m.Content == unansweredResult:
				parts = append(parts, "?"+m.ToolCallID)
			case m.Role == switchboard.RoleTool:
				parts = append(parts, m.Content)
			case len(m.ToolCalls) > 0:
				ids := make([]string, len(m.ToolCalls))
				for i, c := range m.ToolCalls {
					ids[i] = c.ID
				}
				parts = append(parts, "ask("+strings.Join(ids, ",")+")")
			default:
				parts = append(parts, m.Content)
			}
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct {
		name string
		h    []switchboard.Message
		want string
	}{
		{"complete", []switchboard.Message{user, ask("1", "2"), result("2"), result("1"), text}, "u ask(1,2) r2 r1 a"},
		{"orphan result", []switchboard.Message{result("0"), user, text}, "u a"},
		{"unanswered call", []switchboard.Message{user, ask("1", "2"), result("1"), text}, "u ask(1,2) r1 ?2 a"},
		{"no results at all", []switchboard.Message{user, ask("1")}, "u ask(1) ?1"},
		{"result of another request", []switchboard.Message{user, ask("1"), result("1"), text, result("1")}, "u ask(1) r1 a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(answered(tc.h)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// window is a conversation's history window as the store returns it:
// turns of a user message, a tool request, its result and an answer.
func window(n int) []switchboard.Message {
	var h []switchboard.Message
	for i := 0; len(h) < n; i++ {
		id := fmt.Sprintf("call_%d", i)
		h = append(h,
			switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "Add a task to buy milk, please."},
			switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
				ToolCalls: []switchboard.RequestedCall{{ID: id, Name: "tasks__add_task", Arguments: `{"title":"buy milk"}`}}},
			switchboard.Message{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: id, ToolName: "tasks__add_task",
				Content: `{"id":1,"title":"buy milk","completed":false}`},
			switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Content: "Added \u201cbuy milk\u201d."})
	}
	return h[len(h)-n:]
}

// BenchmarkHistoryWindow measures what a turn does to the stored window
// before its first model call: cut it to the token budget, start it at a
// user message, check every call has its result.
func BenchmarkHistoryWindow(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		h := window(n)
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = replayable(h, 4000)
			}
		})
	}
}
