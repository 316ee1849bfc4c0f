package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
			svc := newServiceWith(t, open(t), tasksServer(t, "stdio"), llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"old"}`}}},
				llmtest.Reply{Text: "Added."},
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
				llmtest.Reply{Text: "Deleted."},
			), &orchestrator.Options{RequireApproval: destructive})
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
	svc := newServiceWith(t, store.NewMemory(), tasksServer(t, "stdio"), llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":7}`}}},
		llmtest.Reply{Text: "Could not delete it."},
	), &orchestrator.Options{RequireApproval: destructive})
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
	if resp := do(t, "POST", cancelURL, alice, ``, &e); resp.StatusCode != 200 {
		t.Fatalf("cancel: got %d %+v", resp.StatusCode, e.Error)
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
		turns, err := st.ListTurns(context.Background(), conv)
		if err == nil && len(turns) == 1 && turns[0].Status == switchboard.TurnCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("turns of %s: %+v, %v; want one, cancelled", conv, turns, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs, _ := st.ListMessages(context.Background(), conv)
	if len(msgs) == 0 || msgs[0].Content != "hello?" {
		t.Errorf("the user's message was not kept: %+v", msgs)
	}
}

// TestApprovalSentWithANewMessage: a useChat user who approves a call and
// then writes a new message (no sendAutomaticallyWhen) sends the approval
// in the assistant message before the new one: it is applied first — the
// call runs and its turn ends — and then the new message is answered; not
// cancelled as a call the conversation went on from.
func TestApprovalSentWithANewMessage(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newServiceWith(t, open(t), tasksServer(t, "stdio"), llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"old"}`}}},
				llmtest.Reply{Text: "Added."},
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
				llmtest.Reply{Text: "Deleted."},
				llmtest.Reply{Text: "Nothing is left."},
			), &orchestrator.Options{RequireApproval: destructive})
			alice := token(t, "alice")
			user := func(id, text string) string {
				return fmt.Sprintf(`{"id":%q,"role":"user","parts":[{"type":"text","text":%q}]}`, id, text)
			}
			body := func(msgs ...string) string { return `{"id":"chat-1","messages":[` + strings.Join(msgs, ",") + `]}` }
			var r approvalReply
			do(t, "POST", svc.url+"/api/alice/chat", alice, body(user("u1", "add old")), &r)
			added := fmt.Sprintf(`{"id":%q,"role":"assistant","parts":[{"type":"text","text":"Added."}]}`, "a1")
			do(t, "POST", svc.url+"/api/alice/chat", alice, body(user("u1", "add old"), added, user("u2", "delete it")), &r)
			if r.Status != "awaiting_approval" || len(r.PendingApprovals) != 1 {
				t.Fatalf("delete: got %+v", r)
			}
			call := r.PendingApprovals[0].ID
			approved := fmt.Sprintf(`{"id":%q,"role":"assistant","parts":[{"type":"dynamic-tool","toolName":"tasks__delete_task","toolCallId":%q,`+
				`"state":"approval-responded","input":{"task_id":1},"approval":{"id":%q,"approved":true}}]}`, "a2", call, call)
			resp := do(t, "POST", svc.url+"/api/alice/chat", alice, body(user("u1", "add old"), added, user("u2", "delete it"), approved, user("u3", "what is left?")), &r)
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "Nothing is left." {
				t.Fatalf("the new message: got %d %+v, want it answered after the approved call's turn", resp.StatusCode, r)
			}
			calls, _, err := svc.store.ListToolCalls(context.Background(), switchboard.ToolCallFilter{Tool: "delete_task"})
			if err != nil || len(calls) != 1 || calls[0].Status != switchboard.CallSucceeded {
				t.Fatalf("the approved call: got %+v, %v, want it run", calls, err)
			}
			reqs := svc.model.Requests()
			var contents []string
			for _, m := range reqs[len(reqs)-1].Messages {
				contents = append(contents, m.Content)
			}
			if got := strings.Join(contents, "|"); !strings.Contains(got, "Deleted.|what is left?") {
				t.Errorf("the new message's model request: got %q, want the approved call's turn before it", got)
			}
		})
	}
}
