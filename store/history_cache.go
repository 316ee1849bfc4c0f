package store

import (
	"container/list"
	"sync"

	"github.com/switchboard-dev/switchboard"
)

// historyRoom is the room a history window that BeginTurn returns has left
// at its end, so that the turn appends its next messages without copying
// the window.
const historyRoom = 8

// DefaultHistoryCacheBytes is the default size of the history cache of a
// Postgres store (Options.HistoryCacheBytes).
const DefaultHistoryCacheBytes = 32 << 20

// historyCache keeps, per conversation, the history window that the last
// turn start read, so that the next start reads only what was stored after
// it. A conversation's messages are only ever appended, or marked superseded
// by an edit or a regenerate, which marks every message after the one it
// replaces: so a window is still exact, short of the newer messages, while
// its last message is in the transcript, with its id and seq.
// selectHistory checks that in the statement that reads the newer
// messages, and says which it read, so an entry never serves a window that
// another instance (of any version) changed, nor one of which a commit was
// lost (the start's commit does not wait for its flush; a message that is
// still there was flushed with all before it; and a lost commit can give
// its seq to the next message, hence the id).
//
// What makes "stored after it" exact is that every write of a
// conversation's messages first locks the conversation's row (BeginTurn,
// SaveTurn), and that messages.seq is an identity without a per-session
// cache (CACHE 1, the default): messages of one conversation get their
// seq, and commit, in one order. A writer that inserts messages without
// that lock (by hand, in SQL), or changes their content, may make a cached
// window miss it until the entry is evicted or its last message leaves the
// transcript.
//
// The cache is bounded by an estimate of the bytes its messages hold, and
// evicts the least recently used conversation first.
type historyCache struct {
	max int

	mu      sync.Mutex
	size    int
	entries map[string]*list.Element // of *historyEntry
	lru     list.List                // most recently used first
}

// historyEntry is a conversation's window of limit messages at most, the
// last of seq lastSeq. Its messages are those of the window BeginTurn
// returned (the structs copied, what they refer to shared with the turn
// that got it and with the windows made from it): nothing modifies them.
type historyEntry struct {
	conversationID string
	limit          int
	lastSeq        int64
	msgs           []switchboard.Message
	size           int
}

func newHistoryCache(maxBytes int) *historyCache {
	if maxBytes < 0 {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = DefaultHistoryCacheBytes
	}
	return &historyCache{max: maxBytes, entries: map[string]*list.Element{}}
}

// get returns the conversation's entry read with the same limit, or nil.
func (c *historyCache) get(conversationID string, limit int) *historyEntry {
	if c == nil || limit <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[conversationID]
	if !ok {
		return nil
	}
	e := el.Value.(*historyEntry)
	if e.limit != limit {
		return nil
	}
	c.lru.MoveToFront(el)
	return e
}

// put makes e the conversation's entry. An entry larger than a quarter of
// the cache is not kept.
func (c *historyCache) put(e *historyEntry) {
	if c == nil || e.limit <= 0 {
		return
	}
	for _, m := range e.msgs {
		e.size += messageSize(m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(e.conversationID)
	if e.size > c.max/4 {
		return
	}
	c.entries[e.conversationID] = c.lru.PushFront(e)
	c.size += e.size
	for c.size > c.max {
		c.removeLocked(c.lru.Back().Value.(*historyEntry).conversationID)
	}
}

// drop forgets the conversation.
func (c *historyCache) drop(conversationID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(conversationID)
}

func (c *historyCache) removeLocked(conversationID string) {
	if el, ok := c.entries[conversationID]; ok {
		c.size -= el.Value.(*historyEntry).size
		c.lru.Remove(el)
		delete(c.entries, conversationID)
	}
}

// window returns the history window after e: e's messages followed by
// those read after it (newer, in order), the last e.limit of them, with
// room for historyRoom more. The slice is the caller's; the messages are
// shared with e, which nothing modifies (see Store.BeginTurn).
func (e *historyEntry) window(newer []switchboard.Message) []switchboard.Message {
	n := len(e.msgs) + len(newer)
	skip := max(0, n-e.limit)
	out := make([]switchboard.Message, 0, n-skip+historyRoom)
	out = append(out, e.msgs[min(skip, len(e.msgs)):]...)
	skip = max(0, skip-len(e.msgs))
	return append(out, newer[skip:]...)
}

// messageSize estimates the bytes a cached message holds.
func messageSize(m switchboard.Message) int {
	n := 256 + len(m.ID) + len(m.ConversationID) + len(m.TurnID) + len(m.Content) + len(m.ToolCallID) + len(m.ToolName)
	for _, c := range m.ToolCalls {
		n += 64 + len(c.ID) + len(c.Name) + len(c.Arguments)
	}
	return n
}
