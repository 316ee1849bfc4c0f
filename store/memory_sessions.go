package store

import (
	"context"
	"fmt"

	"github.com/switchboard-dev/switchboard"
)

type sessionKey struct{ server, userID string }

// GetMCPSession implements [Store.GetMCPSession].
func (m *Memory) GetMCPSession(ctx context.Context, server, userID string) (switchboard.MCPSession, error) {
	if err := ctx.Err(); err != nil {
		return switchboard.MCPSession{}, ctxErr(ctx)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.mcpSessions[sessionKey{server, userID}]
	if !ok {
		return switchboard.MCPSession{}, fmt.Errorf("load the mcp session of %s on %s: %w", userID, server, switchboard.ErrNotFound)
	}
	return s, nil
}

// PutMCPSession implements [Store.PutMCPSession].
func (m *Memory) PutMCPSession(ctx context.Context, s switchboard.MCPSession) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	if err := prepareMCPSession(&s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mcpSessions == nil {
		m.mcpSessions = map[sessionKey]switchboard.MCPSession{}
	}
	m.mcpSessions[sessionKey{s.Server, s.UserID}] = s
	return nil
}
