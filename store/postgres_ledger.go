package store

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-dev/switchboard"
)

const toolCallColumns = `id::text, call_id, user_id, conversation_id::text, turn_id::text, step, server, tool,
    exposed_name, arguments, result, structured_result, status, error_class, error, duration_ms, result_size,
    truncated, started_at, finished_at, payload_pruned, session_scope, session_key, session_generation, task_id,
    task_status, content, agent, COALESCE(parent_id::text, '')`

// ledgerInsertColumns are the columns of tool_calls that a call's ledger row
// is written with, in saveToolCall's order.
const ledgerInsertColumns = `id, call_id, user_id, conversation_id, turn_id, step, server, tool, exposed_name,
        arguments, result, structured_result, status, error_class, error, duration_ms, result_size, truncated,
        started_at, finished_at, session_scope, session_key, session_generation, task_id, task_status, content,
        agent, parent_id`

// openCallValues selects ledgerInsertColumns of the open call r (a
// jsonb_populate_record of tool_calls over an entry of the open_calls of
// turn t, which leaves the columns at their default as NULL), with the
// expressions of override in place of those columns.
func openCallValues(t, r string, override map[string]string) string {
	defaults := map[string]string{"step": "0", "duration_ms": "0", "result_size": "0", "truncated": "false",
		"session_generation": "0"}
	var b strings.Builder
	for i, col := range strings.Split(ledgerInsertColumns, ",") {
		col = strings.TrimSpace(col)
		if i > 0 {
			b.WriteString(", ")
		}
		switch expr, ok := override[col]; {
		case ok:
			b.WriteString(expr)
		case col == "user_id" || col == "conversation_id":
			b.WriteString(t + "." + col)
		case col == "turn_id":
			b.WriteString(t + ".id")
		case col == "id" || col == "server" || col == "tool" || col == "status" || col == "started_at" ||
			col == "arguments" || col == "structured_result" || col == "finished_at" || col == "content" || col == "parent_id":
			b.WriteString(r + "." + col) // never NULL in an entry, or NULL by default
		default:
			b.WriteString("COALESCE(" + r + "." + col + ", " + cmp.Or(defaults[col], "''") + ")")
		}
	}
	return b.String()
}

// openEntries joins the entries of the open_calls object calls (an
// expression) as calls r (jsonb_populate_record of tool_calls, see
// openCallValues), each with its key and value as e.
func openEntries(calls string) string {
	return "CROSS JOIN LATERAL jsonb_each(" + calls + ") e CROSS JOIN LATERAL jsonb_populate_record(NULL::tool_calls, e.value) r"
}

// ledgerRows is the ledger as its readers see it, named tool_calls: the
// table's rows and the running calls that running turns keep on their rows
// (open_calls, migration 00057), cond (if any) a further condition on those
// turns (o) and their calls (r). A call whose row is in the table is read
// from there only: a running call that a question or a sampling request
// made a row of early (materializeOpenCall) is still in open_calls.
func ledgerRows(cond string) string {
	return `(SELECT ` + ledgerInsertColumns + `, payload_pruned FROM tool_calls
    UNION ALL
    ` + openCallRows(cond) + `) AS tool_calls`
}

// openCallRows selects the calls running turns keep on their rows, as
// ledgerRows does, in the columns of tool_calls.
func openCallRows(cond string) string {
	if cond != "" {
		cond = " AND " + cond
	}
	return `SELECT ` + openCallValues("o", "r", nil) + `, false AS payload_pruned
    FROM turns o ` + openEntries("o.open_calls") + `
    WHERE o.status = 'running' AND o.open_calls IS NOT NULL` + cond + `
        AND NOT EXISTS (SELECT FROM tool_calls x WHERE x.id = r.id)`
}

// readsOpenCalls tells whether q may select calls open on their turns'
// rows: not when it asks for a status no open call has. The open calls
// are in no index: a query that reads them reads them all (about 7 µs a
// call, see BENCHMARKS.md, seventh round).
func (q *ledgerQuery) readsOpenCalls() bool {
	return q.f.Status == "" || q.f.Status == switchboard.CallRunning
}

// ledgerOf is where the rows of q are: the ledger with the open calls
// (ledgerRows), or the table alone.
func ledgerOf(q ledgerQuery) string {
	if !q.readsOpenCalls() {
		return "tool_calls"
	}
	return ledgerRows("")
}

// materializeOpenCall is a CTE (m) that writes the ledger row of call $5
// of user $2's turn $4 in conversation $3 if the call is still open on its
// turn's row, as it is there (running), for a row of another table that
// refers to it (an input, a sampling). It returns the id written.
var materializeOpenCall = `
WITH m AS (
    INSERT INTO tool_calls (` + ledgerInsertColumns + `)
    SELECT ` + openCallValues("o", "r", nil) + `
    FROM turns o CROSS JOIN LATERAL jsonb_populate_record(NULL::tool_calls, o.open_calls -> $5::text) r
    WHERE o.id = $4::uuid AND o.user_id = $2::text AND o.conversation_id = $3::uuid AND o.open_calls ? $5::text
    ON CONFLICT DO NOTHING
    RETURNING id
)`

// GetToolCall implements [Store.GetToolCall].
func (p *Postgres) GetToolCall(ctx context.Context, userID, id string) (switchboard.ToolCall, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	c, err := scanToolCall(p.pool.QueryRow(ctx, `SELECT `+toolCallColumns+` FROM `+ledgerRows(`o.open_calls ? $1::text`)+` WHERE id = $1::uuid AND user_id = $2`, key, userID))
	if err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %s of %s: %w", id, userID, dbError(err))
	}
	return c, nil
}

// AdminToolCall implements [Store.AdminToolCall].
func (p *Postgres) AdminToolCall(ctx context.Context, id string) (switchboard.ToolCall, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %q: %w", id, switchboard.ErrNotFound)
	}
	c, err := scanToolCall(p.pool.QueryRow(ctx, `SELECT `+toolCallColumns+` FROM `+ledgerRows(`o.open_calls ? $1::text`)+` WHERE id = $1::uuid`, key))
	if err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %s: %w", id, dbError(err))
	}
	return c, nil
}

// GetToolCallContent implements [Store.GetToolCallContent].
func (p *Postgres) GetToolCallContent(ctx context.Context, userID, id string, index int) (switchboard.ContentPart, error) {
	key, ok := lookupID(id)
	if !ok || index < 0 || index > math.MaxInt32 {
		return switchboard.ContentPart{}, fmt.Errorf("load content %d of tool call %q of %s: %w", index, id, userID, switchboard.ErrNotFound)
	}
	var (
		part   = switchboard.ContentPart{ToolCallID: id, Index: index}
		kind   string
		sum    []byte
		pruned bool
	)
	// The outer join tells a pruned call's part (its row gone, its
	// listing kept) from one that never was.
	err := p.pool.QueryRow(ctx, `
SELECT c.payload_pruned, COALESCE(b.kind, ''), COALESCE(b.mime_type, ''), COALESCE(b.uri, ''), COALESCE(b.size, 0),
    COALESCE(b.sha256, ''::bytea), b.data
FROM tool_calls c LEFT JOIN tool_call_content b ON b.tool_call_id = c.id AND b.idx = $3
WHERE c.id = $1 AND c.user_id = $2`, key, userID, index).
		Scan(&pruned, &kind, &part.MIMEType, &part.URI, &part.Size, &sum, &part.Data)
	switch {
	case err == nil && part.Data == nil && pruned:
		return switchboard.ContentPart{}, fmt.Errorf("load content %d of tool call %s: %w", index, id, errContentPruned)
	case err == nil && part.Data == nil:
		err = pgx.ErrNoRows
	}
	if err != nil {
		return switchboard.ContentPart{}, fmt.Errorf("load content %d of tool call %s of %s: %w", index, id, userID, dbError(err))
	}
	part.Kind, part.SHA256 = switchboard.ContentKind(kind), hex.EncodeToString(sum)
	return part, nil
}

// DecideToolCall implements [Store.DecideToolCall].
func (p *Postgres) DecideToolCall(ctx context.Context, userID, id string, approve bool) (switchboard.ToolCall, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	to := switchboard.CallRunning
	if !approve {
		to = switchboard.CallDenied
	}
	// One transaction that locks the conversation first, as every writer of
	// its turns does (a turn's start, a step, a delete): no deadlocks. A
	// running turn that no live instance holds is failed first, with its
	// calls, as BeginTurn does.
	b := &pgx.Batch{}
	b.Queue(`SELECT FROM conversations WHERE id = (SELECT conversation_id FROM tool_calls WHERE id = $1 AND user_id = $2)
FOR NO KEY UPDATE`, key, userID)
	b.Queue(failOrphanOfCall, key, p.instanceArg(), p.boot, userID)
	b.Queue(`
WITH t AS (
    UPDATE turns SET status = 'running', lease_until = now() + $3::interval, cancel_requested = false,
        lease_instance = $4::text, lease_boot = $5::uuid
    WHERE id = (SELECT turn_id FROM tool_calls WHERE id = $1 AND user_id = $6 AND status = 'awaiting_approval')
        AND status = 'awaiting_approval'
    RETURNING id
)
UPDATE tool_calls SET status = $2
WHERE id = $1 AND user_id = $6 AND status = 'awaiting_approval' AND turn_id IN (SELECT id FROM t)
RETURNING `+toolCallColumns, key, string(to), LeaseDuration, p.instanceArg(), p.boot, userID)
	var c switchboard.ToolCall
	err := p.send(ctx, b, func(br pgx.BatchResults) error {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		var err error
		c, err = scanToolCall(br.QueryRow())
		return err
	})
	if errors.Is(err, switchboard.ErrNotFound) {
		stored, gerr := p.GetToolCall(ctx, userID, id)
		if gerr != nil {
			return switchboard.ToolCall{}, fmt.Errorf("decide tool call: %w", gerr)
		}
		if stored.Status == switchboard.CallAwaitingApproval {
			// Its turn does not wait: it runs (a decision of another call
			// of it), or it ended and the call can no longer run.
			t, terr := p.GetTurn(ctx, userID, stored.TurnID)
			switch {
			case terr != nil && !errors.Is(terr, switchboard.ErrNotFound):
				return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, terr)
			case terr == nil && t.Status == switchboard.TurnRunning:
				return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, errTurnRunning())
			}
		}
		return switchboard.ToolCall{}, errAlreadyDecided(id)
	}
	if err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, err)
	}
	c.Status = switchboard.CallAwaitingApproval
	return c, nil
}

// ListToolCalls implements [Store.ListToolCalls].
func (p *Postgres) ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error) {
	q, err := prepareFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", err)
	}
	sql, args := listToolCallsSQL(q)
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", dbError(err))
	}
	calls, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (switchboard.ToolCall, error) {
		return scanToolCall(row)
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", dbError(err))
	}
	if len(calls) <= q.limit {
		if calls == nil {
			calls = []switchboard.ToolCall{}
		}
		return calls, "", nil
	}
	calls = calls[:q.limit]
	last := calls[len(calls)-1]
	return calls, encodeCursor(last.StartedAt, last.ID), nil
}

// ToolCallStats implements [Store.ToolCallStats].
func (p *Postgres) ToolCallStats(ctx context.Context, f switchboard.ToolCallFilter, groupBy string) ([]switchboard.ToolCallStats, error) {
	if err := checkGroupBy(groupBy); err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	f.After = ""
	q, err := prepareFilter(f)
	if err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	sql, args := toolCallStatsSQL(q, groupBy)
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("tool call stats: %w", dbError(err))
	}
	stats, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (switchboard.ToolCallStats, error) {
		var (
			s        switchboard.ToolCallStats
			finished int64
			p50, p95 pgtype.Float8
			open     bool
		)
		if err := row.Scan(&s.Server, &s.Group, &open, &s.Count, &s.Errors, &finished, &p50, &p95); err != nil {
			return s, err
		}
		s.ErrorRate = errorRate(s.Errors, finished)
		s.P50, s.P95 = fromMillis(p50.Float64), fromMillis(p95.Float64)
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("tool call stats: %w", dbError(err))
	}
	// A group's open calls come after its table row, if it has one: they
	// add to its count.
	out := []switchboard.ToolCallStats{}
	for _, s := range stats {
		if n := len(out); n > 0 && out[n-1].Server == s.Server && out[n-1].Group == s.Group {
			out[n-1].Count += s.Count
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// listToolCallsSQL returns the query of one page of q, and its arguments.
// The page is an index range scan: every filter has an index in the
// listing's order (migrations 00001 and 00011).
func listToolCallsSQL(q ledgerQuery) (string, []any) {
	where, args := q.where()
	if q.afterID != "" {
		args = append(args, q.afterTime, q.afterID)
		where = append(where, fmt.Sprintf("(started_at, id) < ($%d, $%d::uuid)", len(args)-1, len(args)))
	}
	// One row more than the page tells whether there is a next page.
	args = append(args, q.limit+1)
	// The ORDER BY names the table's columns: a bare "id" would be the
	// selected id::text, which no index is sorted by.
	return `SELECT ` + toolCallColumns + ` FROM ` + ledgerOf(q) + whereClause(where) +
		` ORDER BY tool_calls.started_at DESC, tool_calls.id DESC LIMIT $` + strconv.Itoa(len(args)), args
}

// toolCallStatsSQL returns the aggregate of q grouped by groupBy, and its
// arguments. Over a time window it reads only the index tool_calls_started,
// which includes the columns it aggregates.
func toolCallStatsSQL(q ledgerQuery, groupBy string) (string, []any) {
	group := "tool"
	if groupBy == GroupByServer {
		group = "server"
	}
	where, args := q.where()
	sql := `SELECT server, ` + group + ` AS grp, false AS open, count(*) AS calls,
    count(*) FILTER (WHERE status NOT IN ('running', 'awaiting_approval', 'succeeded')) AS errors,
    count(*) FILTER (WHERE status NOT IN ('running', 'awaiting_approval')) AS finished,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status NOT IN ('running', 'awaiting_approval')) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE status NOT IN ('running', 'awaiting_approval')) AS p95
FROM tool_calls` + whereClause(where) + `
GROUP BY server, ` + group
	if q.readsOpenCalls() {
		// The open calls only count (running, they have no outcome), in
		// rows of their own that ToolCallStats adds to their group's: the
		// table's aggregate keeps its plan (an index-only scan in the
		// group's order), which a union below it would not.
		sql += `
UNION ALL
SELECT server, ` + group + `, true, count(*), 0, 0, NULL, NULL
FROM (` + openCallRows("") + `) AS tool_calls` + whereClause(where) + `
GROUP BY server, ` + group
	}
	// COLLATE "C" orders by bytes, as Go compares strings.
	return `SELECT * FROM (` + sql + `) AS s ORDER BY server COLLATE "C", grp COLLATE "C", open`, args
}

// where returns the conditions and arguments of the filter, cursor excluded.
func (q *ledgerQuery) where() ([]string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1))
	}
	f := &q.f
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	if f.ConversationID != "" {
		add("conversation_id = ?::uuid", f.ConversationID)
	}
	if f.TurnID != "" {
		add("turn_id = ?::uuid", f.TurnID)
	}
	if f.Server != "" {
		add("server = ?", f.Server)
	}
	if f.Tool != "" {
		add("tool = ?", f.Tool)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if !f.Since.IsZero() {
		add("started_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		add("started_at < ?", f.Until)
	}
	return where, args
}

func whereClause(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// PruneToolCallPayloads implements [Store.PruneToolCallPayloads]. Rows locked by a running write are skipped, to be pruned by a later
// batch.
func (p *Postgres) PruneToolCallPayloads(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		return 0, fmt.Errorf("prune tool calls: batch %d: %w", batch, switchboard.ErrInvalid)
	}
	var n int
	err := p.pool.QueryRow(ctx, `
WITH doomed AS (
    SELECT id FROM tool_calls WHERE NOT payload_pruned AND finished_at IS NOT NULL AND started_at < $1
    ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED),
pruned AS (
    UPDATE tool_calls t SET arguments = NULL, result = '', structured_result = NULL, payload_pruned = true
    FROM doomed WHERE t.id = doomed.id RETURNING t.id),
bytes AS (
    DELETE FROM tool_call_content WHERE tool_call_id IN (SELECT id FROM pruned))
SELECT count(*) FROM pruned`, before, batch).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("prune tool calls: %w", dbError(err))
	}
	return n, nil
}

func scanToolCall(row pgx.Row) (switchboard.ToolCall, error) {
	var (
		c                     switchboard.ToolCall
		status                string
		durationMS            float64
		startedAt, finishedAt pgtype.Timestamptz
		content               []byte
	)
	err := row.Scan(&c.ID, &c.CallID, &c.UserID, &c.ConversationID, &c.TurnID, &c.Step, &c.Server, &c.Tool,
		&c.ExposedName, &c.Arguments, &c.Result, &c.StructuredResult, &status, &c.ErrorClass, &c.Error,
		&durationMS, &c.ResultSize, &c.Truncated, &startedAt, &finishedAt, &c.PayloadPruned,
		&c.SessionScope, &c.SessionKey, &c.SessionGeneration, &c.TaskID, &c.TaskStatus, &content, &c.Agent, &c.ParentID)
	if err != nil {
		return switchboard.ToolCall{}, err
	}
	if len(content) > 0 {
		if err := json.Unmarshal(content, &c.Content); err != nil {
			return switchboard.ToolCall{}, fmt.Errorf("decode content of tool call %s: %w", c.ID, err)
		}
	}
	c.Status = switchboard.ToolCallStatus(status)
	c.Duration = fromMillis(durationMS)
	c.StartedAt, c.FinishedAt = fromTimestamptz(startedAt), fromTimestamptz(finishedAt)
	// jsonb comes back with spaces after colons and commas; compact it as
	// Memory does.
	if c.Arguments, err = cleanJSON(c.Arguments); err != nil {
		return switchboard.ToolCall{}, err
	}
	if c.StructuredResult, err = cleanJSON(c.StructuredResult); err != nil {
		return switchboard.ToolCall{}, err
	}
	return c, nil
}
