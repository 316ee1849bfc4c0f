// Package api serves Switchboard's HTTP API with Gin: the chat endpoint (JSON
// and the Vercel AI SDK UI message stream), ChatKit's protocol,
// conversations, tools, health, and the one table that maps domain errors
// to HTTP statuses.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/web"
)

// Chatter runs turns: every request about a turn (a message, a decision,
// a cancel) goes through it, with the conversation as the client named it.
// *orchestrator.Orchestrator implements it.
type Chatter interface {
	Run(ctx context.Context, req orchestrator.Request, ev orchestrator.Events) (*orchestrator.Result, error)
	Decide(ctx context.Context, d orchestrator.Decision, ev orchestrator.Events) (*orchestrator.Result, error)
	// Cancel ends the running turn of the user's conversation and returns
	// it: running while it is being cancelled, or failed when no live
	// instance held it.
	Cancel(ctx context.Context, userID, conversationID string) (switchboard.Turn, error)
	// Answer answers a question a server asked the user (an input) and
	// returns the turn's next stop.
	Answer(ctx context.Context, a orchestrator.InputAnswer) (*orchestrator.Result, error)
}

// Store is what the API reads and edits directly: the user's
// conversations (turns go through Chat). store.Memory and store.Postgres
// implement it.
type Store interface {
	GetConversation(ctx context.Context, userID, id string) (switchboard.Conversation, error)
	ListConversations(ctx context.Context, userID string, limit int) ([]switchboard.Conversation, error)
	UpdateConversation(ctx context.Context, userID string, c switchboard.Conversation) (switchboard.Conversation, error)
	DeleteConversation(ctx context.Context, userID, id string) error
	ListMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error)
	GetToolCall(ctx context.Context, userID, id string) (switchboard.ToolCall, error)
	GetToolCallContent(ctx context.Context, userID, id string, index int) (switchboard.ContentPart, error)
	// SetFeedback records the user's rating (positive or negative) of
	// messages of their conversation, all or none (ChatKit's
	// items.feedback).
	SetFeedback(ctx context.Context, userID, conversationID string, messageIDs []string, kind string) error
}

// Pinger reports whether a dependency is reachable, for /readyz.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Verifier verifies the bearer token of an Authorization header.
// *auth.Authenticator implements it.
type Verifier interface {
	Verify(ctx context.Context, header string) (auth.Identity, error)
}

// ToolLister lists the tools of the current catalog. *tools.Registry
// implements it.
type ToolLister interface {
	Tools() []switchboard.ToolInfo
}

// AdminStore is what admin routes read, of every user. store.Memory and
// store.Postgres implement it.
type AdminStore interface {
	AdminConversation(ctx context.Context, id string) (switchboard.Conversation, error)
	AdminToolCall(ctx context.Context, id string) (switchboard.ToolCall, error)
	ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error)
	ToolCallStats(ctx context.Context, f switchboard.ToolCallFilter, groupBy string) ([]switchboard.ToolCallStats, error)
	// AgentStats aggregates every user's turns started in [since, until)
	// by the agent each ended as.
	AgentStats(ctx context.Context, since, until time.Time) ([]switchboard.AgentStats, error)
	ListTurns(ctx context.Context, userID, conversationID string) ([]switchboard.Turn, error)
	// ListAllMessages is the transcript with the messages a regenerated
	// answer superseded.
	ListAllMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error)
}

// ServerAdmin reports on and reloads the MCP servers.
type ServerAdmin interface {
	Servers() []switchboard.ServerStatus
	// Reload re-reads the configuration and applies it: added servers
	// start, removed ones stop, changed ones restart.
	Reload(ctx context.Context) error
}

// SessionAdmin closes the sessions of MCP servers of scope user or
// conversation. *tools.Fleet implements it.
type SessionAdmin interface {
	// CloseSession closes the session key (a user or conversation id) of
	// the server; ErrNotFound when it has none open.
	CloseSession(server, key string) error
	// ResetSessions closes the user's sessions of the server and returns
	// how many it closed; ErrNotFound for a server that is not running,
	// ErrInvalid for one of scope shared.
	ResetSessions(server, userID string) (int, error)
	// StartSession starts the user's session of a server of scope user
	// without a call (after they connected it).
	StartSession(server, userID string) error
}

// Deps are the handler's collaborators. Chat, Store, Tools and Auth are
// required; Admin, Servers and Ready may be nil (their routes then answer
// 503, or /readyz checks nothing).
type Deps struct {
	Chat    Chatter
	Store   Store
	Tools   ToolLister
	Auth    Verifier
	Admin   AdminStore
	Servers ServerAdmin
	// Sessions, when set, serves the routes that close a server's
	// sessions (an admin's, and a user's reset of their own).
	Sessions SessionAdmin
	// Connections, when set, serves the connections of users to servers
	// that act as them, and the OAuth callback.
	Connections Connections
	Ready       Pinger
	// Agents, when set, lists the agents a user may use.
	Agents AgentLister
}

// AgentLister lists the agents a user may use. *orchestrator.Orchestrator
// implements it.
type AgentLister interface {
	Agents(userID string, roles []string) []orchestrator.AgentInfo
}

// RequestObserver is told of every request, for metrics.
// *metrics.Metrics implements it.
type RequestObserver interface {
	Request(route, method string, status int, d time.Duration)
}

// Options tune the handler; nil means defaults.
type Options struct {
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// MaxMessageChars bounds a chat message; 0 means 32,000.
	MaxMessageChars int
	// Limits bound each user's chat requests; the zero value bounds nothing.
	Limits Limits
	// Observer, when set, is told of every request.
	Observer RequestObserver
	// Tracer, when set, makes a span of every request, continuing a trace
	// the client propagated (W3C traceparent).
	Tracer trace.Tracer
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Scrub, when set, hides configured secrets in error messages and in
	// the admin routes' replies.
	Scrub Scrubber
	// WriteTimeout is the http.Server's WriteTimeout, which bounds writing
	// a whole reply from the end of the request's headers. The handler
	// pushes the write deadline this far ahead before each write instead,
	// so that a reply that waits for a long turn, or streams it, is not cut
	// off, while a client that stops reading still is. 0 sets no
	// deadlines.
	WriteTimeout time.Duration
}

// Handler is the HTTP API.
type Handler struct {
	Deps
	opts   Options
	limits *userLimits
	logger *slog.Logger
	engine *gin.Engine
}

// NewHandler returns the API over its collaborators.
func NewHandler(deps Deps, opts *Options) *Handler {
	h := &Handler{Deps: deps}
	if opts != nil {
		h.opts = *opts
	}
	if h.opts.MaxBodyBytes <= 0 {
		h.opts.MaxBodyBytes = 1 << 20
	}
	if h.opts.MaxMessageChars <= 0 {
		h.opts.MaxMessageChars = 32000
	}
	h.logger = h.opts.Logger
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.opts.Limits != (Limits{}) {
		h.limits = newUserLimits(h.opts.Limits)
	}
	h.engine = gin.New()
	h.engine.HandleMethodNotAllowed = true
	h.routes()
	return h
}

// routes is the whole route table: every route the handler serves, with
// the middleware that guards it, in one place. The handlers live in the
// files of their subject.
func (h *Handler) routes() {
	e := h.engine
	e.Use(h.deadlines, h.recover, h.logRequests)
	e.NoRoute(func(c *gin.Context) {
		if h.refuseToken(c) {
			return
		}
		h.writeError(c, switchboard.Errorf(switchboard.ErrNotFound, "route_not_found", "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		if h.refuseToken(c) {
			return
		}
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, errorBody{Error: errorDetail{Code: "method_not_allowed", Message: "method " + c.Request.Method + " is not allowed here"}})
	})

	// Health and metrics, unauthenticated.
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	// The OAuth callback (no bearer token: its state names the user) and
	// the client metadata documents authorization servers fetch.
	e.GET("/oauth/callback", h.oauthCallback)
	e.GET("/oauth/clients/:file", h.clientMetadata)
	if h.opts.Metrics != nil {
		e.GET("/metrics", gin.WrapH(h.opts.Metrics))
	}

	// The web UI (web.go): the chat page, the admin console and their
	// assets; public, as they hold no data.
	site := newSite(web.FS())
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		e.Handle(method, "/", h.webPage(site, "index.html"))
		e.Handle(method, "/admin", h.webPage(site, "admin.html"))
		e.Handle(method, "/assets/*file", h.webAsset(site))
	}

	// The admin API, for admins only (requireAdmin answers 403 to everyone
	// else). "admin" is a reserved user id, so no user's routes are here.
	admin := e.Group("/api/admin", h.scrubReplies, h.authenticate, h.requireAdmin)
	admin.GET("/tool-calls", h.listToolCalls)
	admin.GET("/tool-calls/stats", h.toolCallStats)
	admin.GET("/agents/stats", h.agentStats)
	admin.GET("/tool-calls/:id", h.getToolCall)
	admin.GET("/tool-calls/:id/result", h.getToolCallResult)
	admin.GET("/tool-calls/:id/content/:index", h.getAdminContent)
	admin.GET("/conversations/:id", h.adminConversation)
	admin.GET("/servers", h.listServers)
	admin.POST("/servers/reload", h.reloadServers)
	admin.DELETE("/servers/:name/sessions/:key", h.closeSession)
	admin.GET("/connections", h.adminConnections)
	admin.DELETE("/connections/:user/:server", h.adminDisconnect)

	// A user's own routes: the token's user must be the one in the path.
	user := e.Group("/api/:user_id", h.authenticate, h.requireSelf)
	user.POST("/chat", h.limitTurns, h.postChat)
	user.POST("/chat/stream", h.limitTurns, h.postChatStream)
	user.POST("/conversations/:id/cancel", h.postCancel)
	user.POST("/conversations/:id/tool-calls/:call_id/approval", h.limitTurns, h.postApproval)
	user.POST("/conversations/:id/inputs/:input_id", h.limitTurns, h.postInput)
	user.GET("/conversations", h.listConversations)
	user.GET("/conversations/:id", h.getConversation)
	user.GET("/conversations/:id/tool-calls", h.conversationToolCalls)
	user.GET("/conversations/:id/tool-calls/:call_id/content/:index", h.getContent)
	user.PATCH("/conversations/:id", h.patchConversation)
	user.DELETE("/conversations/:id", h.deleteConversation)
	user.GET("/tools", h.listTools)
	user.GET("/agents", h.listAgents)
	user.POST("/servers/:name/reset", h.resetSessions)
	user.GET("/connections", h.listConnections)
	user.POST("/connections/:server", h.connectServer)
	user.DELETE("/connections/:server", h.disconnectServer)
	// ChatKit's protocol (chatkit.go): every request type on one route;
	// those that run a turn are admitted under the user's limits there.
	user.POST("/chatkit", h.postChatKit)
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.engine.ServeHTTP(w, r) }

const (
	ctxIdentity  = "switchboard.identity"
	ctxRequestID = "switchboard.request_id"
	ctxTurn      = "switchboard.turn" // the turn a request ran, for its log line
)

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

// logRequests gives every request an id and logs one line when it ends, with
// ids and durations, never payloads or tokens.
func (h *Handler) logRequests(c *gin.Context) {
	start := time.Now()
	rid := c.GetHeader("X-Request-Id")
	if rid == "" || len(rid) > 64 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		rid = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequestID, rid)
	c.Header("X-Request-Id", rid)
	var span trace.Span
	if h.opts.Tracer != nil {
		ctx := propagation.TraceContext{}.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
		ctx, span = h.opts.Tracer.Start(ctx, c.Request.Method+" "+c.FullPath(), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", c.Request.Method), attribute.String("http.route", c.FullPath()),
				attribute.String("request.id", rid)))
		c.Request = c.Request.WithContext(ctx)
	}
	c.Next()
	if span != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", c.Writer.Status()))
		if id := identity(c); id.UserID != "" {
			span.SetAttributes(attribute.String("user.id", id.UserID))
		}
		if c.Writer.Status() >= 500 {
			span.SetStatus(codes.Error, http.StatusText(c.Writer.Status()))
		}
		span.End()
	}
	if h.opts.Observer != nil {
		h.opts.Observer.Request(c.FullPath(), c.Request.Method, c.Writer.Status(), time.Since(start))
	}
	attrs := []slog.Attr{
		slog.String("request_id", rid), slog.String("method", c.Request.Method),
		slog.String("route", c.FullPath()), slog.Int("status", c.Writer.Status()),
		slog.Duration("duration", time.Since(start)),
	}
	if id := identity(c); id.UserID != "" {
		attrs = append(attrs, slog.String("user_id", id.UserID))
	}
	if v, ok := c.Get(ctxTurn); ok {
		t := v.(switchboard.Turn)
		attrs = append(attrs, slog.String("conversation_id", t.ConversationID), slog.String("turn_id", t.ID))
	}
	h.logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs...)
}

// recover turns a panic into a logged 500.
func (h *Handler) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			h.logger.Error("panic serving request", "request_id", requestID(c), "route", c.FullPath(), "panic", r)
			if !c.Writer.Written() {
				c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: errorDetail{Code: "internal_error", Message: "something went wrong on our side; it has been logged"}})
			}
		}
	}()
	c.Next()
}

func (h *Handler) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz says whether this instance can serve chats: the store answers and
// every required MCP server is ready. The body names what is wrong.
func (h *Handler) readyz(c *gin.Context) {
	checks := gin.H{}
	ready := true
	if h.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := h.Ready.Ping(ctx); err != nil {
			// The body is public: the error (hosts, users) goes to the log.
			ready = false
			checks["store"] = "unreachable"
			h.logger.Debug("readyz: store unreachable", "err", err)
		} else {
			checks["store"] = "ok"
		}
	} else {
		checks["store"] = "ok (in memory)"
	}
	if h.Servers != nil {
		for _, s := range h.Servers.Servers() {
			if !s.Required {
				continue
			}
			if s.State == switchboard.ServerReady {
				checks["mcp:"+s.Name] = "ok"
				continue
			}
			// The state only: the last error (hosts, paths, what a server
			// printed) is for the admin API.
			ready = false
			checks["mcp:"+s.Name] = string(s.State)
		}
	}
	if !ready {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "checks": checks})
}
