package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/switchboard-dev/switchboard"
)

// GetConversation implements [Store.GetConversation].
func (m *Memory) GetConversation(ctx context.Context, userID, id string) (switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %s: %w", id, err)
	}
	key, _ := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.own(userID, key)
	if !ok {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	m.read(key)
	return *c, nil
}

// AdminConversation implements [Store.AdminConversation].
func (m *Memory) AdminConversation(ctx context.Context, id string) (switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, found := m.conversations[key]
	if !ok || !found {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q: %w", id, switchboard.ErrNotFound)
	}
	return *c, nil
}

// own returns the user's conversation whose id is key (canonical), if
// there is one. Callers hold m.mu.
func (m *Memory) own(userID, key string) (*switchboard.Conversation, bool) {
	c, ok := m.conversations[key]
	if !ok || c.UserID != userID {
		return nil, false
	}
	return c, true
}

// ConversationByExternalID implements [Store.ConversationByExternalID].
func (m *Memory) ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", externalID, userID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conversations {
		if c.UserID == userID && c.ExternalID == externalID && externalID != "" {
			m.read(c.ID)
			return *c, nil
		}
	}
	return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", externalID, userID, switchboard.ErrNotFound)
}

// ListConversations implements [Store.ListConversations].
func (m *Memory) ListConversations(ctx context.Context, userID string, limit int) ([]switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list conversations of %s: %w", userID, err)
	}
	m.mu.RLock()
	list := []switchboard.Conversation{}
	for _, c := range m.conversations {
		if c.UserID == userID {
			list = append(list, *c)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(list, func(a, b switchboard.Conversation) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(b.ID, a.ID))
	})
	if n := pageSize(limit); len(list) > n {
		list = list[:n]
	}
	return list, nil
}

// UpdateConversation implements [Store.UpdateConversation].
func (m *Memory) UpdateConversation(ctx context.Context, userID string, c switchboard.Conversation) (switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %s: %w", c.ID, err)
	}
	if err := prepareConversationUpdate(&c); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %s: %w", c.ID, err)
	}
	key, _ := lookupID(c.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, ok := m.own(userID, key)
	if !ok {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %q of %s: %w", c.ID, userID, switchboard.ErrNotFound)
	}
	before := storedConversationSize(stored)
	stored.Title = c.Title
	if c.Status != "" {
		stored.Status = c.Status
	}
	stored.UpdatedAt = now()
	m.grow(key, storedConversationSize(stored)-before)
	m.use(stored)
	m.evict(stored.UpdatedAt)
	return *stored, nil
}

// DeleteConversation implements [Store.DeleteConversation].
func (m *Memory) DeleteConversation(ctx context.Context, userID, id string) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("delete conversation %s: %w", id, err)
	}
	key, _ := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.own(userID, key); !ok {
		return fmt.Errorf("delete conversation %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	m.drop(key)
	return nil
}

// ListMessages implements [Store.ListMessages].
func (m *Memory) ListMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error) {
	return m.listMessages(ctx, userID, conversationID, func(key string) []switchboard.Message {
		msgs := make([]switchboard.Message, len(m.messages[key]))
		for i, msg := range m.messages[key] {
			msgs[i] = cloneMessage(msg)
		}
		return msgs
	})
}

// ListAllMessages implements [Store.ListAllMessages].
func (m *Memory) ListAllMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error) {
	return m.listMessages(ctx, userID, conversationID, func(key string) []switchboard.Message {
		var msgs []switchboard.Message
		for _, msg := range slices.Concat(m.messages[key], m.superseded[key]) {
			msgs = append(msgs, cloneMessage(msg))
		}
		slices.SortFunc(msgs, func(a, b switchboard.Message) int { return cmp.Compare(m.order[a.ID], m.order[b.ID]) })
		return msgs
	})
}

// listMessages checks that the user has the conversation and returns what
// read makes of its messages, under the read lock.
func (m *Memory) listMessages(ctx context.Context, userID, conversationID string, read func(key string) []switchboard.Message) ([]switchboard.Message, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list messages of %s: %w", conversationID, err)
	}
	key, _ := lookupID(conversationID)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.own(userID, key); !ok {
		return nil, fmt.Errorf("list messages of conversation %q of %s: %w", conversationID, userID, switchboard.ErrNotFound)
	}
	m.read(key)
	return read(key), nil
}

// SetFeedback implements [Store.SetFeedback].
func (m *Memory) SetFeedback(ctx context.Context, userID, conversationID string, messageIDs []string, kind string) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("rate messages of conversation %s: %w", conversationID, err)
	}
	key, ids, err := prepareFeedback(conversationID, messageIDs, kind)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.own(userID, key); !ok {
		return fmt.Errorf("rate messages of conversation %q of %s: %w", conversationID, userID, switchboard.ErrNotFound)
	}
	type place struct {
		list []switchboard.Message
		i    int
	}
	found := make([]place, 0, len(ids))
	for _, id := range ids {
		i := slices.IndexFunc(m.messages[key], func(msg switchboard.Message) bool { return msg.ID == id })
		list := m.messages[key]
		if i < 0 {
			list = m.superseded[key]
			i = slices.IndexFunc(list, func(msg switchboard.Message) bool { return msg.ID == id })
		}
		if i < 0 {
			return fmt.Errorf("rate message %s of conversation %s: %w", id, conversationID, switchboard.ErrNotFound)
		}
		found = append(found, place{list, i})
	}
	for _, p := range found {
		m.grow(key, int64(len(kind)-len(p.list[p.i].Feedback)))
		p.list[p.i].Feedback = kind
	}
	m.use(m.conversations[key])
	return nil
}
