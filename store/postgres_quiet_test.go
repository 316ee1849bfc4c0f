package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestQuietStartIsTaken checks, from the store's batch spans, which batches
// a plain start in an existing conversation sends: the quiet one alone
// (four statements: async commit, the lock, the guarded turn, the history)
// when nothing awaits, and the quiet one then the full one (six: the bump,
// the orphans' check, the turn, the cancel of what waits, ...) when a call
// awaits an approval, which the full batch cancels. Alice's conversation is
// quiet, bob's has a call awaiting; each user's start sees only their own.
func TestQuietStartIsTaken(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	p := openPostgres(t, storetest.PostgresURL(t), &store.Options{SkipMigrate: true, MaxConns: 2, Tracer: tp.Tracer("store")})
	ctx := t.Context()

	quiet, _ := fillTurn(t, p, "alice", "", 0)
	waiting, _ := fillTurn(t, p, "bob", "", 0)
	ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: waiting}, Turn: switchboard.Turn{UserID: "bob"},
		UserMessage: switchboard.Message{Content: "delete it"}, HistoryLimit: 50}
	if _, err := p.BeginTurn(ctx, &ts); err != nil {
		t.Fatal(err)
	}
	call := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "call_2", Server: "files", Tool: "delete", ExposedName: "files__delete",
		Status: switchboard.CallAwaitingApproval, StartedAt: time.Now()}
	if err := p.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnAwaitingApproval, Steps: 1},
		ToolCalls: []switchboard.ToolCall{call}}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		user, conversation string
		batches            []int64 // the sizes of the batches BeginTurn sends
		cancelled          int
	}{
		{"alice", quiet, []int64{4}, 0},
		{"bob", waiting, []int64{4, 6}, 1},
		{"alice", quiet, []int64{4}, 0},
	} {
		// Each start ends its turn, so that the next one is quiet again.
		exp.Reset()
		ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: c.conversation}, Turn: switchboard.Turn{UserID: c.user},
			UserMessage: switchboard.Message{Content: "and again"}, HistoryLimit: 50}
		if _, err := p.BeginTurn(ctx, &ts); err != nil {
			t.Fatalf("%s: BeginTurn: %v", c.user, err)
		}
		var sizes []int64
		for _, s := range exp.GetSpans() {
			if s.Name != "db.batch" {
				continue
			}
			for _, a := range s.Attributes {
				if a.Key == "db.batch.size" {
					sizes = append(sizes, a.Value.AsInt64())
				}
			}
		}
		if !slices.Equal(sizes, c.batches) || len(ts.Cancelled) != c.cancelled {
			t.Errorf("%s's start: batches of %v statements, %d calls cancelled; want %v, %d", c.user, sizes, len(ts.Cancelled), c.batches, c.cancelled)
		}
		if err := p.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted, Steps: 1,
			FinishedAt: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
}
