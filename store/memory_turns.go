package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// BeginTurn implements [Store.BeginTurn].
func (m *Memory) BeginTurn(ctx context.Context, s *switchboard.TurnStart) ([]switchboard.Message, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("begin turn: %w", err)
	}
	now := now()
	create, err := prepareTurnStart(s, now)
	if err != nil {
		return nil, fmt.Errorf("begin turn: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	conv := s.Conversation
	if !create {
		c, ok := m.own(s.Turn.UserID, conv.ID)
		if !ok {
			return nil, fmt.Errorf("begin turn: load conversation %s: %w", conv.ID, switchboard.ErrNotFound)
		}
		conv = *c
		conv.UpdatedAt = now
	}
	if _, ok := m.turns[s.Turn.ID]; ok {
		return nil, fmt.Errorf("begin turn: turn %s exists: %w", s.Turn.ID, switchboard.ErrConflict)
	}
	key := idempotencyKey{s.Turn.UserID, s.Turn.IdempotencyKey}
	if _, ok := m.idempotency[key]; ok && key.key != "" {
		return nil, fmt.Errorf("begin turn: %w", errIdempotencyKey())
	}
	if m.messageIDs[s.UserMessage.ID] {
		return nil, fmt.Errorf("begin turn: message %s exists: %w", s.UserMessage.ID, switchboard.ErrConflict)
	}
	keep := -1 // with Regenerate, the messages kept: up to the one to answer again
	if err := m.leaseTaken(conv.ID, s.Turn.ID, now); err != nil {
		// Checked before the message to regenerate, as Postgres does:
		// a turn running decides the answer first.
		return nil, fmt.Errorf("begin turn: %w", err)
	}
	if s.Regenerate > 0 {
		// The n-th user message if it is the one resent, else the last if
		// it is (the client's count is off by messages we refused).
		var users []int // indexes of the user messages
		for i, msg := range m.messages[conv.ID] {
			if msg.Role == switchboard.RoleUser {
				users = append(users, i)
			}
		}
		is := func(i int) bool { return m.messages[conv.ID][i].Content == s.UserMessage.Content }
		switch n := s.Regenerate; {
		case n <= len(users) && is(users[n-1]):
			keep = users[n-1] + 1
		case len(users) > 0 && is(users[len(users)-1]):
			keep = users[len(users)-1] + 1
		case n <= len(users):
			return nil, fmt.Errorf("begin turn: %w", errRegenerateMismatch())
		default:
			return nil, fmt.Errorf("begin turn: %w", errNothingToRegenerate(s.Regenerate))
		}
	}

	if create && conv.ExternalID != "" {
		for _, c := range m.conversations {
			if c.UserID == conv.UserID && c.ExternalID == conv.ExternalID {
				return nil, fmt.Errorf("begin turn: %w", errExternalIDTaken())
			}
		}
	}
	interrupted, err := m.takeLease(conv.ID, s.Turn.ID, now)
	if err != nil {
		return nil, fmt.Errorf("begin turn: %w", err)
	}
	s.Interrupted = interrupted
	if s.Turn.Agent != "" {
		conv.Agent = s.Turn.Agent
	}
	var oldSize int64
	if old := m.conversations[conv.ID]; old != nil {
		oldSize = storedConversationSize(old)
	}
	m.conversations[conv.ID] = &conv
	u := m.use(&conv)
	m.grow(conv.ID, storedConversationSize(&conv)-oldSize)
	t := s.Turn
	m.turns[t.ID] = &t
	u.turns = append(u.turns, t.ID)
	m.grow(conv.ID, storedTurnSize(&t))
	if key.key != "" {
		m.idempotency[key] = t.ID
	}
	if keep >= 0 {
		m.supersede(conv.ID, keep, t.ID, now)
	} else {
		if s.Edit > 0 {
			users := 0
			for i, msg := range m.messages[conv.ID] {
				if msg.Role == switchboard.RoleUser {
					if users++; users == s.Edit {
						m.supersede(conv.ID, i, t.ID, now)
						break
					}
				}
			}
		}
		m.appendMessage(conv.ID, s.UserMessage)
	}
	s.Cancelled = nil
	if old := m.turns[m.waiting[conv.ID]]; old != nil && old.Status == switchboard.TurnAwaitingInput {
		s.Cancelled = m.cancelAsking(old, wentOnInputNote, now).Calls
	} else if old != nil {
		s.Cancelled = m.cancelWaiting(old, wentOnNote, now)
	}
	delete(m.waiting, conv.ID)
	s.Conversation = conv

	all := m.messages[conv.ID]
	if n := s.HistoryLimit; n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	history := make([]switchboard.Message, len(all), len(all)+historyRoom)
	for i, msg := range all {
		history[i] = cloneMessage(msg)
	}
	m.evict(now)
	return history, nil
}

// SaveTurn implements [Store.SaveTurn].
func (m *Memory) SaveTurn(ctx context.Context, u *switchboard.TurnUpdate) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("save turn: %w", err)
	}
	now := now()
	if err := prepareTurnUpdate(u, now); err != nil {
		return fmt.Errorf("save turn: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.turns[u.Turn.ID]
	if !ok {
		return fmt.Errorf("save turn: load turn %s: %w", u.Turn.ID, switchboard.ErrNotFound)
	}
	seen := make(map[string]bool, len(u.Messages))
	for _, msg := range u.Messages {
		if m.messageIDs[msg.ID] || seen[msg.ID] {
			return fmt.Errorf("save turn %s: message %s exists: %w", t.ID, msg.ID, switchboard.ErrConflict)
		}
		seen[msg.ID] = true
	}
	for _, c := range u.ToolCalls {
		if old, ok := m.calls[c.ID]; ok && old.TurnID != t.ID {
			return fmt.Errorf("save turn %s: tool call %s belongs to turn %s: %w", t.ID, c.ID, old.TurnID, switchboard.ErrConflict)
		}
	}

	if u.Turn.Status == switchboard.TurnRunning {
		if _, err := m.takeLease(t.ConversationID, t.ID, now); err != nil {
			return fmt.Errorf("save turn %s: %w", t.ID, err)
		}
	} else if m.running[t.ConversationID].turn == t.ID {
		delete(m.running, t.ConversationID)
	}
	if u.Turn.Status == switchboard.TurnAwaitingApproval {
		m.waiting[t.ConversationID] = t.ID
	}
	m.changeTurn(t, func() {
		t.Status = u.Turn.Status
		t.Steps = u.Turn.Steps
		t.PromptTokens = u.Turn.PromptTokens
		t.CompletionTokens = u.Turn.CompletionTokens
		t.Timing = u.Turn.Timing
		t.Error = u.Turn.Error
		t.FinishedAt = u.Turn.FinishedAt
		t.Agent, t.Handoffs = u.Turn.Agent, u.Turn.Handoffs
	})
	if u.ConversationAgent != "" {
		c := m.conversations[t.ConversationID]
		before := storedConversationSize(c)
		c.Agent = u.ConversationAgent
		m.grow(c.ID, storedConversationSize(c)-before)
	}
	u.Turn.ConversationID, u.Turn.UserID = t.ConversationID, t.UserID
	conv := m.conversations[t.ConversationID]
	if t.Status != switchboard.TurnRunning {
		conv.UpdatedAt = now
	}
	usage := m.use(conv)
	for i := range u.Messages {
		msg := &u.Messages[i]
		msg.ConversationID = t.ConversationID
		m.appendMessage(t.ConversationID, *msg)
	}
	for i := range u.ToolCalls {
		c := &u.ToolCalls[i]
		c.UserID, c.ConversationID = t.UserID, t.ConversationID
		old, ok := m.calls[c.ID]
		if !ok {
			nc := cloneCall(*c)
			nc.Content = storedContent(c.Content)
			m.calls[c.ID] = &nc
			usage.calls = append(usage.calls, nc.ID)
			m.grow(nc.ConversationID, storedCallSize(&nc))
			continue
		}
		m.changeCall(old, func() {
			old.Status = c.Status
			old.Result = c.Result
			old.StructuredResult = cloneJSON(c.StructuredResult)
			old.Content = storedContent(c.Content)
			old.Error = c.Error
			old.ErrorClass = c.ErrorClass
			old.Duration = c.Duration
			old.ResultSize = c.ResultSize
			old.Truncated = c.Truncated
			old.SessionScope, old.SessionKey, old.SessionGeneration = c.SessionScope, c.SessionKey, c.SessionGeneration
			old.TaskID, old.TaskStatus = c.TaskID, c.TaskStatus
			old.FinishedAt = c.FinishedAt
		})
		c.StartedAt = old.StartedAt
	}
	m.evict(now)
	return nil
}

// supersede takes the messages of a conversation's transcript from index
// from on out of it, marked superseded by turn by, and cancels the turns
// among theirs that await an approval, with their waiting calls: the
// question they would answer was answered again. The caller holds m.mu.
func (m *Memory) supersede(conversationID string, from int, by string, now time.Time) {
	msgs := m.messages[conversationID]
	for _, msg := range msgs[from:] {
		before := storedMessageSize(&msg)
		msg.SupersededBy = by
		m.grow(conversationID, storedMessageSize(&msg)-before)
		m.superseded[conversationID] = append(m.superseded[conversationID], msg)
		if old := m.turns[msg.TurnID]; old != nil && old.Status == switchboard.TurnAwaitingApproval {
			m.cancelWaiting(old, supersededNote, now)
		}
	}
	m.messages[conversationID] = slices.Clip(msgs[:from])
}

// cancelWaiting cancels the calls of a turn that await an approval, and
// the turn if it awaits, for the reason note, and returns the calls. The
// caller holds m.mu.
func (m *Memory) cancelWaiting(t *switchboard.Turn, note string, now time.Time) []switchboard.ToolCall {
	if t.Status == switchboard.TurnAwaitingApproval {
		m.changeTurn(t, func() { t.Status, t.Error, t.FinishedAt = switchboard.TurnCancelled, note, now })
	}
	var out []switchboard.ToolCall
	for _, c := range m.callsOf(t.ConversationID) {
		if c.TurnID == t.ID && c.Status == switchboard.CallAwaitingApproval {
			m.changeCall(c, func() {
				c.Status, c.ErrorClass, c.Error, c.FinishedAt = switchboard.CallCancelled, switchboard.ErrorClassCancelled, note, now
			})
			out = append(out, cloneCall(*c))
		}
	}
	return out
}

// callsOf returns the stored calls of a conversation. Callers hold m.mu.
func (m *Memory) callsOf(conversationID string) []*switchboard.ToolCall {
	u := m.usage[conversationID]
	if u == nil {
		return nil
	}
	out := make([]*switchboard.ToolCall, 0, len(u.calls))
	for _, id := range u.calls {
		if c := m.calls[id]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// appendMessage adds msg to the transcript of a conversation. The caller
// holds m.mu.
func (m *Memory) appendMessage(conversationID string, msg switchboard.Message) {
	m.messageIDs[msg.ID] = true
	m.lastOrder++
	m.order[msg.ID] = m.lastOrder
	stored := cloneMessage(msg)
	m.messages[conversationID] = append(m.messages[conversationID], stored)
	m.grow(conversationID, storedMessageSize(&stored))
}

// GetTurn implements [Store.GetTurn].
func (m *Memory) GetTurn(ctx context.Context, userID, id string) (switchboard.Turn, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Turn{}, fmt.Errorf("load turn %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, found := m.turns[key]
	if !ok || !found || t.UserID != userID {
		return switchboard.Turn{}, fmt.Errorf("load turn %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	return *t, nil
}

// ListTurns implements [Store.ListTurns].
func (m *Memory) ListTurns(ctx context.Context, userID, conversationID string) ([]switchboard.Turn, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list turns of %s: %w", conversationID, err)
	}
	key, _ := lookupID(conversationID)
	m.mu.RLock()
	if _, ok := m.own(userID, key); !ok {
		m.mu.RUnlock()
		return nil, fmt.Errorf("list turns of conversation %q of %s: %w", conversationID, userID, switchboard.ErrNotFound)
	}
	m.read(key)
	turns := []switchboard.Turn{}
	for _, id := range m.usage[key].turns {
		if t := m.turns[id]; t != nil {
			turns = append(turns, *t)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(turns, func(a, b switchboard.Turn) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return turns, nil
}

// TurnByIdempotencyKey implements [Store.TurnByIdempotencyKey].
func (m *Memory) TurnByIdempotencyKey(ctx context.Context, userID, key string) (switchboard.Turn, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Turn{}, fmt.Errorf("load turn by idempotency key: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.idempotency[idempotencyKey{userID, key}]
	if !ok || key == "" {
		return switchboard.Turn{}, fmt.Errorf("load turn of %s by idempotency key %q: %w", userID, key, switchboard.ErrNotFound)
	}
	return *m.turns[id], nil
}
