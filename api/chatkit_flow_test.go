package api_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/tools"
)

// transcript is an exchange with chatkit-python's real server
// (testdata/chatkit/transcripts.json).
type transcript struct {
	Label       string          `json:"label"`
	Request     json.RawMessage `json:"request"`
	ContentType string          `json:"content_type"`
	SSE         string          `json:"sse"`
	JSON        json.RawMessage `json:"json"`
}

func transcripts(t *testing.T) map[string]transcript {
	t.Helper()
	raw, err := os.ReadFile("testdata/chatkit/transcripts.json")
	if err != nil {
		t.Fatal(err)
	}
	var list []transcript
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]transcript{}
	for _, tr := range list {
		out[tr.Label] = tr
	}
	return out
}

// sseEvents splits a transcript's stream into its events' JSON.
func sseEvents(t *testing.T, sse string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, chunk := range strings.Split(sse, "\n\n") {
		if chunk == "" {
			continue
		}
		data, ok := strings.CutPrefix(chunk, "data: ")
		if !ok {
			t.Fatalf("transcript event %q: want data: <json>", chunk)
		}
		out = append(out, []byte(data))
	}
	return out
}

// TestChatKitSchemasAcceptChatKitPython: the schemas the tests hold our
// answers to accept chatkit-python's own requests and answers (formats
// aside: Python writes timestamps without a zone, which the tests' schemas
// refuse, as the last check shows).
func TestChatKitSchemasAcceptChatKitPython(t *testing.T) {
	s := chatkitSchemas(t, false)
	for label, tr := range transcripts(t) {
		t.Run(label, func(t *testing.T) {
			validate(t, s.request, "request", tr.Request)
			var req struct{ Type string }
			_ = json.Unmarshal(tr.Request, &req)
			switch {
			case tr.ContentType == "text/event-stream":
				for _, ev := range sseEvents(t, tr.SSE) {
					validate(t, s.event, "event", ev)
				}
			case req.Type == "threads.get_by_id" || req.Type == "threads.update":
				validate(t, s.thread, "reply", tr.JSON)
			case req.Type == "threads.list":
				validate(t, s.threadsPage, "reply", tr.JSON)
			case req.Type == "items.list":
				validate(t, s.itemsPage, "reply", tr.JSON)
			default:
				if string(tr.JSON) != "{}" {
					t.Errorf("reply to %s: got %s, want {}", req.Type, tr.JSON)
				}
			}
		})
	}
	doc := transcripts(t)["threads.update"].JSON
	if err := chatkitSchemas(t, true).thread.Validate(mustJSONSchemaDoc(t, doc)); err == nil {
		t.Errorf("a thread created at a time without a zone validates with formats asserted; want the date-time format checked")
	}
}

// TestChatKitFollowsChatKitPython replays the transcripts' exchanges
// (those that do not need client tools or a failing respond) against
// Switchboard with a model scripted as chatkit-python's respond was: each
// stream has the events of chatkit-python's, in its order, but for those
// that respond itself sent (its progress_update, notice and thread.updated
// events); each JSON reply has the fields of chatkit-python's.
func TestChatKitFollowsChatKitPython(t *testing.T) {
	trs := transcripts(t)
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			turn := []llmtest.Reply{
				{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"buy milk"}`}}},
				{Text: "Added “buy milk”."},
			}
			svc := newChatKitService(t, open(t), tasksServer(t, "stdio"), llmtest.Sequence(slices.Concat(turn, turn, turn)...), tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			sameShape := func(label string, got ckEvents) {
				t.Helper()
				var want ckEvents
				for _, raw := range sseEvents(t, trs[label].SSE) {
					var ev map[string]any
					_ = json.Unmarshal(raw, &ev)
					switch ev["type"] {
					case "progress_update", "notice", "thread.updated": // respond's own
						continue
					}
					want = append(want, ev)
				}
				if diff := cmp.Diff(want.shape(), got.shape()); diff != "" {
					t.Errorf("%s: events (-chatkit-python +ours):\n%s", label, diff)
				}
			}
			sameKeys := func(label string, got map[string]any) {
				t.Helper()
				var want map[string]any
				_ = json.Unmarshal(trs[label].JSON, &want)
				if diff := cmp.Diff(keys(want), keys(got)); diff != "" {
					t.Errorf("%s: reply's fields (-chatkit-python +ours):\n%s", label, diff)
				}
			}

			created := k.stream(ckCreate("Add a task to buy milk"))
			sameShape("threads.create: a turn with a tool call shown as a workflow task", created)
			thread := created.threadID(t)
			sameShape("threads.add_user_message", k.stream(ckAdd(thread, "And eggs")))

			got := k.json(ckGet(thread), k.s.thread)
			sameKeys("threads.get_by_id", got)
			var types []string
			for _, it := range got["items"].(map[string]any)["data"].([]any) {
				types = append(types, it.(map[string]any)["type"].(string))
			}
			if want := []string{"user_message", "workflow", "assistant_message", "user_message", "workflow", "assistant_message"}; !slices.Equal(types, want) {
				t.Errorf("threads.get_by_id: items %v, want %v", types, want)
			}

			list := k.json(ckThreads(1, "desc", ""), k.s.threadsPage)
			sameKeys("threads.list (limit 1)", list)
			first := k.json(ckItems(thread, 3, "asc", ""), k.s.itemsPage)
			sameKeys("items.list page 1 (limit 3, asc)", first)
			second := k.json(ckItems(thread, 3, "asc", first["after"].(string)), k.s.itemsPage)
			sameKeys("items.list page 2 (after = previous page's after)", second)
			if ids := append(itemIDs(first), itemIDs(second)...); !slices.Equal(ids, itemIDs(got["items"].(map[string]any))) {
				t.Errorf("items.list pages: got %v, want the thread's items %v", ids, itemIDs(got["items"].(map[string]any)))
			}

			updated := k.json(ckReq("threads.update", map[string]any{"thread_id": thread, "title": "Groceries"}), k.s.thread)
			sameKeys("threads.update", updated)
			if updated["title"] != "Groceries" {
				t.Errorf("threads.update: title %v, want Groceries", updated["title"])
			}
			answer := itemIDs(first)[2]
			k.json(ckReq("items.feedback", map[string]any{"thread_id": thread, "item_ids": []string{answer}, "kind": "positive"}), nil)

			userItem := itemIDs(first)[0]
			sameShape("threads.retry_after_item", k.stream(ckRetry(thread, userItem)))
			k.json(ckReq("threads.delete", map[string]any{"thread_id": thread}), nil)
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// itemIDs are the ids of a page's items.
func itemIDs(page map[string]any) []string {
	var out []string
	for _, it := range page["data"].([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}
