// Package mcpclient connects to MCP servers over stdio, streamable HTTP or
// legacy SSE, on top of mcp-go.
//
// A Conn is one live connection: Dial starts (or reaches) the server,
// performs the initialize handshake and lists its tools; CallTool calls them;
// Close ends it, and for a stdio server stops the whole process group. A Conn
// never comes back once it ends (mcp-go does not reconnect).
//
// A Supervisor keeps one server connected: it dials in the background,
// restarts a server whose connection ended (a stdio child that exited, a
// lost SSE stream, a remote server that forgot our session) with capped
// exponential backoff, detects crash loops, re-lists tools when the server
// says they changed, and sends a call that never reached the server again
// on the next connection. The package knows nothing of models or storage.
//
// Where mcp-go's defaults hurt a host, this package departs from them:
//   - The handshake is pinned to the classic initialize exchange at
//     mcp.LATEST_LEGACY_PROTOCOL_VERSION. mcp-go otherwise first probes with
//     server/discover, which costs 5 s against servers that ignore it and
//     kills servers that exit on an unknown method.
//   - Tools are listed with a raw tools/list request, so one malformed tool
//     does not fail the whole list and every input schema is kept byte for
//     byte as the server sent it.
//   - A stdio child is not tied to the context given to Dial, leads its own
//     process group, and Close reaps the group (npx, uvx and go run start
//     grandchildren that would otherwise outlive it).
//
// Errors wrap the sentinels of the root package: switchboard.ErrInvalid for a
// bad Config or a request the server rejected, switchboard.ErrUnavailable
// for a connection that is broken or closed, switchboard.ErrUpstreamTimeout
// for a server that did not answer in time. A tool's own failure is not an
// error but a Result with IsError set.
package mcpclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/redact"
)

// Defaults and bounds.
const (
	defaultInitTimeout = 10 * time.Second
	defaultTimeout     = 60 * time.Second
	// closeTimeout bounds Close.
	closeTimeout = 5 * time.Second
	// stderrLines is how many of a stdio child's last stderr lines are kept.
	stderrLines = 100
	// maxToolPages bounds tools/list pagination against a server whose
	// cursors never end.
	maxToolPages = 100
	// exitReportWait bounds the wait for a stdio child's exit status after
	// its stdout ended, to report how it exited.
	exitReportWait = 200 * time.Millisecond
	// deadlineSlack is how close to its deadline a failed request counts as
	// timed out.
	deadlineSlack = 50 * time.Millisecond
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
	if _, err := cfg.kind(); err != nil {
		return fmt.Errorf("mcp server %s: %w", cfg.Name, withKind(switchboard.ErrInvalid, err))
	}
	for tool, d := range cfg.ToolTimeouts {
		if d < 0 {
			return fmt.Errorf("mcp server %s: negative timeout for tool %s: %w", cfg.Name, tool, switchboard.ErrInvalid)
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

// longestTimeout returns the longest limit of any request.
func (cfg Config) longestTimeout() time.Duration {
	d := max(cfg.Timeout, cfg.InitTimeout)
	for _, t := range cfg.ToolTimeouts {
		d = max(d, t)
	}
	return d
}

// Options tunes Dial and Supervise. A nil *Options means the defaults.
type Options struct {
	// Logger receives the connection's logs; nil discards them. Logs never
	// include header or environment values, or command arguments.
	Logger *slog.Logger
	// ClientName and ClientVersion identify us in the handshake. Empty
	// means "switchboard" and "dev".
	ClientName, ClientVersion string
	// OnToolsChanged is called when the server says its tools changed
	// (notifications/tools/list_changed); it would typically call
	// ListTools. It runs on a goroutine of the Conn, one call at a time,
	// never on the connection's read loop, and bursts of notifications are
	// coalesced. It must not call Close. Dial only: a Supervisor re-lists by
	// itself and reports through OnChange.
	OnToolsChanged func()

	// The fields below tune Supervise only.

	// OnChange is called whenever a Supervisor's status or tools change. It
	// runs on one of the Supervisor's goroutines, never with its lock held,
	// and must not block (signal a channel instead) nor call Close.
	OnChange func()
	// RestartBackoff is the delay before the second consecutive attempt to
	// connect (the first retry is immediate); it doubles with each further
	// failure, up to MaxRestartBackoff. Zero means 250ms.
	RestartBackoff time.Duration
	// MaxRestartBackoff caps the delay between attempts. Zero means 30s.
	MaxRestartBackoff time.Duration
	// HealthyAfter is how long a connection must last for its end not to
	// count as one more consecutive failure (the backoff starts over). Zero
	// means 30s.
	HealthyAfter time.Duration
	// CrashLoopAfter is how many consecutive failures (attempts that failed,
	// connections that ended before HealthyAfter) make a server
	// crashlooping. Zero means 5.
	CrashLoopAfter int
}

// Tool is one tool as the server listed it.
type Tool struct {
	Name        string
	Title       string // the tool's title, else its annotations' title
	Description string
	// InputSchema is the inputSchema exactly as the server sent it (nil if
	// it sent none); nothing here judges it.
	InputSchema  json.RawMessage
	OutputSchema json.RawMessage
	Annotations  Annotations
	// TaskSupport is the tool's execution.taskSupport: "", "forbidden",
	// "optional" or "required" (a tool that must be called as a task).
	TaskSupport string
}

// Annotations are the server's hints about a tool; nil means not given.
type Annotations struct {
	ReadOnly, Destructive, Idempotent, OpenWorld *bool
}

// Result is the outcome of a tool call that the server answered.
type Result struct {
	// Text is the result's text content parts joined with "\n"; other
	// parts are summarised, like "[image image/png, 1234 bytes]".
	Text string
	// Structured is the result's structuredContent as sent, or nil.
	Structured json.RawMessage
	// IsError reports that the tool itself failed; Text says why. It is
	// data for the model, not a Go error.
	IsError bool
}

// Conn is a live connection to one MCP server. Its methods are safe for
// concurrent use.
type Conn struct {
	name   string
	cfg    Config
	log    *slog.Logger
	client *client.Client
	httpTr *http.Transport // remote kinds: ours alone, so Close can drop its connections
	proc   *process        // stdio only
	stderr *lineRing       // stdio only
	mark   int             // stderr's mark when this Conn's child started

	// ctx lives as long as the connection; it ends, with the reason as its
	// cause, on Close, when a stdio child exits, or when an SSE stream is
	// lost. Requests in flight end with it.
	ctx  context.Context
	kill context.CancelCauseFunc

	reqID atomic.Int64

	mu    sync.Mutex
	tools []Tool

	scrub *redact.Scrubber // hides the Config's secrets in errors

	onToolsChanged func()
	changed        chan struct{} // capacity 1: a pending tools/list_changed
	recheck        chan struct{} // capacity 1, remote only: a health check is due

	// progress routes notifications/progress to the call that asked for
	// them: progress token -> chan struct{} (capacity 1).
	progress sync.Map
	done     chan struct{} // closed by Close

	wg        sync.WaitGroup // goroutines of the Conn
	closeOnce sync.Once
	closeErr  error
}

// errClosed is the cause of a Conn's end when Close ended it.
var errClosed = errors.New("connection closed")

// Dial connects to the server described by cfg: it starts the stdio child
// or reaches the URL, performs the initialize handshake and lists the tools,
// all within cfg.InitTimeout. ctx bounds Dial only: cancelling it afterwards
// does not affect the connection (nor kill a stdio child).
//
// The error wraps switchboard.ErrInvalid if cfg is unusable or the server
// rejects the handshake; switchboard.ErrUpstreamTimeout if the server does
// not complete it within InitTimeout; switchboard.ErrUnavailable if the server
// cannot be started or reached, or the connection breaks. If ctx ends first
// the error wraps ctx's error. For a stdio server the error ends with the
// last lines the child wrote to stderr.
func Dial(ctx context.Context, cfg Config, opts *Options) (*Conn, error) {
	return dialConn(ctx, cfg, opts, dialHooks{})
}

// dialHooks are what a Supervisor changes in its Conns.
type dialHooks struct {
	// stderr, when set, receives a stdio child's stderr instead of a ring
	// of the Conn's own, so the lines of a crashed child outlive its Conn.
	stderr *lineRing
	// toolsChanged, when set, replaces Options.OnToolsChanged.
	toolsChanged func(*Conn)
}

func dialConn(ctx context.Context, cfg Config, opts *Options, hooks dialHooks) (*Conn, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	kind, err := cfg.kind()
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Name, withKind(switchboard.ErrInvalid, err))
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = defaultInitTimeout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if o.ClientName == "" {
		o.ClientName = "switchboard"
	}
	if o.ClientVersion == "" {
		o.ClientVersion = "dev"
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("mcp_server", cfg.Name)

	c := &Conn{
		name:           cfg.Name,
		cfg:            cfg,
		log:            logger,
		onToolsChanged: o.OnToolsChanged,
		changed:        make(chan struct{}, 1),
		done:           make(chan struct{}),
		scrub:          redact.New(cfg.secrets()...),
	}
	c.ctx, c.kill = context.WithCancelCause(context.Background())
	if hooks.toolsChanged != nil {
		c.onToolsChanged = func() { hooks.toolsChanged(c) }
	}

	var tr transport.Interface
	switch kind {
	case kindStdio:
		c.stderr = hooks.stderr
		if c.stderr == nil {
			c.stderr = newLineRing(stderrLines)
		}
		c.mark = c.stderr.Mark()
		c.proc = &process{}
		logger.Debug("starting mcp server", "transport", kind, "command", filepath.Base(cfg.Command))
		stdin, stdout, serr := c.proc.start(cfg, c.stderr)
		if serr != nil {
			c.kill(serr)
			return nil, fmt.Errorf("dial %s: start: %w", cfg.Name,
				withKind(switchboard.ErrUnavailable, fmt.Errorf("failed to start command: %w", serr)))
		}
		// mcp-go's stdio transport over the child we started: it logs
		// through slog's default logger, which the service sets to its own.
		tr = transport.NewIO(newLineFilter(stdout, cfg.maxMessageBytes(), c.dropped, c.unroutable), stdin, nil)
	case kindHTTP:
		c.recheck = make(chan struct{}, 1)
		c.httpTr = newHTTPTransport()
		topts := []transport.StreamableHTTPCOption{
			transport.WithHTTPHeaders(cfg.Headers),
			transport.WithHTTPBasicClient(c.httpClient(true)),
			transport.WithHTTPLogger(logger),
		}
		if c.onToolsChanged != nil {
			// Without the standalone GET stream, streamable HTTP delivers
			// notifications only while a request of ours is in flight.
			topts = append(topts, transport.WithContinuousListening())
		}
		topts = append(topts, transport.WithHTTPMaxMessageBytes(cfg.maxMessageBytes()+transportSlack))
		tr, err = transport.NewStreamableHTTP(cfg.URL, topts...)
		logger.Debug("connecting to mcp server", "transport", kind, "url", redactURL(cfg.URL))
	case kindSSE:
		// Like client.NewSSEMCPClient, which builds exactly this transport,
		// but that constructor takes no client options.
		c.recheck = make(chan struct{}, 1)
		c.httpTr = newHTTPTransport()
		tr, err = transport.NewSSE(cfg.URL,
			transport.WithHeaders(cfg.Headers),
			transport.WithHTTPClient(c.httpClient(false)),
			transport.WithSSELogger(logger),
			transport.WithEndpointTimeout(cfg.InitTimeout),
			// Our contexts bound requests; the transport's own default
			// (60s) would cut longer Timeouts short.
			transport.WithResponseTimeout(cfg.longestTimeout()+time.Second),
			transport.WithMaxMessageBytes(cfg.maxMessageBytes()+transportSlack))
		logger.Debug("connecting to mcp server", "transport", kind, "url", redactURL(cfg.URL))
	}
	if err != nil {
		c.kill(err)
		return nil, fmt.Errorf("dial %s: %w", cfg.Name, withKind(switchboard.ErrInvalid, err))
	}
	c.client = client.NewClient(tr, client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION))
	c.client.OnNotification(c.onNotification)
	c.client.OnConnectionLost(func(err error) { // SSE only
		c.kill(withKind(switchboard.ErrUnavailable, fmt.Errorf("connection lost: %w", err)))
	})

	start := time.Now()
	initCtx, cancel := context.WithTimeout(ctx, cfg.InitTimeout)
	defer cancel()
	info, err := c.connect(ctx, initCtx, o)
	if err != nil {
		c.Close()
		if tail := c.stderrTail(); tail != "" {
			err = fmt.Errorf("%w; stderr: %s", err, tail)
		}
		return nil, fmt.Errorf("dial %s: %w", cfg.Name, c.redact(err))
	}
	if c.onToolsChanged != nil {
		c.wg.Add(1)
		go c.notifyToolsChanged()
	}
	if c.recheck != nil && cfg.HealthInterval >= 0 {
		c.wg.Add(1)
		go c.watchHealth(cmp.Or(cfg.HealthInterval, DefaultHealthInterval))
	}
	logger.Info("mcp server connected",
		"transport", kind,
		"server", info.ServerInfo.Name,
		"server_version", info.ServerInfo.Version,
		"protocol", info.ProtocolVersion,
		"tools", len(c.Tools()),
		"took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// connect starts the transport, performs the handshake and lists the tools.
func (c *Conn) connect(ctx, initCtx context.Context, o Options) (*mcp.InitializeResult, error) {
	// The transport gets the Conn's context, not initCtx: an SSE stream and
	// a stdio child live as long as the Conn. Start returns at once for
	// stdio and streamable HTTP; for SSE it waits for the endpoint event,
	// so it is abandoned (and the stream cancelled) if initCtx ends first.
	started := make(chan error, 1)
	go func() { started <- c.client.Start(c.ctx) }()
	select {
	case err := <-started:
		if err != nil {
			return nil, fmt.Errorf("start: %w", c.classify(ctx, initCtx, c.cfg.InitTimeout, err, false))
		}
	case <-initCtx.Done():
		c.kill(withKind(switchboard.ErrUnavailable, errors.New("dial abandoned")))
		<-started
		return nil, fmt.Errorf("start: %w", c.classify(ctx, initCtx, c.cfg.InitTimeout, initCtx.Err(), false))
	}
	if c.proc != nil {
		c.proc.started(c)
	}

	var req mcp.InitializeRequest
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: o.ClientName, Version: o.ClientVersion}
	req.Params.Capabilities = mcp.ClientCapabilities{}
	info, err := c.client.Initialize(initCtx, req)
	if err != nil {
		var te *transport.Error
		return nil, fmt.Errorf("initialize: %w", c.classify(ctx, initCtx, c.cfg.InitTimeout, err, !errors.As(err, &te)))
	}
	tools, err := c.listTools(ctx, initCtx, c.cfg.InitTimeout)
	if err != nil {
		return nil, err
	}
	c.setTools(tools)
	return info, nil
}

// Name returns the server's name from its Config.
func (c *Conn) Name() string { return c.name }

// Done returns a channel that is closed when the connection ends: on Close,
// when a stdio child exits, when an SSE stream is lost, or when a remote
// server forgets our session.
func (c *Conn) Done() <-chan struct{} { return c.ctx.Done() }

// Err returns why the connection ended (wrapping
// switchboard.ErrUnavailable), or nil while it lives.
func (c *Conn) Err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

// PID returns the process id of a stdio server's child, which leads its own
// process group; 0 for a remote server.
func (c *Conn) PID() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.pid()
}

// Tools returns the tools of the last successful listing (by Dial or
// ListTools). The caller must not modify the schemas' bytes.
func (c *Conn) Tools() []Tool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.tools)
}

func (c *Conn) setTools(tools []Tool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tools = tools
}

// ListTools lists the server's tools again, following every page, and
// makes the result what Tools returns. A tool entry that cannot be read (no
// name, not an object) is skipped and logged; so is a second tool of the
// same name.
//
// The error wraps switchboard.ErrInvalid if the server rejects the request
// or answers with something that is not a tool list,
// switchboard.ErrUnavailable if the connection is broken or closed,
// switchboard.ErrUpstreamTimeout if the server does not answer within
// Config.Timeout, or ctx's error if ctx ends first.
func (c *Conn) ListTools(ctx context.Context) ([]Tool, error) {
	opCtx, cancel := c.opContext(ctx, c.cfg.Timeout)
	defer cancel()
	if c.ctx.Err() != nil {
		return nil, fmt.Errorf("list tools of %s: %w", c.name, &notSentError{context.Cause(c.ctx)})
	}
	tools, err := c.listTools(ctx, opCtx, c.cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("list tools of %s: %w", c.name, c.sessionLost(err))
	}
	c.setTools(tools)
	return slices.Clone(tools), nil
}

// CallTool calls the tool name with args, a JSON object (nil or empty means
// no arguments). It waits at most Config.Timeout (or the tool's entry in
// Config.ToolTimeouts), less if ctx ends sooner.
// When ctx ends first the request is abandoned, and a stdio server is told
// with notifications/cancelled (mcp-go sends it; over HTTP the closed request
// is the signal).
//
// A tool that fails reports it in the Result (IsError), not as an error. The
// error wraps switchboard.ErrInvalid if args is not a JSON object or the
// server rejects the request (a JSON-RPC error: unknown tool, invalid
// params; also a reply that cannot be read); switchboard.ErrUnavailable if
// the connection is broken or closed (the server may or may not have run the
// tool, unless the connection had ended before the call, or the remote server
// had forgotten our session: then the Conn ends too); switchboard.ErrUpstreamTimeout
// and context.DeadlineExceeded if the timeout passed; ctx's error if ctx
// ended first.
func (c *Conn) CallTool(ctx context.Context, name string, args json.RawMessage) (*Result, error) {
	args, err := objectArgs(args)
	if err == nil && name == "" {
		err = errors.New("no tool name")
	}
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, c.name, withKind(switchboard.ErrInvalid, err))
	}
	// The limit bounds the wait for an answer or for progress: a tool that
	// reports progress may run longer, up to ProgressCap times the limit.
	limit := c.cfg.callTimeout(name)
	opCtx, cancel := c.opContext(ctx, ProgressCap*limit)
	defer cancel()
	if c.ctx.Err() != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, c.name, &notSentError{context.Cause(c.ctx)})
	}
	idleCtx, idleCancel := context.WithCancelCause(opCtx)
	defer idleCancel(nil)
	idle := time.AfterFunc(limit, func() { idleCancel(errNoProgress) })
	defer idle.Stop()
	token := fmt.Sprintf("switchboard-%d", c.reqID.Add(1))
	progressed := make(chan struct{}, 1)
	c.progress.Store(token, progressed)
	defer c.progress.Delete(token)
	go func() {
		for {
			select {
			case <-idleCtx.Done():
				return
			case <-progressed:
				idle.Reset(limit)
			}
		}
	}()
	res, rejected, err := c.callTool(idleCtx, token, name, args)
	if err != nil {
		if lost := c.sessionLost(err); lost != err {
			return nil, fmt.Errorf("call %s on %s: %w", name, c.name, lost)
		}
		if ctx.Err() == nil && errors.Is(context.Cause(idleCtx), errNoProgress) {
			return nil, fmt.Errorf("call %s on %s: %w", name, c.name,
				withKind(switchboard.ErrUpstreamTimeout, fmt.Errorf("no answer or progress within %s: %w", limit, context.DeadlineExceeded)))
		}
		err = c.classify(ctx, opCtx, ProgressCap*limit, err, rejected)
		if ctx.Err() == nil && errors.Is(err, switchboard.ErrUnavailable) {
			c.checkHealth()
		}
		return nil, fmt.Errorf("call %s on %s: %w", name, c.name, err)
	}
	return newResult(res), nil
}

// ProgressCap bounds how far progress notifications may extend a call: to
// this many times its timeout. Each notifications/progress the server sends
// for a call restarts its timeout.
const ProgressCap = 10

// errNoProgress ends a call that neither answered nor reported progress
// within its timeout.
var errNoProgress = fmt.Errorf("no answer or progress in time: %w", context.DeadlineExceeded)

// callTool sends tools/call as a raw request, with an id of ours, so that a
// call whose context ends can be cancelled on every transport: mcp-go's
// client tells only stdio servers, and keeps the request id to itself.
// rejected reports an answer of the server (a JSON-RPC error, or a result
// that does not parse), as opposed to a failure to send or receive.
func (c *Conn) callTool(ctx context.Context, token, name string, args json.RawMessage) (res *mcp.CallToolResult, rejected bool, err error) {
	// The request id doubles as the progress token.
	id := mcp.NewRequestId(token)
	resp, err := c.client.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      id,
		Method:  string(mcp.MethodToolsCall),
		Params:  map[string]any{"name": name, "arguments": args, "_meta": map[string]any{"progressToken": token}},
	})
	if err != nil {
		if ctx.Err() != nil {
			c.cancelRequest(id, context.Cause(ctx))
		}
		return nil, false, err
	}
	if resp.Error != nil {
		return nil, true, rpcError(resp.Error)
	}
	res, err = mcp.ParseCallToolResult(&resp.Result)
	if err != nil {
		return nil, true, fmt.Errorf("decode result: %w", err)
	}
	return res, false, nil
}

// ErrMalformed marks an answer that cannot be read: one nested deeper than
// a client can follow. It wraps switchboard.ErrInvalid.
var ErrMalformed = fmt.Errorf("malformed answer: %w", switchboard.ErrInvalid)

// rpcError turns a JSON-RPC error into a Go error: the replacements of a
// frame filter (see frames.go) into switchboard.ErrTooLarge and ErrMalformed.
func rpcError(e *mcp.JSONRPCErrorDetails) error {
	switch e.Code {
	case codeTooLarge:
		return withKind(switchboard.ErrTooLarge, errors.New(e.Message))
	case codeTooDeep:
		return withKind(ErrMalformed, errors.New(e.Message))
	}
	return e.AsError()
}

// dropped logs a message a frame filter dropped or replaced.
func (c *Conn) dropped(what string, size int64) {
	c.log.Warn("mcp server message refused", "why", what, "bytes", size, "max_result_bytes", c.cfg.maxMessageBytes())
}

// unroutable ends a connection whose server sent a message over the bound
// that a request may be waiting for: the requests fail instead of waiting
// for their timeouts, and a Supervisor starts the server again.
func (c *Conn) unroutable(err error) {
	c.log.Warn("mcp server sent a message over the bound that answers no request we can tell; ending the connection", "err", err)
	c.kill(withKind(switchboard.ErrUnavailable, err))
}

// cancelRequest tells the server to stop working on request id
// (notifications/cancelled), best effort and within a second: the caller
// has its answer already.
func (c *Conn) cancelRequest(id mcp.RequestId, cause error) {
	reason := "cancelled"
	if errors.Is(cause, context.DeadlineExceeded) {
		reason = "timed out"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), time.Second)
	defer cancel()
	err := c.client.GetTransport().SendNotification(ctx, mcp.JSONRPCNotification{
		JSONRPC: mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{
			Method: string(mcp.MethodNotificationCancelled),
			Params: mcp.NotificationParams{AdditionalFields: map[string]any{"requestId": id, "reason": reason}},
		},
	})
	if err != nil {
		c.log.Debug("could not tell the server a call was cancelled", "err", err)
	}
}

// errSessionLost ends a Conn whose remote server no longer knows our
// session: it restarted, or expired the session.
var errSessionLost = errors.New("the server ended our session (HTTP 404): it restarted or expired the session")

// sessionLost turns mcp-go's ErrSessionTerminated, which it returns for a
// request the server refused with 404 (or that it did not send, the session
// having ended already), into the end of the Conn, and marks the request as
// never run. Other errors come back as they are.
func (c *Conn) sessionLost(err error) error {
	if !errors.Is(err, transport.ErrSessionTerminated) {
		return err
	}
	lost := withKind(switchboard.ErrUnavailable, errSessionLost)
	c.kill(lost)
	if c.ctx.Err() != nil && !errors.Is(context.Cause(c.ctx), errSessionLost) {
		// The Conn had ended for another reason (Close) first.
		return &notSentError{context.Cause(c.ctx)}
	}
	c.log.Warn("mcp server forgot our session")
	return &notSentError{lost}
}

// notSentError marks a failed request that never reached the server (or
// that the server refused without running it): sending it again on another
// connection cannot run it twice.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// neverSent reports whether err is a request that never ran on the server.
func neverSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// Stderr returns the last lines (at most 100) that a stdio server wrote to
// its stderr, an unfinished last line included; nil for a remote server.
func (c *Conn) Stderr() []string {
	if c.stderr == nil {
		return nil
	}
	return c.stderr.Lines()
}

// Close ends the connection and waits (at most about 5s) for it to end.
// Requests in flight fail with switchboard.ErrUnavailable. For a stdio
// server it closes the child's stdin, and after a short grace signals its
// whole process group with SIGTERM, then SIGKILL, and reaps the child. Close
// is idempotent; it returns an error only if something it started could not
// be stopped in time.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.shutdown() })
	return c.closeErr
}

func (c *Conn) shutdown() error {
	deadline := time.Now().Add(closeTimeout)
	close(c.done)
	c.kill(withKind(switchboard.ErrUnavailable, errClosed))

	closed := make(chan error, 1)
	go func() {
		err := c.client.Close()
		if c.proc != nil {
			err = c.proc.wait()
		}
		closed <- err
	}()
	var errs []error
	if c.proc != nil {
		if err := c.proc.stop(closed, c.log); err != nil {
			errs = append(errs, err)
		}
	} else {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-closed: // the HTTP transports' Close errors are only logged by mcp-go
		case <-t.C:
			errs = append(errs, errors.New("transport did not close in time"))
		}
		t.Stop()
	}
	if c.httpTr != nil {
		c.httpTr.CloseIdleConnections()
	}
	if !waitTimeout(&c.wg, time.Until(deadline)) {
		errs = append(errs, errors.New("goroutines did not end in time"))
	}
	c.log.Debug("mcp server connection closed")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", c.name, err)
	}
	return nil
}

// opContext returns the context of one request: ctx bounded by limit, and
// ended when the connection ends.
func (c *Conn) opContext(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	opCtx, cancel := context.WithTimeout(ctx, limit)
	stop := context.AfterFunc(c.ctx, cancel)
	return opCtx, func() { stop(); cancel() }
}

// classify says why a request failed: the connection ended, the caller's
// ctx ended, the request's own limit passed, the server rejected it
// (rejected), or the transport failed.
func (c *Conn) classify(ctx, opCtx context.Context, limit time.Duration, err error, rejected bool) error {
	return c.redact(c.classifyRaw(ctx, opCtx, limit, err, rejected))
}

func (c *Conn) classifyRaw(ctx, opCtx context.Context, limit time.Duration, err error, rejected bool) error {
	if dl, ok := opCtx.Deadline(); ok && opCtx.Err() == nil && time.Until(dl) < deadlineSlack {
		// A transport timer set to our deadline (SSE's response timeout)
		// can fire a hair before it: the failure is the deadline.
		t := time.NewTimer(deadlineSlack)
		select {
		case <-opCtx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	switch {
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return withKind(switchboard.ErrUpstreamTimeout, ctx.Err())
		}
		return ctx.Err()
	case errors.Is(opCtx.Err(), context.DeadlineExceeded):
		return withKind(switchboard.ErrUpstreamTimeout, fmt.Errorf("no answer within %s: %w", limit, context.DeadlineExceeded))
	case c.ctx.Err() != nil:
		return context.Cause(c.ctx)
	case rejected:
		return withKind(switchboard.ErrInvalid, err)
	}
	if c.proc != nil && canWatchExit && errors.Is(err, transport.ErrTransportClosed) {
		// The child's stdout ended; its exit, with the status worth
		// reporting, is usually a moment behind.
		t := time.NewTimer(exitReportWait)
		defer t.Stop()
		select {
		case <-c.ctx.Done():
			return context.Cause(c.ctx)
		case <-t.C:
		}
	}
	return withKind(switchboard.ErrUnavailable, err)
}

// onNotification runs on mcp-go's read loop: it must not block, nor make a
// request (which would wait for the loop it holds up).
func (c *Conn) onNotification(n mcp.JSONRPCNotification) {
	if n.Method == string(mcp.MethodNotificationProgress) {
		if ch, ok := c.progress.Load(fmt.Sprint(n.Params.AdditionalFields["progressToken"])); ok {
			select {
			case ch.(chan struct{}) <- struct{}{}:
			default: // one is pending already
			}
		}
		return
	}
	if n.Method != mcp.MethodNotificationToolsListChanged {
		return
	}
	c.log.Debug("mcp server tools changed")
	if c.onToolsChanged == nil {
		return
	}
	select {
	case c.changed <- struct{}{}:
	default: // one is pending already; it will see the change
	}
}

// notifyToolsChanged calls OnToolsChanged for each (coalesced)
// notification until Close.
func (c *Conn) notifyToolsChanged() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.changed:
			select {
			case <-c.done:
				return
			default:
			}
			c.onToolsChanged()
		}
	}
}

// stderrTail returns the last few stderr lines of a stdio child, for an
// error message.
func (c *Conn) stderrTail() string {
	if c.stderr == nil {
		return ""
	}
	lines := c.stderr.LinesSince(c.mark)
	var tail []string
	for _, l := range slices.Backward(lines) {
		if l = strings.TrimSpace(l); l != "" {
			tail = append(tail, l)
		}
		if len(tail) == 3 {
			break
		}
	}
	slices.Reverse(tail)
	s := strings.Join(tail, " | ")
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	return strings.ToValidUTF8(s, "")
}

// kind resolves cfg.Type and checks that cfg has what that transport needs.
func (cfg Config) kind() (string, error) {
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

// redact hides the Config's secrets in err's message; errors.Is and
// errors.As still see err.
func (c *Conn) redact(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, s: c.scrub}
}

type redactedError struct {
	err error
	s   *redact.Scrubber
}

func (e *redactedError) Error() string { return e.s.String(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }

// newHTTPTransport returns an HTTP transport of a Conn's own, so that Close
// can drop its idle connections (and their goroutines) without touching
// anyone else's.
func newHTTPTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// httpClient returns the HTTP client of a remote Conn. It adds the
// configured headers to any request that lacks them: mcp-go v1.2.1's
// streamable HTTP transport sends its session-ending DELETE without them,
// which a server behind authentication refuses. With sessionFix it also
// reads a 400 that says our session is unknown as the 404 the spec
// prescribes (see headerTransport).
func (c *Conn) httpClient(sessionFix bool) *http.Client {
	return &http.Client{Transport: &headerTransport{base: c.httpTr, headers: c.cfg.Headers, sessionFix: sessionFix,
		limit: c.cfg.maxMessageBytes(), report: c.dropped, streamEnded: c.checkHealth}}
}

// headerTransport sets headers on requests that lack them.
//
// With sessionFix, a 400 answer to a request that carried a session id,
// whose body speaks of the session, becomes a 404. The streamable HTTP spec
// says a server that no longer knows a session answers 404, which tells
// mcp-go to start a new session; but the TypeScript SDK's example server,
// which many servers copy (server-everything among them), answers 400 "No
// valid session ID provided", and the client would fail every call until
// restarted.
//
// It also reads every answer's body through a frame filter (see frames.go):
// a JSON body is one message, an event stream's events are messages.
type headerTransport struct {
	base       http.RoundTripper
	headers    map[string]string
	sessionFix bool
	limit      int64
	report     frameReport
	// streamEnded is told when a GET (an event stream of the server) fails
	// or ends.
	streamEnded func()
}

// filterBody reads a successful answer's body through a frame filter.
func (t *headerTransport) filterBody(resp *http.Response) *http.Response {
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil || resp.Body == http.NoBody {
		return resp
	}
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch media {
	case "application/json":
		resp.Body = newJSONBodyFilter(resp.Body, t.limit, t.report)
		resp.ContentLength = -1
	case "text/event-stream":
		f := newSSEFilter(resp.Body, t.limit, t.report)
		if resp.Request != nil && resp.Request.Method == http.MethodGet {
			f.ended = t.streamEnded
		}
		resp.Body = f
		resp.ContentLength = -1
	}
	return resp
}

// maxPeek bounds how much of a 400 body headerTransport reads.
const maxPeek = 4096

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for k := range t.headers {
		if r.Header.Get(k) == "" {
			r = r.Clone(r.Context()) // a RoundTripper must not change its request
			for k, v := range t.headers {
				if r.Header.Get(k) == "" {
					r.Header.Set(k, v)
				}
			}
			break
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		if r.Method == http.MethodGet && r.Context().Err() == nil && t.streamEnded != nil {
			t.streamEnded()
		}
		return resp, err
	}
	if !t.sessionFix || resp.StatusCode != http.StatusBadRequest || r.Header.Get("Mcp-Session-Id") == "" {
		return t.filterBody(resp), nil
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, maxPeek))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
	if bytes.Contains(bytes.ToLower(peek), []byte("session")) {
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
	}
	return resp, nil
}

// objectArgs checks that args is a JSON object; empty or null means {}.
func objectArgs(args json.RawMessage) (json.RawMessage, error) {
	trimmed := strings.TrimSpace(string(args))
	if trimmed == "" || trimmed == "null" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid(args) {
		return nil, errors.New("arguments are not valid JSON")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("arguments are not a JSON object")
	}
	return args, nil
}

// waitTimeout waits for wg at most d, and reports whether it ended.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// kindError is err, also matching kind with errors.Is, so that the message
// stays err's own.
type kindError struct {
	kind error
	err  error
}

func withKind(kind, err error) error {
	if errors.Is(err, kind) {
		return err
	}
	return &kindError{kind: kind, err: err}
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }
