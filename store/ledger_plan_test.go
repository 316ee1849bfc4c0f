package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// The admin API's queries must stay fast at millions of ledger rows: every
// one is served by an index. TestLedgerQueryPlans checks each plan on a
// small ledger with realistic statistics; BenchmarkLedgerQueries times them
// on a million rows and prints each plan:
//
//	go test ./store -run '^$' -bench LedgerQueries -benchtime 20x
//
// (SWITCHBOARD_BENCH_ROWS sets another size.)

// ledgerTools are the (server, tool) pairs of the seeded ledger; the last
// is rare (1 call in 1000), to check selective filters.
var ledgerTools = [][2]string{
	{"tasks", "add_task"}, {"tasks", "list_tasks"}, {"tasks", "complete_task"}, {"tasks", "delete_task"},
	{"tasks", "update_task"}, {"files", "read_file"}, {"files", "write_file"}, {"files", "list_dir"},
	{"web", "search"}, {"web", "fetch"}, {"github", "create_issue"}, {"github", "list_prs"},
	{"github", "get_file"}, {"db", "query"}, {"slack", "post_message"}, {"audit", "export"},
}

// seedLedger fills an empty database with n tool calls (4 per turn, 5 turns
// per conversation, one user per 500 calls, two messages per turn) over the 30 days before end, in
// one statement per table, and analyzes it. Statuses are mostly succeeded;
// a few are failed, timed out, cancelled, denied, running or awaiting
// approval.
func seedLedger(tb testing.TB, ctx context.Context, conn *pgx.Conn, n int, end time.Time) {
	tb.Helper()
	turns := max(n/4, 1)
	convs := max(turns/5, 1)
	users := max(n/500, 10)
	var servers, tools []string
	for _, st := range ledgerTools {
		servers, tools = append(servers, st[0]), append(tools, st[1])
	}
	span := 30 * 24 * time.Hour
	start := end.Add(-span)
	step := float64(span.Microseconds()) / float64(n) // microseconds between calls
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO conversations (id, user_id, title, status, created_at, updated_at)
SELECT md5('c' || c)::uuid, 'user_' || lpad((c % $2)::text, 4, '0'), 'conversation ' || c, 'active',
    $3::timestamptz + make_interval(secs => c * 20 * $4::float8 / 1e6), $3::timestamptz + make_interval(secs => (c + 1) * 20 * $4::float8 / 1e6)
FROM generate_series(0, $1 - 1) c`, []any{convs, users, start, step}},
		{`INSERT INTO turns (id, conversation_id, user_id, status, steps, llm_ms, tools_ms, store_ms, overhead_ms, started_at, finished_at)
SELECT md5('t' || t)::uuid, md5('c' || (t / 5))::uuid, 'user_' || lpad(((t / 5) % $2)::text, 4, '0'), 'completed', 3,
    800 + t % 700, 40 + t % 90, 3, 1, $3::timestamptz + make_interval(secs => t * 4 * $4::float8 / 1e6),
    $3::timestamptz + make_interval(secs => t * 4 * $4::float8 / 1e6 + 2)
FROM generate_series(0, $1 - 1) t`, []any{turns, users, start, step}},
		{`INSERT INTO tool_calls (id, call_id, user_id, conversation_id, turn_id, step, server, tool, exposed_name,
    arguments, result, status, error_class, error, duration_ms, result_size, started_at, finished_at)
SELECT gen_random_uuid(), 'call_' || i, 'user_' || lpad(((i / 20) % $2)::text, 4, '0'),
    md5('c' || (i / 20))::uuid, md5('t' || (i / 4))::uuid, i % 4,
    ($5::text[])[k], ($6::text[])[k], ($5::text[])[k] || '__' || ($6::text[])[k],
    jsonb_build_object('title', 'task number ' || i, 'user_id', 'user_' || lpad(((i / 20) % $2)::text, 4, '0')),
    'Task ' || i || ' done. ' || repeat('Some output of the tool that the model reads. ', 4),
    CASE WHEN s < 900 THEN 'succeeded' WHEN s < 960 THEN 'failed' WHEN s < 980 THEN 'timed_out'
         WHEN s < 990 THEN 'cancelled' WHEN s < 995 THEN 'denied' WHEN s < 998 THEN 'running'
         ELSE 'awaiting_approval' END,
    CASE WHEN s >= 900 AND s < 960 THEN 'tool_error' ELSE '' END,
    CASE WHEN s >= 900 AND s < 960 THEN 'the tool failed' ELSE '' END,
    CASE WHEN s < 995 THEN 0.5 + (h % 1000) * (h % 1000) / 500.0 ELSE 0 END, 200,
    $3::timestamptz + make_interval(secs => i * $4::float8 / 1e6),
    CASE WHEN s < 995 THEN $3::timestamptz + make_interval(secs => i * $4::float8 / 1e6 + 0.2) END
FROM (
    SELECT i, h, h % 1000 AS s,
        -- The last pair is rare (1 call in 1000).
        CASE WHEN h % 1000 = 999 THEN $7::int ELSE 1 + (h / 1000) % ($7::int - 1) END AS k
    FROM (SELECT i, hashint4(i)::bigint & 2147483647 AS h FROM generate_series(0, $1 - 1) i) g
) x`, []any{n, users, start, step, servers, tools, len(ledgerTools)}},
		{`INSERT INTO messages (id, conversation_id, turn_id, role, content, message_type, "timestamp")
SELECT md5('m' || m)::uuid, md5('c' || (m / 10))::uuid, md5('t' || (m / 2))::uuid,
    CASE WHEN m % 2 = 0 THEN 'user' ELSE 'assistant' END, 'message ' || m, 'text',
    $2::timestamptz + make_interval(secs => m * 2 * $3::float8 / 1e6)
FROM generate_series(0, $1 - 1) m`, []any{2 * turns, start, step}},
	}
	// Building the ledger's indexes once, after the rows, is many times
	// faster than updating them row by row; they are the migrations' own.
	rows, err := conn.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'tool_calls' AND indexname <> 'tool_calls_pkey'`)
	if err != nil {
		tb.Fatalf("seed: list indexes: %v", err)
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Def string }])
	if err != nil {
		tb.Fatalf("seed: list indexes: %v", err)
	}
	exec := func(what, sql string, args ...any) {
		tb.Helper()
		began := time.Now()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			tb.Fatalf("seed: %s: %v\n%s", what, err, sql)
		}
		if d := time.Since(began); d > 100*time.Millisecond {
			tb.Logf("seed: %s in %v", what, d.Round(time.Millisecond))
		}
	}
	for _, ix := range indexes {
		exec("drop "+ix.Name, `DROP INDEX `+ix.Name)
	}
	for _, s := range stmts {
		exec(strings.Join(strings.Fields(s.sql)[:3], " "), s.sql, s.args...)
	}
	exec("work_mem", `SET maintenance_work_mem = '256MB'`)
	for _, ix := range indexes {
		exec("create "+ix.Name, ix.Def)
	}
	exec("vacuum", `VACUUM ANALYZE conversations, turns, messages, tool_calls`)
	exec("reset", `RESET maintenance_work_mem`)
}

// ledgerQuery is one query of the admin API.
type ledgerQuery struct {
	name    string
	f       switchboard.ToolCallFilter
	groupBy string // "" lists; else stats
	sql     string // a fixed query instead of f (transcript, turns)
	arg     string
	user    string // whose conversation arg is
	// index must serve the query (one of them, when several could).
	index []string
}

// ledgerQueries are the queries the admin API sends, with values that
// exist in a ledger made by seedLedger.
func ledgerQueries(tb testing.TB, ctx context.Context, p *store.Postgres, end time.Time) []ledgerQuery {
	tb.Helper()
	first, next, err := p.ListToolCalls(ctx, switchboard.ToolCallFilter{UserID: "user_0007", Limit: 50})
	if err != nil || next == "" || len(first) == 0 {
		tb.Fatalf("first page of user_0007: %d rows, next %q, %v", len(first), next, err)
	}
	_, deep, err := p.ListToolCalls(ctx, switchboard.ToolCallFilter{Limit: 500})
	if err != nil || deep == "" {
		tb.Fatalf("first page: next %q, %v", deep, err)
	}
	conv, turn, user := first[0].ConversationID, first[0].TurnID, first[0].UserID
	day, week := end.Add(-24*time.Hour), end.Add(-7*24*time.Hour)
	F := switchboard.ToolCallFilter{}
	// Stats read one of the two indexes that include what they aggregate:
	// a short window ranges over tool_calls_started, a long one streams
	// through tool_calls_server_tool in group order.
	statsIndexes := []string{"tool_calls_started", "tool_calls_server_tool"}
	return []ledgerQuery{
		{name: "list/all", f: F, index: []string{"tool_calls_started"}},
		{name: "list/all/page_2", f: switchboard.ToolCallFilter{After: deep}, index: []string{"tool_calls_started"}},
		{name: "list/user", f: switchboard.ToolCallFilter{UserID: "user_0007"}, index: []string{"tool_calls_user"}},
		{name: "list/user/page_2", f: switchboard.ToolCallFilter{UserID: "user_0007", Limit: 50, After: next}, index: []string{"tool_calls_user"}},
		{name: "list/conversation", f: switchboard.ToolCallFilter{ConversationID: conv}, index: []string{"tool_calls_conversation"}},
		{name: "list/turn", f: switchboard.ToolCallFilter{TurnID: turn}, index: []string{"tool_calls_turn"}},
		// A common value may be found faster by walking the ledger in order
		// and filtering; a rare one needs its index.
		{name: "list/server", f: switchboard.ToolCallFilter{Server: "web"}, index: []string{"tool_calls_server", "tool_calls_server_tool", "tool_calls_started"}},
		{name: "list/server/rare", f: switchboard.ToolCallFilter{Server: "audit"}, index: []string{"tool_calls_server", "tool_calls_server_tool"}},
		{name: "list/tool", f: switchboard.ToolCallFilter{Tool: "search"}, index: []string{"tool_calls_tool", "tool_calls_started"}},
		{name: "list/tool/rare", f: switchboard.ToolCallFilter{Tool: "export"}, index: []string{"tool_calls_tool"}},
		{name: "list/server_and_tool", f: switchboard.ToolCallFilter{Server: "files", Tool: "read_file"}, index: []string{"tool_calls_server_tool"}},
		{name: "list/status", f: switchboard.ToolCallFilter{Status: switchboard.CallFailed}, index: []string{"tool_calls_status"}},
		{name: "list/status/rare", f: switchboard.ToolCallFilter{Status: switchboard.CallAwaitingApproval}, index: []string{"tool_calls_status"}},
		{name: "list/since", f: switchboard.ToolCallFilter{Since: day}, index: []string{"tool_calls_started"}},
		{name: "list/until", f: switchboard.ToolCallFilter{Until: week}, index: []string{"tool_calls_started"}},
		{name: "list/time_range", f: switchboard.ToolCallFilter{Since: week.Add(-24 * time.Hour), Until: week}, index: []string{"tool_calls_started"}},
		{name: "list/user_and_status", f: switchboard.ToolCallFilter{UserID: "user_0007", Status: switchboard.CallFailed}, index: []string{"tool_calls_user", "tool_calls_status"}},
		{name: "list/tool_and_since", f: switchboard.ToolCallFilter{Tool: "search", Since: day}, index: []string{"tool_calls_tool", "tool_calls_started"}},
		{name: "list/server_status_range", f: switchboard.ToolCallFilter{Server: "github", Status: switchboard.CallFailed, Since: week, Until: day},
			index: []string{"tool_calls_server", "tool_calls_status", "tool_calls_started", "tool_calls_server_tool"}},
		{name: "stats/by_tool/24h", f: switchboard.ToolCallFilter{Since: day}, groupBy: store.GroupByTool, index: statsIndexes},
		{name: "stats/by_server/24h", f: switchboard.ToolCallFilter{Since: day}, groupBy: store.GroupByServer, index: statsIndexes},
		{name: "stats/by_tool/7d", f: switchboard.ToolCallFilter{Since: week}, groupBy: store.GroupByTool, index: statsIndexes},
		{name: "stats/by_tool/30d", f: switchboard.ToolCallFilter{Since: end.Add(-31 * 24 * time.Hour)}, groupBy: store.GroupByTool, index: statsIndexes},
		{name: "stats/by_server/30d", f: switchboard.ToolCallFilter{Since: end.Add(-31 * 24 * time.Hour)}, groupBy: store.GroupByServer, index: statsIndexes},
		{name: "stats/by_tool/24h_of_a_server", f: switchboard.ToolCallFilter{Server: "web", Since: day}, groupBy: store.GroupByTool,
			index: []string{"tool_calls_server", "tool_calls_server_tool", "tool_calls_started"}},
		{name: "stats/by_tool/7d_of_a_user", f: switchboard.ToolCallFilter{UserID: "user_0007", Since: week}, groupBy: store.GroupByTool, index: []string{"tool_calls_user"}},
		{name: "transcript/messages", sql: store.SelectTranscript, arg: conv, user: user, index: []string{"messages_conversation_seq"}},
		{name: "transcript/all_messages", sql: store.SelectAllMessages, arg: conv, user: user, index: []string{"messages_conversation_seq"}},
		{name: "transcript/turns", sql: store.SelectTurnsOfConversation, arg: conv, user: user, index: []string{"turns_conversation"}},
	}
}

// statement returns q's SQL and arguments.
func (q ledgerQuery) statement(tb testing.TB) (string, []any) {
	tb.Helper()
	if q.sql != "" {
		return q.sql, []any{q.arg}
	}
	sql, args, err := store.LedgerSQL(q.f, q.groupBy)
	if err != nil {
		tb.Fatalf("%s: %v", q.name, err)
	}
	return sql, args
}

// run runs q through the store, as the admin API does.
func (q ledgerQuery) run(ctx context.Context, p *store.Postgres) (int, error) {
	switch {
	case q.sql == store.SelectTranscript:
		m, err := p.ListMessages(ctx, q.user, q.arg)
		return len(m), err
	case q.sql == store.SelectAllMessages:
		m, err := p.ListAllMessages(ctx, q.user, q.arg)
		return len(m), err
	case q.sql == store.SelectTurnsOfConversation:
		t, err := p.ListTurns(ctx, q.user, q.arg)
		return len(t), err
	case q.groupBy != "":
		s, err := p.ToolCallStats(ctx, q.f, q.groupBy)
		return len(s), err
	}
	c, _, err := p.ListToolCalls(ctx, q.f)
	return len(c), err
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType     string `json:"Node Type"`
	RelationName string `json:"Relation Name"`
	IndexName    string `json:"Index Name"`
	IndexCond    string `json:"Index Cond"`
	// OneTimeFilter is a Result's condition evaluated once, before its
	// input is read.
	OneTimeFilter string     `json:"One-Time Filter"`
	Plans         []planNode `json:"Plans"`
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// explain returns the plan of q, as JSON and as text (with ANALYZE when
// analyze is set).
func explain(tb testing.TB, ctx context.Context, conn *pgx.Conn, q ledgerQuery, analyze bool) (planNode, string) {
	tb.Helper()
	sql, args := q.statement(tb)
	var raw []byte
	if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		tb.Fatalf("%s: explain: %v", q.name, err)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		tb.Fatalf("%s: plan %s: %v", q.name, raw, err)
	}
	opts := "COSTS OFF"
	if analyze {
		opts = "ANALYZE, BUFFERS, COSTS OFF"
	}
	rows, err := conn.Query(ctx, "EXPLAIN ("+opts+") "+sql, args...)
	if err != nil {
		tb.Fatalf("%s: explain: %v", q.name, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("%s: explain: %v", q.name, err)
	}
	return plans[0].Plan, strings.Join(lines, "\n")
}

// checkPlan reports a query that scans a table sequentially or does not
// use one of its expected indexes.
func checkPlan(tb testing.TB, q ledgerQuery, plan planNode, text string) {
	tb.Helper()
	var used []string
	plan.walk(func(n planNode) {
		if strings.Contains(n.NodeType, "Seq Scan") {
			tb.Errorf("%s: plan scans %s sequentially:\n%s", q.name, n.RelationName, text)
		}
		if n.IndexName != "" {
			used = append(used, n.IndexName)
		}
	})
	if !slices.ContainsFunc(used, func(ix string) bool { return slices.Contains(q.index, ix) }) {
		tb.Errorf("%s: plan uses indexes %v, want one of %v:\n%s", q.name, used, q.index, text)
	}
}

// seededPostgres returns a store over a new database seeded with n calls,
// a connection to it, and the seed's end time.
func seededPostgres(tb testing.TB, n int) (*store.Postgres, *pgx.Conn, time.Time) {
	tb.Helper()
	ctx := context.Background()
	url := storetest.PostgresURL(tb)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	end := time.Now().UTC().Truncate(time.Second)
	seedLedger(tb, ctx, conn, n, end)
	p, err := store.OpenPostgres(ctx, url, &store.Options{SkipMigrate: true, MaxConns: 2})
	if err != nil {
		tb.Fatalf("OpenPostgres: %v", err)
	}
	tb.Cleanup(p.Close)
	return p, conn, end
}

// TestLedgerQueryPlans checks on a ledger of 20,000 rows, with the
// statistics ANALYZE gathers, that the planner serves every admin query
// with its index and scans no table sequentially.
func TestLedgerQueryPlans(t *testing.T) {
	p, conn, end := seededPostgres(t, 20000)
	ctx := t.Context()
	for _, q := range ledgerQueries(t, ctx, p, end) {
		t.Run(q.name, func(t *testing.T) {
			plan, text := explain(t, ctx, conn, q, false)
			checkPlan(t, q, plan, text)
			if _, err := q.run(ctx, p); err != nil {
				t.Errorf("%s: got error %v, want none", q.name, err)
			}
		})
	}
}

// BenchmarkLedgerQueries seeds a million tool calls (SWITCHBOARD_BENCH_ROWS
// to change) and times each admin query through the store, after printing
// its plan with EXPLAIN ANALYZE.
func BenchmarkLedgerQueries(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("SWITCHBOARD_BENCH_ROWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("SWITCHBOARD_BENCH_ROWS=%q: want a number of at least 1000", s)
		}
		n = v
	}
	began := time.Now()
	p, conn, end := seededPostgres(b, n)
	b.Logf("seeded %d tool calls in %v", n, time.Since(began).Round(time.Millisecond))
	ctx := context.Background()
	var size string
	if err := conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('tool_calls'))`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("tool_calls with its indexes: %s", size)
	for _, q := range ledgerQueries(b, ctx, p, end) {
		plan, text := explain(b, ctx, conn, q, true)
		checkPlan(b, q, plan, text)
		b.Run(q.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				var err error
				if rows, err = q.run(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "rows")
		})
		fmt.Fprintf(os.Stdout, "--- %s\n%s\n\n", q.name, text)
	}
}

// TestHistoryPlanWithoutStatistics checks the query of every turn's start,
// the history window, on a database that ANALYZE has not seen yet, as a new
// one is: it must walk the conversation's index backwards from the newest
// message, not read and sort the conversation's every message.
func TestHistoryPlanWithoutStatistics(t *testing.T) {
	ctx := t.Context()
	url := storetest.PostgresURL(t)
	p := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2})
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "first"}}
	if _, err := p.BeginTurn(ctx, &ts); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// This database is the test's own: keep autovacuum from analyzing it.
	if _, err := conn.Exec(ctx, `ALTER TABLE messages SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO messages (conversation_id, turn_id, role, content)
		SELECT $1, $2, 'user', 'message ' || i FROM generate_series(1, 200) i`, ts.Conversation.ID, ts.Turn.ID); err != nil {
		t.Fatal(err)
	}
	var stats int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stats WHERE tablename = 'messages'`).Scan(&stats); err != nil || stats != 0 {
		t.Fatalf("messages has statistics (%d columns, %v): the case this test is about is gone", stats, err)
	}
	// A start without the conversation cached reads the newest messages;
	// one with it cached, those after its last (see store.historyCache).
	var last int64
	var lastID string
	if err := conn.QueryRow(ctx, `SELECT seq, id::text FROM messages WHERE conversation_id = $1 ORDER BY seq DESC OFFSET 10 LIMIT 1`,
		ts.Conversation.ID).Scan(&last, &lastID); err != nil {
		t.Fatal(err)
	}
	for _, after := range []struct {
		name string
		seq  int64
		id   any
	}{{"whole", 0, nil}, {"after a cached window", last, lastID}} {
		t.Run(after.name, func(t *testing.T) {
			checkHistoryPlan(t, conn, ts.Conversation.ID, after.seq, after.id)
		})
	}
}

func checkHistoryPlan(t *testing.T, conn *pgx.Conn, conv string, afterSeq int64, afterID any) {
	q := ledgerQuery{name: "history", sql: store.SelectHistory, arg: conv, index: []string{"messages_conversation_seq"}}
	plan, err := explainJSON(t, conn, "EXPLAIN (FORMAT JSON) "+q.sql, conv, "alice", 50, afterSeq, afterID)
	if err != nil {
		t.Fatal(err)
	}
	raw := plan.text
	var sorts int
	seqBound := false // the read starts after the cached window, not filters the whole transcript
	plan.Plan.walk(func(n planNode) {
		if n.NodeType == "Sort" && n.RelationName == "" {
			sorts++
		}
		if n.IndexName == "messages_conversation_seq" && strings.Contains(n.IndexCond, "seq >") {
			seqBound = true
		}
	})
	if !seqBound {
		t.Errorf("the history window's scan of messages_conversation_seq is not bounded by seq: %s", raw)
	}
	checkPlan(t, q, plan.Plan, raw)
	// One sort puts the window back in order; a second would be the
	// conversation's messages sorted to find the newest.
	if sorts > 1 {
		t.Errorf("the history window sorts the conversation's messages: %s", raw)
	}
}

// TestCancelWaitingPlan checks the statement every turn's start sends to
// cancel what awaits an approval in its conversation: it must find them
// through the partial indexes that hold only those, not walk the
// conversation's turns or the ledger's awaiting calls of every
// conversation.
func TestCancelWaitingPlan(t *testing.T) {
	_, conn, _ := seededPostgres(t, 20000)
	raw, err := explainJSON(t, conn, "EXPLAIN (FORMAT JSON) "+store.CancelWaiting, "01a2124b-88a2-7c65-8f5d-5093e5df38e5", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, index := range []string{"turns_awaiting", "tool_calls_awaiting"} {
		checkPlan(t, ledgerQuery{name: "cancel waiting", index: []string{index}}, raw.Plan, raw.text)
	}
}

// TestQuietStartPlan checks the guard of a plain start's first statement
// (StartQuietTurn): it must look for a running or waiting turn and a call
// awaiting an approval through the partial indexes that hold only those,
// not walk the conversation's turns and calls.
func TestQuietStartPlan(t *testing.T) {
	_, conn, _ := seededPostgres(t, 20000)
	id := "01a2124b-88a2-7c65-8f5d-5093e5df38e5"
	now := time.Now()
	raw, err := explainJSON(t, conn, "EXPLAIN (FORMAT JSON) "+store.StartQuietTurn,
		id, id, "alice", "running", nil, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, "", now, nil, "", store.LeaseDuration, "i", id, "",
		id, "user", "hello", "text", now, nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, index := range []string{"turns_one_running", "turns_awaiting", "turns_awaiting_input", "tool_calls_awaiting"} {
		checkPlan(t, ledgerQuery{name: "quiet start", index: []string{index}}, raw.Plan, raw.text)
	}
}

type explained struct {
	Plan planNode
	text string
}

func explainJSON(t *testing.T, conn *pgx.Conn, sql string, args ...any) (explained, error) {
	var raw []byte
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&raw); err != nil {
		return explained{}, err
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
		return explained{}, fmt.Errorf("plan %s: %v", raw, err)
	}
	return explained{Plan: plans[0].Plan, text: string(raw)}, nil
}
