package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// Memory keeps conversations, turns and the tool-call ledger in process
// memory: the store of `go run` on a fresh machine, and of tests. Everything
// is lost when the process exits. It has the semantics of [Postgres] (same
// validation, same errors, same orders) and is safe for concurrent use.
type Memory struct {
	*memoryData
	// instance and boot name the holder of the leases this store takes,
	// as Postgres's do (see orphaned): a Memory of its own has no instance
	// and a boot of its own; views of one Memory's data as other instances
	// serve tests of several instances and of restarts.
	instance, boot string
}

// memoryData is what the views of one Memory share.
type memoryData struct {
	mu            sync.RWMutex
	conversations map[string]*switchboard.Conversation
	// messages holds each conversation's transcript in order.
	messages map[string][]switchboard.Message
	// superseded holds the messages a regenerated answer took out of each
	// conversation's transcript.
	superseded map[string][]switchboard.Message
	// order numbers messages as they are stored, to put superseded ones
	// back in their place.
	order       map[string]int64
	lastOrder   int64
	messageIDs  map[string]bool
	turns       map[string]*switchboard.Turn
	idempotency map[idempotencyKey]string // turn ids
	calls       map[string]*switchboard.ToolCall
	// running holds each conversation's running turn and its lease.
	running map[string]lease
	// waiting holds each conversation's last turn that came to await an
	// approval, for the next turn's start to cancel its calls that still
	// wait (and it, if it does): a turn resumed by a decision may end with
	// other calls undecided.
	waiting map[string]string
}

type lease struct {
	turn            string
	until           time.Time
	cancelRequested bool
	instance, boot  string // the holder
}

type idempotencyKey struct{ user, key string }

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{boot: switchboard.NewID(), memoryData: &memoryData{
		conversations: make(map[string]*switchboard.Conversation),
		messages:      make(map[string][]switchboard.Message),
		superseded:    make(map[string][]switchboard.Message),
		order:         make(map[string]int64),
		messageIDs:    make(map[string]bool),
		turns:         make(map[string]*switchboard.Turn),
		idempotency:   make(map[idempotencyKey]string),
		calls:         make(map[string]*switchboard.ToolCall),
		running:       make(map[string]lease),
		waiting:       make(map[string]string),
	}}
}

// orphaned reports whether no live instance holds the lease l of a running
// turn: it ran out, or it names an earlier boot of m's instance.
func (m *Memory) orphaned(l lease, now time.Time) bool {
	return !now.Before(l.until) || m.instance != "" && l.instance == m.instance && l.boot != m.boot
}

// leaseTaken returns errTurnRunning if another turn than turn runs in
// conversation under a lease a live instance holds. Callers hold m.mu.
func (m *Memory) leaseTaken(conversation, turn string, now time.Time) error {
	if l, ok := m.running[conversation]; ok && l.turn != turn {
		if old := m.turns[l.turn]; old != nil && old.Status == switchboard.TurnRunning && !m.orphaned(l, now) {
			return errTurnRunning()
		}
	}
	return nil
}

// takeLease makes turn the running turn of conversation, failing a turn
// that no live instance holds (which it returns), or returns
// errTurnRunning. Callers hold m.mu.
func (m *Memory) takeLease(conversation, turn string, now time.Time) (*switchboard.Interrupted, error) {
	if err := m.leaseTaken(conversation, turn, now); err != nil {
		return nil, err
	}
	var interrupted *switchboard.Interrupted
	if l, ok := m.running[conversation]; ok && l.turn != turn {
		if old := m.turns[l.turn]; old != nil && old.Status == switchboard.TurnRunning {
			interrupted = m.interrupt(old, now)
		}
	}
	l := m.running[conversation]
	if l.turn != turn {
		l = lease{turn: turn} // a new holder: no cancel asked of it yet
	}
	l.until = now.Add(LeaseDuration)
	l.instance, l.boot = m.instance, m.boot
	m.running[conversation] = l
	return interrupted, nil
}

// interrupt fails a running turn that no live instance holds, with its
// calls (see switchboard.Interrupted), and frees its conversation. Callers
// hold m.mu.
func (m *Memory) interrupt(t *switchboard.Turn, now time.Time) *switchboard.Interrupted {
	now = stamp(now)
	t.Status, t.Error, t.FinishedAt = switchboard.TurnFailed, interruptedNote, now
	if m.running[t.ConversationID].turn == t.ID {
		delete(m.running, t.ConversationID)
	}
	in := &switchboard.Interrupted{Turn: *t}
	for _, c := range m.calls {
		if c.TurnID != t.ID {
			continue
		}
		switch c.Status {
		case switchboard.CallRunning:
			c.Status, c.ErrorClass, c.Error = switchboard.CallFailed, switchboard.ErrorClassInterrupted, callInterruptedNote
		case switchboard.CallAwaitingApproval:
			c.Status, c.ErrorClass, c.Error = switchboard.CallCancelled, switchboard.ErrorClassCancelled, notRunNote
		default:
			continue
		}
		c.FinishedAt = now
		nc := cloneCall(*c)
		nc.Arguments, nc.Result, nc.StructuredResult = nil, "", nil // as Postgres returns them
		in.Calls = append(in.Calls, nc)
	}
	slices.SortFunc(in.Calls, func(a, b switchboard.ToolCall) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return in
}

// RecoverTurns fails, at once, the turns that earlier boots of this
// store's instance left running, with their calls (see
// switchboard.Interrupted), and returns them, oldest first; as Postgres's
// RecoverTurns. A Memory of its own has no instance: it does nothing.
func (m *Memory) RecoverTurns(ctx context.Context) ([]switchboard.Interrupted, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("recover turns: %w", err)
	}
	if m.instance == "" {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var dead []*switchboard.Turn
	for _, l := range m.running {
		if t := m.turns[l.turn]; t != nil && t.Status == switchboard.TurnRunning && l.instance == m.instance && l.boot != m.boot {
			dead = append(dead, t)
		}
	}
	slices.SortFunc(dead, func(a, b *switchboard.Turn) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	now := time.Now()
	var out []switchboard.Interrupted
	for _, t := range dead {
		out = append(out, *m.interrupt(t, now))
	}
	return out, nil
}

// RenewTurn extends the lease of a running turn by LeaseDuration, and
// reports whether its cancellation was requested (RequestCancel). It
// returns an error wrapping switchboard.ErrNotFound if the turn does not
// exist or is not running.
func (m *Memory) RenewTurn(ctx context.Context, id string) (cancelRequested bool, err error) {
	if err := ctxErr(ctx); err != nil {
		return false, fmt.Errorf("renew turn %s: %w", id, err)
	}
	key, _ := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.turns[key]
	if !ok || t.Status != switchboard.TurnRunning || m.running[t.ConversationID].turn != t.ID {
		return false, fmt.Errorf("renew turn %s: %w", id, switchboard.ErrNotFound)
	}
	l := m.running[t.ConversationID]
	l.until = time.Now().Add(LeaseDuration)
	m.running[t.ConversationID] = l
	return l.cancelRequested, nil
}

// RequestCancel flags the running turn of the user's conversation as to be
// cancelled, which RenewTurn reports, and returns its id. A turn that no
// live instance holds (its lease ran out, or it names an earlier boot of
// this store's instance) is failed at once instead, with its calls, and
// returned as interrupted. It returns an error wrapping
// switchboard.ErrConflict (code no_running_turn) when no turn of the user
// runs in the conversation.
func (m *Memory) RequestCancel(ctx context.Context, userID, conversationID string) (string, *switchboard.Interrupted, error) {
	if err := ctxErr(ctx); err != nil {
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, err)
	}
	key, _ := lookupID(conversationID)
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.running[key]
	t := m.turns[l.turn]
	if !ok || t == nil || t.UserID != userID || t.Status != switchboard.TurnRunning {
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, errNoRunningTurn(conversationID))
	}
	if now := time.Now(); m.orphaned(l, now) {
		return t.ID, m.interrupt(t, now), nil
	}
	l.cancelRequested = true
	m.running[key] = l
	return l.turn, nil, nil
}

// Ping reports whether the store can be used: always, unless ctx is done.
func (m *Memory) Ping(ctx context.Context) error { return ctxErr(ctx) }

// Close does nothing; it is there so that both stores close alike.
func (m *Memory) Close() {}

// BeginTurn commits, at once, the start of a turn: it creates the
// conversation when s.Conversation.ID is empty (titled after the user's
// message unless s.Conversation.Title is set) or bumps its updated_at, then
// stores the turn as running and the user's message; it cancels the
// conversation's calls still awaiting approval, and the turn awaiting them
// (the user went on without deciding: they can no longer run). A running
// turn of the conversation that no live instance holds (its lease ran out,
// or it names an earlier boot of this store's instance) is failed first,
// with its calls, and reported in s.Interrupted; one that a live instance
// holds makes the start fail with turn_running. It fills the generated
// ids and times, and the conversation as stored, back into s, and returns the
// history window: the latest s.HistoryLimit messages of the conversation in
// order (all if 0), the new message last. With s.Regenerate, it stores no
// message: the messages after the one to answer again leave the transcript,
// and the window ends with that message.
//
// It returns an error wrapping switchboard.ErrNotFound if the conversation to
// continue does not exist, has a malformed id or belongs to another user than
// s.Turn.UserID, or s.Regenerate is set for a new conversation; ErrConflict
// if the user has a turn with the same idempotency key (a *switchboard.Error
// with code "idempotency_key_reused"), another turn of the conversation runs
// ("turn_running"), an id is taken, or the message
// s.Regenerate names is missing ("nothing_to_regenerate") or differs from
// s.UserMessage ("regenerate_mismatch"); ErrInvalid if s is invalid (no user id, unknown role or message
// type, malformed turn or message id, negative history limit, text too long).
// Nothing is stored when it fails.
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
		c, ok := m.conversations[conv.ID]
		if !ok || c.UserID != s.Turn.UserID {
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
	m.conversations[conv.ID] = &conv
	t := s.Turn
	m.turns[t.ID] = &t
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
	if old := m.turns[m.waiting[conv.ID]]; old != nil {
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
	return history, nil
}

// SaveTurn commits, at once, a turn's progress: it updates the turn (status,
// steps, tokens, timing, error, finished time), appends u.Messages to the
// conversation, and upserts u.ToolCalls by id: a new id inserts a ledger
// row; an existing one updates its status, result, structured result, error,
// error class, duration, result size, truncated flag and finished time. The
// messages and calls belong to the turn: their ConversationID, TurnID and
// (for calls) UserID are the turn's. When the turn leaves running (it ends
// or waits for an approval) it bumps the conversation's updated_at. It
// fills generated ids and times, the turn's conversation and user, and each
// call's stored StartedAt back into u.
//
// It returns an error wrapping switchboard.ErrNotFound if the turn does not
// exist or its id is malformed; ErrConflict if a message id is taken or a
// call id belongs to another turn's call; ErrInvalid if u is invalid (unknown
// status, role or message type, malformed id, JSON that does not parse,
// names too long). Nothing is stored when it fails.
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
	t.Status = u.Turn.Status
	t.Steps = u.Turn.Steps
	t.PromptTokens = u.Turn.PromptTokens
	t.CompletionTokens = u.Turn.CompletionTokens
	t.Timing = u.Turn.Timing
	t.Error = u.Turn.Error
	t.FinishedAt = u.Turn.FinishedAt
	u.Turn.ConversationID, u.Turn.UserID = t.ConversationID, t.UserID
	if t.Status != switchboard.TurnRunning {
		m.conversations[t.ConversationID].UpdatedAt = now
	}
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
			m.calls[c.ID] = &nc
			continue
		}
		old.Status = c.Status
		old.Result = c.Result
		old.StructuredResult = cloneJSON(c.StructuredResult)
		old.Error = c.Error
		old.ErrorClass = c.ErrorClass
		old.Duration = c.Duration
		old.ResultSize = c.ResultSize
		old.Truncated = c.Truncated
		old.FinishedAt = c.FinishedAt
		c.StartedAt = old.StartedAt
	}
	return nil
}

// GetConversation returns the conversation with the given id. It returns an
// error wrapping switchboard.ErrNotFound if there is none or id is malformed.
// It does not check who owns the conversation: callers do.
func (m *Memory) GetConversation(ctx context.Context, id string) (switchboard.Conversation, error) {
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

// ConversationByExternalID returns the user's conversation that the client
// named externalID. It returns an error wrapping switchboard.ErrNotFound if
// the user has none.
func (m *Memory) ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", externalID, userID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conversations {
		if c.UserID == userID && c.ExternalID == externalID && externalID != "" {
			return *c, nil
		}
	}
	return switchboard.Conversation{}, fmt.Errorf("load conversation %q of %s: %w", externalID, userID, switchboard.ErrNotFound)
}

// ListConversations returns the user's conversations, the most recently
// updated first, at most limit of them (DefaultPageSize if limit is 0, at
// most MaxPageSize). A user without conversations has an empty list.
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

// UpdateConversation sets the title and, if c.Status is not empty, the status
// of the conversation c.ID, bumps its updated_at and returns it as stored;
// other fields of c are ignored. It returns an error wrapping
// switchboard.ErrNotFound if there is no such conversation or its id is
// malformed, and ErrInvalid if the title or the status is too long.
func (m *Memory) UpdateConversation(ctx context.Context, c switchboard.Conversation) (switchboard.Conversation, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %s: %w", c.ID, err)
	}
	if err := prepareConversationUpdate(&c); err != nil {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %s: %w", c.ID, err)
	}
	key, ok := lookupID(c.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, found := m.conversations[key]
	if !ok || !found {
		return switchboard.Conversation{}, fmt.Errorf("update conversation %q: %w", c.ID, switchboard.ErrNotFound)
	}
	stored.Title = c.Title
	if c.Status != "" {
		stored.Status = c.Status
	}
	stored.UpdatedAt = now()
	return *stored, nil
}

// DeleteConversation deletes the conversation with its messages, turns and
// tool calls. It returns an error wrapping switchboard.ErrNotFound if there is
// no such conversation or id is malformed.
func (m *Memory) DeleteConversation(ctx context.Context, id string) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("delete conversation %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, found := m.conversations[key]; !ok || !found {
		return fmt.Errorf("delete conversation %q: %w", id, switchboard.ErrNotFound)
	}
	delete(m.conversations, key)
	for _, msg := range slices.Concat(m.messages[key], m.superseded[key]) {
		delete(m.messageIDs, msg.ID)
		delete(m.order, msg.ID)
	}
	delete(m.messages, key)
	delete(m.superseded, key)
	delete(m.waiting, key)
	for tid, t := range m.turns {
		if t.ConversationID == key {
			delete(m.turns, tid)
			delete(m.idempotency, idempotencyKey{t.UserID, t.IdempotencyKey})
		}
	}
	for cid, c := range m.calls {
		if c.ConversationID == key {
			delete(m.calls, cid)
		}
	}
	return nil
}

// ListMessages returns the whole transcript of a conversation in order,
// without the messages a regenerated answer superseded. It
// returns an error wrapping switchboard.ErrNotFound if there is no such
// conversation or its id is malformed.
func (m *Memory) ListMessages(ctx context.Context, conversationID string) ([]switchboard.Message, error) {
	return m.listMessages(ctx, conversationID, func(key string) []switchboard.Message {
		msgs := make([]switchboard.Message, len(m.messages[key]))
		for i, msg := range m.messages[key] {
			msgs[i] = cloneMessage(msg)
		}
		return msgs
	})
}

// ListAllMessages is ListMessages with the superseded messages, in their
// place, their SupersededBy set: what happened, for admins.
func (m *Memory) ListAllMessages(ctx context.Context, conversationID string) ([]switchboard.Message, error) {
	return m.listMessages(ctx, conversationID, func(key string) []switchboard.Message {
		var msgs []switchboard.Message
		for _, msg := range slices.Concat(m.messages[key], m.superseded[key]) {
			msgs = append(msgs, cloneMessage(msg))
		}
		slices.SortFunc(msgs, func(a, b switchboard.Message) int { return cmp.Compare(m.order[a.ID], m.order[b.ID]) })
		return msgs
	})
}

// listMessages checks that the conversation exists and returns what read
// makes of its messages, under the read lock.
func (m *Memory) listMessages(ctx context.Context, conversationID string, read func(key string) []switchboard.Message) ([]switchboard.Message, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list messages of %s: %w", conversationID, err)
	}
	key, ok := lookupID(conversationID)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, found := m.conversations[key]; !ok || !found {
		return nil, fmt.Errorf("list messages of conversation %q: %w", conversationID, switchboard.ErrNotFound)
	}
	return read(key), nil
}

// supersede takes the messages of a conversation's transcript from index
// from on out of it, marked superseded by turn by, and cancels the turns
// among theirs that await an approval, with their waiting calls: the
// question they would answer was answered again. The caller holds m.mu.
func (m *Memory) supersede(conversationID string, from int, by string, now time.Time) {
	msgs := m.messages[conversationID]
	for _, msg := range msgs[from:] {
		msg.SupersededBy = by
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
		t.Status, t.Error, t.FinishedAt = switchboard.TurnCancelled, note, now
	}
	var out []switchboard.ToolCall
	for _, c := range m.calls {
		if c.TurnID == t.ID && c.Status == switchboard.CallAwaitingApproval {
			c.Status, c.ErrorClass, c.Error, c.FinishedAt = switchboard.CallCancelled, switchboard.ErrorClassCancelled, note, now
			out = append(out, cloneCall(*c))
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
	m.messages[conversationID] = append(m.messages[conversationID], cloneMessage(msg))
}

// GetTurn returns the turn with the given id. It returns an error wrapping
// switchboard.ErrNotFound if there is none or id is malformed.
func (m *Memory) GetTurn(ctx context.Context, id string) (switchboard.Turn, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.Turn{}, fmt.Errorf("load turn %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, found := m.turns[key]
	if !ok || !found {
		return switchboard.Turn{}, fmt.Errorf("load turn %q: %w", id, switchboard.ErrNotFound)
	}
	return *t, nil
}

// ListTurns returns the turns of a conversation, oldest first. It returns an
// error wrapping switchboard.ErrNotFound if there is no such conversation or
// its id is malformed.
func (m *Memory) ListTurns(ctx context.Context, conversationID string) ([]switchboard.Turn, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list turns of %s: %w", conversationID, err)
	}
	key, ok := lookupID(conversationID)
	m.mu.RLock()
	if _, found := m.conversations[key]; !ok || !found {
		m.mu.RUnlock()
		return nil, fmt.Errorf("list turns of conversation %q: %w", conversationID, switchboard.ErrNotFound)
	}
	turns := []switchboard.Turn{}
	for _, t := range m.turns {
		if t.ConversationID == key {
			turns = append(turns, *t)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(turns, func(a, b switchboard.Turn) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return turns, nil
}

// TurnByIdempotencyKey returns the user's turn that was begun with the given
// idempotency key. It returns an error wrapping switchboard.ErrNotFound if
// there is none (an empty key has none).
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

// GetToolCall returns the ledger row with the given id. It returns an error
// wrapping switchboard.ErrNotFound if there is none or id is malformed.
func (m *Memory) GetToolCall(ctx context.Context, id string) (switchboard.ToolCall, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, found := m.calls[key]
	if !ok || !found {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %q: %w", id, switchboard.ErrNotFound)
	}
	return cloneCall(*c), nil
}

// DecideToolCall moves a call that awaits approval to running (approve) or
// denied, and its turn from awaiting_approval to running under a new lease,
// atomically: of two deciders, one wins, and from the decision on the turn
// holds its conversation. It returns the call as stored before the
// decision. It returns an error wrapping switchboard.ErrNotFound if there is
// no such call, and ErrConflict with code "already_decided" if the call does
// not await approval any more, or "turn_running" if its turn or another turn
// of the conversation runs.
func (m *Memory) DecideToolCall(ctx context.Context, id string, approve bool) (switchboard.ToolCall, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, found := m.calls[key]
	if !ok || !found {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %q: %w", id, switchboard.ErrNotFound)
	}
	now := time.Now()
	if l, ok := m.running[c.ConversationID]; ok {
		// A running turn of the conversation that no live instance holds
		// is failed first, with its calls, as Postgres does.
		if old := m.turns[l.turn]; old != nil && old.Status == switchboard.TurnRunning && m.orphaned(l, now) {
			m.interrupt(old, now)
		}
	}
	if c.Status != switchboard.CallAwaitingApproval {
		return switchboard.ToolCall{}, errAlreadyDecided(id)
	}
	t := m.turns[c.TurnID]
	switch {
	case t != nil && t.Status == switchboard.TurnRunning: // a decision of another call of it
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, errTurnRunning())
	case t == nil || t.Status != switchboard.TurnAwaitingApproval: // it ended: the call can no longer run
		return switchboard.ToolCall{}, errAlreadyDecided(id)
	}
	if _, err := m.takeLease(t.ConversationID, t.ID, now); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, err)
	}
	t.Status = switchboard.TurnRunning
	before := cloneCall(*c)
	c.Status = switchboard.CallRunning
	if !approve {
		c.Status = switchboard.CallDenied
	}
	return before, nil
}

// PruneToolCallPayloads removes the arguments and results of at most batch
// ledger rows that started before before, oldest first, keeping the rows and
// their metadata; it returns how many it pruned.
func (m *Memory) PruneToolCallPayloads(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		return 0, fmt.Errorf("prune tool calls: batch %d: %w", batch, switchboard.ErrInvalid)
	}
	if err := ctxErr(ctx); err != nil {
		return 0, fmt.Errorf("prune tool calls: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var old []*switchboard.ToolCall
	for _, c := range m.calls {
		if !c.PayloadPruned && c.StartedAt.Before(before) {
			old = append(old, c)
		}
	}
	slices.SortFunc(old, func(a, b *switchboard.ToolCall) int { return a.StartedAt.Compare(b.StartedAt) })
	if len(old) > batch {
		old = old[:batch]
	}
	for _, c := range old {
		c.Arguments, c.Result, c.StructuredResult, c.PayloadPruned = nil, "", nil, true
	}
	return len(old), nil
}

// ListToolCalls returns one page of the ledger rows that pass f, newest first
// (by started_at, then id), and the cursor of the next page, which is empty
// on the last page. A page has f.Limit rows (DefaultPageSize if 0, at most
// MaxPageSize); f.After is the cursor of the previous page. Rows stored while
// paging never make a later page repeat or skip a row.
//
// It returns an error wrapping switchboard.ErrInvalid if the cursor is
// malformed, the status unknown, or a conversation or turn id malformed.
func (m *Memory) ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", err)
	}
	q, err := prepareFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", err)
	}
	calls := []switchboard.ToolCall{}
	m.mu.RLock()
	for _, c := range m.calls {
		if !q.matches(c) {
			continue
		}
		if q.afterID != "" {
			// Keep rows before the cursor: (started_at, id) < (afterTime, afterID).
			if d := cmp.Or(c.StartedAt.Compare(q.afterTime), cmp.Compare(c.ID, q.afterID)); d >= 0 {
				continue
			}
		}
		calls = append(calls, cloneCall(*c))
	}
	m.mu.RUnlock()
	slices.SortFunc(calls, func(a, b switchboard.ToolCall) int {
		return cmp.Or(b.StartedAt.Compare(a.StartedAt), cmp.Compare(b.ID, a.ID))
	})
	if len(calls) <= q.limit {
		return calls, "", nil
	}
	calls = calls[:q.limit]
	last := calls[len(calls)-1]
	return calls, encodeCursor(last.StartedAt, last.ID), nil
}

// ToolCallStats aggregates the ledger rows that pass f (After and Limit are
// ignored) per tool (groupBy GroupByTool: Group is the server's tool name) or
// per server (GroupByServer: Group is the server), ordered by server and
// group. Count counts all rows; Errors, ErrorRate, P50 and P95 consider
// finished calls only (not running or awaiting approval), and an error is
// any final status but succeeded.
//
// It returns an error wrapping switchboard.ErrInvalid if groupBy is unknown
// or the filter is invalid.
func (m *Memory) ToolCallStats(ctx context.Context, f switchboard.ToolCallFilter, groupBy string) ([]switchboard.ToolCallStats, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	if err := checkGroupBy(groupBy); err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	f.After = ""
	q, err := prepareFilter(f)
	if err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	type group struct {
		stats     switchboard.ToolCallStats
		finished  int64
		durations []float64
	}
	groups := make(map[[2]string]*group)
	m.mu.RLock()
	for _, c := range m.calls {
		if !q.matches(c) {
			continue
		}
		key := [2]string{c.Server, c.Tool}
		if groupBy == GroupByServer {
			key[1] = c.Server
		}
		g := groups[key]
		if g == nil {
			g = &group{stats: switchboard.ToolCallStats{Server: key[0], Group: key[1]}}
			groups[key] = g
		}
		g.stats.Count++
		if !c.Finished() {
			continue
		}
		g.finished++
		g.durations = append(g.durations, millis(c.Duration))
		if c.Status != switchboard.CallSucceeded {
			g.stats.Errors++
		}
	}
	m.mu.RUnlock()
	stats := make([]switchboard.ToolCallStats, 0, len(groups))
	for _, g := range groups {
		slices.Sort(g.durations)
		g.stats.ErrorRate = errorRate(g.stats.Errors, g.finished)
		g.stats.P50 = fromMillis(percentile(g.durations, 0.5))
		g.stats.P95 = fromMillis(percentile(g.durations, 0.95))
		stats = append(stats, g.stats)
	}
	slices.SortFunc(stats, func(a, b switchboard.ToolCallStats) int {
		return cmp.Or(cmp.Compare(a.Server, b.Server), cmp.Compare(a.Group, b.Group))
	})
	return stats, nil
}

func cloneMessage(m switchboard.Message) switchboard.Message {
	m.ToolCalls = slices.Clone(m.ToolCalls)
	return m
}

func cloneCall(c switchboard.ToolCall) switchboard.ToolCall {
	c.Arguments = cloneJSON(c.Arguments)
	c.StructuredResult = cloneJSON(c.StructuredResult)
	return c
}
