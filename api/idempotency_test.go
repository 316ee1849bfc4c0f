package api_test

import (
	"context"
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
			slow, stuck := make(chan struct{}), make(chan struct{})
			svc := newService(t, open(t), tasksServer(t, "stdio"), func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
				last := req.Messages[len(req.Messages)-1]
				switch {
				case last.Content == "slow":
					close(slow)
					return llmtest.Reply{Delay: 400 * time.Millisecond, Text: "slow"}
				case last.Content == "stuck":
					close(stuck)
					return llmtest.Reply{Delay: time.Minute, Text: "never"}
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

			// A first request whose turn was cancelled (its client went
			// away) is answered as a cancelled turn is: 409.
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`{"message":{"content":"stuck"}}`))
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Idempotency-Key", "k3")
			go func() {
				<-stuck
				cancel()
			}()
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Fatalf("the stuck request: got %d, want it cut off", resp.StatusCode)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				var e chatReply
				resp := post(t, url, alice, "k3", `{"message":{"content":"stuck"}}`, &e)
				if resp.StatusCode == 409 && e.Error.Code == "turn_cancelled" {
					break
				}
				if e.Error.Code != "idempotency_in_progress" || time.Now().After(deadline) {
					t.Fatalf("retry of a cancelled request: got %d %+v, want 409 turn_cancelled", resp.StatusCode, e.Error)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
