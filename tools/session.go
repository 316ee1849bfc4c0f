package tools

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
)

// Scope says whose session of a server a call runs on.
type Scope string

// Scopes.
const (
	// ScopeShared is one session for everybody: right for stateless
	// servers and for servers that take the user from an injected
	// argument.
	ScopeShared Scope = "shared"
	// ScopeUser is one session per user: for stdio a process of their own,
	// for HTTP and SSE an MCP session of their own.
	ScopeUser Scope = "user"
	// ScopeConversation is one session per conversation (a browser whose
	// tabs belong to one task).
	ScopeConversation Scope = "conversation"
)

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s == ScopeShared || s == ScopeUser || s == ScopeConversation }

// Placeholders of a per-session server's command, args, env, cwd, url and
// headers, replaced when a session starts (never when the configuration is
// loaded).
const (
	PlaceholderUserID         = "${user.id}"
	PlaceholderConversationID = "${conversation.id}"
)

// listerID stands for the user and the conversation in the session that
// only lists a per-session server's tools. It holds a '.', which escape
// never leaves in a value: no user's session can be configured alike.
const listerID = "switchboard.catalog"

// escapePath makes a user or conversation id safe wherever it lands in a
// command line, an environment value, a path or a URL: letters, digits, '-'
// and '_' stay, every other byte becomes %XX. The mapping is one to one, so
// two ids never share a file, and no id can leave its directory ("../x"
// becomes %2E%2E%2Fx) or change a URL's path or query.
func escapePath(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// escapeHeader makes an id safe in a header value: the id as it is, but
// for control characters (which could end the header), as %XX.
func escapeHeader(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// placeholders lists the placeholders cfg uses, "${...}" included, in the
// fields a session's start expands.
func placeholders(cfg mcpclient.Config) []string {
	var found []string
	scan := func(s string) {
		for {
			i := strings.Index(s, "${")
			if i < 0 {
				return
			}
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return
			}
			found = append(found, s[i:i+j+1])
			s = s[i+j+1:]
		}
	}
	scan(cfg.Command)
	scan(cfg.Dir)
	scan(cfg.URL)
	for _, a := range cfg.Args {
		scan(a)
	}
	for _, v := range cfg.Env {
		scan(v)
	}
	for _, v := range cfg.Headers {
		scan(v)
	}
	for _, r := range cfg.Roots {
		scan(r.URI)
		scan(r.Name)
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// checkPlaceholders refuses placeholders a server of scope cannot fill:
// ${user.id} on a shared server, ${conversation.id} outside scope
// conversation, ${user.NAME} but for the secrets a user_secret server
// names.
func checkPlaceholders(name string, scope Scope, cfg mcpclient.Config, secrets []string) error {
	for _, p := range placeholders(cfg) {
		secret, isSecret := strings.CutPrefix(strings.TrimSuffix(p, "}"), "${user.")
		switch {
		case p == PlaceholderUserID && scope == ScopeShared,
			p == PlaceholderConversationID && scope != ScopeConversation:
			return fmt.Errorf("server %s: %s has no value in a session of scope %s: %w", name, p, scope, switchboard.ErrInvalid)
		case p == PlaceholderUserID || p == PlaceholderConversationID:
		case isSecret && slices.Contains(secrets, secret):
		case isSecret || strings.HasPrefix(p, "${conversation."):
			return fmt.Errorf("server %s: unknown placeholder %s (want %s, %s, or ${user.NAME} for a secret its auth.secrets names): %w",
				name, p, PlaceholderUserID, PlaceholderConversationID, switchboard.ErrInvalid)
		}
	}
	return nil
}

// expand returns cfg for the session of the user and conversation, its
// placeholders replaced, each value escaped for where it lands; secrets
// (a user_secret server's, by name) fill ${user.NAME} as they are, but
// query-escaped in the URL.
func expand(cfg mcpclient.Config, userID, conversationID string, secrets map[string]string) mcpclient.Config {
	pathPairs := []string{PlaceholderUserID, escapePath(userID), PlaceholderConversationID, escapePath(conversationID)}
	headerPairs := []string{PlaceholderUserID, escapeHeader(userID), PlaceholderConversationID, escapeHeader(conversationID)}
	urlPairs := slices.Clone(pathPairs)
	for name, v := range secrets {
		pathPairs = append(pathPairs, "${user."+name+"}", v)
		headerPairs = append(headerPairs, "${user."+name+"}", v)
		urlPairs = append(urlPairs, "${user."+name+"}", url.QueryEscape(v))
	}
	path, header := strings.NewReplacer(pathPairs...), strings.NewReplacer(headerPairs...)
	cfg.Command = path.Replace(cfg.Command)
	cfg.Dir = path.Replace(cfg.Dir)
	cfg.URL = strings.NewReplacer(urlPairs...).Replace(cfg.URL)
	cfg.Args = slices.Clone(cfg.Args)
	for i, a := range cfg.Args {
		cfg.Args[i] = path.Replace(a)
	}
	cfg.Env = maps.Clone(cfg.Env)
	for k, v := range cfg.Env {
		cfg.Env[k] = path.Replace(v)
	}
	cfg.Headers = maps.Clone(cfg.Headers)
	for k, v := range cfg.Headers {
		cfg.Headers[k] = header.Replace(v)
	}
	if cfg.Roots != nil {
		// A root's URI is a path (escaped alike); its name is for people.
		roots := make([]mcpclient.Root, len(cfg.Roots))
		for i, r := range cfg.Roots {
			roots[i] = mcpclient.Root{URI: path.Replace(r.URI), Name: header.Replace(r.Name)}
		}
		cfg.Roots = roots
	}
	return cfg
}

// pooledServer is a server of scope user or conversation: its tools are
// those of a session used only for listing them, its calls run on the
// caller's session in a Pool.
type pooledServer struct {
	scope Scope
	r     *running
	pool  *mcpclient.Pool
}

func (s pooledServer) Name() string { return s.pool.Name() }

func (s pooledServer) Tools() []mcpclient.Tool { return s.r.tools() }

func (s pooledServer) Session(c Caller) (Scope, string) {
	if s.scope == ScopeConversation {
		return s.scope, c.ConversationID
	}
	return s.scope, c.UserID
}

func (s pooledServer) CallTool(ctx context.Context, c Caller, name string, args json.RawMessage) (*mcpclient.Result, error) {
	_, key := s.Session(c)
	if key == "" {
		return nil, fmt.Errorf("call %s on %s: no %s to run the session of: %w", name, s.Name(), s.scope, switchboard.ErrInvalid)
	}
	return s.pool.CallTool(ctx, key, mcpclient.SessionLabels{UserID: c.UserID, ConversationID: c.ConversationID}, name, args)
}

func (s pooledServer) HasResources() bool {
	if s.r.sup != nil {
		return s.r.sup.HasResources()
	}
	return s.pool.HasResources()
}

func (s pooledServer) ReadResource(ctx context.Context, c Caller, uri string) (*mcpclient.Result, error) {
	_, key := s.Session(c)
	if key == "" {
		return nil, fmt.Errorf("read %s on %s: no %s to run the session of: %w", uri, s.Name(), s.scope, switchboard.ErrInvalid)
	}
	return s.pool.ReadResource(ctx, key, mcpclient.SessionLabels{UserID: c.UserID, ConversationID: c.ConversationID}, uri)
}

// scope returns the spec's scope, its default resolved: a scope that never
// shares a server's state between users, unless the server takes the user
// from an injected argument.
func (s ServerSpec) scope() Scope {
	switch {
	case s.Scope != "":
		return s.Scope
	case len(s.Policy.Inject) > 0:
		return ScopeShared
	}
	return ScopeUser
}

// sessions returns whether s and o run their sessions alike: the same
// connection settings, scope and bounds.
func (s ServerSpec) sameSessions(o ServerSpec) bool {
	return reflect.DeepEqual(s.Config, o.Config) && s.scope() == o.scope() &&
		s.MaxSessions == o.MaxSessions && s.IdleTimeout == o.IdleTimeout
}

// sameButRoots reports whether s and o differ in their roots only, both
// having some (the roots capability a session declared stays true): the
// sessions open are told of the new roots instead of restarting.
func (s ServerSpec) sameButRoots(o ServerSpec) bool {
	if s.Config.Roots == nil || o.Config.Roots == nil {
		return false
	}
	s.Config.Roots, o.Config.Roots = nil, nil
	return s.sameSessions(o)
}

// SessionStore keeps the streamable HTTP session of each user of each
// server. store.Memory and store.Postgres implement it.
type SessionStore interface {
	// GetMCPSession returns the user's session of the server; ErrNotFound
	// if none is kept.
	GetMCPSession(ctx context.Context, server, userID string) (switchboard.MCPSession, error)
	// PutMCPSession keeps it, replacing the one kept before.
	PutMCPSession(ctx context.Context, s switchboard.MCPSession) error
}

// running is one server the Fleet runs.
type running struct {
	// listed holds, for a server with per-user credentials, which no
	// session lists but a user's, the tools its users' sessions listed
	// last (nil until one did).
	listed atomic.Pointer[[]mcpclient.Tool]

	// sup is the server's one session (scope shared), or, for a server of
	// scope user or conversation, the session that only lists its tools
	// for the catalog; nil for a server with per-user credentials.
	sup *mcpclient.Supervisor
	// pool holds the sessions of a server of scope user or conversation;
	// nil for scope shared.
	pool  *mcpclient.Pool
	scope Scope
	name  string
}

// server is r as the catalog calls it.
func (r *running) server() Server {
	if r.pool == nil {
		return sharedConn{r.sup}
	}
	return pooledServer{scope: r.scope, r: r, pool: r.pool}
}

// tools returns the server's tools as the catalog offers them.
func (r *running) tools() []mcpclient.Tool {
	if r.sup != nil {
		return r.sup.Tools()
	}
	if listed := r.listed.Load(); listed != nil {
		return *listed
	}
	return nil
}

// close stops r's sessions, whole process groups included.
func (r *running) close() error {
	var errs []error
	if r.pool != nil {
		errs = append(errs, r.pool.Close())
	}
	if r.sup != nil {
		errs = append(errs, r.sup.Close())
	}
	return errors.Join(errs...)
}

// start starts the server of s: its one session (scope shared), or the
// session that lists its tools and the pool of its sessions.
func (f *Fleet) start(s ServerSpec) *running {
	r := &running{scope: s.scope(), name: s.Config.Name}
	if s.Credentials == "" {
		// A server with per-user credentials has no session but its
		// users': it cannot be listed without one.
		cfg, _ := sessionConfig(s, listerID, listerID, nil)
		r.sup = mcpclient.Supervise(cfg, &f.opts.Client)
	}
	if r.scope == ScopeShared {
		return r
	}
	name := s.Config.Name
	var onSession func(string, mcpclient.Resumption)
	if f.opts.Sessions != nil && r.scope == ScopeUser && s.Config.Transport() == "http" {
		onSession = func(userID string, res mcpclient.Resumption) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rec := switchboard.MCPSession{Server: name, UserID: userID, SessionID: res.SessionID, ProtocolVersion: res.ProtocolVersion}
			if err := f.opts.Sessions.PutMCPSession(ctx, rec); err != nil {
				f.log.Warn("keeping an mcp session for other instances", "server", name, "err", err)
			}
		}
	}
	r.pool = mcpclient.NewPool(name, f.poolConfig(s), &mcpclient.PoolOptions{
		OnSession:   onSession,
		Client:      f.opts.Client,
		MaxSessions: cmp.Or(s.MaxSessions, mcpclient.DefaultMaxSessions(s.Config.Transport())),
		IdleTimeout: s.IdleTimeout,
		OnEvent:     f.opts.OnSessionEvent,
		OnToolsListed: func(key string, tools []mcpclient.Tool) {
			if r.sup == nil {
				// The catalog's tools are those users' sessions list.
				if old := r.listed.Swap(&tools); old == nil || !sameToolNames(*old, tools) {
					f.markDirty()
				}
				return
			}
			if listed := r.sup.Tools(); !sameToolNames(listed, tools) {
				f.log.Warn("a session of the mcp server lists other tools than the catalog's; the catalog keeps the server's",
					"server", name, "session", key, "session_tools", toolNames(tools), "catalog_tools", toolNames(listed))
			}
		},
	})
	return r
}

// sessionConfig returns the Config of the session of the user and the
// conversation, for a server of spec s, with the user's secrets of a
// user_secret server.
func sessionConfig(s ServerSpec, userID, conversationID string, secrets map[string]string) (mcpclient.Config, error) {
	if s.scope() == ScopeShared {
		return s.Config, nil
	}
	return expand(s.Config, userID, conversationID, secrets), nil
}

// poolConfig returns how a server's Pool configures a session: for the user
// and conversation of its labels (its key is one of them).
//
// A user's streamable HTTP session that another instance started is
// resumed (see FleetOptions.Sessions).
func (f *Fleet) poolConfig(s ServerSpec) func(key string, labels mcpclient.SessionLabels) (mcpclient.Config, error) {
	return func(_ string, labels mcpclient.SessionLabels) (mcpclient.Config, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var secrets map[string]string
		switch s.Credentials {
		case CredentialsUserSecret:
			var err error
			if secrets, err = f.opts.Credentials.Secrets(ctx, labels.UserID, s.Config.Name); err != nil {
				return mcpclient.Config{}, err
			}
		}
		cfg, err := sessionConfig(s, labels.UserID, labels.ConversationID, secrets)
		if err != nil {
			return cfg, err
		}
		if s.Credentials == CredentialsOAuth {
			cfg.Auth = userAuth{creds: f.opts.Credentials, userID: labels.UserID, server: s.Config.Name}
		}
		if f.opts.Sessions != nil && s.scope() == ScopeUser && cfg.Transport() == "http" {
			switch res, err := f.opts.Sessions.GetMCPSession(ctx, s.Config.Name, labels.UserID); {
			case err == nil:
				cfg.Resume = &mcpclient.Resumption{SessionID: res.SessionID, ProtocolVersion: res.ProtocolVersion}
			case !errors.Is(err, switchboard.ErrNotFound):
				f.log.Warn("reading an mcp session kept by another instance", "server", s.Config.Name, "err", err)
			}
		}
		return cfg, nil
	}
}

func toolNames(tools []mcpclient.Tool) []string {
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	slices.Sort(names)
	return names
}

func sameToolNames(a, b []mcpclient.Tool) bool { return slices.Equal(toolNames(a), toolNames(b)) }

func sessionStatuses(sessions []mcpclient.SessionStatus) []switchboard.SessionStatus {
	out := make([]switchboard.SessionStatus, len(sessions))
	for i, s := range sessions {
		out[i] = switchboard.SessionStatus{Key: s.Key, UserID: s.UserID, ConversationID: s.ConversationID,
			State: s.State, PID: s.PID, Started: s.Started, LastUsed: s.LastUsed, Restarts: s.Restarts, LastError: s.LastError, InFlight: s.InFlight}
	}
	return out
}

// CloseSession closes the session key (a user id or conversation id) of
// the named server: its calls in flight fail, its process group stops, and
// its next call starts it again. It returns an error wrapping
// switchboard.ErrNotFound when the server has no such session open (or is
// of scope shared).
func (f *Fleet) CloseSession(server, key string) error {
	f.mu.Lock()
	r, ok := f.servers[server]
	f.mu.Unlock()
	if !ok || r.pool == nil || !r.pool.CloseSession(key, "closed by an admin") {
		return switchboard.Errorf(switchboard.ErrNotFound, "session_not_found", "server %s has no open session %q", server, key)
	}
	return nil
}

// ResetSessions closes the user's sessions of the named server (one of
// scope user; those of the user's conversations for scope conversation),
// as a user who wants a fresh start asks, and returns how many it closed.
// It returns an error wrapping switchboard.ErrNotFound for a server that
// is not running, and switchboard.ErrInvalid for one of scope shared,
// whose one session every user shares.
func (f *Fleet) ResetSessions(server, userID string) (int, error) {
	f.mu.Lock()
	r, ok := f.servers[server]
	f.mu.Unlock()
	switch {
	case !ok:
		return 0, switchboard.Errorf(switchboard.ErrNotFound, "server_not_found", "no server %s is running", server)
	case r.pool == nil:
		return 0, switchboard.Errorf(switchboard.ErrInvalid, "shared_server",
			"server %s is shared by every user (scope shared): it has no session of yours to reset", server)
	}
	return r.pool.CloseSessions(func(l mcpclient.SessionLabels) bool { return l.UserID == userID }, "reset by its user"), nil
}

// Kinds of per-user credentials of a server (ServerSpec.Credentials).
const (
	CredentialsOAuth      = "oauth"
	CredentialsUserSecret = "user_secret"
)

// Credentials gives the sessions of a server with per-user credentials the
// user's. *credentials.Manager implements it. Its errors reach the call:
// one saying the user must connect the server first (a *switchboard.Error
// with code switchboard.CodeConnectionRequired) makes the call's error
// class connection_required.
type Credentials interface {
	// Secrets returns the user's secrets for a user_secret server.
	Secrets(ctx context.Context, userID, server string) (map[string]string, error)
	// AccessToken returns the user's current token for an OAuth server.
	AccessToken(ctx context.Context, userID, server string) (string, error)
	// Rejected returns a token to try after the server answered 401 to
	// rejected.
	Rejected(ctx context.Context, userID, server, rejected string) (string, error)
	// InsufficientScope is told of a 403 asking for more scope; it returns
	// the call's error.
	InsufficientScope(ctx context.Context, userID, server, challenge string) error
}

// userAuth is the mcpclient.Authorizer of one user's session of an OAuth
// server.
type userAuth struct {
	creds          Credentials
	userID, server string
}

func (a userAuth) Token(ctx context.Context) (string, error) {
	return a.creds.AccessToken(ctx, a.userID, a.server)
}

func (a userAuth) Rejected(ctx context.Context, token, _ string) (string, error) {
	return a.creds.Rejected(ctx, a.userID, a.server, token)
}

func (a userAuth) Forbidden(ctx context.Context, challenge string) error {
	return a.creds.InsufficientScope(ctx, a.userID, a.server, challenge)
}

// StartSession starts the user's session of the named server, of scope
// user, without a call: a user who just connected a server with per-user
// credentials gets its tools listed (the catalog has none before a user's
// session lists them). It returns an error wrapping switchboard.ErrNotFound
// for a server that is not running or not of scope user.
func (f *Fleet) StartSession(server, userID string) error {
	f.mu.Lock()
	r, ok := f.servers[server]
	f.mu.Unlock()
	if !ok || r.pool == nil || r.scope != ScopeUser {
		return switchboard.Errorf(switchboard.ErrNotFound, "server_not_found", "no server %s of scope user is running", server)
	}
	return r.pool.Start(userID, mcpclient.SessionLabels{UserID: userID})
}
