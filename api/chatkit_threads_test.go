package api_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

func answers(text string) llmtest.Responder {
	return func(int, *openai.ChatCompletionRequest) llmtest.Reply { return llmtest.Reply{Text: text} }
}

// TestChatKitDelete: threads.delete is our delete: the thread is gone from
// ChatKit and from the JSON routes.
func TestChatKitDelete(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), nil, answers("ok"), tools.ApprovalPolicy{})
			k := newChatKit(t, svc, "alice")
			keep := k.stream(ckCreate("keep")).threadID(t)
			gone := k.stream(ckCreate("delete me")).threadID(t)
			k.json(ckReq("threads.delete", map[string]any{"thread_id": gone}), nil)
			k.fail(ckGet(gone), 404, "conversation_not_found")
			k.fail(ckItems(gone, 10, "asc", ""), 404, "conversation_not_found")
			k.fail(ckReq("threads.delete", map[string]any{"thread_id": gone}), 404, "conversation_not_found")
			var e chatReply
			if resp := do(t, "GET", svc.url+"/api/alice/conversations/"+gone, k.tok, "", &e); resp.StatusCode != 404 {
				t.Errorf("the deleted thread on the JSON route: got %d, want 404", resp.StatusCode)
			}
			if ids := itemIDs(k.json(ckThreads(10, "desc", ""), k.s.threadsPage)); !slices.Equal(ids, []string{keep}) {
				t.Errorf("threads after the delete: got %v, want %v", ids, []string{keep})
			}
		})
	}
}

// TestChatKitOtherUsersThread: every request naming another user's thread
// is answered 404, as for a thread that does not exist, and changes
// nothing.
func TestChatKitOtherUsersThread(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), nil, answers("ok"), tools.ApprovalPolicy{})
			alice, bob := newChatKit(t, svc, "alice"), newChatKit(t, svc, "bob")
			thread := alice.stream(ckCreate("alice's")).threadID(t)
			before := alice.allItems(thread)
			answer := before[1]["id"].(string)
			for _, req := range []map[string]any{
				ckGet(thread),
				ckItems(thread, 10, "asc", ""),
				ckAdd(thread, "bob writes"),
				ckRetry(thread, before[0]["id"].(string)),
				ckAction(thread, "approval-x", "tool_call.approve", switchboard.NewID()),
				ckReq("threads.update", map[string]any{"thread_id": thread, "title": "bob's now"}),
				ckReq("threads.delete", map[string]any{"thread_id": thread}),
				ckReq("items.feedback", map[string]any{"thread_id": thread, "item_ids": []string{answer}, "kind": "negative"}),
				ckReq("threads.add_client_tool_output", map[string]any{"thread_id": thread, "result": map[string]any{}}),
			} {
				bob.fail(req, 404, "conversation_not_found")
			}
			if diff := cmp.Diff(before, alice.allItems(thread)); diff != "" {
				t.Errorf("alice's thread after bob's requests (-before +after):\n%s", diff)
			}
			got := alice.json(ckGet(thread), alice.s.thread)
			if got["title"] != "alice's" {
				t.Errorf("alice's title: got %v", got["title"])
			}
			if n := len(svc.model.Requests()); n != 1 {
				t.Errorf("model requests: got %d, want alice's one", n)
			}
			if ids := itemIDs(bob.json(ckThreads(10, "desc", ""), bob.s.threadsPage)); len(ids) != 0 {
				t.Errorf("bob's threads: got %v, want none", ids)
			}
		})
	}
}

// TestChatKitRefusesWhatItCannotServe: a body that is not a ChatKit
// request is a 400 that says what is wrong; the request types Switchboard
// does not serve yet answer a clear error; a path naming another user, or
// no token, are refused as on every route.
func TestChatKitRefusesWhatItCannotServe(t *testing.T) {
	svc := newChatKitService(t, store.NewMemory(), nil, answers("ok"), tools.ApprovalPolicy{})
	k := newChatKit(t, svc, "alice")
	thread := k.stream(ckCreate("hi")).threadID(t)
	for _, tc := range []struct {
		name, body, code, says string
	}{
		{"not JSON", `{"type": `, "invalid_json", "not valid JSON"},
		{"no type", `{"params": {}}`, "unknown_request_type", "threads.create"},
		{"an unknown type", `{"type": "threads.fork", "params": {}}`, "unknown_request_type", `"threads.fork" is not a ChatKit request type`},
		{"no params", `{"type": "threads.create"}`, "invalid_request", "params"},
		{"no content", `{"type": "threads.create", "params": {"input": {"attachments": [], "inference_options": {}}}}`, "invalid_request", "content"},
		{"a limit of the wrong type", `{"type": "threads.list", "params": {"limit": "ten"}}`, "invalid_request", "/params/limit"},
		{"an unknown order", `{"type": "items.list", "params": {"thread_id": "x", "order": "random"}}`, "invalid_request", "/params/order"},
		{"an unknown feedback", `{"type": "items.feedback", "params": {"thread_id": "x", "item_ids": [], "kind": "meh"}}`, "invalid_request", "/params/kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := k.raw(context.Background(), []byte(tc.body))
			if msg := wantError(t, tc.name, resp, raw, 400, tc.code); !strings.Contains(msg, tc.says) {
				t.Errorf("message %q: want it to say %q", msg, tc.says)
			}
		})
	}
	// Valid requests of what Switchboard does not serve.
	for _, req := range []map[string]any{
		ckReq("attachments.create", map[string]any{"name": "a.txt", "size": 1, "mime_type": "text/plain"}),
		ckReq("attachments.delete", map[string]any{"attachment_id": "att_1"}),
		ckReq("input.transcribe", map[string]any{"audio_base64": "AAAA", "mime_type": "audio/webm"}),
		ckReq("threads.add_structured_input", map[string]any{"thread_id": thread, "item_id": "x", "input": map[string]any{"answers": map[string]any{}}}),
		ckReq("threads.sync_custom_action", map[string]any{"thread_id": thread, "action": map[string]any{"type": "tool_call.approve"}}),
	} {
		if msg := k.fail(req, 400, "unsupported_request"); !strings.Contains(msg, "does not support") {
			t.Errorf("%s: message %q, want it to say so", req["type"], msg)
		}
	}
	withAttachment := ckCreate("see attached")
	withAttachment["params"].(map[string]any)["input"].(map[string]any)["attachments"] = []any{"att_1"}
	k.fail(withAttachment, 400, "unsupported_attachments")
	k.fail(ckReq("threads.add_client_tool_output", map[string]any{"thread_id": thread, "result": map[string]any{"x": 1}}), 409, "no_client_tool_call")
	k.fail(ckCreate(" "), 400, "empty_content")
	k.fail(ckAction(thread, "approval-x", "tool_call.approve", ""), 400, "invalid_action")
	k.fail(ckAction(thread, "approval-x", "tool_call.approve", switchboard.NewID()), 404, "tool_call_not_found")

	bobs := &chatkit{t: t, url: k.url, tok: token(t, "bob"), s: k.s}
	bobs.fail(ckGet(thread), 403, "wrong_user")
	anonymous := &chatkit{t: t, url: k.url, s: k.s}
	anonymous.fail(ckGet(thread), 401, "missing_token")
	if n := len(svc.model.Requests()); n != 1 {
		t.Errorf("model requests: got %d, want the first thread's only", n)
	}
}

// TestChatKitFeedback: items.feedback stores the user's rating of the
// messages the items show, and admins see it with the message.
func TestChatKitFeedback(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newChatKitService(t, open(t), nil, answers("An answer."), tools.ApprovalPolicy{}, "root")
			k := newChatKit(t, svc, "alice")
			thread := k.stream(ckCreate("a question")).threadID(t)
			items := k.allItems(thread)
			feedback := func(kind string, ids ...string) {
				k.json(ckReq("items.feedback", map[string]any{"thread_id": thread, "item_ids": ids, "kind": kind}), nil)
			}
			adminView := func() map[string]string {
				var r struct {
					Messages []struct{ Content, Feedback string }
				}
				if resp := do(t, "GET", svc.url+"/api/admin/conversations/"+thread, token(t, "root"), "", &r); resp.StatusCode != 200 {
					t.Fatalf("admin conversation: got %d", resp.StatusCode)
				}
				out := map[string]string{}
				for _, m := range r.Messages {
					out[m.Content] = m.Feedback
				}
				return out
			}
			feedback("negative", items[1]["id"].(string))
			feedback("positive", items[1]["id"].(string))
			if got := adminView(); got["An answer."] != "positive" || got["a question"] != "" {
				t.Errorf("admin's view: got %v, want the answer rated positive", got)
			}
			k.fail(ckReq("items.feedback", map[string]any{"thread_id": thread, "item_ids": []string{"msg-nope"}, "kind": "negative"}), 404, "item_not_found")
			if got := adminView(); got["An answer."] != "positive" {
				t.Errorf("admin's view after a refused rating: got %v", got)
			}
		})
	}
}

// unconnectedServer is a server that acts as its users, none of whom has
// connected it: every call fails with connection_required, as tools'
// sessions answer for a user without credentials.
type unconnectedServer struct{ tools.Conn }

func (unconnectedServer) Name() string { return "github" }

func (unconnectedServer) CallTool(context.Context, tools.Caller, string, json.RawMessage) (*mcpclient.Result, error) {
	return nil, switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired, "connect github to use its tools")
}

func (unconnectedServer) Session(c tools.Caller) (tools.Scope, string) {
	return tools.ScopeUser, c.UserID
}

func (unconnectedServer) HasResources() bool { return false }

func (unconnectedServer) ReadResource(context.Context, tools.Caller, string) (*mcpclient.Result, error) {
	return nil, switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired, "connect github to use its resources")
}

// signIn is the Connections of the test: a sign-in URL per user and
// server (it has nothing else: its other methods are not called).
type signIn struct{ connections }

type connections = api.Connections

func (signIn) Authorize(_ context.Context, userID, server string, _ ...string) (string, error) {
	return "https://auth.example/authorize?" + url.Values{"user": {userID}, "server": {server}}.Encode(), nil
}

// TestChatKitConnectionRequired: a call of a server the user has not
// connected is a failed task, then a widget with a button that opens the
// sign-in URL (an action the page handles) and the link itself; the turn
// goes on.
func TestChatKitConnectionRequired(t *testing.T) {
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "github__list_tasks", Arguments: `{}`}}},
		llmtest.Reply{Text: "Connect GitHub first."},
	))
	t.Cleanup(model.Close)
	catalog, err := tools.NewCatalog([]tools.Source{{Server: unconnectedServer{tasksServer(t, "stdio")}}})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	registry := tools.NewRegistry(catalog)
	orch := orchestrator.New(llm.New(llm.Config{BaseURL: model.URL, APIKey: "sk-test", Model: "scripted"}, nil), registry, st, nil)
	authn, err := auth.New(context.Background(), auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(api.Deps{Chat: orch, Store: st, Tools: registry, Auth: authn, Admin: st, Connections: signIn{}}, nil))
	t.Cleanup(srv.Close)
	k := newChatKit(t, &service{url: srv.URL, model: model, store: st}, "alice")

	evs := k.stream(ckCreate("list my tasks"))
	if diff := cmp.Diff([]string{"thread.created", "thread.item.done user_message", "stream_options",
		"thread.item.added workflow", "thread.item.updated workflow.task.added", "thread.item.updated workflow.task.updated",
		"thread.item.done workflow", "thread.item.done widget",
		"thread.item.added assistant_message", "thread.item.updated assistant_message.content_part.added",
		"thread.item.updated assistant_message.content_part.text_delta", "thread.item.updated assistant_message.content_part.done",
		"thread.item.done assistant_message"}, evs.shape()); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	done := evs.done()
	task := done[1]["workflow"].(map[string]any)["tasks"].([]any)[0].(map[string]any)
	if task["title"] != "github · list_tasks" || !strings.Contains(task["content"].(string), "connect github") {
		t.Errorf("the call's task: got %v", task)
	}
	var actions []map[string]any
	walkChildren(done[2]["widget"], &actions)
	var link string
	for _, c := range done[2]["widget"].(map[string]any)["children"].([]any) {
		if c := c.(map[string]any); c["type"] == "Markdown" {
			link = c["value"].(string)
		}
	}
	wantURL := "https://auth.example/authorize?server=github&user=alice"
	if len(actions) != 1 || actions[0]["type"] != "connection.open" || actions[0]["handler"] != "client" ||
		actions[0]["payload"].(map[string]any)["url"] != wantURL || !strings.Contains(link, "(<"+wantURL+">)") {
		t.Errorf("the connection widget: got %v, want a button opening %s and the link", done[2]["widget"], wantURL)
	}
}
