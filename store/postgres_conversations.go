package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-dev/switchboard"
)

const (
	// The seed's columns are nullable; the stores never write NULL there.
	conversationColumns = `id::text, user_id, COALESCE(external_id, ''), COALESCE(title, ''), COALESCE(status, ''), created_at, updated_at, agent`

	messageColumns = `id::text, COALESCE(conversation_id::text, ''), COALESCE(turn_id::text, ''), role, content,
    COALESCE(message_type, 'text'), "timestamp", COALESCE(tool_call_id, ''), metadata,
    COALESCE(superseded_by::text, '')`

	// selectTranscript reads a conversation's messages in order, through
	// the index messages_conversation_seq, with their feedback (which the
	// history window, read at every turn, leaves out).
	selectTranscript = `SELECT ` + messageColumns + `, COALESCE(feedback, '') FROM messages WHERE conversation_id = $1 AND superseded_by IS NULL ORDER BY seq`

	// selectAllMessages is selectTranscript with the superseded messages.
	selectAllMessages = `SELECT ` + messageColumns + `, COALESCE(feedback, '') FROM messages WHERE conversation_id = $1 ORDER BY seq`
)

// GetConversation implements [Store.GetConversation].
func (p *Postgres) GetConversation(ctx context.Context, userID, id string) (switchboard.Conversation, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	c, err := scanConversation(p.pool.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations
WHERE id = $1 AND user_id = $2`, key, userID))
	if err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %s of %s: %w", id, userID, dbError(err))
	}
	return c, nil
}

// AdminConversation implements [Store.AdminConversation].
func (p *Postgres) AdminConversation(ctx context.Context, id string) (switchboard.Conversation, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q: %w", id, switchboard.ErrNotFound)
	}
	c, err := scanConversation(p.pool.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations WHERE id = $1`, key))
	if err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %s: %w", id, dbError(err))
	}
	return c, nil
}

// ConversationByExternalID implements [Store.ConversationByExternalID].
func (p *Postgres) ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error) {
	c, err := scanConversation(p.pool.QueryRow(ctx, `SELECT `+conversationColumns+` FROM conversations
WHERE user_id = $1 AND external_id = $2`, userID, externalID))
	if err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", externalID, userID, dbError(err))
	}
	return c, nil
}

// ListConversations implements [Store.ListConversations].
func (p *Postgres) ListConversations(ctx context.Context, userID string, limit int) ([]switchboard.Conversation, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+conversationColumns+` FROM conversations
WHERE user_id = $1 ORDER BY conversations.updated_at DESC, conversations.id DESC LIMIT $2`, userID, pageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("list conversations of %s: %w", userID, dbError(err))
	}
	defer rows.Close()
	list := []switchboard.Conversation{}
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, fmt.Errorf("list conversations of %s: %w", userID, dbError(err))
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list conversations of %s: %w", userID, dbError(err))
	}
	return list, nil
}

// UpdateConversation implements [Store.UpdateConversation].
func (p *Postgres) UpdateConversation(ctx context.Context, userID string, c switchboard.Conversation) (switchboard.Conversation, error) {
	if err := prepareConversationUpdate(&c); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %s: %w", c.ID, err)
	}
	key, ok := lookupID(c.ID)
	if !ok {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %q of %s: %w", c.ID, userID, switchboard.ErrNotFound)
	}
	stored, err := scanConversation(p.pool.QueryRow(ctx, `UPDATE conversations
SET title = $3, status = COALESCE(NULLIF($4::varchar, ''), status), updated_at = $5
WHERE id = $1 AND user_id = $2 RETURNING `+conversationColumns, key, userID, c.Title, c.Status, now()))
	if err != nil {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %s of %s: %w", c.ID, userID, dbError(err))
	}
	return stored, nil
}

// DeleteConversation implements [Store.DeleteConversation].
func (p *Postgres) DeleteConversation(ctx context.Context, userID, id string) error {
	key, ok := lookupID(id)
	if !ok {
		return fmt.Errorf("delete conversation %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	// Messages, turns and ledger rows have no key to what holds them
	// (migrations 00056, 00058): the conversation's row is locked first, so
	// that a writer holding it has committed and each delete, a statement
	// of its own, sees what it wrote. The turns go before their ledger
	// rows: a writer of a call's row holds its turn's row (it updates it),
	// so it has committed when the turns' delete returns, or finds no turn.
	// The conversation's delete cascades to the rest (inputs, samplings),
	// and a call's to its content.
	owned := ` WHERE conversation_id = $1 AND EXISTS (SELECT FROM conversations WHERE id = $1 AND user_id = $2)`
	b := &pgx.Batch{}
	b.Queue(`SELECT FROM conversations WHERE id = $1 AND user_id = $2 FOR UPDATE`, key, userID)
	b.Queue(`DELETE FROM messages`+owned, key, userID)
	b.Queue(`DELETE FROM turns`+owned, key, userID)
	b.Queue(`DELETE FROM tool_calls`+owned, key, userID)
	b.Queue(`DELETE FROM conversations WHERE id = $1 AND user_id = $2`, key, userID)
	found := false
	err := p.send(ctx, b, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		found = tag.RowsAffected() > 0
		for range 4 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete conversation %s of %s: %w", id, userID, err)
	}
	if !found {
		return fmt.Errorf("delete conversation %s of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	p.history.drop(key)
	return nil
}

// SetFeedback implements [Store.SetFeedback]. One statement rates all the
// messages or, when one of them is not the user's conversation's, none.
func (p *Postgres) SetFeedback(ctx context.Context, userID, conversationID string, messageIDs []string, kind string) error {
	key, ids, err := prepareFeedback(conversationID, messageIDs, kind)
	if err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `WITH target AS (
    SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE c.id = $1 AND c.user_id = $2 AND m.id = ANY($3::uuid[]))
UPDATE messages SET feedback = $4
WHERE id IN (SELECT id FROM target) AND (SELECT count(*) FROM target) = $5`, key, userID, ids, kind, len(ids))
	if err != nil {
		return fmt.Errorf("rate messages of conversation %s of %s: %w", conversationID, userID, dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("rate messages of conversation %s of %s: %w", conversationID, userID, switchboard.ErrNotFound)
	}
	return nil
}

// ListMessages implements [Store.ListMessages].
func (p *Postgres) ListMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error) {
	return p.listMessages(ctx, userID, conversationID, selectTranscript)
}

// ListAllMessages implements [Store.ListAllMessages].
func (p *Postgres) ListAllMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error) {
	return p.listMessages(ctx, userID, conversationID, selectAllMessages)
}

func (p *Postgres) listMessages(ctx context.Context, userID, conversationID, sql string) ([]switchboard.Message, error) {
	key, ok := lookupID(conversationID)
	if !ok {
		return nil, fmt.Errorf("list messages of conversation %q of %s: %w", conversationID, userID, switchboard.ErrNotFound)
	}
	var msgs []switchboard.Message
	err := p.queryOfConversation(ctx, userID, key, sql, func(rows pgx.Rows) (err error) {
		msgs, err = collectMessages(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list messages of conversation %s of %s: %w", conversationID, userID, err)
	}
	return msgs, nil
}

// queryOfConversation runs sql (with the conversation's id as $1) and hands
// its rows to read, in one round trip that also tells a conversation the
// user does not have (ErrNotFound) from one without rows: read is not
// called for another user's conversation.
func (p *Postgres) queryOfConversation(ctx context.Context, userID, key string, sql string, read func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT EXISTS (SELECT FROM conversations WHERE id = $1 AND user_id = $2)`, key, userID)
	b.Queue(sql, key)
	return p.send(ctx, b, func(br pgx.BatchResults) error {
		var exists bool
		if err := br.QueryRow().Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return switchboard.ErrNotFound
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		return read(rows)
	})
}

func scanConversation(row pgx.Row) (switchboard.Conversation, error) {
	var (
		c                    switchboard.Conversation
		createdAt, updatedAt pgtype.Timestamptz
	)
	if err := row.Scan(&c.ID, &c.UserID, &c.ExternalID, &c.Title, &c.Status, &createdAt, &updatedAt, &c.Agent); err != nil {
		return switchboard.Conversation{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromTimestamptz(createdAt), fromTimestamptz(updatedAt)
	return c, nil
}

// collectMessages reads and closes rows of messageColumns followed by the
// feedback.
func collectMessages(rows pgx.Rows) ([]switchboard.Message, error) {
	defer rows.Close()
	msgs := []switchboard.Message{}
	for rows.Next() {
		var feedback string
		m, err := scanMessage(rows, &feedback)
		if err != nil {
			return nil, err
		}
		m.Feedback = feedback
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// collectHistory reads and closes the rows of selectHistory: it returns
// the messages, the seq of the last (0 if none) and the seq they were read
// after.
func collectHistory(rows pgx.Rows) (msgs []switchboard.Message, last, after int64, err error) {
	defer rows.Close()
	msgs = []switchboard.Message{}
	for rows.Next() {
		m, err := scanMessage(rows, &last, &after)
		if err != nil {
			return nil, 0, 0, err
		}
		msgs = append(msgs, m)
	}
	return msgs, last, after, rows.Err()
}

// scanMessage reads a row of messageColumns, followed by the columns
// scanned into extra.
func scanMessage(rows pgx.Rows, extra ...any) (switchboard.Message, error) {
	var (
		m         switchboard.Message
		role, typ string
		ts        pgtype.Timestamptz
		rawMeta   []byte
	)
	dest := append([]any{&m.ID, &m.ConversationID, &m.TurnID, &role, &m.Content, &typ, &ts, &m.ToolCallID, &rawMeta, &m.SupersededBy}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return switchboard.Message{}, err
	}
	m.Role, m.Type, m.Timestamp = switchboard.Role(role), switchboard.MessageType(typ), fromTimestamptz(ts)
	if len(rawMeta) > 0 {
		// Metadata that is not ours (rows adopted from the seed) is
		// ignored rather than making the transcript unreadable.
		var meta messageMetadata
		if json.Unmarshal(rawMeta, &meta) == nil {
			m.ToolCalls, m.ToolName, m.Attachments = meta.ToolCalls, meta.ToolName, meta.Attachments
			m.Agent, m.Handoff = meta.Agent, meta.Handoff
			// jsonb spaces it out; compacted as Memory keeps it.
			if s, err := cleanJSON(meta.Structured); err == nil {
				m.Structured = s
			}
			if len(m.ToolCalls) == 0 {
				m.ToolCalls = nil
			}
		}
	}
	return m, nil
}
