package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestChatKitShowsWhatTheOtherRoutesShow: one conversation, its turns
// sent through ChatKit, the seed's JSON route and the AI SDK stream in
// turn, reads the same through ChatKit's items and the JSON transcript
// (with the conversation's ledger), and as each route told its own turn:
// the same messages, the same calls with their servers, tools, outcomes
// and results, in the same order. ChatKit is an adapter over the same turn.
func TestChatKitShowsWhatTheOtherRoutesShow(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), tasksServer(t, "stdio"), func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
				last := req.Messages[len(req.Messages)-1]
				switch {
				case last.Role == "tool":
					return llmtest.Reply{Text: "Done: " + last.Content}
				case strings.HasPrefix(last.Content, "add "):
					return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: fmt.Sprintf(`{"title":%q}`, last.Content[4:])}}}
				}
				return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__list_tasks", Arguments: `{}`}}}
			}, tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			var told []string // each route's own account of its turn

			// A turn through ChatKit.
			evs := k.stream(ckCreate("add milk"))
			thread := evs.threadID(t)
			told = append(told, chatkitLines(evs.done())...)

			// A turn through the seed's JSON route.
			var r chatReply
			if resp := do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+thread, k.tok, `{"message":{"content":"add eggs"}}`, &r); resp.StatusCode != 200 {
				t.Fatalf("chat: got %d %+v", resp.StatusCode, r.Error)
			}
			told = append(told, "user: add eggs")
			for _, c := range r.ToolCalls {
				told = append(told, callLine(c.Server, c.Tool, c.Status, c.Result, c.Error))
			}
			told = append(told, "assistant: "+r.Message.Content)

			// A turn through the AI SDK's UI message stream, the thread
			// named as useChat's chat id.
			parts := streamParts(t, svc.url+"/api/alice/chat/stream", k.tok,
				`{"id":"`+thread+`","messages":[{"id":"u1","role":"user","parts":[{"type":"text","text":"what do I have?"}]}],"trigger":"submit-message"}`)
			told = append(told, "user: what do I have?")
			for _, p := range parts {
				if p["type"] == "tool-output-available" {
					out := p["output"].(map[string]any)
					told = append(told, callLine(out["server"].(string), out["tool"].(string), out["status"].(string), out["result"].(string), ""))
				}
			}
			told = append(told, "assistant: "+parts.text())

			// Read back through ChatKit.
			fromChatKit := chatkitLines(k.allItems(thread))

			// Read back through the JSON routes: the transcript, and the
			// conversation's ledger for each call's server and outcome.
			var conv struct {
				Messages []struct {
					Role, Type, Content string
					TurnID              string                `json:"turn_id"`
					ToolCalls           []struct{ ID string } `json:"tool_calls"`
				}
			}
			do(t, "GET", svc.url+"/api/alice/conversations/"+thread, k.tok, "", &conv)
			var ledger struct {
				ToolCalls []struct {
					CallID                              string `json:"call_id"`
					Server, Tool, Status, Result, Error string
				} `json:"tool_calls"`
			}
			do(t, "GET", svc.url+"/api/alice/conversations/"+thread+"/tool-calls", k.tok, "", &ledger)
			var fromJSON []string
			for _, m := range conv.Messages {
				switch {
				case m.Role == "user":
					fromJSON = append(fromJSON, "user: "+m.Content)
				case m.Type == "tool_call":
					for _, rc := range m.ToolCalls {
						for _, c := range ledger.ToolCalls {
							if c.CallID == rc.ID {
								fromJSON = append(fromJSON, callLine(c.Server, c.Tool, c.Status, c.Result, c.Error))
							}
						}
					}
				case m.Role == "assistant":
					fromJSON = append(fromJSON, "assistant: "+m.Content)
				}
			}

			if len(fromJSON) != 9 {
				t.Fatalf("the JSON transcript: got %q, want three turns of a user's message, a call and an answer", fromJSON)
			}
			if diff := cmp.Diff(fromJSON, fromChatKit); diff != "" {
				t.Errorf("ChatKit's items (-JSON transcript +ChatKit):\n%s", diff)
			}
			if diff := cmp.Diff(fromJSON, told); diff != "" {
				t.Errorf("what the routes told of their turns (-JSON transcript +told):\n%s", diff)
			}
		})
	}
}

// callLine is a finished call as the JSON routes show it: its server and
// tool, and its result, or its status and error.
func callLine(server, tool, status, result, err string) string {
	if status != "succeeded" {
		result = status + ": " + err
	}
	return fmt.Sprintf("call: %s · %s complete %s", server, tool, result)
}

// chatkitLines is what ChatKit items show, a line per message or call.
func chatkitLines(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		switch it["type"] {
		case "user_message":
			out = append(out, "user: "+it["content"].([]any)[0].(map[string]any)["text"].(string))
		case "assistant_message":
			out = append(out, "assistant: "+it["content"].([]any)[0].(map[string]any)["text"].(string))
		case "workflow":
			for _, task := range it["workflow"].(map[string]any)["tasks"].([]any) {
				task := task.(map[string]any)
				out = append(out, fmt.Sprintf("call: %s %s %s", task["title"], task["status_indicator"], task["content"]))
			}
		}
	}
	return out
}
