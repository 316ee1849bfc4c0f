package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

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
//
// A turn's instance renews its lease while it runs (RenewTurn). A cancel
// asked of whichever instance runs the turn (RequestCancel) flags it in
// its row and tells every instance through NOTIFY (ListenCancels); an
// instance that missed the notification reads the flag at its next
// renewal.

// orphaned is the SQL condition of a running turn that no live instance
// holds, for the instance whose id (NULL: none) and boot are the
// parameters named instance and boot.
func orphaned(instance, boot string) string {
	return `(lease_until < now() OR lease_instance = ` + instance + `::text AND lease_boot <> ` + boot + `::uuid)`
}

// failOrphaned closes the running turns that match where (a condition on
// turns, orphaned among them). A turn with an asking call (see asking) is
// stored awaiting_input, those calls left running: its questions outlive
// the instance, and an answer continues them (AnswerInput). Any other is
// failed. Their other calls close (running ones fail as interrupted, those
// awaiting an approval are cancelled; the calls open on the turn's row get
// their ledger rows, failed as interrupted), and so do those calls' pending
// questions (failed: nothing waits for them). It returns one row per turn
// and closed call, a turn without closed calls once with NULL call columns
// (see collectInterrupted).
func failOrphaned(where string) string {
	return `
WITH o AS (
    SELECT id FROM turns WHERE status = 'running' AND ` + where + `
), k AS (` + askingCalls("SELECT id FROM o") + `
), t AS (
    UPDATE turns SET
        status = CASE WHEN turns.id IN (SELECT turn_id FROM k) THEN 'awaiting_input' ELSE 'failed' END,
        error = CASE WHEN turns.id IN (SELECT turn_id FROM k) THEN '' ELSE '` + interruptedNote + `' END,
        finished_at = CASE WHEN turns.id IN (SELECT turn_id FROM k) THEN NULL ELSE now() END,
        lease_until = NULL, cancel_requested = false, open_calls = NULL
    WHERE turns.id IN (SELECT id FROM o) AND turns.status = 'running'
    RETURNING ` + turnColumns + `
), co AS (
    INSERT INTO tool_calls (` + ledgerInsertColumns + `)
    SELECT ` + openCallValues("ot", "r", map[string]string{"status": "'failed'",
		"error_class": "'" + switchboard.ErrorClassInterrupted + "'", "error": "'" + callInterruptedNote + "'",
		"finished_at": "now()"}) + `
    FROM turns ot ` + openEntries("ot.open_calls") + `
    WHERE ot.id IN (SELECT id::uuid FROM t) AND ot.open_calls IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING ` + closedCallColumns + `
), cu AS (
    UPDATE tool_calls SET
        status = CASE WHEN tool_calls.status = 'running' THEN 'failed' ELSE 'cancelled' END,
        error_class = CASE WHEN tool_calls.status = 'running' THEN '` + switchboard.ErrorClassInterrupted + `' ELSE 'cancelled' END,
        error = CASE WHEN tool_calls.status = 'running' THEN '` + callInterruptedNote + `' ELSE '` + notRunNote + `' END,
        finished_at = now()
    FROM t
    WHERE tool_calls.turn_id = t.id::uuid AND tool_calls.status IN ('running', 'awaiting_approval')
        AND tool_calls.id NOT IN (SELECT tool_call_id FROM k)
    RETURNING ` + closedCallColumns + `
), c AS (
    SELECT * FROM cu UNION ALL SELECT * FROM co
), q AS (
    UPDATE inputs SET status = 'failed', reason = '` + inputGoneNote + `', answered_at = now()
    WHERE inputs.turn_id IN (SELECT id::uuid FROM t) AND inputs.status = 'pending'
        AND inputs.tool_call_id NOT IN (SELECT tool_call_id FROM k)
)` + selectClosed
}

// askingCalls selects the asking calls (tool_call_id, turn_id) of the
// turns that turns (a query of turn ids) names: running calls, not inside
// an agent used as a tool, whose modern server's question waits for an
// answer, or was answered and the answer not yet taken (TakeInput). Such a
// call can go on from any instance: it is made again with the answers and
// the stored requestState.
func askingCalls(turns string) string {
	return `
    SELECT DISTINCT i.tool_call_id, i.turn_id FROM inputs i JOIN tool_calls c ON c.id = i.tool_call_id
    WHERE i.turn_id IN (` + turns + `) AND i.request_key <> ''
        AND (i.status = 'pending' OR i.status = 'answered' AND i.taken_at IS NULL)
        AND c.status = 'running' AND c.parent_id IS NULL`
}

// closedCallColumns are the columns of a call closed with its turn, as
// selectClosed reads them.
const closedCallColumns = `tool_calls.id::text AS call, tool_calls.turn_id::text AS turn, tool_calls.call_id, tool_calls.step,
        tool_calls.server, tool_calls.tool, tool_calls.exposed_name, tool_calls.status AS call_status,
        tool_calls.error_class, tool_calls.error AS call_error, tool_calls.started_at AS call_started,
        tool_calls.finished_at AS call_finished`

// selectClosed ends a statement whose CTEs t (turns, turnColumns) and c
// (their calls, closedCallColumns) closed them: one row per turn and call.
const selectClosed = `
SELECT t.*, c.call, c.call_id, c.step, c.server, c.tool, c.exposed_name, c.call_status, c.error_class, c.call_error,
    c.call_started, c.call_finished
FROM t LEFT JOIN c ON c.turn = t.id
ORDER BY t.started_at, t.id, c.call_started, c.call`

// cancelAsking cancels user $2's turn of conversation $1 that awaits
// input (no instance holds it), with its calls and its pending questions,
// for the reason $3: the user cancelled it. Rows as failOrphaned's.
const cancelAsking = `
WITH t AS (
    UPDATE turns SET status = 'cancelled', error = $3::text, finished_at = now()
    WHERE conversation_id = $1 AND user_id = $2 AND status = 'awaiting_input'
    RETURNING ` + turnColumns + `
), c AS (
    UPDATE tool_calls SET status = 'cancelled', error_class = 'cancelled', error = $3::text, finished_at = now()
    FROM t
    WHERE tool_calls.turn_id = t.id::uuid AND tool_calls.status IN ('running', 'awaiting_approval')
    RETURNING ` + closedCallColumns + `
), q AS (
    UPDATE inputs SET status = 'cancelled', reason = $3::text, answered_at = now()
    WHERE inputs.turn_id IN (SELECT id::uuid FROM t) AND inputs.status = 'pending'
)` + selectClosed

// The statements of failOrphaned, made once.
var (
	// failOrphanOf fails the running turn of user $2's conversation $1
	// if it is orphaned for instance $3 and boot $4.
	failOrphanOf = failOrphaned(`conversation_id = $1 AND user_id = $2 AND ` + orphaned("$3", "$4"))
	// failOrphanOfCall fails the running turn of the conversation of
	// user $4's call $1 if it is orphaned for instance $2 and boot $3.
	failOrphanOfCall = failOrphaned(`conversation_id = (SELECT conversation_id FROM tool_calls WHERE id = $1 AND user_id = $4) AND ` +
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
			&t.RequestHash, &t.Agent, &t.Handoffs,
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

// RecoverTurns implements [Store.RecoverTurns]. The instance is Options.Instance.
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

const (
	// renewTurn extends a running turn's lease and reads whether its
	// cancellation was requested.
	renewTurn = `UPDATE turns SET lease_until = now() + $2::interval WHERE id = $1 AND status = 'running'
RETURNING cancel_requested`

	// requestCancel flags the running turn of a user's conversation and
	// tells the listening instances, when the transaction commits. It goes
	// after failOrphaned, in the same transaction: a turn still running
	// is held by a live instance.
	requestCancel = `
WITH t AS (
    UPDATE turns SET cancel_requested = true
    WHERE conversation_id = $1 AND user_id = $2 AND status = 'running'
    RETURNING id
)
SELECT id::text, pg_notify('` + CancelChannel + `', id::text) FROM t`
)

// RenewTurn implements [Store.RenewTurn].
func (p *Postgres) RenewTurn(ctx context.Context, id string) (cancelRequested bool, err error) {
	key, ok := lookupID(id)
	if !ok {
		return false, fmt.Errorf("renew turn %q: %w", id, switchboard.ErrNotFound)
	}
	if err := p.pool.QueryRow(ctx, renewTurn, key, LeaseDuration).Scan(&cancelRequested); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			p.open.forget(key) // it ended elsewhere
		}
		return false, fmt.Errorf("renew turn %s: %w", id, dbError(err))
	}
	return cancelRequested, nil
}

// RequestCancel implements [Store.RequestCancel]. The turn's id is also sent on the channel CancelChannel, which
// ListenCancels hears on every instance.
func (p *Postgres) RequestCancel(ctx context.Context, userID, conversationID string) (string, *switchboard.Interrupted, error) {
	key, ok := lookupID(conversationID)
	if !ok {
		return "", nil, fmt.Errorf("request cancel in %q: %w", conversationID, errNoRunningTurn(conversationID))
	}
	b := &pgx.Batch{}
	// The conversation first, as every writer of its turns locks it.
	b.Queue(`SELECT FROM conversations WHERE id = $1 FOR NO KEY UPDATE`, key)
	b.Queue(failOrphanOf, key, userID, p.instanceArg(), p.boot)
	b.Queue(cancelAsking, key, userID, askingCancelledNote)
	b.Queue(requestCancel, key, userID)
	var (
		id          string
		interrupted []switchboard.Interrupted
	)
	err := p.send(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if interrupted, err = collectInterrupted(rows); err != nil {
			return err
		}
		// A turn awaiting input (perhaps just stored so by failOrphanOf):
		// nobody runs it, so the cancel closes it at once.
		if rows, err = br.Query(); err != nil {
			return err
		}
		cancelled, err := collectInterrupted(rows)
		if err != nil {
			return err
		}
		if len(cancelled) > 0 {
			interrupted = cancelled
		}
		err = br.QueryRow().Scan(&id, new(any))
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, err)
	}
	switch {
	case len(interrupted) > 0:
		return interrupted[0].Turn.ID, &interrupted[0], nil
	case id == "":
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, errNoRunningTurn(conversationID))
	}
	return id, nil, nil
}

// CancelChannel is the Postgres notification channel of RequestCancel.
const CancelChannel = "switchboard_cancel"

// ListenCancels calls fn with the id of every turn whose cancellation is
// requested (RequestCancel, by any instance), until ctx ends. It listens on
// a connection of its own to url, which must be a direct connection (LISTEN
// needs a session; a transaction-pooling proxy does not keep one), and
// reconnects with backoff when it breaks, logging to logger. A request made
// while it is disconnected reaches its turn at the turn's next lease renewal.
func ListenCancels(ctx context.Context, url string, logger *slog.Logger, fn func(turnID string)) {
	listen(ctx, url, CancelChannel, "switchboard cancel listener", logger, fn)
}

// listen calls fn with the payload of every notification on channel
// until ctx ends, on a connection of its own to url (named name), which it
// makes again with backoff when it breaks.
func listen(ctx context.Context, url, channel, name string, logger *slog.Logger, fn func(payload string)) {
	// pgxpool's parser, so that a URL with pool_* parameters (which
	// OpenPostgres takes) does not send them to the server as settings.
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		logger.Error("cannot listen for notifications: the database url does not parse; other instances reach this one's turns at lease renewal only", "channel", channel, "err", err)
		return
	}
	cfg := pcfg.ConnConfig
	cfg.RuntimeParams["application_name"] = name
	backoff := 100 * time.Millisecond
	for {
		listened, err := listenOnce(ctx, cfg, channel, fn)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = 100 * time.Millisecond
		}
		logger.Warn("listening for notifications failed; retrying", "channel", channel, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// listenOnce listens until its connection fails; listened tells whether
// it got as far as listening.
func listenOnce(ctx context.Context, cfg *pgx.ConnConfig, channel string, fn func(payload string)) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, dbError(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return false, dbError(err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, dbError(err)
		}
		fn(n.Payload)
	}
}
