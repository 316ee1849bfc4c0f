package storetest

import (
	"testing"

	"github.com/switchboard-dev/switchboard"
)

// testMCPSessions: a kept session is per server and user, replaced by the
// next, and refused without what names it.
func testMCPSessions(t *testing.T, s Store) {
	ctx := t.Context()
	_, err := s.GetMCPSession(ctx, "github", "alice")
	wantErr(t, "GetMCPSession before any", err, switchboard.ErrNotFound)
	for _, put := range []switchboard.MCPSession{
		{Server: "github", UserID: "alice", SessionID: "s-1", ProtocolVersion: "2025-11-25"},
		{Server: "github", UserID: "bob", SessionID: "s-2", ProtocolVersion: "2025-06-18"},
		{Server: "github", UserID: "alice", SessionID: "s-3", ProtocolVersion: "2025-11-25"},
	} {
		if err := s.PutMCPSession(ctx, put); err != nil {
			t.Fatalf("PutMCPSession(%+v): %v", put, err)
		}
	}
	got, err := s.GetMCPSession(ctx, "github", "alice")
	if err != nil || got.SessionID != "s-3" || got.UpdatedAt.IsZero() {
		t.Errorf("alice's: %+v, %v; want s-3", got, err)
	}
	if got, err := s.GetMCPSession(ctx, "github", "bob"); err != nil || got.SessionID != "s-2" || got.ProtocolVersion != "2025-06-18" {
		t.Errorf("bob's: %+v, %v", got, err)
	}
	_, err = s.GetMCPSession(ctx, "linear", "alice")
	wantErr(t, "another server's", err, switchboard.ErrNotFound)
	err = s.PutMCPSession(ctx, switchboard.MCPSession{Server: "github", UserID: "alice"})
	wantErr(t, "PutMCPSession without a session id", err, switchboard.ErrInvalid)
}
