package orchestrator_test

import (
	"context"
	"testing"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// turnRecorder is an Observer that keeps the turns and calls it is told
// of.
type turnRecorder struct {
	callRecorder
	turns []switchboard.Turn
}

func (r *turnRecorder) TurnEnded(t switchboard.Turn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.turns = append(r.turns, t)
}

// TestRecoverAfterARestart: an orchestrator over a store of the same
// instance, started again while a turn of its earlier life ran a tool,
// fails that turn and the call as it recovers, and tells the observer; a
// cancel after that finds nothing running.
func TestRecoverAfterARestart(t *testing.T) {
	url := storetest.PostgresURL(t)
	openAs := func() *store.Postgres {
		pg, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true, Instance: "host-a"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Close)
		return pg
	}
	before := openAs()
	r := newRig(t, before, llmtest.Sequence(calls(call("s", "lab__sleep", `{"ms":30000}`)), llmtest.Reply{Text: "never"}), nil)
	ev := &recorder{started: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_, _ = r.o.Run(ctx, orchestrator.Request{UserID: "u", Content: "go"}, ev)
	}()
	<-ev.started
	<-r.lab.sleeping

	rec := &turnRecorder{}
	after := orchestrator.New(llm.New(llm.Config{BaseURL: r.model.URL, APIKey: "k", MaxRetries: -1}, nil), r.reg, openAs(),
		&orchestrator.Options{Observer: rec})
	if err := after.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	if len(rec.turns) != 1 || rec.turns[0].ID != ev.turn.ID || rec.turns[0].Status != switchboard.TurnFailed ||
		len(rec.calls) != 1 || rec.calls[0].Status != switchboard.CallFailed || rec.calls[0].ErrorClass != switchboard.ErrorClassInterrupted ||
		rec.calls[0].Server != "lab" || rec.calls[0].Tool != "sleep" {
		t.Errorf("observed: turns %+v, calls %+v; want the running turn failed and its call failed as interrupted", rec.turns, rec.calls)
	}
	rec.mu.Unlock()
	if _, err := after.Cancel(context.Background(), "u", ev.turn.ConversationID); switchboard.ErrorCode(err) != "no_running_turn" {
		t.Errorf("cancel after the recovery: got %v, want no_running_turn", err)
	}
	cancel() // the earlier life ends: it is not there to see it in a real restart
	<-ran
}
