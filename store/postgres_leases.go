package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-dev/switchboard"
)

// A running turn holds its conversation under a lease (turns.lease_until)
// that names its holder: the instance (lease_instance, Options.Instance)
// and the boot (lease_boot, new at every OpenPostgres). A running turn is
// orphaned, held by no live instance, when its lease ran out or when it
// names an earlier boot of the instance asking: a process that started
// again runs none of the turns of its previous life. Whoever finds an
// orphan fails it, with its calls (failOrphaned): a new turn of its
// conversation, a decision on one of its calls, a cancel, and the
// instance itself as it starts (RecoverTurns).

// orphaned is the SQL condition of a running turn that no live instance
// holds, for the instance whose id (NULL: none) and boot are the
// parameters named instance and boot.
func orphaned(instance, boot string) string {
	return `(lease_until < now() OR lease_instance = ` + instance + `::text AND lease_boot <> ` + boot + `::uuid)`
}

// failOrphaned fails the running turns that match where (a condition on
// turns, orphaned among them) and closes their calls: those running fail
// as interrupted, those awaiting an approval are cancelled. It returns one
// row per turn and call, a turn without calls once with NULL call columns
// (see collectInterrupted).
func failOrphaned(where string) string {
	return `
WITH t AS (
    UPDATE turns SET status = 'failed', error = '` + interruptedNote + `', finished_at = now(), lease_until = NULL
    WHERE status = 'running' AND ` + where + `
    RETURNING ` + turnColumns + `
), c AS (
    UPDATE tool_calls SET
        status = CASE WHEN tool_calls.status = 'running' THEN 'failed' ELSE 'cancelled' END,
        error_class = CASE WHEN tool_calls.status = 'running' THEN '` + switchboard.ErrorClassInterrupted + `' ELSE 'cancelled' END,
        error = CASE WHEN tool_calls.status = 'running' THEN '` + callInterruptedNote + `' ELSE '` + notRunNote + `' END,
        finished_at = now()
    FROM t
    WHERE tool_calls.turn_id = t.id::uuid AND tool_calls.status IN ('running', 'awaiting_approval')
    RETURNING tool_calls.id::text AS call, tool_calls.turn_id::text AS turn, tool_calls.call_id, tool_calls.step,
        tool_calls.server, tool_calls.tool, tool_calls.exposed_name, tool_calls.status AS call_status,
        tool_calls.error_class, tool_calls.error AS call_error, tool_calls.started_at AS call_started,
        tool_calls.finished_at AS call_finished
)
SELECT t.*, c.call, c.call_id, c.step, c.server, c.tool, c.exposed_name, c.call_status, c.error_class, c.call_error,
    c.call_started, c.call_finished
FROM t LEFT JOIN c ON c.turn = t.id
ORDER BY t.started_at, t.id, c.call_started, c.call`
}

// The statements of failOrphaned, made once.
var (
	// failOrphanOf fails the running turn of user $2's conversation $1
	// if it is orphaned for instance $3 and boot $4.
	failOrphanOf = failOrphaned(`conversation_id = $1 AND user_id = $2 AND ` + orphaned("$3", "$4"))
	// failOrphanOfCall fails the running turn of the conversation of the
	// call $1 if it is orphaned for instance $2 and boot $3.
	failOrphanOfCall = failOrphaned(`conversation_id = (SELECT conversation_id FROM tool_calls WHERE id = $1) AND ` +
		orphaned("$2", "$3"))
	// failEarlierBoots fails the running turns of instance $1 that
	// earlier boots than $2 hold.
	failEarlierBoots = failOrphaned(earlierBoots)
)

// earlierBoots is the condition of the turns of instance $1 that earlier
// boots than $2 hold.
const earlierBoots = `lease_instance = $1::text AND lease_boot <> $2::uuid`

// collectInterrupted reads the rows of failOrphaned: the turns it failed,
// each with the calls it closed.
func collectInterrupted(rows pgx.Rows) ([]switchboard.Interrupted, error) {
	defer rows.Close()
	var out []switchboard.Interrupted
	for rows.Next() {
		var (
			t                     switchboard.Turn
			status                string
			llm, tools, st, over  float64
			startedAt, finishedAt pgtype.Timestamptz
			id, callID            pgtype.Text
			server, tool, exposed pgtype.Text
			callStatus, class     pgtype.Text
			callErr               pgtype.Text
			callStep              pgtype.Int8
			callStarted, callEnd  pgtype.Timestamptz
		)
		err := rows.Scan(&t.ID, &t.ConversationID, &t.UserID, &status, &t.IdempotencyKey, &t.Steps,
			&t.PromptTokens, &t.CompletionTokens, &llm, &tools, &st, &over, &t.Error, &startedAt, &finishedAt,
			&t.RequestHash,
			&id, &callID, &callStep, &server, &tool, &exposed, &callStatus, &class, &callErr, &callStarted, &callEnd)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Turn.ID != t.ID {
			t.Status = switchboard.TurnStatus(status)
			t.Timing = switchboard.TurnTiming{LLM: fromMillis(llm), Tools: fromMillis(tools), Store: fromMillis(st), Overhead: fromMillis(over)}
			t.StartedAt, t.FinishedAt = fromTimestamptz(startedAt), fromTimestamptz(finishedAt)
			out = append(out, switchboard.Interrupted{Turn: t})
		}
		if !id.Valid {
			continue
		}
		in := &out[len(out)-1]
		in.Calls = append(in.Calls, switchboard.ToolCall{
			ID: id.String, CallID: callID.String, UserID: in.Turn.UserID, ConversationID: in.Turn.ConversationID,
			TurnID: in.Turn.ID, Step: int(callStep.Int64), Server: server.String, Tool: tool.String, ExposedName: exposed.String,
			Status: switchboard.ToolCallStatus(callStatus.String), ErrorClass: class.String, Error: callErr.String,
			StartedAt: fromTimestamptz(callStarted), FinishedAt: fromTimestamptz(callEnd),
		})
	}
	return out, rows.Err()
}

// instanceArg is the instance id as a parameter: NULL for none, which no
// lease matches.
func (p *Postgres) instanceArg() any { return nullString(p.instance) }

// RecoverTurns fails, at once, the turns that earlier boots of this
// instance (Options.Instance) left running, with their calls (see
// switchboard.Interrupted): their leases may not have run out, but a
// process that started again cannot be running them. It returns them,
// oldest first. It does nothing for a store without an instance id.
//
// Call it once the process is sure to be the only live one with its
// identity (cmd/switchboard calls it once it holds its listen address),
// before it takes requests.
func (p *Postgres) RecoverTurns(ctx context.Context) ([]switchboard.Interrupted, error) {
	if p.instance == "" {
		return nil, nil
	}
	b := &pgx.Batch{}
	// The conversations first, in order, as every writer of their turns
	// locks them: no deadlocks.
	b.Queue(`SELECT FROM conversations WHERE id IN (SELECT conversation_id FROM turns WHERE status = 'running' AND `+earlierBoots+`)
ORDER BY id FOR NO KEY UPDATE`, p.instance, p.boot)
	b.Queue(failEarlierBoots, p.instance, p.boot)
	var out []switchboard.Interrupted
	err := p.send(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		out, err = collectInterrupted(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recover the turns of instance %s: %w", p.instance, err)
	}
	return out, nil
}
