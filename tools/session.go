package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

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
	slices.Sort(found)
	return slices.Compact(found)
}

// checkPlaceholders refuses placeholders a server of scope cannot fill.
func checkPlaceholders(name string, scope Scope, cfg mcpclient.Config) error {
	for _, p := range placeholders(cfg) {
		switch {
		case p == PlaceholderUserID && scope == ScopeShared,
			p == PlaceholderConversationID && scope != ScopeConversation:
			return fmt.Errorf("server %s: %s has no value in a session of scope %s: %w", name, p, scope, switchboard.ErrInvalid)
		case p != PlaceholderUserID && p != PlaceholderConversationID &&
			(strings.HasPrefix(p, "${user.") || strings.HasPrefix(p, "${conversation.")):
			return fmt.Errorf("server %s: unknown placeholder %s (want %s or %s): %w", name, p, PlaceholderUserID, PlaceholderConversationID, switchboard.ErrInvalid)
		}
	}
	return nil
}

// expand returns cfg for the session of the user and conversation, its
// placeholders replaced, each value escaped for where it lands.
func expand(cfg mcpclient.Config, userID, conversationID string) mcpclient.Config {
	path := strings.NewReplacer(PlaceholderUserID, escapePath(userID), PlaceholderConversationID, escapePath(conversationID))
	header := strings.NewReplacer(PlaceholderUserID, escapeHeader(userID), PlaceholderConversationID, escapeHeader(conversationID))
	cfg.Command = path.Replace(cfg.Command)
	cfg.Dir = path.Replace(cfg.Dir)
	cfg.URL = path.Replace(cfg.URL)
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
	return cfg
}

// pooledServer is a server of scope user or conversation: its tools are
// those of a session used only for listing them, its calls run on the
// caller's session in a Pool.
type pooledServer struct {
	scope  Scope
	lister *mcpclient.Supervisor
	pool   *mcpclient.Pool
}

func (s pooledServer) Name() string { return s.lister.Name() }

func (s pooledServer) Tools() []mcpclient.Tool { return s.lister.Tools() }

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
