package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/redact"
)

// Transport kinds, after resolving Config.Type.
const (
	kindStdio = "stdio"
	kindHTTP  = "http"
	kindSSE   = "sse"
)

// Config says how to reach one MCP server. It follows the Claude Desktop
// `mcpServers` entry: Command, Args and Env for a stdio server, URL and
// Headers for a remote one.
type Config struct {
	// Name identifies the server in errors and logs.
	Name string

	// Command, Args, Env and Dir start a stdio server. The child's
	// environment is a short allowlist of this process's (PATH, HOME, locale,
	// proxies, toolchain caches: never our secrets) plus Env.
	Command string
	Args    []string
	Env     map[string]string
	Dir     string

	// URL and Headers reach a remote server. Headers are sent with every
	// request, and nothing else of ours is: no end user's header ever
	// reaches the server.
	URL string
	// Type selects the transport: "stdio"; "http" (also "streamable-http"
	// and "streamableHttp") for streamable HTTP; "sse" for the legacy
	// HTTP+SSE transport. Empty means stdio when Command is set, else
	// streamable HTTP.
	Type    string
	Headers map[string]string

	// Protocol selects the protocol era: "auto" (or empty) finds it,
	// "legacy" speaks only the initialize handshake (MCP 2025-11-25 and
	// earlier), "modern" only MCP 2026-07-28 and later (see ProtocolAuto).
	// The legacy SSE transport is always legacy.
	Protocol string

	// InitTimeout bounds Dial: start, initialize and the first tools/list.
	// Zero means 10s.
	InitTimeout time.Duration
	// Timeout bounds each later request (CallTool, ListTools) unless the
	// caller's context ends sooner. Zero means 60s.
	Timeout time.Duration
	// ToolTimeouts overrides Timeout for calls of the named tools.
	ToolTimeouts map[string]time.Duration
	// MaxMessageBytes bounds one message the server sends (a tool's
	// result, a tool list), enforced while it is read on every transport:
	// past it the message is dropped unread, and the request it answers
	// fails wrapping switchboard.ErrTooLarge. Zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// HealthInterval is how often a remote server is pinged to notice that
	// it went away (see Conn.Done); zero means DefaultHealthInterval,
	// negative turns pings off. A call that fails in transport, or the end
	// of the server's event stream, brings the next ping forward.
	HealthInterval time.Duration
	// Resume, for a streamable HTTP server, is a session to take up instead
	// of initializing a new one: one another instance started for the same
	// user. A server that no longer knows it gets a new session.
	Resume *Resumption
	// Roots are the roots offered to the server (roots/list); with them
	// (even an empty list) the client declares the roots capability. A
	// session's Config has its placeholders expanded already.
	Roots []Root
	// Sampling says whether the server may ask the model to sample:
	// SamplingDeny ("" too: the default; the capability is not declared
	// and a request gets an error), SamplingAllow or SamplingApprove (the
	// call's Asker decides; see asks.go).
	Sampling string
	// SamplingMaxTokens caps the maxTokens of a sampling request; zero
	// means DefaultSamplingMaxTokens.
	SamplingMaxTokens int
	// AskTimeout bounds the wait for the answer to one elicitation; zero
	// means DefaultAskTimeout. The call's own timeout does not run while
	// it waits for a person.
	AskTimeout time.Duration
	// Auth, when set, gives a remote session its bearer token (a user's
	// OAuth grant): each request carries it in place of a configured
	// Authorization header, a 401 asks it for another (once), a 403 that
	// names insufficient_scope is told to it. Set per session, never in a
	// Config shared by a server's sessions.
	Auth Authorizer
}

// Authorizer gives a remote session the bearer token of the user it acts
// for. Its errors are the call's (a *switchboard.Error saying the user must
// connect the server, typically).
type Authorizer interface {
	// Token returns the token to send.
	Token(ctx context.Context) (string, error)
	// Rejected is told that the server answered 401, with its
	// WWW-Authenticate challenge, to token; it returns one to try once
	// more.
	Rejected(ctx context.Context, token, challenge string) (string, error)
	// Forbidden is told of a 403 whose challenge names insufficient_scope
	// (a step-up); the call fails with the error it returns.
	Forbidden(ctx context.Context, challenge string) error
}

// Resumption is a streamable HTTP session another connection started.
type Resumption struct {
	SessionID       string
	ProtocolVersion string
}

// maxMessageBytes returns the bound of one message.
func (cfg Config) maxMessageBytes() int64 {
	if cfg.MaxMessageBytes > 0 {
		return cfg.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}

// transportSlack is how far above our own bound mcp-go's is set: our
// filters see every message first, and what they pass is within the bound
// or a short replacement.
const transportSlack = 64 << 10

// Validate reports whether cfg can be dialled at all: a known transport
// with what it needs (a command, or an http(s) URL). The error wraps
// switchboard.ErrInvalid.
func (cfg Config) Validate() error {
	kind, err := cfg.kind()
	if err != nil {
		return fmt.Errorf("mcp server %s: %w", cfg.Name, withKind(switchboard.ErrInvalid, err))
	}
	mode, err := cfg.protocolMode()
	if err != nil {
		return fmt.Errorf("mcp server %s: %w", cfg.Name, withKind(switchboard.ErrInvalid, err))
	}
	if kind == kindSSE && mode == ProtocolModern {
		return fmt.Errorf("mcp server %s: the legacy SSE transport cannot speak the modern era (protocol: modern): %w", cfg.Name, switchboard.ErrInvalid)
	}
	for tool, d := range cfg.ToolTimeouts {
		if d <= 0 {
			return fmt.Errorf("mcp server %s: tool_timeouts.%s: a timeout must be positive: %w", cfg.Name, tool, switchboard.ErrInvalid)
		}
	}
	switch cfg.Sampling {
	case "", SamplingDeny, SamplingAllow, SamplingApprove:
	default:
		return fmt.Errorf("mcp server %s: sampling %q: want deny, allow or approve: %w", cfg.Name, cfg.Sampling, switchboard.ErrInvalid)
	}
	if cfg.SamplingMaxTokens < 0 {
		return fmt.Errorf("mcp server %s: negative sampling_max_tokens: %w", cfg.Name, switchboard.ErrInvalid)
	}
	if cfg.AskTimeout < 0 {
		return fmt.Errorf("mcp server %s: negative elicitation_timeout: %w", cfg.Name, switchboard.ErrInvalid)
	}
	for _, r := range cfg.Roots {
		if !strings.HasPrefix(r.URI, "file://") {
			return fmt.Errorf("mcp server %s: root %q: a root is a file:// URI: %w", cfg.Name, r.URI, switchboard.ErrInvalid)
		}
	}
	if cfg.MaxMessageBytes < 0 {
		return fmt.Errorf("mcp server %s: negative max_result_bytes: %w", cfg.Name, switchboard.ErrInvalid)
	}
	return nil
}

// Transport returns the transport cfg resolves to: "stdio", "http"
// (streamable HTTP) or "sse"; "" if cfg is invalid.
func (cfg Config) Transport() string {
	kind, _ := cfg.kind()
	return kind
}

// callTimeout returns the limit of one call of tool.
func (cfg Config) callTimeout(tool string) time.Duration {
	if d := cfg.ToolTimeouts[tool]; d > 0 {
		return d
	}
	return cfg.Timeout
}

// askTimeout returns the bound of one elicitation's wait.
func (cfg Config) askTimeout() time.Duration {
	if cfg.AskTimeout > 0 {
		return cfg.AskTimeout
	}
	return DefaultAskTimeout
}

// kind resolves cfg.Type and checks that cfg has what that transport needs.
func (cfg Config) kind() (string, error) {
	if cfg.Command != "" && cfg.URL != "" {
		return "", errors.New("give command (stdio) or url (HTTP), not both")
	}
	var kind string
	switch strings.ToLower(cfg.Type) {
	case "":
		kind = kindHTTP
		if cfg.Command != "" {
			kind = kindStdio
		}
	case "stdio":
		kind = kindStdio
	case "http", "streamable-http", "streamablehttp", "streamable_http":
		kind = kindHTTP
	case "sse":
		kind = kindSSE
	default:
		return "", fmt.Errorf("unknown transport type %q (want stdio, http or sse)", cfg.Type)
	}
	if kind == kindStdio {
		if cfg.Command == "" {
			return "", errors.New("stdio server without a command")
		}
		for k := range cfg.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return "", fmt.Errorf("bad environment variable name %q", k)
			}
		}
		return kind, nil
	}
	if cfg.URL == "" {
		return "", errors.New("no command or url")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a secret
		}
		return "", fmt.Errorf("bad url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("url %s: want http:// or https:// and a host", redactURL(cfg.URL))
	}
	return kind, nil
}

// redactURL drops what may hold secrets (user info, query, fragment) from a
// URL, for logs and errors.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// secrets returns what of cfg may be secret: the URL's password and query
// values, header values, environment values.
func (cfg Config) secrets() []string {
	out := redact.URLSecrets(cfg.URL)
	for _, v := range cfg.Headers {
		out = append(out, redact.HeaderSecrets(v)...)
	}
	for _, v := range cfg.Env {
		out = append(out, v)
	}
	return out
}
