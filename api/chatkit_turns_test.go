package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/tools"
)

// withoutTimes is v (an item, a list of items) without its created_at: a
// stream tells an item's time as it goes, the store as it kept it.
func withoutTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k != "created_at" {
				out[k] = withoutTimes(e)
			}
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutTimes(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutTimes(e)
		}
		return out
	}
	return v
}

// TestChatKitTurnWithTwoToolCalls: a turn whose step asks for two calls
// streams them as one workflow of two custom tasks, each loading then
// complete, done with a summary; then the answer, delta by delta. The
// thread read back has the items the stream sent, with their ids.
func TestChatKitTurnWithTwoToolCalls(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := open(t)
			svc := newChatKitService(t, st, tasksServer(t, "stdio"), llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"milk"}`}, {Name: "tasks__add_task", Arguments: `{"title":"eggs"}`}}},
				llmtest.Reply{Text: "Added milk and eggs."},
			), tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			evs := k.stream(ckCreate("Add milk and eggs"))
			want := []string{
				"thread.created", "thread.item.done user_message", "stream_options",
				"thread.item.added workflow",
				"thread.item.updated workflow.task.added", "thread.item.updated workflow.task.updated",
				"thread.item.updated workflow.task.added", "thread.item.updated workflow.task.updated",
				"thread.item.done workflow",
				"thread.item.added assistant_message", "thread.item.updated assistant_message.content_part.added",
				"thread.item.updated assistant_message.content_part.text_delta", "thread.item.updated assistant_message.content_part.done",
				"thread.item.done assistant_message",
			}
			if diff := cmp.Diff(want, evs.shape()); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			if got := evs.text(); got != "Added milk and eggs." {
				t.Errorf("streamed text: got %q", got)
			}
			var indicators []string
			for _, ev := range evs {
				if u, ok := ev["update"].(map[string]any); ok && strings.HasPrefix(u["type"].(string), "workflow.task") {
					indicators = append(indicators, u["task"].(map[string]any)["status_indicator"].(string))
				}
			}
			if want := []string{"loading", "complete", "loading", "complete"}; !slices.Equal(indicators, want) {
				t.Errorf("tasks' status_indicator: got %v, want %v", indicators, want)
			}
			done := evs.done()
			wf := done[1]["workflow"].(map[string]any)
			tasks := wf["tasks"].([]any)
			if len(tasks) != 2 || wf["summary"].(map[string]any)["title"] != "Used 2 tools" {
				t.Fatalf("workflow: got %v, want two tasks and a summary", wf)
			}
			for i, title := range []string{"milk", "eggs"} {
				task := tasks[i].(map[string]any)
				if task["title"] != "tasks · add_task" || task["status_indicator"] != "complete" || !strings.Contains(task["content"].(string), title) {
					t.Errorf("task %d: got %v, want tasks · add_task, complete, its result", i, task)
				}
			}
			thread := evs.threadID(t)
			if diff := cmp.Diff(withoutTimes(done), withoutTimes(k.allItems(thread))); diff != "" {
				t.Errorf("the thread read back (-streamed +read):\n%s", diff)
			}
			calls, _, err := st.ListToolCalls(context.Background(), switchboard.ToolCallFilter{ConversationID: thread})
			if err != nil || len(calls) != 2 || calls[0].Status != switchboard.CallSucceeded || calls[1].Status != switchboard.CallSucceeded {
				t.Errorf("ledger: got %+v, %v; want two calls succeeded", calls, err)
			}
		})
	}
}

// TestChatKitFailedModelCall: a model call that fails ends the stream with
// an error event that allows a retry; the thread keeps the user's message
// and the note of the failure, and retry_after_item (our regenerate)
// answers the message again, the note leaving the thread.
func TestChatKitFailedModelCall(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), nil, llmtest.Sequence(
				llmtest.Reply{Status: http.StatusBadRequest, Text: "the model refused"},
				llmtest.Reply{Text: "Hello again."},
			), tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			evs := k.stream(ckCreate("hi"))
			if diff := cmp.Diff([]string{"thread.created", "thread.item.done user_message", "stream_options", "error"}, evs.shape()); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			e := evs.find("error")
			if e["code"] != "custom" || e["allow_retry"] != true || e["message"] == "" {
				t.Errorf("error event: got %v, want code custom, allow_retry, a message", e)
			}
			thread := evs.threadID(t)
			items := k.allItems(thread)
			if len(items) != 2 || items[0]["type"] != "user_message" || items[1]["type"] != "assistant_message" {
				t.Fatalf("items after the failure: got %v, want the user's message and the note", items)
			}
			retried := k.stream(ckRetry(thread, items[0]["id"].(string)))
			if diff := cmp.Diff([]string{"stream_options", "thread.item.added assistant_message", "thread.item.updated assistant_message.content_part.added",
				"thread.item.updated assistant_message.content_part.text_delta", "thread.item.updated assistant_message.content_part.done",
				"thread.item.done assistant_message"}, retried.shape()); diff != "" {
				t.Errorf("retry's events (-want +got):\n%s", diff)
			}
			after := k.allItems(thread)
			if len(after) != 2 || after[0]["id"] != items[0]["id"] || after[1]["content"].([]any)[0].(map[string]any)["text"] != "Hello again." {
				t.Errorf("items after the retry: got %v, want the user's message and the new answer", after)
			}
		})
	}
}

// TestChatKitClientCancels: a ChatKit client that cancels (allow_cancel:
// it aborts the request) ends the turn as on the other routes: the model
// request is aborted and the turn is stored cancelled, with the user's
// message kept.
func TestChatKitClientCancels(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := open(t)
			svc := newChatKitService(t, st, nil, func(int, *openai.ChatCompletionRequest) llmtest.Reply {
				return llmtest.Reply{Delay: 30 * time.Second, Text: "too late"}
			}, tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			body, _ := json.Marshal(ckCreate("hello?"))
			validate(t, k.s.request, "request", body)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", k.url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+k.tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			// Read up to stream_options, as the client does before it
			// shows its stop button, then stop.
			r := &lineReader{r: resp.Body}
			var thread string
			for {
				line, err := r.line()
				if err != nil {
					t.Fatalf("stream ended before stream_options: %v", err)
				}
				data, _ := strings.CutPrefix(line, "data: ")
				if data == "" {
					continue
				}
				validate(t, k.s.event, "event", []byte(data))
				var ev map[string]any
				_ = json.Unmarshal([]byte(data), &ev)
				if ev["type"] == "thread.created" {
					thread = ev["thread"].(map[string]any)["id"].(string)
				}
				if ev["type"] == "stream_options" {
					if ev["stream_options"].(map[string]any)["allow_cancel"] != true {
						t.Errorf("stream_options: got %v, want allow_cancel", ev)
					}
					break
				}
			}
			for len(svc.model.Requests()) == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			resp.Body.Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				turns, err := st.ListTurns(context.Background(), "alice", thread)
				if err == nil && len(turns) == 1 && turns[0].Status == switchboard.TurnCancelled {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("turns of %s: %+v, %v; want one, cancelled", thread, turns, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			items := k.allItems(thread)
			if len(items) == 0 || items[0]["content"].([]any)[0].(map[string]any)["text"] != "hello?" {
				t.Errorf("the user's message was not kept: %v", items)
			}
		})
	}
}

// lineReader reads a response body line by line, without buffering past
// what it returns (the test stops reading mid-stream).
type lineReader struct {
	r   io.Reader
	buf []byte
}

func (l *lineReader) line() (string, error) {
	for {
		if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
			line := string(l.buf[:i])
			l.buf = l.buf[i+1:]
			return line, nil
		}
		chunk := make([]byte, 4096)
		n, err := l.r.Read(chunk)
		l.buf = append(l.buf, chunk[:n]...)
		if err != nil && n == 0 {
			return "", err
		}
	}
}

// TestChatKitPaging: threads.list and items.list page by keyset both
// ways: the pages of either order hold every thread (item) once, in
// order, has_more on all but the last, after the last id of the page; a
// thread deleted under a cursor does not break the next page; a cursor
// that names no item is refused. Another user's threads are not listed.
func TestChatKitPaging(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), nil, func(int, *openai.ChatCompletionRequest) llmtest.Reply { return llmtest.Reply{Text: "ok"} },
				tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			var threads []string
			for i := range 5 {
				threads = append(threads, k.stream(ckCreate("thread "+string(rune('a'+i)))).threadID(t))
			}
			newChatKit(t, svc, "bob").stream(ckCreate("bob's"))
			// Threads are in the order of their ids (UUIDv7: the order they
			// were made in, to the millisecond).
			slices.Sort(threads)
			pages := func(limit int, order string, between func(after string)) (ids []string, sizes []int) {
				t.Helper()
				after := ""
				for range 10 {
					page := k.json(ckThreads(limit, order, after), k.s.threadsPage)
					got := itemIDs(page)
					ids, sizes = append(ids, got...), append(sizes, len(got))
					if page["has_more"] != true {
						if _, ok := page["after"]; ok {
							t.Errorf("the last page has an after: %v", page["after"])
						}
						return ids, sizes
					}
					if page["after"] != got[len(got)-1] {
						t.Errorf("page after %v: want the page's last id %s", page["after"], got[len(got)-1])
					}
					after = page["after"].(string)
					if between != nil {
						between(after)
					}
				}
				t.Fatal("more than 10 pages")
				return nil, nil
			}
			desc := slices.Clone(threads)
			slices.Reverse(desc)
			if ids, sizes := pages(2, "desc", nil); !slices.Equal(ids, desc) || !slices.Equal(sizes, []int{2, 2, 1}) {
				t.Errorf("threads desc: got %v in pages of %v, want %v in 2, 2, 1", ids, sizes, desc)
			}
			if ids, _ := pages(3, "asc", nil); !slices.Equal(ids, threads) {
				t.Errorf("threads asc: got %v, want %v", ids, threads)
			}
			deleted := false
			ids, _ := pages(2, "desc", func(after string) {
				if !deleted {
					k.json(ckReq("threads.delete", map[string]any{"thread_id": after}), nil)
					deleted = true
				}
			})
			if !slices.Equal(ids, desc) {
				t.Errorf("threads desc, the cursor's thread deleted after the first page: got %v, want %v", ids, desc)
			}
			if ids, _ := pages(10, "desc", nil); !slices.Equal(ids, slices.Delete(slices.Clone(desc), 1, 2)) {
				t.Errorf("threads after the delete: got %v", ids)
			}

			thread := desc[0]
			k.stream(ckAdd(thread, "two"))
			k.stream(ckAdd(thread, "three"))
			all := k.allItems(thread)
			if len(all) != 6 {
				t.Fatalf("items: got %d, want 6", len(all))
			}
			var asc []string
			for _, it := range all {
				asc = append(asc, it["id"].(string))
			}
			var got []string
			after := ""
			for {
				page := k.json(ckItems(thread, 4, "desc", after), k.s.itemsPage)
				got = append(got, itemIDs(page)...)
				if page["has_more"] != true {
					break
				}
				after = page["after"].(string)
			}
			wantDesc := slices.Clone(asc)
			slices.Reverse(wantDesc)
			if !slices.Equal(got, wantDesc) {
				t.Errorf("items desc in pages of 4: got %v, want %v", got, wantDesc)
			}
			k.fail(ckItems(thread, 2, "asc", "no-such-item"), 400, "invalid_cursor")
		})
	}
}

// TestChatKitRetryAfterItem: retry_after_item answers the user message it
// names again, as our regenerate: the items after it leave the thread (and
// the transcript the JSON route reads), the model sees the history up to
// it. Only a user message can be retried.
func TestChatKitRetryAfterItem(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), nil, llmtest.Sequence(
				llmtest.Reply{Text: "first answer"}, llmtest.Reply{Text: "second answer"}, llmtest.Reply{Text: "first answer, again"},
			), tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			thread := k.stream(ckCreate("one")).threadID(t)
			k.stream(ckAdd(thread, "two"))
			items := k.allItems(thread)
			k.fail(ckRetry(thread, items[1]["id"].(string)), 400, "not_a_user_message")
			k.fail(ckRetry(thread, "user-nope"), 404, "item_not_found")
			evs := k.stream(ckRetry(thread, items[0]["id"].(string)))
			if evs.text() != "first answer, again" || evs.find("thread.item.done user_message") != nil {
				t.Errorf("retry: got %v %q, want the new answer and no new user message", evs.shape(), evs.text())
			}
			reqs := svc.model.Requests()
			var history []string
			for _, m := range reqs[len(reqs)-1].Messages {
				history = append(history, m.Role+": "+m.Content)
			}
			if !slices.Equal(history, []string{"user: one"}) {
				t.Errorf("the retry's model request: got %q, want the history up to the message", history)
			}
			after := k.allItems(thread)
			if len(after) != 2 || after[0]["id"] != items[0]["id"] || after[1]["content"].([]any)[0].(map[string]any)["text"] != "first answer, again" {
				t.Errorf("items after the retry: got %v", after)
			}
			var conv struct{ Messages []struct{ Content string } }
			do(t, "GET", svc.url+"/api/alice/conversations/"+thread, k.tok, "", &conv)
			if len(conv.Messages) != 2 || conv.Messages[0].Content != "one" || conv.Messages[1].Content != "first answer, again" {
				t.Errorf("the JSON transcript after the retry: got %+v", conv.Messages)
			}
		})
	}
}

// TestChatKitApprovals: a call awaiting approval is a widget, a Card with
// the server, the tool, the arguments, and Approve and Deny buttons whose
// actions post threads.custom_action; the decision continues the turn in
// that response's stream (the card replaced by the outcome, then the
// answer). An approved call runs; a denied one does not, and the model is
// told; a call decided already is a conflict.
func TestChatKitApprovals(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := open(t)
			svc := newChatKitService(t, st, tasksServer(t, "stdio"), func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
				last := req.Messages[len(req.Messages)-1]
				switch {
				case last.Role == "tool" && strings.Contains(last.Content, "denied"):
					return llmtest.Reply{Text: "I did not delete it."}
				case last.Role == "tool":
					return llmtest.Reply{Text: "Deleted."}
				case strings.HasPrefix(last.Content, "add "):
					return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"` + last.Content[4:] + `"}`}}}
				case strings.HasPrefix(last.Content, "delete "):
					return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":` + last.Content[7:] + `}`}}}
				}
				return llmtest.Reply{Text: "?"}
			}, tools.ApprovalPolicy{All: tools.ApprovalDestructive})
			k := newChatKit(t, svc, "alice")
			thread := k.stream(ckCreate("add milk")).threadID(t)

			asked := k.stream(ckAdd(thread, "delete 1"))
			if diff := cmp.Diff([]string{"thread.item.done user_message", "stream_options", "thread.item.done widget"}, asked.shape()); diff != "" {
				t.Fatalf("a call awaiting approval (-want +got):\n%s", diff)
			}
			card := asked.done()[1]
			callID := approvalButtons(t, card, "tasks", "delete_task", `"task_id": 1`)
			if items := k.allItems(thread); !cmp.Equal(withoutTimes(items[len(items)-1]), withoutTimes(card)) {
				t.Errorf("the thread's last item: got %v, want the card", items[len(items)-1])
			}

			approved := k.stream(ckAction(thread, card["id"].(string), "tool_call.approve", callID))
			if diff := cmp.Diff([]string{"stream_options", "thread.item.replaced widget", "thread.item.replaced widget",
				"thread.item.added assistant_message", "thread.item.updated assistant_message.content_part.added",
				"thread.item.updated assistant_message.content_part.text_delta", "thread.item.updated assistant_message.content_part.done",
				"thread.item.done assistant_message"}, approved.shape()); diff != "" {
				t.Errorf("approve (-want +got):\n%s", diff)
			}
			if got := cardBadges(approved); !slices.Equal(got, []string{"Approved · running", "Approved · done"}) || approved.text() != "Deleted." {
				t.Errorf("approve: cards %v, text %q", got, approved.text())
			}
			if c, err := st.GetToolCall(context.Background(), "alice", callID); err != nil || c.Status != switchboard.CallSucceeded {
				t.Errorf("the approved call: got %+v, %v; want succeeded", c.Status, err)
			}
			k.fail(ckAction(thread, card["id"].(string), "tool_call.approve", callID), 409, switchboard.CodeNotAwaitingApproval)

			asked = k.stream(ckAdd(thread, "delete 2"))
			card = asked.done()[1]
			callID = approvalButtons(t, card, "tasks", "delete_task", `"task_id": 2`)
			denied := k.stream(ckAction(thread, card["id"].(string), "tool_call.deny", callID))
			if got := cardBadges(denied); !slices.Equal(got, []string{"Denied"}) || denied.text() != "I did not delete it." {
				t.Errorf("deny: cards %v, text %q", got, denied.text())
			}
			if c, err := st.GetToolCall(context.Background(), "alice", callID); err != nil || c.Status != switchboard.CallDenied {
				t.Errorf("the denied call: got %+v, %v; want denied", c.Status, err)
			}
			// Read back: the decided calls are tasks of their steps'
			// workflows, and no card waits.
			var tasks []string
			for _, it := range k.allItems(thread) {
				if it["type"] == "widget" {
					t.Errorf("a card is left after the decisions: %v", it)
				}
				if wf, ok := it["workflow"].(map[string]any); ok {
					for _, task := range wf["tasks"].([]any) {
						tasks = append(tasks, task.(map[string]any)["title"].(string)+" "+strings.SplitN(task.(map[string]any)["content"].(string), ":", 2)[0])
					}
				}
			}
			if len(tasks) != 3 || !strings.HasPrefix(tasks[2], "tasks · delete_task denied") {
				t.Errorf("workflows read back: got %q, want add, delete and the denied delete", tasks)
			}
			k.fail(ckAction(thread, card["id"].(string), "tool_call.maybe", callID), 400, "unknown_action")
		})
	}
}

// approvalButtons checks an approval card (server, tool, arguments, and
// Approve and Deny buttons whose actions name the call) and returns the
// call's ledger id.
func approvalButtons(t *testing.T, item map[string]any, server, tool, args string) string {
	t.Helper()
	raw, _ := json.Marshal(item["widget"])
	w := string(raw)
	if item["type"] != "widget" || !strings.Contains(w, `"type":"Card"`) || !strings.Contains(w, "Server: "+server) ||
		!strings.Contains(w, "Tool: "+tool) || !strings.Contains(w, strings.ReplaceAll(args, `"`, `\"`)) {
		t.Fatalf("approval card: got %s", w)
	}
	var actions []map[string]any
	walkChildren(item["widget"], &actions)
	if len(actions) != 2 || actions[0]["type"] != "tool_call.approve" || actions[1]["type"] != "tool_call.deny" {
		t.Fatalf("approval card's buttons: got %v, want approve and deny", actions)
	}
	id := actions[0]["payload"].(map[string]any)["call_id"].(string)
	if actions[1]["payload"].(map[string]any)["call_id"] != id || item["id"] != "approval-"+id {
		t.Fatalf("approval card's actions: got %v, item %v; want both naming the call", actions, item["id"])
	}
	return id
}

// walkChildren collects the actions of the buttons in a widget tree.
func walkChildren(v any, actions *[]map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if m["type"] == "Button" {
		*actions = append(*actions, m["onClickAction"].(map[string]any))
	}
	if children, ok := m["children"].([]any); ok {
		for _, c := range children {
			walkChildren(c, actions)
		}
	}
}

// cardBadges are the outcomes the replaced cards of a stream show.
func cardBadges(evs ckEvents) []string {
	var out []string
	for _, ev := range evs {
		if ev["type"] != "thread.item.replaced" {
			continue
		}
		raw, _ := json.Marshal(ev["item"])
		var w struct {
			Widget struct {
				Children []struct {
					Type     string
					Children []struct{ Type, Label string }
				}
			}
		}
		_ = json.Unmarshal(raw, &w)
		for _, c := range w.Widget.Children {
			for _, cc := range c.Children {
				if cc.Type == "Badge" {
					out = append(out, cc.Label)
				}
			}
		}
	}
	return out
}
