package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// Supervision defaults; see Options.
const (
	defaultRestartBackoff    = 250 * time.Millisecond
	defaultMaxRestartBackoff = 30 * time.Second
	defaultHealthyAfter      = 30 * time.Second
	defaultCrashLoopAfter    = 5
)

// Status is what a Supervisor reports about its server.
type Status struct {
	Name      string
	Transport string // stdio, http or sse
	State     switchboard.ServerState
	// Restarts counts the connection attempts after the first one, since
	// Supervise or the last Restart.
	Restarts    int
	LastError   string
	LastErrorAt time.Time
	// ConnectedAt is when the current connection was made; zero while not
	// connected.
	ConnectedAt time.Time
	// PID is a stdio server's child process (and process group) while
	// connected; 0 otherwise.
	PID int
	// Stderr is the last lines (at most 100) a stdio server wrote to stderr,
	// across restarts, with a line of ours where its process ended.
	Stderr []string
	// Icons are the server's icons (see Conn.Icons), of the current
	// connection or, while it is down, the last one.
	Icons []switchboard.Icon
	// Protocol is what the current connection speaks (see Conn.Protocol)
	// or, while it is down, the last one; zero before the first.
	Protocol Protocol
}

// Supervisor keeps one MCP server connected, for as long as it lives.
//
// It connects in the background, and when the connection ends (a stdio
// child exited or was killed, an SSE stream was lost, a remote server forgot
// our session) it reaps what is left of the child's process group and
// connects again: at once the first time, then after a delay that doubles
// with each consecutive failure, from Options.RestartBackoff up to
// Options.MaxRestartBackoff. A connection that lasted Options.HealthyAfter
// starts the count over. After Options.CrashLoopAfter consecutive failures
// the server is reported crashlooping, and still retried at the capped
// delay. When the server says its tools changed, the Supervisor lists them
// again, off the connection's read loop.
//
// Its methods are safe for concurrent use. *Supervisor implements the
// catalog's view of a server (Name, Tools, CallTool) with the same meaning as
// a Conn's, across restarts.
type Supervisor struct {
	name   string
	opts   Options
	log    *slog.Logger
	stderr *lineRing // stdio only

	life sync.Mutex // serialises Restart and Close
	gen  *generation

	mu            sync.Mutex
	cfg           Config
	state         switchboard.ServerState
	conn          *Conn    // the live connection, or nil
	tools         []Tool   // the tools of the last connection, kept while it is down
	resources     bool     // the last connection's server declared resources
	connectedOnce bool     // this generation has been ready
	first         *attempt // the generation's first attempt
	restarts      int
	lastFailure   error // of the last attempt or connection, for the calls that wait
	lastErr       string
	lastErrAt     time.Time
	connectedAt   time.Time
	pid           int
	changed       chan struct{} // closed and replaced on every change
	closed        bool
	// icons are the server's icons of the last connection, kept while it
	// is down, like tools.
	icons []switchboard.Icon
	proto Protocol // of the last connection, kept while it is down
}

// generation is one run of the Supervisor's loop, over one Config.
type generation struct {
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when run returns
	closeErr error         // of the last connection, set before done closes
}

// attempt reports how a generation's first connection attempt ended.
type attempt struct {
	done chan struct{}
	err  error // written before done closes
}

func (a *attempt) end(err error) {
	select {
	case <-a.done:
	default:
		a.err = err
		close(a.done)
	}
}

// errStopped ends the first attempt of a generation stopped before it
// connected.
var errStopped = errors.New("stopped before it connected")

// Supervise starts supervising the server cfg describes and returns at once;
// the first connection attempt runs in the background (see Started). The
// caller must Close the Supervisor.
func Supervise(cfg Config, opts *Options) *Supervisor {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.OnToolsChanged = nil
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = defaultRestartBackoff
	}
	if o.MaxRestartBackoff <= 0 {
		o.MaxRestartBackoff = defaultMaxRestartBackoff
	}
	if o.HealthyAfter <= 0 {
		o.HealthyAfter = defaultHealthyAfter
	}
	if o.CrashLoopAfter <= 0 {
		o.CrashLoopAfter = defaultCrashLoopAfter
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		name:    cfg.Name,
		opts:    o,
		log:     logger.With("mcp_server", cfg.Name),
		stderr:  newLineRing(stderrLines),
		changed: make(chan struct{}),
	}
	s.start(cfg)
	return s
}

// Name returns the server's name from its Config.
func (s *Supervisor) Name() string { return s.name }

// Tools returns the tools of the current connection, or, while the server
// is being restarted, those of the last one; none before it first connected.
// The caller must not modify the schemas' bytes.
func (s *Supervisor) Tools() []Tool {
	s.mu.Lock()
	conn, tools := s.conn, s.tools
	s.mu.Unlock()
	if conn != nil {
		return conn.Tools()
	}
	return slices.Clone(tools)
}

// Status reports the server's state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	st := Status{
		Name:        s.name,
		Transport:   s.cfg.Transport(),
		State:       s.state,
		Restarts:    s.restarts,
		LastError:   s.lastErr,
		LastErrorAt: s.lastErrAt,
		ConnectedAt: s.connectedAt,
		PID:         s.pid,
		Icons:       s.icons,
		Protocol:    s.proto,
	}
	if s.conn != nil {
		st.Icons, st.Protocol = s.conn.Icons(), s.conn.Protocol()
	}
	s.mu.Unlock()
	if st.Transport == kindStdio {
		st.Stderr = s.stderr.Lines()
	}
	return st
}

// Started waits until the first connection attempt (since Supervise or the
// last Restart) has ended, and returns its error: nil if the server
// connected, the Dial error otherwise (see Dial). It returns ctx's error if
// ctx ends first.
func (s *Supervisor) Started(ctx context.Context) error {
	s.mu.Lock()
	a := s.first
	s.mu.Unlock()
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CallTool calls a tool as Conn.CallTool does, on the current connection.
//
// While the server is connecting for the first time, or being restarted
// after it was connected, the call waits for it, within ctx. A call that did
// not reach the server (its connection had just ended, or the remote server
// had forgotten our session) is sent once more on the next connection: it
// cannot have run. A call the server received is never sent again: when the
// connection ends under it, it fails.
//
// Besides Conn.CallTool's errors, it returns one wrapping
// switchboard.ErrUnavailable, at once, if the Supervisor is closed, the
// server is crashlooping, or it never connected and its last attempt
// failed; and when ctx ends before a restarting server is back.
func (s *Supervisor) CallTool(ctx context.Context, name string, args json.RawMessage) (*Result, error) {
	c, err := s.await(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, s.name, err)
	}
	res, err := c.CallTool(ctx, name, args)
	if err == nil || !neverSent(err) || ctx.Err() != nil {
		return withGeneration(res, c), err
	}
	s.log.Info("a call did not reach the mcp server; sending it on the next connection", "tool", name, "err", err)
	next, werr := s.await(ctx, c)
	if werr != nil {
		return nil, err
	}
	res, err = next.CallTool(ctx, name, args)
	return withGeneration(res, next), err
}

func withGeneration(res *Result, c *Conn) *Result {
	if res != nil {
		res.Generation = c.gen
	}
	return res
}

// await returns a live connection other than old, waiting for one while the
// server is connecting or being restarted.
func (s *Supervisor) await(ctx context.Context, old *Conn) (*Conn, error) {
	for {
		s.mu.Lock()
		conn, state, changed, lastErr, failure := s.conn, s.state, s.changed, s.lastErr, s.lastFailure
		tried := s.first.tried()
		s.mu.Unlock()
		if conn != nil && conn != old && conn.Err() == nil {
			return conn, nil
		}
		why := ""
		if lastErr != "" {
			why = ": " + lastErr
		}
		switch {
		case state == switchboard.ServerStopped:
			return nil, withKind(switchboard.ErrUnavailable, fmt.Errorf("mcp server %s is stopped", s.name))
		case state == switchboard.ServerCrashLooping:
			return nil, withKind(switchboard.ErrUnavailable, fmt.Errorf("mcp server %s is crash-looping%s", s.name, why))
		case state == switchboard.ServerStarting && tried && failure != nil:
			// The attempt's error itself, so that what it says (a user
			// who must connect the server first) reaches the call.
			return nil, withKind(switchboard.ErrUnavailable, fmt.Errorf("mcp server %s is not connected: %w", s.name, failure))
		case state == switchboard.ServerStarting && tried:
			return nil, withKind(switchboard.ErrUnavailable, fmt.Errorf("mcp server %s is not connected%s", s.name, why))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, withKind(switchboard.ErrUnavailable, fmt.Errorf("mcp server %s did not come back in time (%s%s)", s.name, state, why))
		}
	}
}

func (a *attempt) tried() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Restart stops the current connection (its calls in flight fail) and
// starts over with cfg, which may differ from the last one; the name stays.
// It returns once the old connection is closed, without waiting for the new
// one (see Started). It does nothing once the Supervisor is closed.
func (s *Supervisor) Restart(cfg Config) {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	s.stop()
	s.stderr.Note("switchboard: restarting with a new configuration")
	s.start(cfg)
}

// SetRoots changes the roots offered to the server without restarting
// it: the current connection tells the server
// (notifications/roots/list_changed), later ones offer them from the
// start. A server configured without roots gains none this way (it was
// never told the client has roots): that takes Restart.
func (s *Supervisor) SetRoots(roots []Root) {
	s.mu.Lock()
	if s.cfg.Roots == nil || roots == nil {
		s.mu.Unlock()
		return
	}
	s.cfg.Roots = roots
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		conn.SetRoots(roots)
	}
}

// Close stops supervising and ends the connection: calls in flight fail
// with switchboard.ErrUnavailable, a stdio server's process group is
// stopped, and later calls fail at once. It takes at most about 5s, and
// returns an error only if the server could not be stopped in time (see
// Conn.Close). Close is idempotent.
func (s *Supervisor) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.stop()
	s.update(func() {
		s.state = switchboard.ServerStopped
		s.tools, s.icons, s.proto = nil, nil, Protocol{}
	})
	s.log.Debug("mcp server supervision stopped")
	return err
}

// start begins a generation over cfg. The caller holds s.life, or is
// Supervise.
func (s *Supervisor) start(cfg Config) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &generation{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.gen = g
	s.update(func() {
		s.cfg = cfg
		s.state = switchboard.ServerStarting
		s.tools, s.icons, s.proto = nil, nil, Protocol{}
		s.connectedOnce = false
		s.first = &attempt{done: make(chan struct{})}
		s.restarts = 0
		s.lastErr, s.lastErrAt, s.lastFailure = "", time.Time{}, nil
	})
	go s.run(g, cfg)
}

// stop ends the current generation and waits for its loop, which closes
// its connection. The caller holds s.life.
func (s *Supervisor) stop() error {
	g := s.gen
	g.cancel()
	<-g.done
	s.update(func() {
		s.conn, s.pid, s.connectedAt = nil, 0, time.Time{}
		s.first.end(errStopped)
	})
	return g.closeErr
}

// run connects, waits for the connection to end, and connects again, until
// g is cancelled.
func (s *Supervisor) run(g *generation, cfg Config) {
	defer close(g.done)
	hooks := dialHooks{toolsChanged: s.relist}
	if s.opts.onListed != nil {
		// A Pool's session: the catalog's tools are its lister's, so no
		// standalone stream is held open per session to hear of changes.
		hooks.toolsChanged = nil
	}
	if cfg.Transport() == kindStdio {
		hooks.stderr = s.stderr
	}
	failures := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.update(func() { s.restarts++ })
		}
		s.mu.Lock()
		cfg.Roots = s.cfg.Roots // SetRoots may have changed them
		s.mu.Unlock()
		conn, err := dialConn(g.ctx, cfg, &s.opts, hooks)
		if g.ctx.Err() != nil {
			if conn != nil {
				g.closeErr = conn.Close()
			}
			return
		}
		if err != nil {
			failures++
			delay := s.backoff(failures)
			s.failed(err, failures, delay)
			if !sleep(g.ctx, delay) {
				return
			}
			continue
		}

		s.ready(conn, attempt)
		up := time.Now()
		select {
		case <-g.ctx.Done():
			s.update(func() { s.conn, s.pid, s.connectedAt = nil, 0, time.Time{} })
			g.closeErr = conn.Close()
			return
		case <-conn.Done():
		}
		cause := conn.Err()
		sessionLost := errors.Is(cause, errSessionLost)
		if sessionLost || time.Since(up) >= s.opts.HealthyAfter {
			failures = 0
		}
		if !sessionLost {
			// A lost session is the server's restart, not a failure of
			// ours: re-initialise at once.
			failures++
		}
		delay := s.backoff(failures)
		s.lost(conn, cause, failures, delay)
		if s.opts.onLost != nil {
			s.opts.onLost()
		}
		// Close reaps the child and stops what is left of its process
		// group before anything is started again.
		if err := conn.Close(); err != nil {
			s.log.Warn("closing a lost mcp server connection", "err", err)
		}
		if hooks.stderr != nil {
			// After Close, which waits for the child's last stderr lines.
			s.stderr.Note(fmt.Sprintf("switchboard: %s; restarting in %s", cause, delay.Round(time.Millisecond)))
		}
		if !sleep(g.ctx, delay) {
			return
		}
	}
}

// backoff returns the delay before the next attempt after failures
// consecutive failures: none after the first, then RestartBackoff doubling
// up to MaxRestartBackoff, with 10% jitter.
func (s *Supervisor) backoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := s.opts.MaxRestartBackoff
	if shift := failures - 2; shift < 30 {
		d = min(s.opts.RestartBackoff<<shift, d)
	}
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + jitter
}

func (s *Supervisor) crashLooping(failures int) bool { return failures >= s.opts.CrashLoopAfter }

// failed records a failed connection attempt.
func (s *Supervisor) failed(err error, failures int, delay time.Duration) {
	var was switchboard.ServerState
	s.update(func() {
		was = s.state
		s.lastErr, s.lastErrAt, s.lastFailure = err.Error(), time.Now(), err
		switch {
		case s.crashLooping(failures):
			s.state = switchboard.ServerCrashLooping
		case s.connectedOnce:
			s.state = switchboard.ServerDegraded
		default:
			s.state = switchboard.ServerStarting
		}
		s.first.end(err)
	})
	s.logFailure("mcp server failed to connect", err, was, failures, delay)
}

// lost records the end of a connection.
func (s *Supervisor) lost(conn *Conn, cause error, failures int, delay time.Duration) {
	var was switchboard.ServerState
	s.update(func() {
		was = s.state
		s.tools, s.icons, s.proto = conn.Tools(), conn.Icons(), conn.Protocol()
		s.conn, s.pid, s.connectedAt = nil, 0, time.Time{}
		s.lastErr, s.lastErrAt = cause.Error(), time.Now()
		s.state = switchboard.ServerDegraded
		if s.crashLooping(failures) {
			s.state = switchboard.ServerCrashLooping
		}
	})
	s.logFailure("mcp server connection ended", cause, was, failures, delay)
}

func (s *Supervisor) logFailure(msg string, err error, was switchboard.ServerState, failures int, delay time.Duration) {
	if s.crashLooping(failures) && was != switchboard.ServerCrashLooping {
		s.log.Error("mcp server is crash-looping", "err", err, "consecutive_failures", failures, "retry_in", delay.Round(time.Millisecond))
		return
	}
	s.log.Warn(msg, "err", err, "consecutive_failures", failures, "retry_in", delay.Round(time.Millisecond))
}

// ready records a new connection.
func (s *Supervisor) ready(conn *Conn, attempt int) {
	if s.opts.gens != nil {
		conn.gen = s.opts.gens.Add(1)
	}
	if s.opts.onListed != nil {
		s.opts.onListed(conn.Tools())
	}
	s.update(func() {
		s.conn = conn
		s.resources = conn.HasResources()
		s.state = switchboard.ServerReady
		s.connectedOnce = true
		s.connectedAt = time.Now()
		s.pid = conn.PID()
		s.first.end(nil)
	})
	if attempt > 0 {
		s.log.Info("mcp server is back", "attempts", attempt+1, "pid", conn.PID())
	}
}

// relist lists conn's tools again after the server said they changed. It
// runs on conn's own goroutine, never on its read loop.
func (s *Supervisor) relist(conn *Conn) {
	if _, err := conn.ListTools(context.Background()); err != nil {
		if conn.Err() == nil {
			s.log.Warn("listing tools again after tools/list_changed failed", "err", err)
			s.update(func() { s.lastErr, s.lastErrAt = err.Error(), time.Now() })
		}
		return
	}
	s.log.Info("mcp server tools changed", "tools", len(conn.Tools()))
	s.update(func() {})
}

// update changes the Supervisor's state under its lock, wakes the calls
// waiting for a change, and tells Options.OnChange.
func (s *Supervisor) update(change func()) {
	s.mu.Lock()
	change()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// sleep waits d, and reports false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
