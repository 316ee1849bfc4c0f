package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// startCall begins a turn of user in a new conversation and saves a step
// that starts one call, as the orchestrator does before it runs the tool.
func startCall(t *testing.T, s *store.Postgres, user string) (switchboard.Turn, switchboard.ToolCall) {
	t.Helper()
	ctx := context.Background()
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: user},
		UserMessage: switchboard.Message{Content: "please echo hello " + user}, HistoryLimit: 50}
	if _, err := s.BeginTurn(ctx, &ts); err != nil {
		t.Fatal(err)
	}
	turn := switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 1}
	call := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "call_1", Step: 1, Server: "echo", Tool: "echo",
		ExposedName: "echo__echo", Arguments: []byte(`{"text":"hello"}`), Status: switchboard.CallRunning,
		SessionScope: "user", SessionKey: user, SessionGeneration: 3, Agent: "helper", StartedAt: time.Now()}
	u := switchboard.TurnUpdate{Turn: turn, ToolCalls: []switchboard.ToolCall{call}}
	if err := s.SaveTurn(ctx, &u); err != nil {
		t.Fatal(err)
	}
	return u.Turn, u.ToolCalls[0]
}

// ledgerTableRows counts the rows of tool_calls itself (not the calls open
// on their turns' rows) of a call.
func ledgerTableRows(t *testing.T, conn *pgx.Conn, id string) (n int) {
	t.Helper()
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM tool_calls WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOpenCallsAreTheLedgers checks the write-once ledger (migration
// 00057): a step's running call is written on its turn's row, not as a
// ledger row, and every reader of the ledger sees it there as it would a
// row: its user (not another), admins, the listing filters, the
// statistics. Its end writes its one ledger row; a turn whose instance
// stopped gets its open calls' rows, failed as interrupted; an end that
// does not write a call still open writes it as it was.
func TestOpenCallsAreTheLedgers(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	s := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2, Instance: "one"})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	aliceTurn, alice := startCall(t, s, "alice")
	_, bob := startCall(t, s, "bob")
	for _, c := range []switchboard.ToolCall{alice, bob} {
		if n := ledgerTableRows(t, conn, c.ID); n != 0 {
			t.Errorf("%s's running call: %d rows in tool_calls, want 0 (it is on its turn's row)", c.UserID, n)
		}
	}

	got, err := s.GetToolCall(ctx, "alice", alice.ID)
	if err != nil || got.Status != switchboard.CallRunning || got.UserID != "alice" || got.TurnID != aliceTurn.ID ||
		got.ConversationID != aliceTurn.ConversationID || got.Step != 1 || got.ExposedName != "echo__echo" ||
		string(got.Arguments) != `{"text":"hello"}` || got.SessionKey != "alice" || got.SessionGeneration != 3 ||
		got.Agent != "helper" || !got.StartedAt.Equal(alice.StartedAt) {
		t.Errorf("GetToolCall(alice, her running call): got %+v, %v; want it running as started %+v", got, err, alice)
	}
	if _, err := s.GetToolCall(ctx, "bob", alice.ID); err == nil {
		t.Errorf("GetToolCall(bob, alice's running call): got it, want not found")
	}
	if got, err := s.AdminToolCall(ctx, bob.ID); err != nil || got.UserID != "bob" || got.Status != switchboard.CallRunning {
		t.Errorf("AdminToolCall(bob's running call): got %+v, %v", got, err)
	}
	for _, c := range []struct {
		f    switchboard.ToolCallFilter
		want []string
	}{
		{switchboard.ToolCallFilter{}, []string{bob.ID, alice.ID}},
		{switchboard.ToolCallFilter{UserID: "alice"}, []string{alice.ID}},
		{switchboard.ToolCallFilter{UserID: "bob", Status: switchboard.CallRunning}, []string{bob.ID}},
		{switchboard.ToolCallFilter{UserID: "bob", Status: switchboard.CallSucceeded}, nil},
		{switchboard.ToolCallFilter{TurnID: aliceTurn.ID, Server: "echo", Tool: "echo"}, []string{alice.ID}},
		{switchboard.ToolCallFilter{ConversationID: aliceTurn.ConversationID, Since: alice.StartedAt}, []string{alice.ID}},
		{switchboard.ToolCallFilter{Until: alice.StartedAt}, nil},
	} {
		calls, _, err := s.ListToolCalls(ctx, c.f)
		var ids []string
		for _, call := range calls {
			ids = append(ids, call.ID)
		}
		if err != nil || len(ids) != len(c.want) || len(ids) > 0 && (ids[0] != c.want[0] || ids[len(ids)-1] != c.want[len(c.want)-1]) {
			t.Errorf("ListToolCalls(%+v): got %v, %v; want %v", c.f, ids, err, c.want)
		}
	}
	// A page of one, then the next from its cursor.
	page, cursor, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != bob.ID || cursor == "" {
		t.Fatalf("ListToolCalls(limit 1): got %d calls, cursor %q, %v", len(page), cursor, err)
	}
	if next, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{Limit: 1, After: cursor}); err != nil || len(next) != 1 || next[0].ID != alice.ID {
		t.Errorf("ListToolCalls(after bob's): got %+v, %v; want alice's", next, err)
	}
	stats, err := s.ToolCallStats(ctx, switchboard.ToolCallFilter{UserID: "alice"}, store.GroupByServer)
	if err != nil || len(stats) != 1 || stats[0].Count != 1 || stats[0].Errors != 0 {
		t.Errorf("ToolCallStats(alice): got %+v, %v; want one running call", stats, err)
	}

	// Each call ends: its one ledger row, as it started (the end's record
	// of the start is ignored, as an update of the row would). Then a turn
	// ends without writing its call (a turn that forgot one): its end
	// writes it as it was, running. Each from what the store knows of its
	// turns' open calls, then from the turn's row, as when it lost track.
	aliceEnded := false
	for _, lost := range []bool{false, true} {
		turn, started := aliceTurn, alice
		if lost {
			turn, started = startCall(t, s, "alice")
			store.ForgetOpenCalls(s)
		}
		done := started
		done.Status, done.Result, done.FinishedAt, done.Duration = switchboard.CallSucceeded, "hello", time.Now(), time.Millisecond
		done.Step, done.Arguments, done.StartedAt, done.Server = 7, []byte(`{}`), time.Time{}, "other"
		end := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: turn.ID, Status: switchboard.TurnCompleted, Steps: 2,
			FinishedAt: time.Now()}, ToolCalls: []switchboard.ToolCall{done}}
		if err := s.SaveTurn(ctx, &end); err != nil {
			t.Fatal(err)
		}
		if n := ledgerTableRows(t, conn, started.ID); n != 1 {
			t.Errorf("lost %v: alice's finished call: %d rows in tool_calls, want 1", lost, n)
		}
		got, err = s.GetToolCall(ctx, "alice", started.ID)
		if err != nil || got.Status != switchboard.CallSucceeded || got.Result != "hello" || got.Step != 1 || got.Server != "echo" ||
			string(got.Arguments) != `{"text":"hello"}` || !got.StartedAt.Equal(started.StartedAt) || !end.ToolCalls[0].StartedAt.Equal(started.StartedAt) {
			t.Errorf("lost %v: GetToolCall(alice, her finished call): got %+v, %v; want it succeeded, as it started", lost, got, err)
		}
		if !aliceEnded {
			aliceEnded = true
			if calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{UserID: "alice"}); err != nil || len(calls) != 1 {
				t.Errorf("ListToolCalls(alice): got %d calls, %v; want her one", len(calls), err)
			}
			// Her finished call and a running one: the statistics count
			// both, the finished one's outcome theirs.
			again, _ := startCall(t, s, "alice")
			stats, err := s.ToolCallStats(ctx, switchboard.ToolCallFilter{UserID: "alice"}, store.GroupByTool)
			if err != nil || len(stats) != 1 || stats[0].Count != 2 || stats[0].P50 != time.Millisecond || stats[0].ErrorRate != 0 {
				t.Errorf("ToolCallStats(alice, one call finished, one running): got %+v, %v; want 2 calls, p50 1ms", stats, err)
			}
			if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: again.ID, Status: switchboard.TurnCancelled,
				Steps: 1, FinishedAt: time.Now()}}); err != nil {
				t.Fatal(err)
			}
		}

		carolTurn, carol := startCall(t, s, "carol")
		if lost {
			store.ForgetOpenCalls(s)
		}
		forgot := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: carolTurn.ID, Status: switchboard.TurnFailed, Steps: 1,
			FinishedAt: time.Now()}}
		if err := s.SaveTurn(ctx, &forgot); err != nil {
			t.Fatal(err)
		}
		if n := ledgerTableRows(t, conn, carol.ID); n != 1 {
			t.Errorf("lost %v: the call carol's end did not write: %d rows in tool_calls, want 1", lost, n)
		}
		if got, err := s.GetToolCall(ctx, "carol", carol.ID); err != nil || got.Status != switchboard.CallRunning ||
			!got.StartedAt.Equal(carol.StartedAt) || got.SessionKey != "carol" {
			t.Errorf("lost %v: GetToolCall(carol, the call her end did not write): got %+v, %v; want it as it started", lost, got, err)
		}
	}

	// Dave's step fails (its message's id is taken): its call was not
	// written and its tool does not run, so his turn's end writes no row
	// of it.
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "dave"},
		UserMessage: switchboard.Message{Content: "please echo hello dave"}, HistoryLimit: 50}
	if _, err := s.BeginTurn(ctx, &ts); err != nil {
		t.Fatal(err)
	}
	never := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "call_1", Server: "echo", Tool: "echo",
		Status: switchboard.CallRunning, StartedAt: time.Now()}
	taken := switchboard.Message{ID: ts.UserMessage.ID, Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
		Content: "", ToolCalls: []switchboard.RequestedCall{{ID: "call_1", Name: "echo", Arguments: "{}"}}, Timestamp: time.Now()}
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 1},
		Messages: []switchboard.Message{taken}, ToolCalls: []switchboard.ToolCall{never}}); err == nil {
		t.Fatal("dave's step with a message id taken: saved, want an error")
	}
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnFailed, Steps: 1,
		FinishedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if n := ledgerTableRows(t, conn, never.ID); n != 0 {
		t.Errorf("the call of dave's failed step: %d rows in tool_calls, want 0 (it never started)", n)
	}

	// Bob's instance stops with his call open; the next boot fails it.
	s.Close()
	next := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2, Instance: "one"})
	interrupted, err := next.RecoverTurns(ctx)
	if err != nil || len(interrupted) != 1 || len(interrupted[0].Calls) != 1 || interrupted[0].Calls[0].ID != bob.ID {
		t.Fatalf("RecoverTurns: got %+v, %v; want bob's turn with his call", interrupted, err)
	}
	if c := interrupted[0].Calls[0]; c.Status != switchboard.CallFailed || c.ErrorClass != switchboard.ErrorClassInterrupted {
		t.Errorf("bob's interrupted call as reported: %+v", c)
	}
	if n := ledgerTableRows(t, conn, bob.ID); n != 1 {
		t.Errorf("bob's interrupted call: %d rows in tool_calls, want 1", n)
	}
	got, err = next.GetToolCall(ctx, "bob", bob.ID)
	if err != nil || got.Status != switchboard.CallFailed || got.ErrorClass != switchboard.ErrorClassInterrupted ||
		got.SessionKey != "bob" || !got.StartedAt.Equal(bob.StartedAt) || got.FinishedAt.IsZero() {
		t.Errorf("GetToolCall(bob, his interrupted call): got %+v, %v", got, err)
	}
	var open int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM turns WHERE open_calls IS NOT NULL`).Scan(&open); err != nil || open != 0 {
		t.Errorf("turns with open calls left: %d, %v; want 0", open, err)
	}
}
