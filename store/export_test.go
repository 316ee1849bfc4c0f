package store

import (
	"context"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// LedgerSQL returns the SQL and arguments that ListToolCalls (groupBy "")
// or ToolCallStats (groupBy GroupByTool or GroupByServer) sends for f, so
// that tests can EXPLAIN exactly what the store runs.
func LedgerSQL(f switchboard.ToolCallFilter, groupBy string) (string, []any, error) {
	if groupBy != "" {
		f.After = ""
	}
	q, err := prepareFilter(f)
	if err != nil {
		return "", nil, err
	}
	if groupBy == "" {
		sql, args := listToolCallsSQL(q)
		return sql, args, nil
	}
	sql, args := toolCallStatsSQL(q, groupBy)
	return sql, args, nil
}

// Queries an admin's transcript view sends, by conversation id.
const (
	SelectTranscript          = selectTranscript
	SelectAllMessages         = selectAllMessages
	SelectHistory             = selectHistory
	SelectTurnsOfConversation = selectTurnsOfConversation
	// CancelWaiting is what every turn's start sends, with a conversation
	// id and a user id.
	CancelWaiting = cancelWaiting
	// StartQuietTurn is what a plain start sends first: the turn and its
	// message, guarded by the absence of what CancelWaiting and the
	// orphans' check act on.
	StartQuietTurn = startQuietTurn
)

// SynchronousCommit reads the synchronous_commit setting of a connection
// of p's pool.
func SynchronousCommit(p *Postgres) (string, error) {
	var s string
	err := p.pool.QueryRow(context.Background(), `SHOW synchronous_commit`).Scan(&s)
	return s, err
}

// MemoryInstance returns a store on m's data as the instance id sees it,
// in a new boot of its: the same id again is that instance started again.
func MemoryInstance(m *Memory, id string) *Memory {
	return &Memory{memoryData: m.memoryData, instance: id, boot: switchboard.NewID()}
}

// ExpireLeases makes the leases of m's running turns run out.
func ExpireLeases(m *Memory) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, l := range m.running {
		l.until = time.Now().Add(-time.Second)
		m.running[k] = l
	}
}

// MemoryRecount counts again what m keeps (see Memory.recount): the
// conversations whose count differs from the store's (recounted, counted),
// the recounted total and the records kept of no conversation.
func MemoryRecount(m *Memory) (diffs map[string][2]int64, total int64, strays int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.recount()
}

// RecordSize is what the memory store counts for a record it keeps: a
// Conversation, Message, Turn or ToolCall.
func RecordSize(v any) int64 {
	switch r := v.(type) {
	case switchboard.Conversation:
		return storedConversationSize(&r)
	case switchboard.Message:
		return storedMessageSize(&r)
	case switchboard.Turn:
		return storedTurnSize(&r)
	case switchboard.ToolCall:
		return storedCallSize(&r)
	case switchboard.Input:
		return storedInputSize(&r)
	case switchboard.Sampling:
		return storedSamplingSize(&r)
	}
	panic("not a record the memory store keeps")
}

// SaveTurnStatement is SaveTurn's statement: a step's, which locks the
// conversation, or an end's, which bumps it, each updating the turn and
// storing its messages and the ledger rows of its calls.
// The statement is the one of a turn that may have calls open on its row,
// and for an end, calls the end does not write (the fullest shape).
func SaveTurnStatement(ended bool, calls int) string {
	return saveStatement(saveShape{ended: ended, calls: calls, open: true, leftover: ended})
}

// BackendPID returns the process id of the Postgres backend of one of the
// store's connections: with MaxConns 1, the one every statement runs on.
func BackendPID(ctx context.Context, p *Postgres) (int, error) {
	var pid int
	err := p.pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid)
	return pid, err
}

// ForgetOpenCalls makes p's tracker of open calls drop what it knows, as
// past its bound: saves then read the calls open on their turn's row.
func ForgetOpenCalls(p *Postgres) {
	p.open.mu.Lock()
	defer p.open.mu.Unlock()
	clear(p.open.turns)
	p.open.lost = true
}
