package llm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

var history = []switchboard.Message{
	{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "add milk"},
	{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, ToolCalls: []switchboard.RequestedCall{
		{ID: "call_1", Name: "tasks__add_task", Arguments: `{"title":"milk"}`}}},
	{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "call_1", ToolName: "tasks__add_task", Content: "added 1"},
	{Role: switchboard.RoleAssistant, Type: switchboard.MessageError, Content: "a note of ours"},
	{Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Content: "Done."},
	{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "thanks"},
}

var tools = []switchboard.ToolDefinition{{Name: "tasks__add_task", Description: "Add a task",
	Parameters: []byte(`{"type":"object","properties":{"title":{"type":"string"}}}`)}}

func TestCompleteReplaysHistoryAndReadsReplies(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[streamed], func(t *testing.T) {
			srv := llmtest.NewServer(llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "c1", Name: "tasks__add_task", Arguments: `{"title":"eggs"}`},
					{ID: "c2", Name: "tasks__list_tasks", Arguments: `{}`}}, PromptTokens: 11, CompletionTokens: 3},
				llmtest.Reply{Text: "You have two tasks now.", PromptTokens: 20, CompletionTokens: 6},
			))
			defer srv.Close()
			c := llm.New(llm.Config{BaseURL: srv.URL, APIKey: "sk-test", Model: "m1"}, nil)
			var pieces []string
			var onText func(string)
			if streamed {
				onText = func(s string) { pieces = append(pieces, s) }
			}
			got, err := c.Complete(context.Background(), switchboard.ModelRequest{Messages: history, Tools: tools}, onText)
			if err != nil {
				t.Fatal(err)
			}
			want := switchboard.ModelReply{FinishReason: "tool_calls", PromptTokens: 11, CompletionTokens: 3, ToolCalls: []switchboard.RequestedCall{
				{ID: "c1", Name: "tasks__add_task", Arguments: `{"title":"eggs"}`}, {ID: "c2", Name: "tasks__list_tasks", Arguments: `{}`}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tool call reply (-want +got):\n%s", diff)
			}
			got, err = c.Complete(context.Background(), switchboard.ModelRequest{Messages: history}, onText)
			if err != nil {
				t.Fatal(err)
			}
			if got.Content != "You have two tasks now." || got.PromptTokens != 20 || got.CompletionTokens != 6 {
				t.Errorf("text reply: got %+v", got)
			}
			if streamed && len(pieces) != 5 {
				t.Errorf("streamed pieces: got %q, want 5 words", pieces)
			}

			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("requests: got %d, want 2", len(reqs))
			}
			if reqs[0].Model != "m1" || reqs[0].Stream != streamed {
				t.Errorf("request: got model %q stream %v", reqs[0].Model, reqs[0].Stream)
			}
			wantMsgs := []openai.ChatCompletionMessage{
				{Role: "user", Content: "add milk"},
				{Role: "assistant", ToolCalls: []openai.ToolCall{{ID: "call_1", Type: "function", Function: openai.FunctionCall{Name: "tasks__add_task", Arguments: `{"title":"milk"}`}}}},
				{Role: "tool", ToolCallID: "call_1", Content: "added 1"},
				{Role: "assistant", Content: "Done."},
				{Role: "user", Content: "thanks"},
			}
			if diff := cmp.Diff(wantMsgs, reqs[0].Messages); diff != "" {
				t.Errorf("messages the model received (-want +got):\n%s", diff)
			}
			if len(reqs[0].Tools) != 1 || reqs[0].Tools[0].Function.Name != "tasks__add_task" {
				t.Errorf("tools the model received: got %+v", reqs[0].Tools)
			}
			if h := srv.Headers()[0].Get("Authorization"); h != "Bearer sk-test" {
				t.Errorf("authorization header: got %q", h)
			}
		})
	}
}

func TestCompleteErrors(t *testing.T) {
	tests := []struct {
		name     string
		replies  []llmtest.Reply
		timeout  time.Duration
		wantKind error
		wantCode string
		wantReqs int
	}{
		{"429 retried then answered", []llmtest.Reply{{Status: 429, RetryAfter: "0"}, {Status: 503, RetryAfter: "0"}, {Text: "ok"}}, 0, nil, "", 3},
		{"429 after two retries", []llmtest.Reply{{Status: 429, RetryAfter: "0"}, {Status: 429, RetryAfter: "0"}, {Status: 429, RetryAfter: "0"}, {Text: "never"}}, 0, switchboard.ErrUpstream, "model_rate_limited", 3},
		{"retry-after too long is not waited for", []llmtest.Reply{{Status: 429, RetryAfter: "3600"}, {Text: "never"}}, 0, switchboard.ErrUpstream, "model_rate_limited", 1},
		{"401 not retried", []llmtest.Reply{{Status: 401}, {Text: "never"}}, 0, switchboard.ErrUpstream, "model_auth_failed", 1},
		{"400 carries the server's reason", []llmtest.Reply{{Status: 400, Text: "context too long"}}, 0, switchboard.ErrUpstream, "model_rejected_request", 1},
		{"500 three times", []llmtest.Reply{{Status: 500, RetryAfter: "0"}, {Status: 500, RetryAfter: "0"}, {Status: 500, RetryAfter: "0"}}, 0, switchboard.ErrUpstream, "model_unavailable", 3},
		{"timeout", []llmtest.Reply{{Delay: 2 * time.Second, Text: "late"}}, 100 * time.Millisecond, switchboard.ErrUpstreamTimeout, "model_timeout", 1},
	}
	for _, tt := range tests {
		for _, streamed := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: "/json", true: "/stream"}[streamed], func(t *testing.T) {
				srv := llmtest.NewServer(llmtest.Sequence(tt.replies...))
				defer srv.Close()
				c := llm.New(llm.Config{BaseURL: srv.URL, APIKey: "k", Timeout: tt.timeout}, nil)
				var onText func(string)
				if streamed {
					onText = func(string) {}
				}
				_, err := c.Complete(context.Background(), switchboard.ModelRequest{Messages: history}, onText)
				if tt.wantKind == nil {
					if err != nil {
						t.Fatalf("got error %v, want none", err)
					}
				} else if !errors.Is(err, tt.wantKind) || switchboard.ErrorCode(err) != tt.wantCode {
					t.Fatalf("got error %v (code %q), want kind %v code %q", err, switchboard.ErrorCode(err), tt.wantKind, tt.wantCode)
				}
				if n := len(srv.Requests()); n != tt.wantReqs {
					t.Errorf("requests: got %d, want %d", n, tt.wantReqs)
				}
			})
		}
	}
}

func TestCompleteCancelled(t *testing.T) {
	arrived := make(chan struct{})
	srv := llmtest.NewServer(func(int, *openai.ChatCompletionRequest) llmtest.Reply {
		close(arrived)
		return llmtest.Reply{Delay: 5 * time.Second, Text: "late"}
	})
	defer srv.Close()
	c := llm.New(llm.Config{BaseURL: srv.URL, APIKey: "k"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Complete(ctx, switchboard.ModelRequest{Messages: history}, nil)
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestNotConfigured(t *testing.T) {
	tests := []struct {
		cfg  llm.Config
		want bool
	}{
		{llm.Config{}, false},
		{llm.Config{BaseURL: "https://api.openai.com/v1"}, false},
		{llm.Config{APIKey: "sk"}, true},
		{llm.Config{BaseURL: "http://127.0.0.1:11434/v1"}, true},
		{llm.Config{BaseURL: "not a url"}, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.Configured(); got != tt.want {
			t.Errorf("Configured(%+v): got %v, want %v", tt.cfg, got, tt.want)
		}
	}
	c := llm.New(llm.Config{}, nil)
	_, err := c.Complete(context.Background(), switchboard.ModelRequest{}, nil)
	if !errors.Is(err, switchboard.ErrUnavailable) || switchboard.ErrorCode(err) != "llm_not_configured" {
		t.Fatalf("got %v, want llm_not_configured", err)
	}
	if !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("message does not say how to configure: %q", err)
	}
}

// Concurrent turns keep their connections to the model server: a second
// wave of calls reuses the first wave's instead of dialling new ones.
func TestConcurrentCallsReuseConnections(t *testing.T) {
	const n = 16
	srv := llmtest.NewServer(func(int, *openai.ChatCompletionRequest) llmtest.Reply {
		return llmtest.Reply{Text: "hi", Delay: 50 * time.Millisecond}
	})
	defer srv.Close()
	c := llm.New(llm.Config{BaseURL: srv.URL, Model: "m"}, nil)
	defer c.CloseIdleConnections()
	for wave := range 2 {
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := c.Complete(context.Background(), switchboard.ModelRequest{Messages: history}, nil)
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("wave %d: %v", wave, err)
			}
		}
	}
	if got := srv.Connections(); got != n {
		t.Errorf("connections: got %d for two waves of %d concurrent calls, want %d", got, n, n)
	}
}
