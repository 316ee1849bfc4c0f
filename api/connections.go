package api

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// Connections connects users to the MCP servers that act as them (OAuth
// sign-ins, secrets) and lists what they connected, never a token.
// *credentials.Manager implements it.
type Connections interface {
	// Connections lists the servers that need the user's credentials.
	Connections(ctx context.Context, userID string) ([]switchboard.Connection, error)
	// AllConnections lists every user's, for admins.
	AllConnections(ctx context.Context) ([]switchboard.Connection, error)
	// Authorize starts an OAuth sign-in and returns the URL to open.
	Authorize(ctx context.Context, userID, server string, moreScopes ...string) (string, error)
	// ConnectSecrets stores the user's secrets for a user_secret server.
	ConnectSecrets(ctx context.Context, userID, server string, secrets map[string]string) error
	// Disconnect revokes (where the server can) and forgets a credential.
	Disconnect(ctx context.Context, userID, server string) error
	// Callback completes a sign-in from the callback's query.
	Callback(ctx context.Context, q url.Values) (userID, server string, err error)
	// ClientMetadata is the Client ID Metadata Document of a server's
	// OAuth client.
	ClientMetadata(server string) ([]byte, error)
}

type connectionDTO struct {
	Server     string            `json:"server"`
	Type       string            `json:"type"`
	Connected  bool              `json:"connected"`
	Scopes     []string          `json:"scopes,omitempty"`
	ExpiresAt  string            `json:"expires_at,omitempty"`
	CreatedAt  string            `json:"created_at,omitempty"`
	LastUsedAt string            `json:"last_used_at,omitempty"`
	Secrets    map[string]string `json:"secrets,omitempty"`
	UserID     string            `json:"user_id,omitempty"`
}

func toConnectionDTO(c switchboard.Connection) connectionDTO {
	return connectionDTO{Server: c.Server, Type: c.Type, Connected: c.Connected, Scopes: c.Scopes, Secrets: c.Secrets, UserID: c.UserID,
		ExpiresAt: optionalTime(c.ExpiresAt, timestamp(c.ExpiresAt)), CreatedAt: optionalTime(c.CreatedAt, timestamp(c.CreatedAt)),
		LastUsedAt: optionalTime(c.LastUsedAt, timestamp(c.LastUsedAt))}
}

// listConnections serves GET /api/{user_id}/connections.
func (h *Handler) listConnections(c *gin.Context) {
	if h.Connections == nil {
		c.JSON(http.StatusOK, gin.H{"success": true, "connections": []connectionDTO{}})
		return
	}
	conns, err := h.Connections.Connections(c.Request.Context(), identity(c).UserID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := make([]connectionDTO, len(conns))
	for i, cn := range conns {
		out[i] = toConnectionDTO(cn)
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "connections": out})
}

// connectServer serves POST /api/{user_id}/connections/{server}: for an
// OAuth server it answers the authorization URL to open; for a user_secret
// server it takes {"secrets": {"NAME": "value"}}.
func (h *Handler) connectServer(c *gin.Context) {
	if h.Connections == nil {
		h.unavailable(c, "connecting servers")
		return
	}
	ctx, user, server := c.Request.Context(), identity(c).UserID, c.Param("server")
	raw, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	var body struct {
		Secrets map[string]string `json:"secrets"`
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := decodeJSON(raw, &body, "invalid_connection", `{"secrets": {"NAME": "value"}} for a server that takes secrets, or no body for an OAuth sign-in`); err != nil {
			h.writeError(c, err)
			return
		}
	}
	if body.Secrets != nil {
		if err := h.Connections.ConnectSecrets(ctx, user, server, body.Secrets); err != nil {
			h.writeError(c, err)
			return
		}
		h.startUserSession(server, user)
		c.JSON(http.StatusOK, gin.H{"success": true, "connected": true})
		return
	}
	authURL, err := h.Connections.Authorize(ctx, user, server)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "authorization_url": authURL})
}

// disconnectServer serves DELETE /api/{user_id}/connections/{server}.
func (h *Handler) disconnectServer(c *gin.Context) {
	h.disconnect(c, identity(c).UserID, c.Param("server"))
}

// adminDisconnect serves DELETE /api/admin/connections/{user}/{server}.
func (h *Handler) adminDisconnect(c *gin.Context) {
	h.disconnect(c, c.Param("user"), c.Param("server"))
}

func (h *Handler) disconnect(c *gin.Context, user, server string) {
	if h.Connections == nil {
		h.unavailable(c, "connecting servers")
		return
	}
	if err := h.Connections.Disconnect(c.Request.Context(), user, server); err != nil {
		if isNotFound(err) {
			err = switchboard.Errorf(switchboard.ErrNotFound, "connection_not_found", "%s has not connected %s", clip(user), clip(server))
		}
		h.writeError(c, err)
		return
	}
	h.resetUserSessions(server, user)
	c.JSON(http.StatusOK, gin.H{"success": true})
}

// adminConnections serves GET /api/admin/connections: every user's
// connections, never a token.
func (h *Handler) adminConnections(c *gin.Context) {
	if h.Connections == nil {
		c.JSON(http.StatusOK, gin.H{"success": true, "connections": []connectionDTO{}})
		return
	}
	conns, err := h.Connections.AllConnections(c.Request.Context())
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := make([]connectionDTO, len(conns))
	for i, cn := range conns {
		out[i] = toConnectionDTO(cn)
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "connections": out})
}

// resetUserSessions closes the user's sessions of the server after their
// credential changed, so that the next call starts one with the new.
func (h *Handler) resetUserSessions(server, user string) {
	if h.Sessions != nil {
		_, _ = h.Sessions.ResetSessions(server, user)
	}
}

// startUserSession starts the user's session of a server they just
// connected, so that its tools are listed before the first call.
func (h *Handler) startUserSession(server, user string) {
	if h.Sessions == nil {
		return
	}
	h.resetUserSessions(server, user)
	if err := h.Sessions.StartSession(server, user); err != nil {
		h.logger.Warn("starting the session of a server just connected", "server", server, "err", err)
	}
}

// callbackPage ends a sign-in: it tells the page that opened it (the
// chat's "Connect" button) and closes, or says what went wrong.
var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{if .OK}}Connected{{else}}Not connected{{end}}</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/assets/app.css"></head>
<body class="callback"><main><h1>{{if .OK}}Connected {{.Server}}{{else}}Not connected{{end}}</h1>
<p id="callback-message" data-ok="{{.OK}}" data-server="{{.Server}}">{{.Message}}</p>
<p>You can close this window.</p></main>
<script src="/assets/callback.js"></script></body></html>`))

// oauthCallback serves GET /oauth/callback, the one route without a bearer
// token: the state in its query names the user and the server, is good
// once and for ten minutes.
func (h *Handler) oauthCallback(c *gin.Context) {
	data := struct {
		OK              bool
		Server, Message string
	}{}
	status := http.StatusOK
	if h.Connections == nil {
		status, data.Message = http.StatusNotFound, "This server connects no accounts."
	} else {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
		defer cancel()
		user, server, err := h.Connections.Callback(ctx, c.Request.URL.Query())
		if err != nil {
			var d errorDetail
			status, d = describe(err)
			data.Message = d.Message
			if h.opts.Scrub != nil {
				data.Message = h.opts.Scrub.String(data.Message)
			}
			h.logger.Info("oauth callback refused", "request_id", requestID(c), "code", d.Code)
			renderCallback(c, status, data)
			return
		}
		h.startUserSession(server, user)
		data.OK, data.Server, data.Message = true, server, "You can go back to the chat: calls of "+server+" now act as you."
	}
	renderCallback(c, status, data)
}

func renderCallback(c *gin.Context, status int, data any) {
	webHeaders(c.Writer)
	c.Header("Cache-Control", "no-store")
	var b strings.Builder
	if err := callbackPage.Execute(&b, data); err != nil {
		c.String(http.StatusInternalServerError, "callback page: %v", err)
		return
	}
	c.Data(status, "text/html; charset=utf-8", []byte(b.String()))
}

// clientMetadata serves GET /oauth/clients/{server}.json, the Client ID
// Metadata Document of Switchboard's client for a server.
func (h *Handler) clientMetadata(c *gin.Context) {
	name, ok := strings.CutSuffix(c.Param("file"), ".json")
	if !ok || h.Connections == nil {
		h.writeError(c, switchboard.Errorf(switchboard.ErrNotFound, "not_found", "no such client"))
		return
	}
	doc, err := h.Connections.ClientMetadata(name)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json", doc)
}

// connectionRequiredDTO tells a client the user must connect a server
// before a call of it can run.
type connectionRequiredDTO struct {
	Server string `json:"server"`
	// AuthorizationURL is where to sign in, for an OAuth server; a
	// user_secret server takes its secrets at POST
	// /api/{user_id}/connections/{server}.
	AuthorizationURL string `json:"authorization_url,omitempty"`
}

// connectionsRequired lists, once per server, the servers of calls that
// failed because the user has not connected them, with a fresh sign-in URL
// for OAuth servers.
func (h *Handler) connectionsRequired(ctx context.Context, userID string, calls []switchboard.ToolCall) []connectionRequiredDTO {
	var out []connectionRequiredDTO
	seen := map[string]bool{}
	for _, call := range calls {
		if call.ErrorClass != switchboard.ErrorClassConnectionRequired || seen[call.Server] {
			continue
		}
		seen[call.Server] = true
		out = append(out, h.connectionRequired(ctx, userID, call.Server))
	}
	return out
}

func (h *Handler) connectionRequired(ctx context.Context, userID, server string) connectionRequiredDTO {
	d := connectionRequiredDTO{Server: server}
	if h.Connections != nil {
		if u, err := h.Connections.Authorize(ctx, userID, server); err == nil {
			d.AuthorizationURL = u
		}
	}
	return d
}
