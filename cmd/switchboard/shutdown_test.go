package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

func chat(base, token, content string) (int, string, error) {
	req, _ := http.NewRequest("POST", base+"/api/dev/chat", strings.NewReader(`{"message":{"content":"`+content+`"}}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestGracefulShutdown: a signal lets running turns finish within the grace
// period; past it they are cancelled and stored as such; serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	tests := []struct {
		name       string
		grace      string
		delay      time.Duration
		wantStatus int
		wantTurn   switchboard.TurnStatus
	}{
		{"turn finishes within the grace", "10s", 500 * time.Millisecond, 200, switchboard.TurnCompleted},
		{"turn cancelled after the grace", "200ms", 30 * time.Second, 409, switchboard.TurnCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := storetest.PostgresURL(t)
			arrived := make(chan struct{}, 1)
			model := llmtest.NewServer(func(int, *openai.ChatCompletionRequest) llmtest.Reply {
				arrived <- struct{}{}
				return llmtest.Reply{Delay: tt.delay, Text: "done"}
			})
			defer model.Close()
			s := startServe(t, fmt.Sprintf("listen: 127.0.0.1:0\nshutdown_grace: %s\ndatabase_url: %q\nllm: {base_url: %q}\nmcpServers: {}\n",
				tt.grace, url, model.URL), nil)
			type reply struct {
				status int
				body   string
			}
			got := make(chan reply, 1)
			go func() {
				code, body, err := chat(s.base, s.token, "slow")
				if err != nil {
					t.Error(err)
				}
				got <- reply{code, body}
			}()
			<-arrived
			start := time.Now()
			s.shutdown(t, 30*time.Second)
			t.Logf("shutdown took %s", time.Since(start).Round(time.Millisecond))
			r := <-got
			if r.status != tt.wantStatus {
				t.Errorf("the running chat: got %d %s, want %d", r.status, r.body, tt.wantStatus)
			}
			pg, err := store.OpenPostgres(context.Background(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pg.Close()
			convs, err := pg.ListConversations(context.Background(), "dev", 10)
			if err != nil || len(convs) != 1 {
				t.Fatalf("conversations: %v %v", convs, err)
			}
			turns, _ := pg.ListTurns(context.Background(), "dev", convs[0].ID)
			if len(turns) != 1 || turns[0].Status != tt.wantTurn || turns[0].FinishedAt.IsZero() {
				t.Errorf("stored turn: got %+v, want %s", turns, tt.wantTurn)
			}
		})
	}
}
