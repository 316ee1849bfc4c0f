package api

import (
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
