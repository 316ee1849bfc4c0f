package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// tableWrites reads a table's inserts, updates and how many of the updates
// were HOT, from the statistics Postgres flushes asynchronously: it polls
// until inserts and updates together reach want (the store's connections,
// closed, have flushed theirs as they ended) or a minute passed.
func tableWrites(t *testing.T, conn *pgx.Conn, table string, want int64) (ins, upd, hot int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := conn.Exec(t.Context(), `SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(t.Context(), `SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1`, table).
			Scan(&ins, &upd, &hot); err != nil {
			t.Fatal(err)
		}
		if ins+upd >= want || time.Now().After(deadline) {
			return ins, upd, hot
		}
		time.Sleep(50 * time.Millisecond) // the stats of ended backends are flushed within a second
	}
}

// TestStepUpdateIsHOT runs turns of two users, each with a tool call
// started and then finished, and checks from pg_stat_user_tables that every
// step's update of its running turn was heap-only (HOT): no index of turns
// holds a column a step changes (open_calls among them: the step writes its
// running calls there, migration 00057), and its pages keep room (migration
// 00050). An index added on such a column makes this fail. The ledger is
// written once a call: its row is inserted when the call ends, never
// updated (the finishing update of a row was not HOT: the ledger's
// indexes hold its status, see BENCHMARKS.md, fourth round).
func TestStepUpdateIsHOT(t *testing.T) {
	url := storetest.PostgresURL(t)
	p, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	const turns = 200
	for i := range turns {
		user := []string{"alice", "bob"}[i%2]
		fillTurn(t, p, user, "", 0)
	}
	p.Close() // its backends flush their statistics as they end

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if ins, upd, _ := tableWrites(t, conn, "tool_calls", turns); ins != turns || upd != 0 {
		t.Errorf("tool_calls: %d inserts, %d updates; want %d inserts (one a call, at its end), no update", ins, upd, turns)
	}
	// A turn is updated at its step (still running: HOT) and at its end
	// (its status leaves the partial indexes of running turns: not HOT).
	_, upd, hot := tableWrites(t, conn, "turns", 3*turns)
	if upd != 2*turns || hot < turns {
		t.Errorf("turns: %d updates, %d of them HOT; want %d, at least %d HOT", upd, hot, 2*turns, turns)
	}
	var fillfactor string
	if err := conn.QueryRow(t.Context(), `SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'turns'`).Scan(&fillfactor); err != nil || fillfactor != "fillfactor=80" {
		t.Errorf("turns' options: %q, %v; want fillfactor=80", fillfactor, err)
	}
}

// TestSaveTurnLocksConversationFirst checks the plans of SaveTurn's
// statement (the conversation's lock or bump, the turn's update, its
// messages and calls, in one statement): the update of the turn must run
// under a one-time filter, the conversation's CTE, above the scan of the
// turn, which Postgres evaluates before it reads (and locks) the turn's
// row. Every writer locks a conversation before its turns: the other order
// could deadlock with a turn's start or a conversation's delete.
func TestSaveTurnLocksConversationFirst(t *testing.T) {
	url := storetest.PostgresURL(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	id := "01a2124b-88a2-7c65-8f5d-5093e5df38e5"
	for _, ended := range []bool{false, true} {
		args := []any{id, "running", 1, 0, 0, 0.0, 0.0, 0.0, 0.0, "", nil, store.LeaseDuration, "i", id, "", 0}
		if ended {
			args = append(args, time.Now())
		}
		args = append(args, []string{}, []string{}, []string{}, []string{}, []time.Time{}, []*string{}, []*string{})
		args = append(args, []string{id}) // the save's calls
		if !ended {
			args = append(args, "{}") // their open_calls entries: none running
		}
		args = append(args, id, "call", 1, "echo", "echo", "echo__echo", nil, "", nil, "running", "", "", 0.0, 0, false,
			time.Now(), nil, "", "", 0, "", "", nil, "", nil)
		raw, err := explainJSON(t, conn, "EXPLAIN (FORMAT JSON) "+store.SaveTurnStatement(ended, 1), args...)
		if err != nil {
			t.Fatalf("ended %v: %v", ended, err)
		}
		// A ModifyTable on turns, over a Result whose one-time filter is
		// the CTE's, over the scan of turns.
		var updates, gated bool
		raw.Plan.walk(func(n planNode) {
			if n.NodeType != "ModifyTable" || n.RelationName != "turns" {
				return
			}
			updates = true
			n.walk(func(r planNode) {
				if r.NodeType == "Result" && r.OneTimeFilter != "" {
					for _, c := range r.Plans {
						gated = gated || c.RelationName == "turns"
					}
				}
			})
		})
		if !updates || !gated {
			t.Errorf("ended %v: the turn's row is read before the conversation is locked:\n%s", ended, raw.text)
		}
	}
}

// TestDomainsCheckValues checks that the columns whose values a turn writes
// at every step are checked by their domains (migration 00055): a value
// outside a domain is refused with a check violation, and the tables a turn
// writes have no CHECK constraint of their own, which Postgres would parse
// and plan again for every statement that writes the table.
func TestDomainsCheckValues(t *testing.T) {
	url := storetest.PostgresURL(t)
	p := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2})
	conversation, call := fillTurn(t, p, "alice", "", 0)
	fillTurn(t, p, "bob", "", 0)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, c := range []struct{ name, sql string }{
		{"turn status", `UPDATE turns SET status = 'bogus' WHERE conversation_id = $1`},
		{"call status", `UPDATE tool_calls SET status = 'bogus' WHERE conversation_id = $1`},
		{"message role", `UPDATE messages SET role = 'bogus' WHERE conversation_id = $1`},
		{"message type", `UPDATE messages SET message_type = 'bogus' WHERE conversation_id = $1`},
	} {
		_, err := conn.Exec(t.Context(), c.sql, conversation)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s outside its domain: %v, want a check violation (23514)", c.name, err)
		}
	}
	var status string
	if err := conn.QueryRow(t.Context(), `SELECT status FROM tool_calls WHERE id = $1`, call).Scan(&status); err != nil || status != "succeeded" {
		t.Errorf("the call's status: %q, %v; want succeeded, unchanged", status, err)
	}
	rows, err := conn.Query(t.Context(), `SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint
WHERE contype = 'c' AND conrelid IN ('turns'::regclass, 'tool_calls'::regclass, 'messages'::regclass, 'conversations'::regclass)`)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) > 0 {
		t.Errorf("CHECK constraints on the tables a turn writes: %v; use a domain (see migration 00055)", checks)
	}
}
