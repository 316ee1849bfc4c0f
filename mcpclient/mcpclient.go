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
//   - The protocol era is chosen per server (Config.Protocol, era.go): with
//     auto, streamable HTTP tries MCP 2026-07-28's server/discover first and
//     falls back to initialize, but stdio only ever opens with initialize
//     (mcp-go's server/discover probe costs 5 s against a stdio server that
//     ignores it and kills one that exits on an unknown method), moving to
//     the modern era when the server's answer announces it. What auto found
//     is remembered per server configuration (Eras).
//   - Tools are listed with a raw tools/list request, so one malformed tool
//     does not fail the whole list and every input schema is kept byte for
//     byte as the server sent it.
//   - A stdio child is not tied to the context given to Dial, leads its own
//     process group, and Close reaps the group (npx, uvx and go run start
//     grandchildren that would otherwise outlive it).
//
// Where things are: a Conn and its life in this file; Config in config.go;
// calls in call.go, those run as MCP tasks in task.go, tool lists in
// list.go and the icons servers declare in icons.go; the protocol eras
// (the handshake's choice, the modern era's _meta and headers on every raw
// request, resultType, subscriptions/listen) in era.go; what the client
// declares in capabilities.go and the requests servers make of it
// (elicitation, sampling, roots, ping; -32601 for the rest) in asks.go;
// what differs between the
// transport kinds behind the link interface (link.go) in stdio.go and
// process_*.go (a child process) and http.go (streamable HTTP and SSE);
// the bounds on what a server sends in frames.go; health pings in
// health.go; errors in errors.go; the Supervisor in supervisor.go.
//
// Errors wrap the sentinels of the root package: switchboard.ErrInvalid for a
// bad Config or a request the server rejected, switchboard.ErrUnavailable
// for a connection that is broken or closed, switchboard.ErrUpstreamTimeout
// for a server that did not answer in time. A tool's own failure is not an
// error but a Result with IsError set.
package mcpclient

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
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
	// Eras, when set, remembers the era that Config.Protocol auto found
	// per server configuration, for the Conns that share it (a Fleet's);
	// nil means every Dial finds it again.
	Eras *Eras

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

	// What a Pool adds to the Supervisors of its sessions.
	gens     *atomic.Int64      // numbers each connection (Result.Generation)
	onLost   func()             // a connection ended by itself
	onListed func(tools []Tool) // a new connection listed its tools; set, it marks a Pool's session
	// onSession is told of each streamable HTTP session a connection
	// starts (a Pool keeps it for other instances to resume).
	onSession func(Resumption)
	// httpTr, when set, is the HTTP transport of remote connections,
	// shared by the sessions of a Pool (their TCP connections are reused
	// across sessions); nil means each Conn its own.
	httpTr *http.Transport
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
	// TaskCalls reports that the server takes tool calls run as tasks:
	// its capabilities include tasks.requests.tools.call (MCP 2025-11-25).
	// Without it no tool of the server may be called as a task, so one
	// whose TaskSupport is "required" cannot be called at all.
	TaskCalls bool
	// Icons are the tool's icons, those safe to show (see
	// switchboard.Icon).
	Icons []switchboard.Icon
}

// Annotations are the server's hints about a tool; nil means not given.
type Annotations struct {
	ReadOnly, Destructive, Idempotent, OpenWorld *bool
}

// Result is the outcome of a tool call that the server answered.
type Result struct {
	// Text is the result's text content parts joined with "\n"; other
	// parts are summarised, like "[image image/png, 1234 bytes]", and
	// the text of text resources (embedded, or blobs of a text mime type)
	// included.
	Text string
	// Parts are the binary parts, decoded, in the order sent: images,
	// audio, resources whose content is not text.
	Parts []Part
	// Structured is the result's structuredContent as sent, or nil.
	Structured json.RawMessage
	// IsError reports that the tool itself failed; Text says why. It is
	// data for the model, not a Go error.
	IsError bool
	// Generation names the connection that answered, among those of its
	// Pool (it changes when a session restarts); 0 outside a Pool.
	Generation int64
	// Task is the task the call ran as, when its tool can only be called
	// as one (TaskSupport "required"); nil for a plain call.
	Task *Task
}

// Conn is a live connection to one MCP server. Its methods are safe for
// concurrent use.
type Conn struct {
	name   string
	cfg    Config
	log    *slog.Logger
	client *client.Client
	link   link // what the transport kind adds: a child process, an HTTP transport

	// ctx lives as long as the connection; it ends, with the reason as its
	// cause, on Close, when a stdio child exits, or when an SSE stream is
	// lost. Requests in flight end with it.
	ctx  context.Context
	kill context.CancelCauseFunc

	reqID atomic.Int64
	gen   int64 // set by a Pool's Supervisor before the Conn is used

	mu    sync.Mutex
	tools []Tool

	resources bool // the server declared the resources capability

	scrub *redact.Scrubber // hides the Config's secrets in errors

	onToolsChanged func()
	changed        chan struct{} // capacity 1: a pending tools/list_changed
	acked          chan struct{} // capacity 1: a subscriptions/listen stream opened
	recheck        chan struct{} // capacity 1, remote only (nil otherwise): a health check is due

	// progress routes notifications/progress to the call that asked for
	// them: progress token -> chan struct{} (capacity 1).
	progress sync.Map
	// reports routes the same notifications to the caller that asked for
	// them (WithProgress): progress token -> func(switchboard.ToolProgress).
	reports sync.Map
	done    chan struct{} // closed by Close

	// calls are the calls in flight, by token (*inflight), for the
	// requests of the server (asks.go).
	calls sync.Map
	// urlAskers are the Askers of calls waiting, between two tries, for
	// their user to open the urls the server asked for (-32042; see
	// askURLs), by token: the server's completion notices reach them.
	urlAskers sync.Map
	// rootList is what roots/list answers; nil without roots configured.
	rootList atomic.Pointer[[]Root]
	// rootsAsked is closed (once, rootsOnce) when the server first asks
	// for the roots.
	rootsAsked chan struct{}
	rootsOnce  sync.Once

	// taskStatus routes notifications/tasks/status to the call following
	// the task: task id -> chan mcp.Task (capacity 1, the latest status).
	taskStatus sync.Map
	// What the server's initialize result said, set before the Conn is
	// used: its tasks capability and its icons.
	tasks taskCaps
	icons []switchboard.Icon
	// proto is what the handshake settled, set before the Conn is used;
	// clientInfo is what the Conn says it is.
	proto      Protocol
	clientInfo mcp.Implementation
	refusal    atomic.Pointer[string] // what an HTTP server answered a refused initialize with

	wg        sync.WaitGroup // goroutines of the Conn
	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the server described by cfg: it starts the stdio child
// or reaches the URL, performs the handshake of the protocol era (initialize,
// or server/discover; see Config.Protocol) and lists the tools, within
// cfg.InitTimeout (each connection's: a probe that finds another era than
// the connection it made connects again). ctx bounds Dial only: cancelling it afterwards
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
	// era, when set, is the era a probe found: dial on it, and do not
	// probe again.
	era string
}

func dialConn(ctx context.Context, cfg Config, opts *Options, hooks dialHooks) (*Conn, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	kind, err := cfg.kind()
	if err == nil {
		_, err = cfg.protocolMode()
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Name, withKind(switchboard.ErrInvalid, err))
	}
	mode, _ := cfg.protocolMode()
	if kind == kindSSE && mode == ProtocolModern {
		return nil, fmt.Errorf("dial %s: %w", cfg.Name, withKind(switchboard.ErrInvalid,
			errors.New("the legacy SSE transport cannot speak the modern era (protocol: modern)")))
	}
	era := hooks.era
	resume := cfg.Resume != nil && cfg.Resume.SessionID != "" && kind == kindHTTP
	if resume && mode == ProtocolModern {
		cfg.Resume = nil // a session is the legacy era's: the modern one has none
		resume = false
	}
	switch {
	case era != "":
	case resume:
		era = EraLegacy // another connection's session, opened with initialize
	case kind == kindSSE || mode == ProtocolLegacy:
		era = EraLegacy
	case mode == ProtocolModern:
		era = EraModern
	default:
		era = o.Eras.Era(cfg) // "" until auto found it
	}
	return dialEra(ctx, cfg, o, hooks, kind, mode, era)
}

// dialEra dials on era: EraLegacy (initialize), EraModern
// (server/discover), or "" to find it (ProtocolAuto).
func dialEra(ctx context.Context, cfg Config, o Options, hooks dialHooks, kind, mode, era string) (*Conn, error) {
	opts := &o
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
		clientInfo:     mcp.Implementation{Name: o.ClientName, Version: o.ClientVersion},
		onToolsChanged: o.OnToolsChanged,
		changed:        make(chan struct{}, 1),
		acked:          make(chan struct{}, 1),
		done:           make(chan struct{}),
		scrub:          redact.New(cfg.secrets()...),
	}
	c.ctx, c.kill = context.WithCancelCause(context.Background())
	c.rootsAsked = make(chan struct{})
	if cfg.Roots != nil {
		roots := append([]Root{}, cfg.Roots...)
		c.rootList.Store(&roots)
	}
	if hooks.toolsChanged != nil {
		c.onToolsChanged = func() { hooks.toolsChanged(c) }
	}

	switch kind {
	case kindStdio:
		c.link = &stdioLink{stderr: hooks.stderr}
	case kindHTTP:
		// The modern era has no standalone GET stream (list changes come
		// on subscriptions/listen); a probe starts without it.
		c.link = &httpLink{httpTr: o.httpTr, listen: era == EraLegacy}
	case kindSSE:
		c.link = &httpLink{sse: true, httpTr: o.httpTr}
	}
	tr, err := c.link.open(c)
	if err != nil {
		c.kill(err)
		return nil, fmt.Errorf("dial %s: %w", cfg.Name, err)
	}
	// Over stdio a probe starts with initialize; over HTTP with
	// server/discover, which mcp-go's Initialize sends first unless the
	// version is pinned to the legacy era.
	preferred := mcp.LATEST_PROTOCOL_VERSION
	if era == EraLegacy || era == "" && kind == kindStdio {
		preferred = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	}
	copts := []client.ClientOption{client.WithProtocolVersion(preferred),
		client.WithDiscoverTimeout(min(cfg.InitTimeout, discoverProbeWait))}
	if c.resuming() {
		copts = append(copts, client.WithSession())
		if hc, ok := tr.(transport.HTTPConnection); ok {
			hc.SetProtocolVersion(cfg.Resume.ProtocolVersion)
		}
	}
	c.client = client.NewClient(tr, copts...)
	c.client.OnNotification(c.onNotification)
	c.client.OnConnectionLost(func(err error) { // SSE only
		c.kill(withKind(switchboard.ErrUnavailable, fmt.Errorf("connection lost: %w", err)))
	})

	start := time.Now()
	initCtx, cancel := context.WithTimeout(ctx, cfg.InitTimeout)
	defer cancel()
	info, err := c.connect(ctx, initCtx, o, mode, era)
	var redial *errRedial
	if errors.As(err, &redial) && hooks.era == "" && ctx.Err() == nil {
		// A probe found the era: start over on it, once.
		c.Close()
		logger.Info("the mcp server speaks another protocol era than this connection; connecting again", "era", redial.era)
		hooks.era = redial.era
		return dialEra(ctx, cfg, o, hooks, kind, mode, redial.era)
	}
	if err != nil && era != "" && mode == ProtocolAuto && hooks.era == "" && !c.resuming() && o.Eras.Era(cfg) != "" && ctx.Err() == nil {
		// What auto found before no longer works: find it again.
		o.Eras.set(cfg, "")
		c.Close()
		logger.Info("the mcp server no longer connects on the protocol era found before; probing again", "era", era, "err", c.redact(err))
		hooks.era = ""
		return dialEra(ctx, cfg, o, hooks, kind, mode, "")
	}
	if err != nil && c.resuming() && errors.Is(err, errSessionLost) && ctx.Err() == nil {
		// The server no longer knows the session: start a new one.
		c.Close()
		logger.Info("the mcp server no longer knows the session to resume; starting a new one")
		cfg.Resume = nil
		return dialConn(ctx, cfg, opts, hooks)
	}
	if err == nil && mode == ProtocolAuto {
		o.Eras.set(cfg, c.proto.Era)
	}
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
		"era", c.proto.Era,
		"tools", len(c.Tools()),
		"took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// connect starts the transport, performs the handshake on era (see
// dialEra) and lists the tools. An *errRedial says that a probe found the
// server speaks another era than the connection made.
func (c *Conn) connect(ctx, initCtx context.Context, o Options, mode, era string) (*mcp.InitializeResult, error) {
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
	c.link.started(c)

	var info *mcp.InitializeResult
	if c.resuming() {
		// Another connection initialized the session: listing the tools
		// tells whether the server still knows it. What the server said of
		// tasks then is not known here; its tools say whether they need
		// them (the catalog lists them on a connection that initialized).
		info = &mcp.InitializeResult{ProtocolVersion: c.cfg.Resume.ProtocolVersion}
		c.tasks = taskCaps{call: true, cancel: true}
		c.setProtocol(EraLegacy, info)
	} else {
		var err error
		if info, err = c.handshake(ctx, initCtx, o, mode, era); err != nil {
			return nil, err
		}
		c.resources = info.Capabilities.Resources != nil
		c.tasks = serverTaskCaps(info.Capabilities)
		c.icons = safeIcons(info.ServerInfo.Icons)
	}
	tools, err := c.listTools(ctx, initCtx, c.cfg.InitTimeout)
	if err != nil {
		if lost := c.sessionLost(err); lost != err {
			return nil, lost
		}
		if mode == ProtocolLegacy {
			return nil, legacyRefused(err)
		}
		return nil, err
	}
	c.setTools(tools)
	c.awaitRoots(initCtx)
	if c.modern() && c.onToolsChanged != nil && info.Capabilities.Tools != nil && info.Capabilities.Tools.ListChanged {
		c.wg.Add(1)
		go c.listen()
	}
	if id := c.client.GetSessionId(); id != "" && o.onSession != nil && !c.resuming() {
		o.onSession(Resumption{SessionID: id, ProtocolVersion: info.ProtocolVersion})
	}
	return info, nil
}

// handshake opens the session (initialize) or learns what a modern server
// speaks (server/discover), as era says, and records what the connection
// settled on. With era "" (ProtocolAuto, nothing remembered) it probes:
// over HTTP mcp-go's Initialize tries server/discover and falls back to
// initialize; over stdio only initialize is sent (a server that exits on a
// method it does not know keeps working), and a server that announces the
// modern era in its answer (an error naming a modern version it speaks, or
// a modern version in its result) gets a connection of its own on it
// (errRedial). A server that answers initialize stays on the legacy era.
func (c *Conn) handshake(ctx, initCtx context.Context, o Options, mode, era string) (*mcp.InitializeResult, error) {
	var req mcp.InitializeRequest
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	if era == EraModern || era == "" && !c.stdio() {
		req.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	}
	req.Params.ClientInfo = c.clientInfo
	req.Params.Capabilities = clientCapabilities(c.cfg)
	info, err := c.client.Initialize(initCtx, req)
	if err != nil {
		if era == "" && announcesModern(err) {
			return nil, &errRedial{era: EraModern}
		}
		var te *transport.Error
		err = fmt.Errorf("initialize: %w", c.refusedWith(c.classify(ctx, initCtx, c.cfg.InitTimeout, err, !errors.As(err, &te))))
		switch mode {
		case ProtocolLegacy:
			return nil, legacyRefused(err)
		case ProtocolModern:
			return nil, fmt.Errorf("%w (protocol: modern speaks only MCP %s and later)", err, mcp.ProtocolVersion20260728)
		}
		return nil, err
	}
	got := EraLegacy
	if mcp.IsModernProtocol(c.client.ProtocolVersion()) {
		got = EraModern
	}
	switch {
	case got == EraLegacy && mode == ProtocolModern:
		return nil, withKind(switchboard.ErrInvalid, fmt.Errorf(
			"the server does not speak the modern MCP era (%s): it answered the initialize handshake with %s; set protocol: auto or legacy",
			mcp.ProtocolVersion20260728, info.ProtocolVersion))
	case got == EraModern && era == "" && c.stdio():
		// Announced in the initialize result: the modern era has a
		// connection of its own, opened with server/discover.
		return nil, &errRedial{era: EraModern}
	case got == EraLegacy && era == "" && !c.stdio():
		// Found over HTTP without the GET stream that a legacy
		// connection hears list changes and a server's own questions on
		// (see httpLink.listen): connect again with it. What was found is
		// remembered (Eras), so later connections start with it.
		return nil, &errRedial{era: EraLegacy}
	}
	c.setProtocol(got, info)
	return info, nil
}

// rootsGrace is how long a new connection with roots waits for the
// server to ask for them before it takes calls; rootsSettle how long it
// then leaves the server to take them in (server-filesystem checks each
// root on the disk after our answer, and a call that came meanwhile found
// none).
const (
	rootsGrace  = time.Second
	rootsSettle = 100 * time.Millisecond
)

// awaitRoots waits, on a connection with roots, until the server has
// asked for them (roots/list) or rootsGrace has passed. Servers that work
// in their client's roots (server-filesystem started without directories)
// ask once the handshake is done, on their own time, and take them in
// after our answer: a call that came first would find no roots.
func (c *Conn) awaitRoots(ctx context.Context) {
	if c.roots() == nil || c.resuming() {
		return
	}
	t := time.NewTimer(rootsGrace)
	defer t.Stop()
	select {
	case <-c.rootsAsked:
		t.Reset(rootsSettle)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	case <-t.C:
	case <-ctx.Done():
	}
}

// stdio reports whether the Conn runs a stdio child.
func (c *Conn) stdio() bool {
	_, ok := c.link.(*stdioLink)
	return ok
}

// resuming reports whether the Conn takes up a session another one
// started.
func (c *Conn) resuming() bool {
	_, http := c.link.(*httpLink)
	return c.cfg.Resume != nil && c.cfg.Resume.SessionID != "" && http && !c.link.(*httpLink).sse
}

// Name returns the server's name from its Config.
func (c *Conn) Name() string { return c.name }

// Icons returns the icons of the server's initialize result (its
// serverInfo), those safe to show; none for a Conn that took up another's
// session.
func (c *Conn) Icons() []switchboard.Icon { return slices.Clone(c.icons) }

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
func (c *Conn) PID() int { return c.link.pid() }

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
	go func() { closed <- c.client.Close() }()
	var errs []error
	if err := c.link.stop(c, closed, deadline); err != nil {
		errs = append(errs, err)
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

// onNotification runs on mcp-go's read loop: it must not block, nor make a
// request (which would wait for the loop it holds up).
func (c *Conn) onNotification(n mcp.JSONRPCNotification) {
	if n.Method == string(mcp.MethodNotificationProgress) {
		token := fmt.Sprint(n.Params.AdditionalFields["progressToken"])
		if ch, ok := c.progress.Load(token); ok {
			select {
			case ch.(chan struct{}) <- struct{}{}:
			default: // one is pending already
			}
		}
		if fn, ok := c.reports.Load(token); ok {
			fn.(func(switchboard.ToolProgress))(progressOf(n.Params.AdditionalFields))
		}
		return
	}
	if n.Method == string(mcp.MethodNotificationElicitationComplete) {
		c.onElicitationComplete(n)
		return
	}
	if n.Method == mcp.MethodNotificationTasksStatus {
		c.onTaskStatus(n)
		return
	}
	if n.Method == mcp.MethodNotificationSubscriptionsAcknowledged {
		// A subscriptions/listen stream is open: a change made between
		// our last tools/list and now was told to no one (see
		// notifyToolsChanged).
		c.log.Debug("mcp server acknowledged the subscription to list changes")
		select {
		case c.acked <- struct{}{}:
		default:
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
// notification until Close; and when a subscriptions/listen stream opens,
// lists the tools again and calls it if they changed meanwhile.
func (c *Conn) notifyToolsChanged() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.acked:
			before := c.Tools()
			after, err := c.ListTools(c.ctx)
			if err != nil || reflect.DeepEqual(before, after) {
				continue
			}
			select {
			case <-c.done:
				return
			default:
			}
			c.onToolsChanged()
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
