package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
)

func TestRateLimit(t *testing.T) {
	svc := newServiceFull(t, store.NewMemory(), nil, func(int, *openai.ChatCompletionRequest) llmtest.Reply { return llmtest.Reply{Text: "ok"} },
		nil, &api.Options{Limits: api.Limits{RatePerMinute: 6, Burst: 2}})
	alice, bob := token(t, "alice"), token(t, "bob")
	for i := 0; i < 2; i++ {
		if resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"hi"}}`, nil); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: got %d", i+1, resp.StatusCode)
		}
	}
	var r chatReply
	resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"hi"}}`, &r)
	wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || r.Error.Code != "rate_limited" || wait < 1 || wait > 10 {
		t.Errorf("over the limit: got %d %+v Retry-After %q, want 429 with a wait of up to 10s", resp.StatusCode, r.Error, resp.Header.Get("Retry-After"))
	}
	if resp := do(t, "POST", svc.url+"/api/bob/chat", bob, `{"message":{"content":"hi"}}`, nil); resp.StatusCode != 200 {
		t.Errorf("another user: got %d, want 200", resp.StatusCode)
	}
	if n := len(svc.model.Requests()); n != 3 {
		t.Errorf("model requests: got %d, want 3 (the refused one never reached it)", n)
	}
}

func TestConcurrentTurnCap(t *testing.T) {
	arrived := make(chan struct{}, 1)
	svc := newServiceFull(t, store.NewMemory(), nil, func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
		if n == 0 {
			arrived <- struct{}{}
			return llmtest.Reply{Delay: 500 * time.Millisecond, Text: "slow"}
		}
		return llmtest.Reply{Text: "fast"}
	}, nil, &api.Options{Limits: api.Limits{MaxConcurrentTurns: 1}})
	alice := token(t, "alice")
	done := make(chan int, 1)
	go func() {
		done <- do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"one"}}`, nil).StatusCode
	}()
	<-arrived
	var r chatReply
	resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"two"}}`, &r)
	if resp.StatusCode != http.StatusTooManyRequests || r.Error.Code != "too_many_turns" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a second turn while one runs: got %d %+v", resp.StatusCode, r.Error)
	}
	if code := <-done; code != 200 {
		t.Fatalf("the first turn: got %d", code)
	}
	if resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"three"}}`, nil); resp.StatusCode != 200 {
		t.Errorf("after the first finished: got %d, want 200", resp.StatusCode)
	}
}
