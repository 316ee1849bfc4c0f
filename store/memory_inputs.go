package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// CreateInput implements [Store.CreateInput].
func (m *Memory) CreateInput(ctx context.Context, in *switchboard.Input) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("store input: %w", err)
	}
	if err := prepareInput(in); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.calls[in.ToolCallID]
	if !ok || c.UserID != in.UserID || c.TurnID != in.TurnID || c.ConversationID != in.ConversationID {
		return fmt.Errorf("store input of tool call %s: %w", in.ToolCallID, switchboard.ErrNotFound)
	}
	if m.inputs == nil {
		m.inputs = map[string]*switchboard.Input{}
	}
	if _, taken := m.inputs[in.ID]; taken {
		return fmt.Errorf("store input %s: the id is taken: %w", in.ID, switchboard.ErrConflict)
	}
	in.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	cp := cloneInput(*in)
	m.inputs[in.ID] = &cp
	if u := m.usage[cp.ConversationID]; u != nil {
		u.inputs = append(u.inputs, cp.ID)
	}
	m.grow(cp.ConversationID, storedInputSize(&cp))
	m.evict(in.CreatedAt)
	return nil
}

// GetInput implements [Store.GetInput].
func (m *Memory) GetInput(ctx context.Context, userID, id string) (switchboard.Input, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Input{}, fmt.Errorf("load input %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	in, found := m.inputs[key]
	if !ok || !found || in.UserID != userID {
		return switchboard.Input{}, errInputNotFound(id)
	}
	return cloneInput(*in), nil
}

// AnswerInput implements [Store.AnswerInput].
func (m *Memory) AnswerInput(ctx context.Context, userID, id, action string, content json.RawMessage) (switchboard.AnsweredInput, error) {
	var out switchboard.AnsweredInput
	if err := ctxErr(ctx); err != nil {
		return out, fmt.Errorf("answer input %s: %w", id, err)
	}
	if err := checkAction(action); err != nil {
		return out, err
	}
	key, ok := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	in, found := m.inputs[key]
	if !ok || !found || in.UserID != userID {
		return out, errInputNotFound(id)
	}
	now := time.Now()
	t := m.turns[in.TurnID]
	if t != nil {
		out.Interrupted = m.orphanOf(t, now)
	}
	if in.Status != switchboard.InputPending {
		return out, errInputClosed(*in)
	}
	if t == nil || t.Status != switchboard.TurnRunning && t.Status != switchboard.TurnAwaitingInput {
		m.changeInput(in, func() { in.Status, in.Reason, in.AnsweredAt = switchboard.InputFailed, inputGoneNote, now.UTC() })
		return out, errInputClosed(*in)
	}
	m.changeInput(in, func() {
		in.Status, in.Action, in.AnsweredAt = switchboard.InputAnswered, action, now.UTC().Truncate(time.Microsecond)
		in.Content = nil
		if action == switchboard.ActionAccept && len(content) > 0 {
			in.Content = bytes.Clone(content)
		}
	})
	if t.Status == switchboard.TurnAwaitingInput {
		m.claim(t, now)
		out.Resumed = true
	}
	out.Input = cloneInput(*in)
	return out, nil
}

// TakeInput implements [Store.TakeInput].
func (m *Memory) TakeInput(ctx context.Context, id string) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("take the answer of input %s: %w", id, err)
	}
	key, _ := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.inputs[key]
	if in == nil || in.Status != switchboard.InputAnswered || !in.TakenAt.IsZero() {
		return errAnswerTaken(id)
	}
	in.TakenAt = time.Now().UTC().Truncate(time.Microsecond)
	return nil
}

// CloseInput implements [Store.CloseInput].
func (m *Memory) CloseInput(ctx context.Context, id string, status switchboard.InputStatus, reason string) (switchboard.Input, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Input{}, fmt.Errorf("close input %s: %w", id, err)
	}
	if err := checkClose(status); err != nil {
		return switchboard.Input{}, err
	}
	key, ok := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	in, found := m.inputs[key]
	if !ok || !found {
		return switchboard.Input{}, errInputNotFound(id)
	}
	if in.Status == switchboard.InputPending {
		m.changeInput(in, func() {
			in.Status, in.Reason, in.AnsweredAt = status, reason, time.Now().UTC().Truncate(time.Microsecond)
		})
	}
	return cloneInput(*in), nil
}

// ListInputs implements [Store.ListInputs].
func (m *Memory) ListInputs(ctx context.Context, userID, conversationID string, pendingOnly bool) ([]switchboard.Input, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list inputs of %s: %w", conversationID, err)
	}
	key, _ := lookupID(conversationID)
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []switchboard.Input
	for _, in := range m.inputs {
		if in.UserID == userID && in.ConversationID == key && (!pendingOnly || in.Status == switchboard.InputPending) {
			if _, ok := m.conversations[key]; ok {
				out = append(out, cloneInput(*in))
			}
		}
	}
	slices.SortFunc(out, func(a, b switchboard.Input) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cloneInput(in switchboard.Input) switchboard.Input {
	in.RequestedSchema = bytes.Clone(in.RequestedSchema)
	in.Content = bytes.Clone(in.Content)
	in.InputRequests = bytes.Clone(in.InputRequests)
	return in
}
