package orchestrator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
)

// renewals is a memory store that counts each turn's lease renewals and
// answers "cancel requested" to those of one user's turns, as a store does
// when another instance was asked to cancel the turn.
type renewals struct {
	orchestrator.Store
	cancelUser string

	mu      sync.Mutex
	users   map[string]string // turn id -> user
	counts  map[string]int    // user -> renewals of their turns
	renewed map[string]chan struct{}
}

func (r *renewals) BeginTurn(ctx context.Context, s *switchboard.TurnStart) ([]switchboard.Message, error) {
	h, err := r.Store.BeginTurn(ctx, s)
	if err == nil {
		r.mu.Lock()
		r.users[s.Turn.ID] = s.Turn.UserID
		r.mu.Unlock()
	}
	return h, err
}

func (r *renewals) RenewTurn(ctx context.Context, id string) (bool, error) {
	requested, err := r.Store.RenewTurn(ctx, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	user := r.users[id]
	r.counts[user]++
	if r.counts[user] == 2 {
		close(r.renewed[user])
	}
	return requested || user == r.cancelUser, err
}

// TestLeaseRenewedWhileTheTurnRuns: a turn renews its lease while it waits
// on its model, each turn its own; a renewal that says another instance
// asked to cancel the turn cancels that turn and no other.
func TestLeaseRenewedWhileTheTurnRuns(t *testing.T) {
	st := &renewals{Store: store.NewMemory(), cancelUser: "alice", users: map[string]string{}, counts: map[string]int{},
		renewed: map[string]chan struct{}{"alice": make(chan struct{}), "bob": make(chan struct{})}}
	r := newRig(t, st, func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if strings.Contains(req.Messages[len(req.Messages)-1].Content, "alice") {
			// Answered only when the request is cancelled (or never).
			return llmtest.Reply{Text: "too late", Delay: time.Minute}
		}
		select {
		case <-st.renewed["bob"]: // bob's turn renewed twice while the model thought
			return llmtest.Reply{Text: "renewed"}
		case <-time.After(30 * time.Second):
			return llmtest.Reply{Text: "not renewed"}
		}
	}, &orchestrator.Options{LeaseRenewal: time.Millisecond})

	results, errs := map[string]*orchestrator.Result{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, user := range []string{"alice", "bob"} {
		wg.Go(func() {
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: user, Content: "hello from " + user}, nil)
			mu.Lock()
			results[user], errs[user] = res, err
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errs["bob"]; err != nil {
		t.Fatalf("bob's turn: got error %v, want none", err)
	}
	if got := results["bob"]; got.Turn.Status != switchboard.TurnCompleted || got.Message.Content != "renewed" {
		t.Errorf("bob's turn: got %s with %q, want completed with %q", got.Turn.Status, got.Message.Content, "renewed")
	}
	if err := errs["alice"]; !errors.Is(err, context.Canceled) {
		t.Errorf("alice's turn: got error %v, want it cancelled (her renewal said another instance asked so)", err)
	}
	st.mu.Lock()
	var aliceTurn string
	for id, user := range st.users {
		if user == "alice" {
			aliceTurn = id
		}
	}
	st.mu.Unlock()
	turn, err := st.GetTurn(context.Background(), "alice", aliceTurn)
	if err != nil || turn.Status != switchboard.TurnCancelled {
		t.Errorf("alice's stored turn: got %s, %v; want cancelled", turn.Status, err)
	}
}
