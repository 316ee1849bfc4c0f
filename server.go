package switchboard

import (
	"encoding/json"
	"time"
)

// ToolAnnotations are the hints an MCP server gives about a tool. Nil means
// the server said nothing.
type ToolAnnotations struct {
	ReadOnly    *bool
	Destructive *bool
	Idempotent  *bool
	OpenWorld   *bool
}

// IsReadOnly reports whether the tool declared itself read-only.
func (a ToolAnnotations) IsReadOnly() bool { return a.ReadOnly != nil && *a.ReadOnly }

// IsDestructive reports whether the tool may destroy data. As MCP defines
// the hints, a read-only tool is never destructive, and a tool that is not
// read-only is destructive unless it says otherwise.
func (a ToolAnnotations) IsDestructive() bool {
	if a.IsReadOnly() {
		return false
	}
	if a.Destructive != nil {
		return *a.Destructive
	}
	return !a.IsReadOnly()
}

// ToolInfo describes one tool of the catalog, for people (the tools route,
// the admin console, `switchboard tools`).
type ToolInfo struct {
	Name        string // exposed name
	Server      string
	Tool        string // the server's own name
	Description string
	Parameters  json.RawMessage // as the model sees them
	Annotations ToolAnnotations
	// Icons are the icons the server declared for the tool, those safe to
	// show only (see Icon).
	Icons []Icon
}

// Icon is an icon an MCP server declared for itself or a tool. Only icons
// that a page can show without risk are kept: Src is an https: URL or a
// data: URL of a PNG, JPEG, GIF or WebP image (never SVG, which can carry
// script, nor any other scheme).
type Icon struct {
	Src      string
	MIMEType string   // as declared; may be empty
	Sizes    []string // such as "48x48" or "any"
	Theme    string   // "light", "dark" or empty
}

// QuarantinedTool is a tool left out of the catalog, and why.
type QuarantinedTool struct {
	Server string
	Tool   string
	Reason string
}

// ServerState is the health of one MCP server connection.
type ServerState string

// Server states.
const (
	ServerStarting     ServerState = "starting"
	ServerReady        ServerState = "ready"
	ServerDegraded     ServerState = "degraded" // connected before, now failing; being restarted
	ServerCrashLooping ServerState = "crashlooping"
	ServerStopped      ServerState = "stopped"
)

// ServerStatus is what admins see of one configured MCP server.
type ServerStatus struct {
	Name        string
	Transport   string // stdio, http or sse
	State       ServerState
	Required    bool
	Tools       []string // exposed names
	Quarantined []QuarantinedTool
	Restarts    int
	LastError   string
	LastErrorAt time.Time
	ConnectedAt time.Time
	StderrTail  []string
	// Scope says whose session a call runs on: shared, user or
	// conversation. For a server of scope user or conversation the fields
	// above are those of the session that lists its tools for the catalog,
	// and Sessions are the sessions open.
	Scope    string
	Sessions []SessionStatus
	// Icons are the server's own icons (its serverInfo's); ToolIcons those
	// of its exposed tools that declare some, by exposed name.
	Icons     []Icon
	ToolIcons map[string][]Icon
	// Protocol is what the server's connection speaks and what the server
	// said of itself; zero until it first connected.
	Protocol ServerProtocol
}

// ServerProtocol is what a connection to an MCP server speaks, and what
// the server said of itself in its initialize result (legacy era) or its
// server/discover result (modern era).
type ServerProtocol struct {
	// Era is "legacy" (the initialize handshake, MCP 2025-11-25 and
	// earlier) or "modern" (MCP 2026-07-28 and later: per-request _meta,
	// no sessions).
	Era string
	// Version is the protocol version in use.
	Version string
	// ServerName and ServerVersion are the server's serverInfo.
	ServerName, ServerVersion string
	// Capabilities are the server's capabilities as it declared them
	// (a JSON object).
	Capabilities json.RawMessage
}

// SessionStatus is what admins see of one session of a server of scope user
// or conversation.
type SessionStatus struct {
	// Key is the user id (scope user) or the conversation id (scope
	// conversation).
	Key            string
	UserID         string
	ConversationID string
	State          ServerState
	// PID is a stdio session's process (and process group) while it runs.
	PID       int
	Started   time.Time
	LastUsed  time.Time
	Restarts  int
	LastError string
	InFlight  int
}

// PoolStats describes a store's connection pool, for metrics.
type PoolStats struct {
	Total, Idle, Acquired, Max int32
	AcquireCount               int64
	EmptyAcquireCount          int64 // acquisitions that had to wait for a connection
	AcquireDuration            time.Duration
}

// MCPSession is a user's streamable HTTP session of a server of scope user,
// kept so that another instance takes it up instead of starting another.
type MCPSession struct {
	Server          string
	UserID          string
	SessionID       string
	ProtocolVersion string
	UpdatedAt       time.Time
}
