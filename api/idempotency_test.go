package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

func post(t *testing.T, url, tok, key, body string, out any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return doRequest(t, req, out)
}

func TestIdempotencyKey(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			slow := make(chan struct{})
			svc := newService(t, open(t), tasksServer(t, "stdio"), func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
				last := req.Messages[len(req.Messages)-1]
				switch {
				case last.Content == "slow":
					close(slow)
					return llmtest.Reply{Delay: 400 * time.Millisecond, Text: "slow"}
				case last.Role == "user":
					return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"once"}`}}}
				}
				return llmtest.Reply{Text: "Added once."}
			})
			alice := token(t, "alice")
			url := svc.url + "/api/alice/chat"
			var first, again chatReply
			if resp := post(t, url, alice, "k1", `{"message":{"content":"add once"}}`, &first); resp.StatusCode != 200 {
				t.Fatalf("first: got %d", resp.StatusCode)
			}
			resp := post(t, url, alice, "k1", `{"message":{"content":"add once"}}`, &again)
			if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "true" || again.Message.ID != first.Message.ID ||
				again.Message.Content != "Added once." || len(again.ToolCalls) != 1 || again.ToolCalls[0].ID != first.ToolCalls[0].ID {
				t.Errorf("retry: got %d %+v, want the stored reply", resp.StatusCode, again)
			}
			if n := len(svc.model.Requests()); n != 2 { // checked before bob's request below
				t.Errorf("model requests: got %d, want 2 (the retry must not call the model)", n)
			}
			var e chatReply
			if resp := post(t, url, alice, "k1", `{"message":{"content":"something else"}}`, &e); resp.StatusCode != 422 || e.Error.Code != "idempotency_key_mismatch" {
				t.Errorf("another body: got %d %+v, want 422", resp.StatusCode, e.Error)
			}
			if resp := post(t, svc.url+"/api/bob/chat", token(t, "bob"), "k1", `{"message":{"content":"add once"}}`, nil); resp.StatusCode == 200 && resp.Header.Get("Idempotent-Replayed") != "" {
				t.Errorf("another user's key replayed alice's reply")
			}

			done := make(chan int, 1)
			go func() { done <- post(t, url, alice, "k2", `{"message":{"content":"slow"}}`, nil).StatusCode }()
			<-slow
			if resp := post(t, url, alice, "k2", `{"message":{"content":"slow"}}`, &e); resp.StatusCode != 409 || e.Error.Code != "idempotency_in_progress" {
				t.Errorf("while the first runs: got %d %+v, want 409", resp.StatusCode, e.Error)
			}
			if code := <-done; code != 200 {
				t.Errorf("the slow first request: got %d", code)
			}
		})
	}
}
