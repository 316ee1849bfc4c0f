package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-dev/switchboard"
)

// BeginTurn and SaveTurn each send one pgx batch: Postgres runs a batch as
// one implicit transaction, rolled back if a statement fails. Decisions that
// Go takes after reading results (a conversation of another user, a turn that
// does not exist) never need a rollback, because every write is guarded by
// the same condition in SQL: when it fails, the batch wrote nothing.

const (
	insertConversation = `
INSERT INTO conversations (id, user_id, external_id, title, status, created_at, updated_at, agent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

	// touchConversation bumps a conversation of the user and locks its row,
	// which serialises the writes of its turns; a turn that names its
	// agent ($4) makes it the conversation's current one.
	touchConversation = `
UPDATE conversations SET updated_at = $3, agent = COALESCE(NULLIF($4::text, ''), agent) WHERE id = $1 AND user_id = $2
RETURNING ` + conversationColumns

	insertTurn = `
INSERT INTO turns (id, conversation_id, user_id, status, idempotency_key, steps, prompt_tokens,
    completion_tokens, llm_ms, tools_ms, store_ms, overhead_ms, error, started_at, finished_at,
    request_hash, lease_until, lease_instance, lease_boot, agent)
SELECT $1::uuid, c.id, c.user_id, $4::text, $5::varchar, $6::bigint, $7::bigint,
    $8::bigint, $9::float8, $10::float8, $11::float8, $12::float8, $13::text, $14::timestamptz, $15::timestamptz,
    $16::text, now() + $17::interval, $18::text, $19::uuid, $20::text
FROM conversations c WHERE c.id = $2 AND c.user_id = $3`

	// insertTurnWithMessage is insertTurn ($1-$20) storing the user's
	// message ($21-$27) of the turn too, in one statement.
	insertTurnWithMessage = `
WITH t AS (` + insertTurn + `
    RETURNING id, conversation_id
)` + insertUserMessage

	// lockConversation locks user $2's conversation $1 as
	// touchConversation does, without writing it: no row if it is not
	// the user's.
	lockConversation = `
SELECT FROM conversations WHERE id = $1 AND user_id = $2 FOR NO KEY UPDATE`

	// startQuietTurn follows lockConversation in the quiet batch (see
	// BeginTurn): insertTurnWithMessage and touchConversation in one
	// statement ($28 the time), storing and bumping nothing if conversation
	// $2 has what failOrphanOf or cancelWaiting would act on: a running
	// turn (orphaned or not: a live one makes the insert fail), a turn
	// awaiting an approval or input, a call awaiting an approval, each
	// looked for through the partial index that holds only such rows. It
	// returns the bumped conversation, no row if it stored nothing.
	startQuietTurn = `
WITH t AS (` + insertTurn + `
        AND NOT EXISTS (SELECT FROM turns WHERE conversation_id = $2 AND status = 'running')
        AND NOT EXISTS (SELECT FROM turns WHERE conversation_id = $2 AND status = 'awaiting_approval')
        AND NOT EXISTS (SELECT FROM turns WHERE conversation_id = $2 AND status = 'awaiting_input')
        AND NOT EXISTS (SELECT FROM tool_calls WHERE conversation_id = $2 AND status = 'awaiting_approval')
    RETURNING id, conversation_id
), m AS (` + insertUserMessage + `
), touched AS (
    UPDATE conversations SET updated_at = $28, agent = COALESCE(NULLIF($20::text, ''), agent)
    WHERE id = $2 AND user_id = $3 AND EXISTS (SELECT FROM t)
    RETURNING ` + conversationColumns + `
)
SELECT * FROM touched`

	// insertUserMessage ends insertTurnWithMessage: the user's message of
	// the turn the CTE t inserted.
	insertUserMessage = `
INSERT INTO messages (id, conversation_id, turn_id, role, content, message_type, "timestamp", tool_call_id, metadata)
SELECT $21::uuid, t.conversation_id, t.id, $22::varchar, $23::text, $24::varchar, $25::timestamptz, $26::text, $27::jsonb
FROM t`

	// insertMessage stores a message of an existing turn, in the turn's
	// conversation.
	insertMessage = `
INSERT INTO messages (id, conversation_id, turn_id, role, content, message_type, "timestamp", tool_call_id, metadata)
SELECT $1::uuid, t.conversation_id, t.id, $3::varchar, $4::text, $5::varchar, $6::timestamptz, $7::text, $8::jsonb
FROM turns t WHERE t.id = $2 AND t.conversation_id = $9`

	// selectHistory reads the latest $3 messages of the transcript, in
	// order, each with its seq and the seq it read after: $4 if the
	// message $5 (the last of a cached window, see historyCache) is still
	// in the transcript with that seq, else 0 (the whole window). The id
	// matters: a lost commit can give its seq to another message.
	selectHistory = `
WITH b AS (
    SELECT CASE WHEN EXISTS (SELECT FROM messages WHERE conversation_id = $1 AND seq = $4 AND id = $5::uuid AND superseded_by IS NULL)
        THEN $4::bigint ELSE 0 END AS after
), w AS (
    SELECT * FROM messages
    WHERE conversation_id = $1 AND superseded_by IS NULL
        AND EXISTS (SELECT FROM conversations WHERE id = $1 AND user_id = $2)
        AND seq > (SELECT after FROM b)
    ORDER BY seq DESC LIMIT $3
)
SELECT ` + messageColumns + `, seq, (SELECT after FROM b) FROM w ORDER BY seq`

	// supersedeAfter finds the user message to answer again: the
	// conversation's $2-th (from 1) if its content is $4, else its last if
	// that is (a client whose count is off by messages it sent but we
	// refused). It marks every message after it superseded by turn $3, and
	// cancels the calls of those messages' turns that await an approval,
	// with the turns: the question they would answer was answered again. It
	// returns whether it found the message, and whether there is a $2-th.
	supersedeAfter = `
WITH users AS (
    SELECT seq, content, row_number() OVER (ORDER BY seq) AS n, count(*) OVER () AS total
    FROM messages
    WHERE conversation_id = $1 AND role = 'user' AND superseded_by IS NULL
        AND EXISTS (SELECT FROM conversations WHERE id = $1 AND user_id = $5)
), target AS (
    SELECT seq FROM users
    WHERE content = $4 AND (n = $2 OR n = total)
    ORDER BY n = $2 DESC
    LIMIT 1
), marked AS (
    UPDATE messages m SET superseded_by = $3
    FROM target
    WHERE m.conversation_id = $1 AND m.superseded_by IS NULL AND m.seq > target.seq
    RETURNING m.turn_id
)` + cancelWaitingOfMarked + `
SELECT EXISTS (SELECT FROM target), EXISTS (SELECT FROM users WHERE n = $2)`

	// supersedeFrom marks the conversation's $2-th user message (from 1),
	// if there is one, and every message after it superseded by turn $3,
	// cancelling what awaited an approval as supersedeAfter does: the user
	// edited that message, and the edit is stored after them.
	//
	// The batch it is in does not stop when the conversation turns out not
	// to be the user's ($4): it checks the owner itself, as supersedeAfter
	// does ($5).
	supersedeFrom = `
WITH target AS (
    SELECT seq FROM messages
    WHERE conversation_id = $1 AND role = 'user' AND superseded_by IS NULL
        AND EXISTS (SELECT FROM conversations WHERE id = $1 AND user_id = $4)
    ORDER BY seq OFFSET $2::bigint - 1 LIMIT 1
), marked AS (
    UPDATE messages m SET superseded_by = $3
    FROM target
    WHERE m.conversation_id = $1 AND m.superseded_by IS NULL AND m.seq >= target.seq
    RETURNING m.turn_id
)` + cancelWaitingOfMarked + `
SELECT`

	// cancelWaiting cancels the calls of user $2's conversation $1 that
	// await an approval, and the turn that awaits one: a new turn went on
	// without a decision, and they can no longer run. Calls, not the
	// awaiting turn's calls: a turn resumed by a decision may have ended
	// (failed, cancelled) with others undecided. Through the partial
	// indexes turns_awaiting and tool_calls_awaiting, empty but for them.
	//
	// It cancels the turn awaiting input too (stored so when its instance
	// stopped while a modern server's question waited), with its asking
	// calls and their questions: the user went on without answering.
	// Through turns_awaiting_input, as empty.
	cancelWaiting = `
WITH waiting AS (
    UPDATE turns SET status = 'cancelled', error = '` + wentOnNote + `', finished_at = now()
    WHERE conversation_id = $1 AND user_id = $2 AND status = 'awaiting_approval'
), asking AS (
    UPDATE turns SET status = 'cancelled', error = '` + wentOnInputNote + `', finished_at = now()
    WHERE conversation_id = $1 AND user_id = $2 AND status = 'awaiting_input'
    RETURNING id
), questions AS (
    UPDATE inputs SET status = 'cancelled', reason = '` + wentOnInputNote + `', answered_at = now()
    WHERE turn_id IN (SELECT id FROM asking) AND status = 'pending'
), asked AS (
    UPDATE tool_calls SET status = 'cancelled', error_class = 'cancelled', error = '` + wentOnInputNote + `', finished_at = now()
    WHERE turn_id IN (SELECT id FROM asking) AND status = 'running'
    RETURNING id::text, turn_id::text, server, tool, finished_at
), undecided AS (
    UPDATE tool_calls SET status = 'cancelled', error_class = 'cancelled', error = '` + wentOnNote + `', finished_at = now()
    WHERE conversation_id = $1 AND user_id = $2 AND status = 'awaiting_approval'
    RETURNING id::text, turn_id::text, server, tool, finished_at
)
SELECT * FROM undecided UNION ALL SELECT * FROM asked`

	// cancelWaitingOfMarked goes on a WITH whose CTE "marked" returns the
	// turn ids of superseded messages: it cancels those turns that await an
	// approval, with their waiting calls.
	cancelWaitingOfMarked = `, waiting AS (
    UPDATE turns SET status = 'cancelled', error = '` + supersededNote + `', finished_at = now()
    WHERE id IN (SELECT turn_id FROM marked) AND status = 'awaiting_approval'
    RETURNING id
), calls AS (
    UPDATE tool_calls SET status = 'cancelled', error_class = 'cancelled', error = '` + supersededNote + `', finished_at = now()
    WHERE turn_id IN (SELECT id FROM waiting) AND status = 'awaiting_approval'
)`

	// touchTurnConversation bumps the conversation of a turn first, so that
	// every writer locks a conversation before its turns, as
	// DeleteConversation does: no deadlocks. It opens updateTurn's statement ($17 is the
	// time): the turn's row is updated only if it ran (see updateTurn).
	touchTurnConversation = `
WITH conversation AS (
    UPDATE conversations SET updated_at = $17 WHERE id = (SELECT conversation_id FROM turns WHERE id = $1)
    RETURNING 1
)`

	// lockTurnConversation takes the same lock as touchTurnConversation
	// without writing the conversation row: a step of a running turn does not
	// move updated_at. FOR NO KEY UPDATE is what an UPDATE of the row takes,
	// so a step still queues behind a turn starting (touchConversation) and a
	// delete, in the same order: a weaker lock let a step's save and a
	// regenerate's start wait on each other.
	lockTurnConversation = `
WITH conversation AS (
    SELECT FROM conversations WHERE id = (SELECT conversation_id FROM turns WHERE id = $1) FOR NO KEY UPDATE
)`

	// asyncCommit lets the batch's commit return before its WAL is flushed.
	// The next synchronous commit of the database flushes it too (the WAL is
	// one sequence), so it only serves a turn's start, whose later commits
	// (a step's, or the turn's end) are synchronous; see BeginTurn.
	asyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`

	// updateTurn follows touchTurnConversation or lockTurnConversation in
	// one statement: its uncorrelated EXISTS is a one-time filter, which
	// Postgres evaluates before it reads the turn's row, so the
	// conversation is locked first (TestSaveTurnLocksConversationFirst).
	// $2 is text (the column is the domain turn_status, which its other
	// uses would contradict); the assignment checks it against the domain.
	updateTurn = `
UPDATE turns SET status = $2::text, steps = $3, prompt_tokens = $4, completion_tokens = $5, llm_ms = $6,
    tools_ms = $7, store_ms = $8, overhead_ms = $9, error = $10, finished_at = $11,
    lease_until = CASE WHEN $2 = 'running' THEN now() + $12::interval END,
    lease_instance = CASE WHEN $2 = 'running' THEN $13::text ELSE lease_instance END,
    lease_boot = CASE WHEN $2 = 'running' THEN $14::uuid ELSE lease_boot END,
    cancel_requested = ($2 = 'running' AND cancel_requested),
    agent = $15, handoffs = $16, open_calls = @OPEN_CALLS
WHERE id = $1 AND EXISTS (SELECT FROM conversation)
RETURNING id, conversation_id, user_id`

	// setConversationAgent makes a turn's agent its conversation's
	// current one (a handoff).
	setConversationAgent = `
UPDATE conversations SET agent = $2 WHERE id = (SELECT conversation_id FROM turns WHERE id = $1)`

	// saveMessages stores a save's messages (@1-@7: arrays, maybe empty)
	// in the turn the CTE t updated, in one INSERT, in their order (seq
	// follows the insert's).
	saveMessages = `
m AS (
    INSERT INTO messages (id, conversation_id, turn_id, role, content, message_type, "timestamp", tool_call_id, metadata)
    SELECT m.id::uuid, t.conversation_id, t.id, m.role, m.content, m.type, m.ts, m.tool_call_id, m.meta::jsonb
    FROM t, unnest(@1::text[], @2::varchar[], @3::text[], @4::varchar[], @5::timestamptz[], @6::text[], @7::text[])
        WITH ORDINALITY AS m(id, role, content, type, ts, tool_call_id, meta, n)
    ORDER BY m.n
    RETURNING 1
)`

	// saveToolCallArgs is the number of parameters of saveToolCall.
	saveToolCallArgs = 25

	// insertToolCallContent stores the bytes of a binary part of a call of
	// turn $9, which the batch upserted before.
	insertToolCallContent = `
INSERT INTO tool_call_content (tool_call_id, idx, kind, mime_type, uri, size, sha256, data)
SELECT c.id, $2::integer, $3::text, $4::text, $5::text, $6::integer, $7::bytea, $8::bytea
FROM tool_calls c WHERE c.id = $1::uuid AND c.turn_id = $9::uuid
ON CONFLICT (tool_call_id, idx) DO NOTHING`

	// selectTurnsOfConversation reads a conversation's turns in order,
	// through the index turns_conversation. The ORDER BY names the
	// table's columns: a bare id would be the selected id::text.
	selectTurnsOfConversation = `SELECT ` + turnColumns + ` FROM turns WHERE conversation_id = $1 ORDER BY turns.started_at, turns.id`

	turnColumns = `id::text, conversation_id::text, user_id, status, COALESCE(idempotency_key, ''), steps,
    prompt_tokens, completion_tokens, llm_ms, tools_ms, store_ms, overhead_ms, error, started_at, finished_at,
    request_hash, agent, handoffs`
)

// BeginTurn implements [Store.BeginTurn].
//
// Its commit does not wait for the disk flush: the turn's next commit
// (SaveTurn's, which waits) makes it durable too, so the user's message is
// durable before a tool runs or the final reply goes out. A database crash
// in between loses a turn that had not finished (streamed parts a client saw
// included). This takes one of a turn's three flushes off its path.
func (p *Postgres) BeginTurn(ctx context.Context, s *switchboard.TurnStart) ([]switchboard.Message, error) {
	now := now()
	create, err := prepareTurnStart(s, now)
	if err != nil {
		return nil, fmt.Errorf("begin turn: %w", err)
	}
	c, t, m := &s.Conversation, &s.Turn, &s.UserMessage
	// A start that supersedes messages reads the window whole.
	var cached *historyEntry
	if !create && s.Edit == 0 && s.Regenerate == 0 {
		cached = p.history.get(c.ID, s.HistoryLimit)
	}
	plain := s.Edit == 0 && s.Regenerate == 0
	var stored switchboard.Conversation
	history := []switchboard.Message{cloneMessage(*m)}
	var read *historyEntry // the window to cache
	var cancelled []switchboard.ToolCall
	var interrupted []switchboard.Interrupted
	// A plain start of a turn in an existing conversation first sends the
	// quiet batch: without the statements that fail an orphaned turn and
	// cancel what waits (failOrphanOf, cancelWaiting), which find nothing
	// in almost every conversation but cost Postgres more than their
	// finding (see BENCHMARKS.md), and with the turn's insert guarded by
	// the absence of what they would act on. When the guard stored nothing
	// (errNotQuiet), the full batch follows. The conversation's row, locked
	// by the statement before the guard's, makes the guard's reading
	// current: every writer of its turns and calls locks it first.
	for quiet := !create && plain; ; quiet = false {
		var b *pgx.Batch
		if b, err = p.beginTurnBatch(s, create, quiet, cached, now); err != nil {
			return nil, fmt.Errorf("begin turn: %w", err)
		}
		stored = *c
		send := p.send
		if s.Regenerate > 0 {
			// Whether the message to answer again is there and unchanged is
			// known only from the batch's results: roll back when it is not.
			send = p.sendInTx
		}
		err = send(ctx, b, func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil { // asyncCommit
				return err
			}
			if create {
				if _, err := br.Exec(); err != nil {
					return err
				}
			} else if quiet {
				tag, err := br.Exec() // lockConversation
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					return fmt.Errorf("load conversation %s: %w", c.ID, switchboard.ErrNotFound)
				}
			} else {
				conv, err := scanConversation(br.QueryRow())
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("load conversation %s: %w", c.ID, switchboard.ErrNotFound)
				}
				if err != nil {
					return err
				}
				stored = conv
				rows, err := br.Query() // failOrphaned
				if err != nil {
					return err
				}
				if interrupted, err = collectInterrupted(rows); err != nil {
					return err
				}
			}
			if quiet {
				conv, err := scanConversation(br.QueryRow())
				if errors.Is(err, pgx.ErrNoRows) {
					return errNotQuiet
				}
				if err != nil {
					return err
				}
				stored = conv
			} else if err := execOne(br, "turn"); err != nil {
				return err
			}
			if s.Edit > 0 {
				if _, err := br.Exec(); err != nil { // supersedeFrom
					return err
				}
			}
			if s.Regenerate > 0 {
				var found, nth bool
				err := br.QueryRow().Scan(&found, &nth)
				switch {
				case err != nil:
					return err
				case !found && nth:
					return errRegenerateMismatch()
				case !found:
					return errNothingToRegenerate(s.Regenerate)
				}
			} else if !plain {
				if err := execOne(br, "message"); err != nil {
					return err
				}
			}
			if !create {
				if !quiet {
					if cancelled, err = collectCancelled(br); err != nil {
						return err
					}
				}
				rows, err := br.Query()
				if err != nil {
					return err
				}
				msgs, lastSeq, after, err := collectHistory(rows)
				if err != nil {
					return err
				}
				history = msgs
				if cached != nil && after == cached.lastSeq && after > 0 {
					history = cached.window(msgs)
				}
				read = &historyEntry{conversationID: c.ID, limit: s.HistoryLimit, lastSeq: lastSeq}
			}
			return nil
		})
		if quiet && errors.Is(err, errNotQuiet) {
			continue
		}
		break
	}
	if err != nil {
		return nil, fmt.Errorf("begin turn: %w", err)
	}
	history = slices.Grow(history, historyRoom)
	switch {
	case read == nil:
	case read.lastSeq == 0:
		// Nothing read: no window to keep, and the one kept is not to be
		// trusted (it should have had newer messages, this one at least).
		p.history.drop(c.ID)
	default:
		// The cache keeps the window's messages in an array of its own
		// (what the turn appends to the window's room would otherwise stay
		// alive with the entry, uncounted), not copies of them: the caller
		// modifies none (see Store.BeginTurn).
		read.msgs = slices.Clone(history)
		p.history.put(read)
	}
	*c = stored
	s.Cancelled = cancelled
	for i := range s.Cancelled {
		s.Cancelled[i].UserID, s.Cancelled[i].ConversationID = t.UserID, c.ID
	}
	s.Interrupted = nil
	if len(interrupted) > 0 { // one at most: a conversation runs one turn
		s.Interrupted = &interrupted[0]
	}
	return history, nil
}

// errNotQuiet is what the quiet batch of BeginTurn ends with when its
// guard stored nothing: the full batch follows.
var errNotQuiet = errors.New("the conversation has a turn or a call that a start must close first")

// beginTurnBatch queues the statements of a turn's start (see BeginTurn):
// quiet leaves out failOrphanOf and cancelWaiting and guards the insert.
func (p *Postgres) beginTurnBatch(s *switchboard.TurnStart, create, quiet bool, cached *historyEntry, now time.Time) (*pgx.Batch, error) {
	c, t, m := &s.Conversation, &s.Turn, &s.UserMessage
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	if create {
		c.Agent = t.Agent
		b.Queue(insertConversation, c.ID, c.UserID, nullString(c.ExternalID), c.Title, c.Status, c.CreatedAt, c.UpdatedAt, c.Agent)
	} else if quiet {
		b.Queue(lockConversation, c.ID, t.UserID)
	} else {
		b.Queue(touchConversation, c.ID, t.UserID, now, t.Agent)
		// The user's condition: the batch goes on for another user's conversation.
		b.Queue(failOrphanOf, c.ID, t.UserID, p.instanceArg(), p.boot)
	}
	turnArgs := []any{t.ID, c.ID, t.UserID, string(t.Status), nullString(t.IdempotencyKey),
		t.Steps, t.PromptTokens, t.CompletionTokens, millis(t.Timing.LLM), millis(t.Timing.Tools),
		millis(t.Timing.Store), millis(t.Timing.Overhead), t.Error, t.StartedAt, nullTime(t.FinishedAt),
		t.RequestHash, LeaseDuration, p.instanceArg(), p.boot, t.Agent}
	// A plain start stores the turn and its message in one statement; an
	// edit marks the messages it replaces in between, a regenerate stores
	// no message.
	plain := s.Edit == 0 && s.Regenerate == 0
	if plain {
		meta, err := messageMeta(m)
		if err != nil {
			return nil, err
		}
		args := append(turnArgs, m.ID, string(m.Role), m.Content, string(m.Type), m.Timestamp, nullString(m.ToolCallID), meta)
		if quiet {
			b.Queue(startQuietTurn, append(args, now)...)
		} else {
			b.Queue(insertTurnWithMessage, args...)
		}
	} else {
		b.Queue(insertTurn, turnArgs...)
	}
	if s.Edit > 0 {
		b.Queue(supersedeFrom, c.ID, s.Edit, t.ID, t.UserID)
	}
	if s.Regenerate > 0 {
		b.Queue(supersedeAfter, c.ID, s.Regenerate, t.ID, m.Content, t.UserID)
	} else if !plain {
		if err := queueMessage(b, m, t.ID, c.ID); err != nil {
			return nil, err
		}
	}
	if !create {
		if !quiet {
			b.Queue(cancelWaiting, c.ID, t.UserID)
		}
		afterSeq, afterID := int64(0), any(nil)
		if cached != nil {
			afterSeq, afterID = cached.lastSeq, cached.msgs[len(cached.msgs)-1].ID
		}
		b.Queue(selectHistory, c.ID, t.UserID, historyLimit(s.HistoryLimit), afterSeq, afterID)
	}
	return b, nil
}

// collectCancelled reads the calls cancelWaiting cancelled.
func collectCancelled(br pgx.BatchResults) ([]switchboard.ToolCall, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []switchboard.ToolCall
	for rows.Next() {
		c := switchboard.ToolCall{Status: switchboard.CallCancelled, ErrorClass: switchboard.ErrorClassCancelled, Error: wentOnNote}
		var finished pgtype.Timestamptz
		if err := rows.Scan(&c.ID, &c.TurnID, &c.Server, &c.Tool, &finished); err != nil {
			return nil, err
		}
		c.FinishedAt = fromTimestamptz(finished)
		out = append(out, c)
	}
	return out, rows.Err()
}

// execOne reads the result of an insert that must have stored one row.
func execOne(br pgx.BatchResults, what string) error {
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("insert %s: %d rows stored, want 1", what, tag.RowsAffected())
	}
	return nil
}

func historyLimit(n int) any {
	if n <= 0 {
		return nil // LIMIT NULL: all
	}
	return n
}

// SaveTurn implements [Store.SaveTurn].
func (p *Postgres) SaveTurn(ctx context.Context, u *switchboard.TurnUpdate) error {
	now := now()
	if err := prepareTurnUpdate(u, now); err != nil {
		return fmt.Errorf("save turn: %w", err)
	}
	t := &u.Turn
	b := &pgx.Batch{}
	args := make([]any, 0, 17+7+saveToolCallArgs*len(u.ToolCalls))
	args = append(args, t.ID, string(t.Status), t.Steps, t.PromptTokens, t.CompletionTokens,
		millis(t.Timing.LLM), millis(t.Timing.Tools), millis(t.Timing.Store), millis(t.Timing.Overhead),
		t.Error, nullTime(t.FinishedAt), LeaseDuration, p.instanceArg(), p.boot, t.Agent, t.Handoffs)
	ended := t.Status != switchboard.TurnRunning
	if ended {
		args = append(args, now)
	}
	args, err := appendMessageArrays(args, u.Messages)
	if err != nil {
		return fmt.Errorf("save turn %s: %w", t.ID, err)
	}
	// rows are the calls the save writes ledger rows of: a step's running
	// calls stay open on the turn's row (see saveStatement), and an end
	// writes those it left open. When the tracker may not know them, the
	// statement reads them from the turn's row instead (see openTracker).
	rows := u.ToolCalls
	if !ended {
		rows = make([]switchboard.ToolCall, 0, len(u.ToolCalls))
		for _, c := range u.ToolCalls {
			if c.Status != switchboard.CallRunning {
				rows = append(rows, c)
			}
		}
	}
	rows, known := p.open.rows(t.ID, rows, u.ToolCalls, ended)
	shape := saveShape{ended: ended, calls: len(rows), open: !known, leftover: ended && !known}
	if !ended || shape.leftover {
		ids := make([]string, len(u.ToolCalls))
		for i, c := range u.ToolCalls {
			ids[i] = c.ID
		}
		args = append(args, ids)
	}
	if !ended {
		open, err := openCalls(u.ToolCalls)
		if err != nil {
			return fmt.Errorf("save turn %s: %w", t.ID, err)
		}
		args = append(args, open)
	}
	for _, c := range rows {
		listing, err := contentJSON(c.Content)
		if err != nil {
			return fmt.Errorf("save turn %s: %w", t.ID, err)
		}
		args = append(args, c.ID, c.CallID, c.Step, c.Server, c.Tool, c.ExposedName,
			nullJSON(c.Arguments), c.Result, nullJSON(c.StructuredResult), string(c.Status), c.ErrorClass, c.Error,
			millis(c.Duration), c.ResultSize, c.Truncated, c.StartedAt, nullTime(c.FinishedAt),
			c.SessionScope, c.SessionKey, c.SessionGeneration, c.TaskID, c.TaskStatus, listing, c.Agent, nullString(c.ParentID))
	}
	b.Queue(saveStatement(shape), args...)
	if u.ConversationAgent != "" {
		b.Queue(setConversationAgent, t.ID, u.ConversationAgent)
	}
	contents := 0
	for _, c := range rows {
		for _, p := range c.Content {
			if p.Data == nil {
				continue
			}
			sum, err := hex.DecodeString(p.SHA256)
			if err != nil {
				return fmt.Errorf("save turn %s: content %d of call %s: sha256 %q is not hex: %w", t.ID, p.Index, c.ID, p.SHA256, switchboard.ErrInvalid)
			}
			b.Queue(insertToolCallContent, c.ID, p.Index, string(p.Kind), p.MIMEType, p.URI, len(p.Data), sum, p.Data, t.ID)
			contents++
		}
	}

	var conversationID, userID string
	started := make([]pgtype.Timestamptz, len(rows))
	err = p.send(ctx, b, func(br pgx.BatchResults) error {
		var stored int64
		dest := make([]any, 0, 3+len(started))
		dest = append(dest, &conversationID, &userID, &stored)
		for i := range started {
			dest = append(dest, &started[i])
		}
		err := br.QueryRow().Scan(dest...)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("load turn: %w", switchboard.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if stored != int64(len(u.Messages)) {
			return fmt.Errorf("insert messages: %d rows stored, want %d", stored, len(u.Messages))
		}
		if u.ConversationAgent != "" {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		for range contents {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save turn %s: %w", t.ID, err)
	}
	p.open.saved(t.ID, u.ToolCalls, ended)
	t.ConversationID, t.UserID = conversationID, userID
	for i := range u.Messages {
		u.Messages[i].ConversationID = conversationID
	}
	written := 0
	for i := range u.ToolCalls {
		c := &u.ToolCalls[i]
		c.UserID, c.ConversationID = userID, conversationID
		if ended || c.Status != switchboard.CallRunning {
			c.StartedAt = fromTimestamptz(started[written])
			written++
		}
	}
	return nil
}

// send sends b and reads its results with read. The batch is one implicit
// transaction: if a statement fails, nothing of b is stored.
func (p *Postgres) send(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	br := p.pool.SendBatch(ctx, b)
	err := read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return dbError(err)
}

// sendInTx is send in an explicit transaction, rolled back when read fails:
// for batches whose success Go decides from their results.
func (p *Postgres) sendInTx(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	return dbError(pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		err := read(br)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	}))
}

// messageMetadata is the JSON of messages.metadata: what a message carries
// beyond the seed's columns.
type messageMetadata struct {
	ToolCalls   []switchboard.RequestedCall `json:"tool_calls,omitempty"`
	ToolName    string                      `json:"tool_name,omitempty"`
	Attachments []switchboard.ContentPart   `json:"attachments,omitempty"`
	Agent       string                      `json:"agent,omitempty"`
	Handoff     *switchboard.Handoff        `json:"handoff,omitempty"`
	Structured  json.RawMessage             `json:"structured,omitempty"`
}

// contentJSON is the listing of a call's binary parts, for the ledger
// row's content column (NULL for none).
func contentJSON(parts []switchboard.ContentPart) (any, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(parts)
	if err != nil {
		return nil, fmt.Errorf("encode content: %w", err)
	}
	return string(raw), nil
}

// queueMessage queues the insert of a message of turn turnID, which must
// be of conversation conversationID: a start naming another user's
// conversation with the id of a turn of one's own stores nothing.
func queueMessage(b *pgx.Batch, m *switchboard.Message, turnID, conversationID string) error {
	meta, err := messageMeta(m)
	if err != nil {
		return err
	}
	b.Queue(insertMessage, m.ID, turnID, string(m.Role), m.Content, string(m.Type), m.Timestamp,
		nullString(m.ToolCallID), meta, conversationID)
	return nil
}

// appendMessageArrays appends to args the arrays of saveMessages: msgs'
// columns.
func appendMessageArrays(args []any, msgs []switchboard.Message) ([]any, error) {
	n := len(msgs)
	ids, roles, contents, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times, toolCallIDs, metas := make([]time.Time, n), make([]*string, n), make([]*string, n)
	for i := range msgs {
		m := &msgs[i]
		ids[i], roles[i], contents[i], types[i], times[i] = m.ID, string(m.Role), m.Content, string(m.Type), m.Timestamp
		if m.ToolCallID != "" {
			toolCallIDs[i] = &m.ToolCallID
		}
		meta, err := messageMeta(m)
		if err != nil {
			return nil, err
		}
		metas[i] = meta
	}
	return append(args, ids, roles, contents, types, times, toolCallIDs, metas), nil
}

// ledgerValues are the values saveToolCall writes, by column in
// ledgerInsertColumns' order: a parameter (@1-@25) or a column of the turn
// t. Those marked start only the insert writes; def is a start column's
// default, which an open_calls entry leaves out.
var ledgerValues = []struct {
	value, def string
	start      bool
}{
	{"@1::uuid", "", false}, {"@2::text", "''", true}, {"t.user_id", "", false}, {"t.conversation_id", "", false},
	{"t.id", "", false}, {"@3::bigint", "0", true}, {"@4::varchar", "", true}, {"@5::varchar", "", true},
	{"@6::varchar", "''", true}, {"@7::jsonb", "", true}, {"@8::text", "", false}, {"@9::jsonb", "", false},
	{"@10::text", "", false}, {"@11::text", "", false}, {"@12::text", "", false}, {"@13::float8", "", false},
	{"@14::bigint", "", false}, {"@15::boolean", "", false}, {"@16::timestamptz", "", true},
	{"@17::timestamptz", "", false}, {"@18::text", "", false}, {"@19::text", "", false}, {"@20::bigint", "", false},
	{"@21::text", "", false}, {"@22::text", "", false}, {"@23::jsonb", "", false}, {"@24::text", "''", true},
	{"@25::uuid", "", true},
}

// saveToolCall is the CTE body that inserts a ledger row (@1-@25) of the
// turn the CTE t updated, or finishes it. The arbiter is (turn_id, id): an
// id taken by another turn's call violates the primary key. With open
// (the statement has the CTE prev: the turn's open_calls before its
// update), the columns only the insert writes (the call's start) come from
// the call's entry in open_calls (o) when it has one: a call that started
// in an earlier step is inserted as it started, as an update of its row
// would have kept them.
func saveToolCall(open bool) string {
	var b strings.Builder
	b.WriteString("\n    INSERT INTO tool_calls (" + ledgerInsertColumns + ")\n    SELECT ")
	cols := strings.Split(ledgerInsertColumns, ",")
	for i, v := range ledgerValues {
		if i > 0 {
			b.WriteString(", ")
		}
		col := strings.TrimSpace(cols[i])
		switch {
		case !open || !v.start:
			b.WriteString(v.value)
		case v.def != "":
			fmt.Fprintf(&b, "CASE WHEN o.id IS NULL THEN %s ELSE COALESCE(o.%s, %s) END", v.value, col, v.def)
		default:
			fmt.Fprintf(&b, "CASE WHEN o.id IS NULL THEN %s ELSE o.%s END", v.value, col)
		}
	}
	b.WriteString("\n    FROM t")
	if open {
		b.WriteString(" LEFT JOIN LATERAL jsonb_populate_record(NULL::tool_calls, (SELECT open_calls FROM prev) -> @1::text) o ON true")
	}
	b.WriteString(`
    ON CONFLICT (turn_id, id) DO UPDATE SET
        status = EXCLUDED.status, result = EXCLUDED.result, structured_result = EXCLUDED.structured_result,
        content = EXCLUDED.content,
        error = EXCLUDED.error, error_class = EXCLUDED.error_class, duration_ms = EXCLUDED.duration_ms,
        result_size = EXCLUDED.result_size, truncated = EXCLUDED.truncated, finished_at = EXCLUDED.finished_at,
        session_scope = EXCLUDED.session_scope, session_key = EXCLUDED.session_key,
        session_generation = EXCLUDED.session_generation, task_id = EXCLUDED.task_id, task_status = EXCLUDED.task_status
    RETURNING started_at`)
	return b.String()
}

// saveShape is what SaveTurn's statement depends on: whether the turn
// ends, how many ledger rows the save writes, whether the turn may have
// calls open on its row (open), and whether an end may leave some the save
// does not write (leftover).
type saveShape struct {
	ended          bool
	calls          int
	open, leftover bool
}

// openCall is a running call's ledger row as its turn's open_calls keeps
// it (migration 00057): the values saveToolCall would write, by column,
// those at the column's default left out (openCallValues reads them so).
type openCall struct {
	ID                string          `json:"id"`
	CallID            string          `json:"call_id,omitempty"`
	Step              int             `json:"step,omitempty"`
	Server            string          `json:"server"`
	Tool              string          `json:"tool"`
	ExposedName       string          `json:"exposed_name,omitempty"`
	Arguments         json.RawMessage `json:"arguments,omitempty"`
	Result            string          `json:"result,omitempty"`
	StructuredResult  json.RawMessage `json:"structured_result,omitempty"`
	Status            string          `json:"status"`
	ErrorClass        string          `json:"error_class,omitempty"`
	Error             string          `json:"error,omitempty"`
	DurationMS        float64         `json:"duration_ms,omitempty"`
	ResultSize        int             `json:"result_size,omitempty"`
	Truncated         bool            `json:"truncated,omitempty"`
	StartedAt         time.Time       `json:"started_at"`
	SessionScope      string          `json:"session_scope,omitempty"`
	SessionKey        string          `json:"session_key,omitempty"`
	SessionGeneration int64           `json:"session_generation,omitempty"`
	TaskID            string          `json:"task_id,omitempty"`
	TaskStatus        string          `json:"task_status,omitempty"`
	Content           json.RawMessage `json:"content,omitempty"`
	Agent             string          `json:"agent,omitempty"`
	ParentID          string          `json:"parent_id,omitempty"`
}

// openCalls encodes the running calls of a step's save as open_calls
// entries, by id; "{}" when there are none.
func openCalls(calls []switchboard.ToolCall) (string, error) {
	open := make(map[string]openCall)
	for _, c := range calls {
		if c.Status != switchboard.CallRunning {
			continue
		}
		var content json.RawMessage
		if len(c.Content) > 0 {
			raw, err := json.Marshal(c.Content)
			if err != nil {
				return "", fmt.Errorf("encode content of call %s: %w", c.ID, err)
			}
			content = raw
		}
		open[c.ID] = openCall{ID: c.ID, CallID: c.CallID, Step: c.Step, Server: c.Server, Tool: c.Tool,
			ExposedName: c.ExposedName, Arguments: c.Arguments, Result: c.Result, StructuredResult: c.StructuredResult,
			Status: string(c.Status), ErrorClass: c.ErrorClass, Error: c.Error, DurationMS: millis(c.Duration),
			ResultSize: c.ResultSize, Truncated: c.Truncated, StartedAt: c.StartedAt, SessionScope: c.SessionScope,
			SessionKey: c.SessionKey, SessionGeneration: c.SessionGeneration, TaskID: c.TaskID, TaskStatus: c.TaskStatus,
			Content: content, Agent: c.Agent, ParentID: c.ParentID}
	}
	raw, err := json.Marshal(open)
	if err != nil {
		return "", fmt.Errorf("encode open calls: %w", err)
	}
	return string(raw), nil
}

// saveStatements holds the statements saveStatement made, by shape.
var saveStatements sync.Map

// saveStatement is SaveTurn's statement: the conversation's lock (a step)
// or bump (an end), the turn's update (the CTE t, gated on the lock: see
// updateTurn), its messages and its calls' ledger rows, which read the
// turn's conversation and user from t: one statement, one plan. It returns
// the turn's conversation and user, the messages stored and each ledger
// row's started_at; no row if the turn does not exist. Its parameters are
// updateTurn's ($1-$16; $17 the time of an end), saveMessages' seven
// arrays, the ids of the save's calls (a step's, or an end's that leaves
// calls open), for a step the open_calls entries of its running calls,
// then saveToolCallArgs per ledger row.
//
// A step's running calls go to the turn's open_calls, in place of the
// entries of the save's calls, not to the ledger (migration 00057): the
// update of the turn stays heap-only. Its other calls are ledger rows. An
// end writes every call as a ledger row, empties open_calls, and, when the
// turn may have calls open that the end does not write (shape.leftover,
// see openTracker), inserts them as they are.
func saveStatement(shape saveShape) string {
	ended, calls := shape.ended, shape.calls
	if s, ok := saveStatements.Load(shape); ok {
		return s.(string)
	}
	var b strings.Builder
	n := 16
	if ended {
		b.WriteString(touchTurnConversation)
		n = 17
	} else {
		b.WriteString(lockTurnConversation)
	}
	ids := n + 8 // after saveMessages' arrays
	open := "NULL"
	if !ended {
		open = fmt.Sprintf("NULLIF((COALESCE(turns.open_calls, '{}') - $%d::text[]) || $%d::jsonb, '{}')", ids, ids+1)
	}
	if shape.open && calls > 0 || shape.leftover {
		// The statement's snapshot: open_calls before t's update.
		b.WriteString(", prev AS (SELECT open_calls FROM turns WHERE id = $1)")
	}
	b.WriteString(", t AS (" + strings.Replace(updateTurn, "@OPEN_CALLS", open, 1) + "\n),")
	b.WriteString(numbered(saveMessages, n))
	if ended && shape.leftover {
		fmt.Fprintf(&b, `, leftover AS (
    INSERT INTO tool_calls (%s)
    SELECT %s
    FROM t, prev %s
    ON CONFLICT DO NOTHING
)`, ledgerInsertColumns, openCallValues("t", "r", nil), openEntries(fmt.Sprintf("prev.open_calls - $%d::text[]", ids)))
	}
	n += 7 // saveMessages' arrays
	if !ended {
		n += 2 // the ids, the entries
	} else if shape.leftover {
		n++ // the ids
	}
	for i := range calls {
		fmt.Fprintf(&b, ", c%d AS (%s\n)", i, numbered(saveToolCall(shape.open), n))
		n += saveToolCallArgs
	}
	b.WriteString("\nSELECT t.conversation_id::text, t.user_id, (SELECT count(*) FROM m)")
	for i := range calls {
		fmt.Fprintf(&b, ", (SELECT started_at FROM c%d)", i)
	}
	b.WriteString(" FROM t")
	s, _ := saveStatements.LoadOrStore(shape, b.String())
	return s.(string)
}

// numbered turns the placeholders @1, @2 … of a statement's fragment into
// parameters $(offset+1), $(offset+2) ….
func numbered(fragment string, offset int) string {
	return placeholder.ReplaceAllStringFunc(fragment, func(p string) string {
		k, _ := strconv.Atoi(p[1:])
		return "$" + strconv.Itoa(offset+k)
	})
}

var placeholder = regexp.MustCompile(`@[0-9]+`)

// messageMeta encodes what m carries beyond the seed's columns, nil if
// nothing.
func messageMeta(m *switchboard.Message) (*string, error) {
	if len(m.ToolCalls) == 0 && m.ToolName == "" && len(m.Attachments) == 0 && m.Agent == "" && m.Handoff == nil && len(m.Structured) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(messageMetadata{ToolCalls: m.ToolCalls, ToolName: m.ToolName, Attachments: m.Attachments,
		Agent: m.Agent, Handoff: m.Handoff, Structured: m.Structured})
	if err != nil {
		return nil, fmt.Errorf("encode metadata of message %s: %w", m.ID, err)
	}
	s := string(raw)
	return &s, nil
}

// GetTurn implements [Store.GetTurn].
func (p *Postgres) GetTurn(ctx context.Context, userID, id string) (switchboard.Turn, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.Turn{}, fmt.Errorf("load turn %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	t, err := scanTurn(p.pool.QueryRow(ctx, `SELECT `+turnColumns+` FROM turns WHERE id = $1 AND user_id = $2`, key, userID))
	if err != nil {
		return switchboard.Turn{}, fmt.Errorf("load turn %s of %s: %w", id, userID, dbError(err))
	}
	return t, nil
}

// ListTurns implements [Store.ListTurns].
func (p *Postgres) ListTurns(ctx context.Context, userID, conversationID string) ([]switchboard.Turn, error) {
	key, ok := lookupID(conversationID)
	if !ok {
		return nil, fmt.Errorf("list turns of conversation %q of %s: %w", conversationID, userID, switchboard.ErrNotFound)
	}
	turns := []switchboard.Turn{}
	err := p.queryOfConversation(ctx, userID, key, selectTurnsOfConversation, func(rows pgx.Rows) error {
		for rows.Next() {
			t, err := scanTurn(rows)
			if err != nil {
				return err
			}
			turns = append(turns, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list turns of conversation %s of %s: %w", conversationID, userID, err)
	}
	return turns, nil
}

// TurnByIdempotencyKey implements [Store.TurnByIdempotencyKey].
func (p *Postgres) TurnByIdempotencyKey(ctx context.Context, userID, key string) (switchboard.Turn, error) {
	if key == "" {
		return switchboard.Turn{}, fmt.Errorf("load turn of %s by idempotency key %q: %w", userID, key, switchboard.ErrNotFound)
	}
	t, err := scanTurn(p.pool.QueryRow(ctx,
		`SELECT `+turnColumns+` FROM turns WHERE user_id = $1 AND idempotency_key = $2`, userID, key))
	if err != nil {
		return switchboard.Turn{}, fmt.Errorf("load turn of %s by idempotency key %q: %w", userID, key, dbError(err))
	}
	return t, nil
}

func scanTurn(row pgx.Row) (switchboard.Turn, error) {
	var (
		t                     switchboard.Turn
		status                string
		llm, tools, st, over  float64
		startedAt, finishedAt pgtype.Timestamptz
	)
	err := row.Scan(&t.ID, &t.ConversationID, &t.UserID, &status, &t.IdempotencyKey, &t.Steps,
		&t.PromptTokens, &t.CompletionTokens, &llm, &tools, &st, &over, &t.Error, &startedAt, &finishedAt,
		&t.RequestHash, &t.Agent, &t.Handoffs)
	if err != nil {
		return switchboard.Turn{}, err
	}
	t.Status = switchboard.TurnStatus(status)
	t.Timing = switchboard.TurnTiming{LLM: fromMillis(llm), Tools: fromMillis(tools), Store: fromMillis(st), Overhead: fromMillis(over)}
	t.StartedAt, t.FinishedAt = fromTimestamptz(startedAt), fromTimestamptz(finishedAt)
	return t, nil
}
