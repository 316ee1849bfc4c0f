package store

import (
	"context"
	"fmt"

	"github.com/switchboard-dev/switchboard"
)

// GetMCPSession implements [Store.GetMCPSession].
func (p *Postgres) GetMCPSession(ctx context.Context, server, userID string) (switchboard.MCPSession, error) {
	s := switchboard.MCPSession{Server: server, UserID: userID}
	err := p.pool.QueryRow(ctx, `SELECT session_id, protocol_version, updated_at FROM mcp_sessions WHERE server = $1 AND user_id = $2`,
		server, userID).Scan(&s.SessionID, &s.ProtocolVersion, &s.UpdatedAt)
	if err != nil {
		return switchboard.MCPSession{}, fmt.Errorf("load the mcp session of %s on %s: %w", userID, server, dbError(err))
	}
	s.UpdatedAt = s.UpdatedAt.UTC()
	return s, nil
}

// PutMCPSession implements [Store.PutMCPSession].
func (p *Postgres) PutMCPSession(ctx context.Context, s switchboard.MCPSession) error {
	if err := prepareMCPSession(&s); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO mcp_sessions (server, user_id, session_id, protocol_version, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (server, user_id) DO UPDATE SET session_id = EXCLUDED.session_id,
    protocol_version = EXCLUDED.protocol_version, updated_at = EXCLUDED.updated_at`,
		s.Server, s.UserID, s.SessionID, s.ProtocolVersion, s.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store the mcp session of %s on %s: %w", s.UserID, s.Server, dbError(err))
	}
	return nil
}
