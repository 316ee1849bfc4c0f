package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// unavailable answers 503 for a route whose collaborator is not wired.
func (h *Handler) unavailable(c *gin.Context, what string) {
	h.writeError(c, switchboard.Errorf(switchboard.ErrUnavailable, "not_available", "%s is not available on this server", what))
}

type serverDTO struct {
	Name        string           `json:"name"`
	Transport   string           `json:"transport"`
	State       string           `json:"state"`
	Required    bool             `json:"required"`
	Tools       []string         `json:"tools"`
	Quarantined []quarantinedDTO `json:"quarantined"`
	Restarts    int              `json:"restarts"`
	LastError   string           `json:"last_error,omitempty"`
	LastErrorAt string           `json:"last_error_at,omitempty"`
	ConnectedAt string           `json:"connected_at,omitempty"`
	StderrTail  []string         `json:"stderr_tail"`
	// Scope is whose session a call runs on (shared, user, conversation);
	// for user and conversation the fields above are those of the session
	// that lists the server's tools, and Sessions are the sessions open.
	Scope        string       `json:"scope"`
	SessionsOpen int          `json:"sessions_open"`
	Sessions     []sessionDTO `json:"sessions,omitempty"`
	// Icons are the server's own; ToolIcons those of its tools that
	// declare some, by exposed name.
	Icons     []iconDTO            `json:"icons,omitempty"`
	ToolIcons map[string][]iconDTO `json:"tool_icons,omitempty"`
	// Protocol is what the server's connection speaks and what the
	// server said of itself; absent until it first connected.
	Protocol *protocolDTO `json:"protocol,omitempty"`
}

// protocolDTO is the protocol era and version a server's connection
// settled on, and the server's name, version and capabilities.
type protocolDTO struct {
	Era           string          `json:"era"`
	Version       string          `json:"version"`
	ServerName    string          `json:"server_name"`
	ServerVersion string          `json:"server_version"`
	Capabilities  json.RawMessage `json:"capabilities"`
}

// iconDTO is an icon a server declared for itself or a tool: only those
// safe to show reach here (an https: URL, or a data: URL of a PNG, JPEG,
// GIF or WebP image), and a page must check src again before it loads it.
type iconDTO struct {
	Src      string   `json:"src"`
	MIMEType string   `json:"mime_type,omitempty"`
	Sizes    []string `json:"sizes,omitempty"`
	Theme    string   `json:"theme,omitempty"`
}

func toIcons(icons []switchboard.Icon) []iconDTO {
	if len(icons) == 0 {
		return nil
	}
	out := make([]iconDTO, len(icons))
	for i, ic := range icons {
		out[i] = iconDTO(ic)
	}
	return out
}

// sessionDTO is one session of a server of scope user or conversation.
type sessionDTO struct {
	Key            string `json:"key"`
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id,omitempty"`
	State          string `json:"state"`
	PID            int    `json:"pid,omitempty"`
	Started        string `json:"started_at"`
	LastUsed       string `json:"last_used_at"`
	Restarts       int    `json:"restarts"`
	LastError      string `json:"last_error,omitempty"`
	InFlight       int    `json:"calls_in_flight"`
}

type quarantinedDTO struct {
	Tool   string `json:"tool"`
	Reason string `json:"reason"`
}

func optionalTime(t interface{ IsZero() bool }, s string) string {
	if t.IsZero() {
		return ""
	}
	return s
}

func (h *Handler) listServers(c *gin.Context) {
	if h.Servers == nil {
		h.unavailable(c, "server administration")
		return
	}
	statuses := h.Servers.Servers()
	out := make([]serverDTO, len(statuses))
	for i, s := range statuses {
		d := serverDTO{Name: s.Name, Transport: s.Transport, State: string(s.State), Required: s.Required,
			Tools: s.Tools, Quarantined: []quarantinedDTO{}, Restarts: s.Restarts, LastError: s.LastError,
			LastErrorAt: optionalTime(s.LastErrorAt, timestamp(s.LastErrorAt)),
			ConnectedAt: optionalTime(s.ConnectedAt, timestamp(s.ConnectedAt)), StderrTail: s.StderrTail}
		if d.Tools == nil {
			d.Tools = []string{}
		}
		if d.StderrTail == nil {
			d.StderrTail = []string{}
		}
		for _, q := range s.Quarantined {
			d.Quarantined = append(d.Quarantined, quarantinedDTO{Tool: q.Tool, Reason: q.Reason})
		}
		d.Scope, d.SessionsOpen = s.Scope, len(s.Sessions)
		d.Icons = toIcons(s.Icons)
		if p := s.Protocol; p.Era != "" {
			d.Protocol = &protocolDTO{Era: p.Era, Version: p.Version, ServerName: p.ServerName, ServerVersion: p.ServerVersion,
				Capabilities: p.Capabilities}
			if len(d.Protocol.Capabilities) == 0 {
				d.Protocol.Capabilities = json.RawMessage(`{}`)
			}
		}
		for name, icons := range s.ToolIcons {
			if d.ToolIcons == nil {
				d.ToolIcons = map[string][]iconDTO{}
			}
			d.ToolIcons[name] = toIcons(icons)
		}
		for _, ss := range s.Sessions {
			d.Sessions = append(d.Sessions, sessionDTO{Key: ss.Key, UserID: ss.UserID, ConversationID: ss.ConversationID,
				State: string(ss.State), PID: ss.PID, Started: timestamp(ss.Started), LastUsed: timestamp(ss.LastUsed),
				Restarts: ss.Restarts, LastError: ss.LastError, InFlight: ss.InFlight})
		}
		out[i] = d
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "servers": out})
}

func (h *Handler) reloadServers(c *gin.Context) {
	if h.Servers == nil {
		h.unavailable(c, "server administration")
		return
	}
	if err := h.Servers.Reload(c.Request.Context()); err != nil {
		h.writeError(c, err)
		return
	}
	h.listServers(c)
}

// closeSession serves DELETE /api/admin/servers/{name}/sessions/{key}: the
// session of a user (scope user) or conversation (scope conversation) is
// closed, its process group stopped; its next call starts it again.
func (h *Handler) closeSession(c *gin.Context) {
	if h.Sessions == nil {
		h.unavailable(c, "session administration")
		return
	}
	if err := h.Sessions.CloseSession(c.Param("name"), c.Param("key")); err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"success": true})
}

// resetSessions serves POST /api/{user_id}/servers/{name}/reset: the user's
// own sessions of the server are closed (a browser that got stuck), and
// start afresh on the next call.
func (h *Handler) resetSessions(c *gin.Context) {
	if h.Sessions == nil {
		h.unavailable(c, "resetting a server")
		return
	}
	n, err := h.Sessions.ResetSessions(c.Param("name"), identity(c).UserID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "sessions_closed": n})
}
