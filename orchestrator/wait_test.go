package orchestrator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// TestTurnWaitIsBounded: a message to a conversation whose turn runs waits
// for it TurnWait at most, here (the in-process lock) and on another
// instance (the store's lease), then is refused with turn_running and a
// time to retry after, storing nothing.
func TestTurnWaitIsBounded(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			asked := make(chan struct{}, 1)
			release := make(chan struct{})
			respond := func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
				if req.Messages[len(req.Messages)-1].Content == "block" {
					asked <- struct{}{}
					<-release
				}
				return llmtest.Reply{Text: "ok"}
			}
			const wait = 300 * time.Millisecond
			r := newRig(t, st, respond, &orchestrator.Options{TurnWait: wait})
			t.Cleanup(func() { close(release) }) // before the model server closes
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "hello"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			conv := res.Turn.ConversationID
			ctx, cancel := context.WithCancel(context.Background())
			blocked := make(chan error, 1)
			go func() {
				_, err := r.o.Run(ctx, orchestrator.Request{UserID: "u", ConversationID: conv, Content: "block"}, nil)
				blocked <- err
			}()
			<-asked

			other := orchestrator.New(llm.New(llm.Config{BaseURL: r.model.URL, APIKey: "k", MaxRetries: -1}, nil), r.reg, st,
				&orchestrator.Options{TurnWait: wait})
			for _, o := range []struct {
				name string
				o    *orchestrator.Orchestrator
			}{{"this instance", r.o}, {"another instance", other}} {
				start := time.Now()
				errc := make(chan error, 1)
				go func() {
					_, err := o.o.Run(context.Background(), orchestrator.Request{UserID: "u", ConversationID: conv, Content: "waits"}, nil)
					errc <- err
				}()
				select {
				case err := <-errc:
					took := time.Since(start)
					t.Logf("%s: refused after %s", o.name, took.Round(time.Millisecond))
					if !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != "turn_running" || switchboard.RetryAfter(err) < time.Second {
						t.Errorf("%s: got %v (retry after %s), want turn_running with a time to retry after", o.name, err, switchboard.RetryAfter(err))
					}
					if took < wait {
						t.Errorf("%s: refused after %s, before the wait of %s", o.name, took, wait)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("%s: the message still waits after 30 s for a turn that runs on", o.name)
				}
			}
			if msgs, err := st.ListMessages(context.Background(), "u", conv); err != nil || len(msgs) != 3 {
				t.Errorf("messages: got %d, %v, want 3 (the refused ones not stored)", len(msgs), err)
			}
			cancel()
			if err := <-blocked; switchboard.ErrorCode(err) != "turn_cancelled" {
				t.Errorf("the blocked turn: got %v, want turn_cancelled", err)
			}
		})
	}
}
