package api_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// everythingOverHTTP starts server-everything over streamable HTTP and
// connects to it: one connection for every user, on which a server's
// question comes on the stream of the call that asks (over one stdio
// process two users' calls at once would leave a question with no call to
// tell it by).
func everythingOverHTTP(t *testing.T) *mcpclient.Conn {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(nodetest.Node(t), filepath.Join(nodetest.Module(t, "@modelcontextprotocol/server-everything"), "dist", "index.js"), "streamableHttp")
	cmd.Env = append(os.Environ(), "PORT="+addr[strings.LastIndex(addr, ":")+1:])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	waitListening(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "everything", URL: "http://" + addr + "/mcp", InitTimeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// askingEverything asks server-everything for a form when the message
// says "ask", for a link to open when it says "link", and repeats what the
// tool said.
func askingEverything(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
	last := req.Messages[len(req.Messages)-1]
	switch {
	case last.Role == openai.ChatMessageRoleTool:
		return llmtest.Reply{Text: "The tool said: " + last.Content}
	case strings.Contains(last.Content, "link"):
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "everything__trigger-url-elicitation",
			Arguments: `{"url":"https://example.com/consent","message":"Open this to consent."}`}}}
	case strings.Contains(last.Content, "ask"):
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "everything__trigger-elicitation-request", Arguments: `{}`}}}
	}
	return llmtest.Reply{Text: "plain"}
}

// inputWidget checks that an item is the widget of a pending question and
// returns the question's id and the actions of its buttons and form, by
// type.
func inputWidget(t *testing.T, item map[string]any) (string, map[string]map[string]any) {
	t.Helper()
	if item["type"] != "widget" || !strings.HasPrefix(item["id"].(string), "input-") {
		t.Fatalf("want a question's widget, got %v", item)
	}
	actions := map[string]map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for _, k := range []string{"onClickAction", "onSubmitAction"} {
			if a, ok := m[k].(map[string]any); ok {
				actions[a["type"].(string)] = a
			}
		}
		if children, ok := m["children"].([]any); ok {
			for _, c := range children {
				walk(c)
			}
		}
	}
	walk(item["widget"])
	id := strings.TrimPrefix(item["id"].(string), "input-")
	for typ, a := range actions {
		if a["payload"].(map[string]any)["input_id"] != id {
			t.Errorf("action %s names %v, want the question %s", typ, a["payload"], id)
		}
	}
	return id, actions
}

func ckAnswer(thread, item, action string, payload map[string]any) map[string]any {
	return ckReq("threads.custom_action", map[string]any{"thread_id": thread, "item_id": item,
		"action": map[string]any{"type": action, "payload": payload}})
}

// controlNames are the names of a widget's form controls, sorted.
func controlNames(item map[string]any) []string {
	var names []string
	var walk func(v any)
	walk = func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if n, ok := m["name"].(string); ok {
			names = append(names, n)
		}
		if children, ok := m["children"].([]any); ok {
			for _, c := range children {
				walk(c)
			}
		}
	}
	walk(item["widget"])
	slices.Sort(names)
	return names
}

// widgetText is a widget item's JSON, to look for what it shows.
func widgetText(item map[string]any) string {
	b, _ := json.Marshal(item["widget"])
	return string(b)
}

// TestChatKitInputs: server-everything's trigger-elicitation-request and
// trigger-url-elicitation through ChatKit, on both stores, every event and
// reply valid by chatkit-python's schema. Alice and Bob ask at once; each
// stream ends with the question as a widget (a form of the requested
// schema, with Decline and Cancel), which items.list and threads.get show
// too. Bob cannot answer Alice's question (404). Content that does not fit
// the form is an error event and reaches nothing (the question still
// waits); accepted, the form's text becomes the schema's types at the
// server, the widget is replaced by the answer and the stream goes on to
// the turn's end; answering twice is 409. Alice then declines a question
// and accepts a link; Bob's question waited all along, and he cancels it.
func TestChatKitInputs(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := open(t)
			conn := everythingOverHTTP(t)
			svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}}, askingEverything, nil, nil, nil,
				api.Deps{Admin: st.(api.AdminStore)})

			// Both ask at once, over one shared server.
			var aliceAsked, bobAsked ckEvents
			t.Run("at once", func(t *testing.T) {
				t.Run("alice", func(t *testing.T) {
					t.Parallel()
					aliceAsked = newChatKit(t, svc, "alice").stream(ckCreate("ask me"))
				})
				t.Run("bob", func(t *testing.T) {
					t.Parallel()
					bobAsked = newChatKit(t, svc, "bob").stream(ckCreate("ask me too"))
				})
			})
			if t.Failed() {
				t.FailNow()
			}
			alice, bob := newChatKit(t, svc, "alice"), newChatKit(t, svc, "bob")
			wantAsked := []string{"thread.created", "thread.item.done user_message", "stream_options", "thread.item.added workflow",
				"thread.item.updated workflow.task.added", "thread.item.done workflow", "thread.item.done widget"}
			for who, evs := range map[string]ckEvents{"alice": aliceAsked, "bob": bobAsked} {
				if diff := cmp.Diff(wantAsked, evs.shape()); diff != "" {
					t.Fatalf("%s's question (-want +got):\n%s\n%v", who, diff, evs.find("notice"))
				}
			}
			thread, bobThread := aliceAsked.threadID(t), bobAsked.threadID(t)
			card := aliceAsked.done()[2]
			inputID, actions := inputWidget(t, card)
			bobInput, _ := inputWidget(t, bobAsked.done()[2])
			w := widgetText(card)
			for _, want := range []string{`"type":"Form"`, `"name":"field:name"`, `"inputType":"email"`, `"type":"DatePicker"`,
				`"name":"field:untitledMultipleSelectEnum:2"`, `"label":"Green Lantern"`, `"label":"Reptiles"`, `"submit":true`} {
				if !strings.Contains(w, want) {
					t.Errorf("alice's form lacks %s: %s", want, w)
				}
			}
			for _, typ := range []string{"input.submit", "input.decline", "input.cancel"} {
				if actions[typ] == nil {
					t.Errorf("alice's widget has no %s action: %v", typ, actions)
				}
			}
			wf := aliceAsked.done()[1]["workflow"].(map[string]any)
			if task := wf["tasks"].([]any)[0].(map[string]any); task["status_indicator"] != "loading" ||
				!strings.Contains(wf["summary"].(map[string]any)["title"].(string), "still running") {
				t.Errorf("the asking call's workflow: got %v, want its task loading", wf)
			}
			// Read back, the question is the thread's last item. (Postgres
			// keeps the requested schema as jsonb, which orders its
			// properties its own way: the same controls, maybe in another
			// order.)
			items := alice.allItems(thread)
			if last := items[len(items)-1]; last["id"] != card["id"] || !cmp.Equal(controlNames(last), controlNames(card)) {
				t.Errorf("alice's last item: got %v, want the question's widget %v", last, card)
			} else if storeName == "memory" && !cmp.Equal(withoutTimes(last), withoutTimes(card)) {
				t.Errorf("alice's last item: got %v, want the question's widget as streamed %v", last, card)
			}
			got := alice.json(ckGet(thread), alice.s.thread)
			data := got["items"].(map[string]any)["data"].([]any)
			if last := data[len(data)-1].(map[string]any); last["id"] != card["id"] {
				t.Errorf("threads.get's last item: got %v, want the question", last["id"])
			}

			// Bob cannot answer Alice's question: not in her thread, nor
			// with her question's id in his own.
			submit := func(vals map[string]any) map[string]any {
				p := map[string]any{"input_id": inputID}
				for k, v := range vals {
					p[k] = v
				}
				return p
			}
			bob.fail(ckAnswer(thread, card["id"].(string), "input.submit", submit(map[string]any{"field:name": "Bob"})), 404, "conversation_not_found")
			bob.fail(ckAnswer(bobThread, card["id"].(string), "input.submit", submit(map[string]any{"field:name": "Bob"})), 404, switchboard.CodeInputNotFound)

			// Content that does not fit: an error event, nothing sent.
			for what, vals := range map[string]map[string]any{
				"not an email":     {"field:name": "Alice", "field:email": "not an email"},
				"no name":          {"field:email": "alice@example.com"},
				"text for integer": {"field:name": "Alice", "field:integer": "seven"},
			} {
				evs := alice.stream(ckAnswer(thread, card["id"].(string), "input.submit", submit(vals)))
				e := evs.find("error")
				if e == nil || evs.find("thread.item.replaced") != nil || e["allow_retry"] != false {
					t.Errorf("%s: got %v, want an error event and no answer", what, evs.shape())
					continue
				}
				if msg := e["message"].(string); what == "text for integer" && !strings.Contains(msg, `Integer: "seven" is not a whole number`) ||
					what == "no name" && !strings.Contains(msg, "name") || what == "not an email" && !strings.Contains(msg, "email") {
					t.Errorf("%s: the error says %q", what, msg)
				}
			}
			if in, err := st.GetInput(context.Background(), "alice", inputID); err != nil || in.Status != switchboard.InputPending {
				t.Fatalf("the question after refused answers: got %+v, %v; want pending", in.Status, err)
			}

			// Accepted: the form's text reaches the server in the schema's
			// types.
			answered := alice.stream(ckAnswer(thread, card["id"].(string), "input.submit", submit(map[string]any{
				"field:name": "Alice", "field:check": true, "field:email": "alice@example.com", "field:integer": "7",
				"field:number": "2.5", "field:birthdate": "2001-02-03T00:00:00.000Z", "field:untitledMultipleSelectEnum:0": true,
				"field:untitledMultipleSelectEnum:2": true, "field:titledSingleSelectEnum": "hero-2", "field:legacyTitledEnum": "pet-3",
			})))
			if diff := cmp.Diff([]string{"stream_options", "progress_update", "thread.item.replaced widget", "thread.item.replaced workflow",
				"thread.item.done assistant_message"}, answered.shape()); diff != "" {
				t.Fatalf("accept (-want +got):\n%s", diff)
			}
			replaced := answered[2]["item"].(map[string]any)
			if rw := widgetText(replaced); replaced["id"] != card["id"] || !strings.Contains(rw, `"label":"Accepted"`) ||
				!strings.Contains(rw, "**String**: Alice") || strings.Contains(rw, `"type":"Form"`) {
				t.Errorf("the replaced widget: got %v", replaced)
			}
			task := answered[3]["item"].(map[string]any)["workflow"].(map[string]any)["tasks"].([]any)[0].(map[string]any)
			answer := answered.done()[0]["content"].([]any)[0].(map[string]any)["text"].(string)
			if task["status_indicator"] != "complete" || !strings.Contains(answer, "Name: Alice") || !strings.Contains(answer, "Favorite Integer: 7") {
				t.Errorf("after the answer: task %v, answer %q", task, answer)
			}
			raw := strings.Join(strings.Fields(answer), "") // the raw result, without its indentation
			for _, typed := range []string{`"integer":7,`, `"number":2.5,`, `"check":true,`, `"birthdate":"2001-02-03",`,
				`"untitledMultipleSelectEnum":["Guitar","Violin"]`, `"titledSingleSelectEnum":"hero-2",`} {
				if !strings.Contains(raw, typed) {
					t.Errorf("the server's raw result lacks %s: %s", typed, answer)
				}
			}
			items = alice.allItems(thread)
			if last := items[len(items)-1]; last["id"] != answered.done()[0]["id"] {
				t.Errorf("alice's last item after the answer: got %v, want the answer %v", last["id"], answered.done()[0]["id"])
			}
			for _, it := range items {
				if it["type"] == "widget" {
					t.Errorf("a widget is left after the answer: %v", it)
				}
			}
			alice.fail(ckAnswer(thread, card["id"].(string), "input.decline", map[string]any{"input_id": inputID}), 409, switchboard.CodeInputClosed)

			// Declined.
			asked := alice.stream(ckAdd(thread, "ask again"))
			again := asked.done()[len(asked.done())-1]
			againID, _ := inputWidget(t, again)
			declined := alice.stream(ckAnswer(thread, again["id"].(string), "input.decline", map[string]any{"input_id": againID}))
			if text := declined.done()[0]["content"].([]any)[0].(map[string]any)["text"].(string); !strings.Contains(widgetText(declined[2]["item"].(map[string]any)), `"label":"Declined"`) ||
				!strings.Contains(text, "declined") {
				t.Errorf("decline: got %v, answer %q", declined.shape(), text)
			}

			// A link to open: the page opens it, "I opened it" accepts.
			asked = alice.stream(ckAdd(thread, "open the link"))
			link := asked.done()[len(asked.done())-1]
			linkID, linkActions := inputWidget(t, link)
			if open := linkActions["input.open_url"]; open == nil || open["handler"] != "client" ||
				open["payload"].(map[string]any)["url"] != "https://example.com/consent" || linkActions["input.accept"] == nil {
				t.Fatalf("the link's widget: got %v", linkActions)
			}
			opened := alice.stream(ckAnswer(thread, link["id"].(string), "input.accept", map[string]any{"input_id": linkID}))
			if text := opened.done()[0]["content"].([]any)[0].(map[string]any)["text"].(string); !strings.Contains(widgetText(opened[2]["item"].(map[string]any)), `"label":"Opened"`) ||
				!strings.Contains(text, "accept") {
				t.Errorf("the link accepted: got %v, answer %q", opened.shape(), text)
			}

			// Bob's question waited all along, untouched; he cancels it.
			if in, err := st.GetInput(context.Background(), "bob", bobInput); err != nil || in.Status != switchboard.InputPending {
				t.Fatalf("bob's question: got %+v, %v; want pending", in.Status, err)
			}
			bobItems := bob.allItems(bobThread)
			if last := bobItems[len(bobItems)-1]; last["id"] != "input-"+bobInput {
				t.Errorf("bob's last item: got %v, want his question", last["id"])
			}
			cancelled := bob.stream(ckAnswer(bobThread, "input-"+bobInput, "input.cancel", map[string]any{"input_id": bobInput}))
			if text := cancelled.done()[0]["content"].([]any)[0].(map[string]any)["text"].(string); !strings.Contains(widgetText(cancelled[2]["item"].(map[string]any)), `"label":"Cancelled"`) ||
				!strings.Contains(text, "cancelled") || strings.Contains(text, "Alice") {
				t.Errorf("bob cancels: got %v, answer %q", cancelled.shape(), text)
			}
		})
	}
}

// TestChatKitNextQuestion: the TypeScript SDK's elicitationFormExample,
// whose create_event asks twice in one call: answering the first question
// in ChatKit streams the second as the next stop (a new widget after the
// first one's answer), and answering that one the turn's end.
func TestChatKitNextQuestion(t *testing.T) {
	url := sdkExample(t, "elicitationFormExample")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "forms", URL: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	model := func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "forms__create_event", Arguments: `{}`}}}
	}
	st := store.NewMemory()
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}}, model, nil, nil, nil, api.Deps{Admin: st})
	alice := newChatKit(t, svc, "alice")
	asked := alice.stream(ckCreate("create an event"))
	thread := asked.threadID(t)
	first := asked.done()[len(asked.done())-1]
	firstID, _ := inputWidget(t, first)
	if !strings.Contains(widgetText(first), "Step 1") {
		t.Fatalf("the first question: %s", widgetText(first))
	}
	next := alice.stream(ckAnswer(thread, first["id"].(string), "input.submit", map[string]any{"input_id": firstID, "field:title": "Launch"}))
	if diff := cmp.Diff([]string{"stream_options", "progress_update", "thread.item.replaced widget", "thread.item.replaced workflow",
		"thread.item.done widget"}, next.shape()); diff != "" {
		t.Fatalf("the first answer (-want +got):\n%s", diff)
	}
	second := next.done()[0]
	secondID, _ := inputWidget(t, second)
	if secondID == firstID || !strings.Contains(widgetText(second), "Step 2") || !strings.Contains(widgetText(next[2]["item"].(map[string]any)), `"label":"Accepted"`) {
		t.Fatalf("the second question: %s", widgetText(second))
	}
	if items := alice.allItems(thread); items[len(items)-1]["id"] != second["id"] {
		t.Errorf("the thread's last item: got %v, want the second question", items[len(items)-1]["id"])
	}
	end := alice.stream(ckAnswer(thread, second["id"].(string), "input.submit", map[string]any{"input_id": secondID,
		"field:date": "2026-12-24T00:00:00.000Z", "field:startTime": "10:00", "field:duration": "60"}))
	done := end.done()
	if len(done) != 1 || !strings.Contains(done[0]["content"].([]any)[0].(map[string]any)["text"].(string), "Event created successfully") {
		t.Fatalf("the second answer: got %v", end.shape())
	}
}
