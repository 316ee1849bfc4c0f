package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
)

func destructive(_, _ string, a switchboard.ToolAnnotations) bool { return a.IsDestructive() }

type approvalReply struct {
	chatReply
	Status           string `json:"status"`
	PendingApprovals []struct {
		ID, Tool, Status string
	} `json:"pending_approvals"`
}

func TestApprovalRoute(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newApprovingService(t, open(t), tasksServer(t, "stdio"), llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"old"}`}}},
				llmtest.Reply{Text: "Added."},
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
				llmtest.Reply{Text: "Deleted."},
			))
			alice := token(t, "alice")
			var r approvalReply
			do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"add old"}}`, &r)
			if r.Status != "completed" {
				t.Fatalf("add: got %+v", r)
			}
			conv := r.ConversationID
			resp := do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"delete it"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "awaiting_approval" || len(r.PendingApprovals) != 1 || r.PendingApprovals[0].Tool != "delete_task" ||
				!strings.Contains(r.Message.Content, "approval") {
				t.Fatalf("delete: got %d %+v", resp.StatusCode, r)
			}
			pending := r.PendingApprovals[0].ID
			approval := svc.url + "/api/alice/conversations/" + conv + "/tool-calls/" + pending + "/approval"

			var e chatReply
			if resp := do(t, "POST", strings.Replace(approval, "/alice/", "/bob/", 1), token(t, "bob"), `{"approve":true}`, &e); resp.StatusCode != 404 {
				t.Errorf("bob approves alice's call: got %d %+v, want 404", resp.StatusCode, e.Error)
			}
			if resp := do(t, "POST", approval, alice, `{"approve":"yes"}`, &e); resp.StatusCode != 400 || e.Error.Code != "invalid_approval" {
				t.Errorf("bad body: got %d %+v", resp.StatusCode, e.Error)
			}
			resp = do(t, "POST", approval, alice, `{"approve":true}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "Deleted." || len(r.ToolCalls) != 1 ||
				r.ToolCalls[0].Status != "succeeded" || r.ToolCalls[0].ID != pending {
				t.Fatalf("approve: got %d %+v", resp.StatusCode, r)
			}
			if resp := do(t, "POST", approval, alice, `{"approve":true}`, &e); resp.StatusCode != 409 {
				t.Errorf("approving twice: got %d %+v, want 409", resp.StatusCode, e.Error)
			}
			if reqs := svc.model.Requests(); !strings.Contains(reqs[len(reqs)-1].Messages[len(reqs[len(reqs)-1].Messages)-1].Content, "old") {
				t.Errorf("the model did not get the approved call's result: %+v", reqs[len(reqs)-1].Messages)
			}
		})
	}
}

func TestApprovalOverTheStream(t *testing.T) {
	svc := newApprovingService(t, store.NewMemory(), tasksServer(t, "stdio"), llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":7}`}}},
		llmtest.Reply{Text: "Could not delete it."},
	))
	alice := token(t, "alice")
	parts := streamParts(t, svc.url+"/api/alice/chat/stream", alice, `{"message":{"content":"delete 7"}}`)
	approval := parts.find("tool-approval-request")
	finish := parts.find("finish")
	if approval == nil || finish == nil || finish["finishReason"] != "tool-calls" {
		t.Fatalf("parts: got %v", parts.types())
	}
	conv := finish["messageMetadata"].(map[string]any)["conversationId"].(string)
	url := svc.url + "/api/alice/conversations/" + conv + "/tool-calls/" + approval["toolCallId"].(string) + "/approval"
	parts = streamParts(t, url, alice, `{"approve":true}`)
	out := parts.find("tool-output-error") // task 7 does not exist: a tool error, told to the model
	if out == nil || out["toolCallId"] != approval["toolCallId"] || !strings.Contains(parts.text(), "Could not delete it.") {
		t.Errorf("approval stream: got %v", parts.types())
	}
}

func TestCancelRoute(t *testing.T) {
	arrived := make(chan struct{})
	svc := newService(t, store.NewMemory(), nil, func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
		if n == 0 {
			return llmtest.Reply{Text: "first"}
		}
		close(arrived)
		return llmtest.Reply{Delay: 30 * time.Second, Text: "too late"}
	})
	alice := token(t, "alice")
	var r approvalReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"hi"}}`, &r)
	conv := r.ConversationID
	cancelURL := svc.url + "/api/alice/conversations/" + conv + "/cancel"
	var e chatReply
	if resp := do(t, "POST", cancelURL, alice, ``, &e); resp.StatusCode != 409 || e.Error.Code != "no_running_turn" {
		t.Errorf("cancel with nothing running: got %d %+v", resp.StatusCode, e.Error)
	}
	done := make(chan *http.Response, 1)
	var slow chatReply
	go func() {
		done <- do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"slow"}}`, &slow)
	}()
	<-arrived
	if resp := do(t, "POST", strings.Replace(cancelURL, "/alice/", "/bob/", 1), token(t, "bob"), ``, &e); resp.StatusCode != 404 {
		t.Errorf("bob cancels alice's turn: got %d", resp.StatusCode)
	}
	var cancelled struct {
		Success        bool
		ConversationID string `json:"conversation_id"`
		TurnID         string `json:"turn_id"`
		Status         string
	}
	if resp := do(t, "POST", cancelURL, alice, ``, &cancelled); resp.StatusCode != 200 || !cancelled.Success ||
		cancelled.Status != "cancelling" || cancelled.ConversationID != conv || cancelled.TurnID == "" {
		t.Fatalf("cancel: got %d %+v, want 200 cancelling, with the turn", resp.StatusCode, cancelled)
	}
	resp := <-done
	if resp.StatusCode != 409 || slow.Error.Code != "turn_cancelled" {
		t.Errorf("the cancelled chat: got %d %+v, want 409 turn_cancelled", resp.StatusCode, slow.Error)
	}
	var conversation struct {
		Messages []struct{ Role, Type, Content string } `json:"messages"`
	}
	do(t, "GET", svc.url+"/api/alice/conversations/"+conv, alice, "", &conversation)
	last := conversation.Messages[len(conversation.Messages)-1]
	if len(conversation.Messages) != 4 || conversation.Messages[2].Content != "slow" || last.Type != "error" {
		t.Errorf("stored transcript: got %+v, want the cancelled turn's message kept and an error note", conversation.Messages)
	}
}

// TestTurnRunningAnswers409WithRetryAfter: a message that waited its
// while (orchestrator.Options.TurnWait) for a running turn of its
// conversation is answered 409 turn_running with Retry-After, as JSON and
// as the stream route.
func TestTurnRunningAnswers409WithRetryAfter(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	svc := newServiceWith(t, store.NewMemory(), nil, func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
		if n == 1 {
			close(arrived)
			<-release
		}
		return llmtest.Reply{Text: "ok"}
	}, &orchestrator.Options{TurnWait: 200 * time.Millisecond})
	alice := token(t, "alice")
	var r chatReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"hi"}}`, &r)
	conv := r.ConversationID
	done := make(chan *http.Response, 1)
	go func() {
		done <- do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"slow"}}`, nil)
	}()
	<-arrived
	for _, route := range []string{"/api/alice/chat", "/api/alice/chat/stream"} {
		var e chatReply
		resp := do(t, "POST", svc.url+route+"?conversation_id="+conv, alice, `{"message":{"content":"meanwhile"}}`, &e)
		if resp.StatusCode != http.StatusConflict || e.Error.Code != "turn_running" || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("%s while a turn runs: got %d %+v, Retry-After %q; want 409 turn_running, Retry-After 1",
				route, resp.StatusCode, e.Error, resp.Header.Get("Retry-After"))
		}
	}
	close(release)
	if resp := <-done; resp.StatusCode != 200 {
		t.Errorf("the slow turn: got %d, want 200", resp.StatusCode)
	}
}

// parts is a UI message stream, decoded.
type parts []map[string]any

func streamParts(t *testing.T, url, tok, body string) parts {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: got %d", url, resp.StatusCode)
	}
	var out parts
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var p map[string]any
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("part %q: %v", line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return out
}

func (ps parts) find(typ string) map[string]any {
	for _, p := range ps {
		if p["type"] == typ {
			return p
		}
	}
	return nil
}

func (ps parts) types() []string {
	var out []string
	for _, p := range ps {
		out = append(out, p["type"].(string))
	}
	return out
}

func (ps parts) text() string {
	var b strings.Builder
	for _, p := range ps {
		if p["type"] == "text-delta" {
			b.WriteString(p["delta"].(string))
		}
	}
	return b.String()
}

// TestClientDisconnectCancelsTheTurn: a streaming client that goes away ends
// the turn: the model request is aborted and the turn is stored cancelled,
// with the user's message kept.
func TestClientDisconnectCancelsTheTurn(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, nil, func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
		return llmtest.Reply{Delay: 30 * time.Second, Text: "too late"}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", svc.url+"/api/alice/chat/stream", strings.NewReader(`{"message":{"content":"hello?"}}`))
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Read up to the start of the step, then hang up.
	sc := bufio.NewScanner(resp.Body)
	var conv string
	for sc.Scan() {
		line, _ := strings.CutPrefix(sc.Text(), "data: ")
		var p struct {
			Type     string
			Metadata struct{ ConversationID string } `json:"messageMetadata"`
		}
		_ = json.Unmarshal([]byte(line), &p)
		if p.Type == "start" {
			conv = p.Metadata.ConversationID
		}
		if p.Type == "start-step" {
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
		turns, err := st.ListTurns(context.Background(), "alice", conv)
		if err == nil && len(turns) == 1 && turns[0].Status == switchboard.TurnCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("turns of %s: %+v, %v; want one, cancelled", conv, turns, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs, _ := st.ListMessages(context.Background(), "alice", conv)
	if len(msgs) == 0 || msgs[0].Content != "hello?" {
		t.Errorf("the user's message was not kept: %+v", msgs)
	}
}

// TestApprovalSentWithANewMessage: a useChat user who approves a call and
// then writes a new message (no sendAutomaticallyWhen) sends the approval
// in the assistant message before the new one: it is applied first — the
// call runs and its turn ends — and then the new message is answered; not
// cancelled as a call the conversation went on from. Also when the chat
// resends it with a retry (regenerate), and not when the request's
// Idempotency-Key was used for another request.
func TestApprovalSentWithANewMessage(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newApprovingService(t, open(t), tasksServer(t, "stdio"), func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
				last := req.Messages[len(req.Messages)-1]
				switch {
				case last.Role == "tool":
					return llmtest.Reply{Text: "Done."}
				case strings.HasPrefix(last.Content, "add "):
					return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: fmt.Sprintf(`{"title":%q}`, last.Content[4:])}}}
				case strings.HasPrefix(last.Content, "delete "):
					return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: fmt.Sprintf(`{"task_id":%s}`, last.Content[7:])}}}
				}
				return llmtest.Reply{Text: "Nothing is left."}
			})
			alice := token(t, "alice")
			var msgs []string // the chat's messages
			user := func(text string) string {
				return fmt.Sprintf(`{"id":"u%d","role":"user","parts":[{"type":"text","text":%q}]}`, len(msgs), text)
			}
			send := func(key, trigger string, extra ...string) (*http.Response, approvalReply) {
				t.Helper()
				body := `{"id":"chat-1","messages":[` + strings.Join(append(slices.Clone(msgs), extra...), ",") + `]`
				if trigger != "" {
					body += `,"trigger":"` + trigger + `"`
				}
				var r approvalReply
				return post(t, svc.url+"/api/alice/chat", alice, key, body+"}", &r), r
			}
			turn := func(text string) approvalReply {
				t.Helper()
				u := user(text)
				resp, r := send("", "", u)
				if resp.StatusCode != 200 {
					t.Fatalf("%q: got %d %+v", text, resp.StatusCode, r)
				}
				msgs = append(msgs, u, fmt.Sprintf(`{"id":"a%d","role":"assistant","parts":[{"type":"text","text":%q}]}`, len(msgs), r.Message.Content))
				return r
			}
			approve := func(callID string) string {
				return fmt.Sprintf(`{"id":"a%d","role":"assistant","parts":[{"type":"dynamic-tool","toolName":"tasks__delete_task","toolCallId":%q,`+
					`"state":"approval-responded","input":{},"approval":{"id":%q,"approved":true}}]}`, len(msgs), callID, callID)
			}
			status := func(callID string) switchboard.ToolCallStatus {
				t.Helper()
				calls, _, err := svc.store.ListToolCalls(context.Background(), switchboard.ToolCallFilter{Tool: "delete_task"})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range calls {
					if c.ID == callID {
						return c.Status
					}
				}
				t.Fatalf("no call %s", callID)
				return ""
			}
			pending := func(r approvalReply) string {
				t.Helper()
				if r.Status != "awaiting_approval" || len(r.PendingApprovals) != 1 {
					t.Fatalf("got %+v, want a call awaiting approval", r)
				}
				return r.PendingApprovals[0].ID
			}

			turn("add old")
			first := pending(turn("delete 1"))
			msgs = msgs[:len(msgs)-1] // the chat's last message is the one it approves in
			resp, r := send("", "", approve(first), user("what is left?"))
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "Nothing is left." || status(first) != switchboard.CallSucceeded {
				t.Fatalf("a new message after an approval: got %d %+v, call %s; want the call run, then the message answered", resp.StatusCode, r, status(first))
			}
			reqs := svc.model.Requests()
			var contents []string
			for _, m := range reqs[len(reqs)-1].Messages {
				contents = append(contents, m.Content)
			}
			if got := strings.Join(contents, "|"); !strings.Contains(got, "Done.|what is left?") {
				t.Errorf("the new message's model request: got %q, want the approved call's turn before it", got)
			}
			msgs = append(msgs, approve(first), user("what is left?"), `{"id":"a-last","role":"assistant","parts":[{"type":"text","text":"Nothing is left."}]}`)

			if resp, r := send("k-used", "", user("add new")); resp.StatusCode != 200 {
				t.Fatalf("add new: got %d %+v", resp.StatusCode, r)
			}
			msgs = append(msgs, user("add new"), `{"id":"a-new","role":"assistant","parts":[{"type":"text","text":"Done."}]}`)
			second := pending(turn("delete 2"))
			msgs = msgs[:len(msgs)-1]
			if resp, r := send("k-used", "", approve(second), user("something else")); resp.StatusCode != 422 || status(second) != switchboard.CallAwaitingApproval {
				t.Errorf("an approval in a request whose key was used for another: got %d %+v, call %s; want 422 and the call not run",
					resp.StatusCode, r.Error, status(second))
			}
			// The chat retries a message that never got an answer.
			if resp, r := send("", "regenerate-message", approve(second), user("never stored")); resp.StatusCode != 200 || status(second) != switchboard.CallSucceeded {
				t.Errorf("an approval sent with a retried message: got %d %+v, call %s; want the call run", resp.StatusCode, r, status(second))
			}
		})
	}
}
