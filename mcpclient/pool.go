package mcpclient

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// Pool defaults; see PoolOptions.
const (
	DefaultMaxStdioSessions = 50
	DefaultMaxHTTPSessions  = 5000
	DefaultIdleTimeout      = 10 * time.Minute
)

// ErrBusy is the error of a call that found its server's pool full, every
// session in use, for as long as the call could wait. It wraps
// switchboard.ErrUnavailable.
var ErrBusy = fmt.Errorf("every session of the server is in use: %w", switchboard.ErrUnavailable)

// PoolOptions tune a Pool. A nil *PoolOptions means the defaults.
type PoolOptions struct {
	// Client tunes each session's Supervisor; OnChange is the Pool's.
	Client Options
	// MaxSessions caps the sessions open at once; zero means
	// DefaultMaxHTTPSessions (see DefaultMaxSessions).
	MaxSessions int
	// IdleTimeout closes a session unused for that long; zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// OnEvent, when set, is told of each session started, evicted (closed
	// at the cap, for being idle, or by a reset) and crashed (a connection
	// that ended by itself). It must not block.
	OnEvent func(server string, ev SessionEvent)
	// OnToolsListed, when set, is told of the tools each new connection of
	// a session lists, so that a session that lists other tools than the
	// catalog's can be noticed. It must not block.
	OnToolsListed func(key string, tools []Tool)
	// OnSession, when set, is told of each streamable HTTP session a
	// session's connection starts, so that another instance can resume it
	// (Config.Resume). It runs on the dialling goroutine.
	OnSession func(key string, r Resumption)
}

// SessionEvent is what happened to a session of a Pool.
type SessionEvent string

// Session events.
const (
	SessionStarted SessionEvent = "started"
	SessionEvicted SessionEvent = "evicted"
	SessionCrashed SessionEvent = "crashed"
)

// SessionLabels say whom a session is for, for its status; they are not
// part of its key.
type SessionLabels struct {
	UserID         string
	ConversationID string
}

// SessionStatus reports on one session of a Pool.
type SessionStatus struct {
	Key string
	SessionLabels
	Status   // of the session's Supervisor
	Started  time.Time
	LastUsed time.Time
	InFlight int
}

// Pool keeps the sessions of one MCP server, one per key (a user, a
// conversation): each its own connection (for stdio, its own process) under
// a Supervisor of its own, so one session's crash never touches another's.
// A session starts on its first call, is closed after IdleTimeout unused,
// and at MaxSessions the least recently used idle session is closed for a
// new one; a call that finds every session busy waits within its context,
// then fails with ErrBusy. A Pool knows nothing of what its keys mean.
//
// Its methods are safe for concurrent use.
type Pool struct {
	name string
	opts PoolOptions
	log  *slog.Logger
	gens atomic.Int64 // connection generations, across sessions

	mu       sync.Mutex
	cfg      func(key string, labels SessionLabels) (Config, error)
	sessions map[string]*session
	freed    chan struct{} // closed and replaced when a session frees a place
	closed   bool

	// httpTr is the HTTP transport of every remote session: their TCP
	// connections are reused across sessions, not held one set each.
	httpTr *http.Transport

	wg   sync.WaitGroup
	quit chan struct{}
}

type session struct {
	key      string
	labels   SessionLabels
	sup      *Supervisor
	started  time.Time
	lastUsed time.Time
	inFlight int
}

// NewPool returns a Pool of the server name whose sessions are configured
// by cfg, called with the key and labels of a session when it starts. The
// caller must Close it.
func NewPool(name string, cfg func(key string, labels SessionLabels) (Config, error), opts *PoolOptions) *Pool {
	p := &Pool{name: name, cfg: cfg, sessions: map[string]*session{}, freed: make(chan struct{}), quit: make(chan struct{}),
		httpTr: newPoolTransport()}
	if opts != nil {
		p.opts = *opts
	}
	p.opts.IdleTimeout = cmp.Or(p.opts.IdleTimeout, DefaultIdleTimeout)
	p.log = p.opts.Client.Logger
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("mcp_server", name)
	p.wg.Go(p.reap)
	return p
}

// Name returns the server's name.
func (p *Pool) Name() string { return p.name }

// SetConfig makes cfg configure the sessions started from now on, and
// closes the sessions open (their calls in flight fail): a reload that
// changed the server.
func (p *Pool) SetConfig(cfg func(key string, labels SessionLabels) (Config, error)) {
	p.mu.Lock()
	p.cfg = cfg
	old := p.sessions
	p.sessions = map[string]*session{}
	p.wake()
	p.mu.Unlock()
	p.closeAll(old, "the server's configuration changed")
}

// SetRoots makes cfg configure the sessions started from now on, as
// SetConfig does, but keeps the sessions open: cfg differs from the last
// one in its roots only, and each open session is given its new roots
// (see Supervisor.SetRoots). A session whose Config cannot be made keeps
// its roots.
func (p *Pool) SetRoots(cfg func(key string, labels SessionLabels) (Config, error)) {
	p.mu.Lock()
	p.cfg = cfg
	open := make([]*session, 0, len(p.sessions))
	for _, s := range p.sessions {
		open = append(open, s)
	}
	p.mu.Unlock()
	for _, s := range open {
		c, err := cfg(s.key, s.labels)
		if err != nil {
			p.log.Warn("new roots of an mcp session", "session", s.key, "err", err)
			continue
		}
		s.sup.SetRoots(c.Roots)
	}
}

// CallTool calls tool on the session of key, starting it if it is not
// open, as Supervisor.CallTool does. labels describe the session when it
// starts. The Result's Generation names the connection that answered.
//
// Besides Supervisor.CallTool's errors, it returns one wrapping ErrBusy
// when the pool is full and no session frees a place before ctx ends, one
// wrapping switchboard.ErrUnavailable when the Pool is closed, and the
// configuration's error when the session's Config cannot be made.
func (p *Pool) CallTool(ctx context.Context, key string, labels SessionLabels, tool string, args json.RawMessage) (*Result, error) {
	s, err := p.acquire(ctx, key, labels)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", tool, p.name, err)
	}
	defer p.release(s)
	return s.sup.CallTool(ctx, tool, args)
}

// Start starts the session of key if it is not open, without a call (it
// connects in the background), so that the tools it lists are known
// before its first call. The error is acquire's: ErrBusy when the pool is
// full of sessions in use.
func (p *Pool) Start(key string, labels SessionLabels) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := p.acquire(ctx, key, labels)
	if err != nil {
		return err
	}
	p.release(s)
	return nil
}

// acquire returns the session of key, in use by one more call. The
// session's Config is made outside the Pool's lock: it may read the store.
func (p *Pool) acquire(ctx context.Context, key string, labels SessionLabels) (*session, error) {
	var cfg *Config
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, withKind(switchboard.ErrUnavailable, fmt.Errorf("mcp server %s is stopped", p.name))
		}
		if s, ok := p.sessions[key]; ok {
			s.inFlight++
			s.lastUsed = time.Now()
			p.mu.Unlock()
			return s, nil
		}
		var victim *session
		if len(p.sessions) >= p.maxSessions() {
			if victim = p.leastRecentlyUsedIdle(); victim == nil {
				freed := p.freed
				p.mu.Unlock()
				select {
				case <-freed:
					continue
				case <-ctx.Done():
					return nil, fmt.Errorf("mcp server %s has %d sessions, all in use: %w", p.name, p.maxSessions(), ErrBusy)
				}
			}
		}
		if cfg == nil {
			newConfig := p.cfg
			p.mu.Unlock()
			c, err := newConfig(key, labels)
			if err != nil {
				return nil, err
			}
			cfg = &c
			continue // the pool may have changed meanwhile
		}
		if victim != nil {
			delete(p.sessions, victim.key)
		}
		s := &session{key: key, labels: labels, started: time.Now(), lastUsed: time.Now(), inFlight: 1}
		s.sup = Supervise(*cfg, p.sessionOptions(key))
		p.sessions[key] = s
		n := len(p.sessions)
		p.mu.Unlock()
		if victim != nil {
			p.closeSession(victim, "evicted at the cap: the least recently used idle session")
		}
		p.event(SessionStarted)
		p.log.Info("mcp session started", "session", key, "sessions", n)
		return s, nil
	}
}

// sessionOptions are the Options of the Supervisor of key's session.
func (p *Pool) sessionOptions(key string) *Options {
	o := p.opts.Client
	o.gens = &p.gens
	o.httpTr = p.httpTr
	o.onLost = func() { p.event(SessionCrashed) }
	if p.opts.OnSession != nil {
		o.onSession = func(r Resumption) { p.opts.OnSession(key, r) }
	}
	o.onListed = func(tools []Tool) {
		if p.opts.OnToolsListed != nil {
			p.opts.OnToolsListed(key, tools)
		}
	}
	return &o
}

func (p *Pool) release(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.inFlight--
	s.lastUsed = time.Now()
	if s.inFlight == 0 {
		p.wake()
	}
}

// wake tells the calls waiting for a place; the caller holds p.mu.
func (p *Pool) wake() {
	close(p.freed)
	p.freed = make(chan struct{})
}

func (p *Pool) maxSessions() int { return cmp.Or(p.opts.MaxSessions, DefaultMaxHTTPSessions) }

// newPoolTransport returns the HTTP transport a Pool's sessions share: it
// keeps enough idle connections to the server for the calls in flight at
// once, not the default two.
func newPoolTransport() *http.Transport {
	tr := newHTTPTransport()
	tr.MaxIdleConnsPerHost = 256
	return tr
}

// DefaultMaxSessions is the cap of a Pool of a server over transport
// (Config.Transport) when PoolOptions.MaxSessions is zero: processes cost
// more than HTTP sessions.
func DefaultMaxSessions(transport string) int {
	if transport == kindStdio {
		return DefaultMaxStdioSessions
	}
	return DefaultMaxHTTPSessions
}

// leastRecentlyUsedIdle returns the idle session used longest ago, or nil;
// the caller holds p.mu.
func (p *Pool) leastRecentlyUsedIdle() *session {
	var lru *session
	for _, s := range p.sessions {
		if s.inFlight == 0 && (lru == nil || s.lastUsed.Before(lru.lastUsed)) {
			lru = s
		}
	}
	return lru
}

// Len returns the number of sessions open.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// Sessions reports on the sessions open, by key.
func (p *Pool) Sessions() []SessionStatus {
	p.mu.Lock()
	out := make([]SessionStatus, 0, len(p.sessions))
	sups := make([]*Supervisor, 0, len(p.sessions))
	for _, s := range p.sessions {
		out = append(out, SessionStatus{Key: s.key, SessionLabels: s.labels, Started: s.started, LastUsed: s.lastUsed, InFlight: s.inFlight})
		sups = append(sups, s.sup)
	}
	p.mu.Unlock()
	for i, sup := range sups {
		out[i].Status = sup.Status()
	}
	slices.SortFunc(out, func(a, b SessionStatus) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// CloseSession closes the session of key, if open (its calls in flight
// fail), and reports whether it was. Its next call starts it again.
func (p *Pool) CloseSession(key, why string) bool {
	p.mu.Lock()
	s, ok := p.sessions[key]
	if ok {
		delete(p.sessions, key)
		p.wake()
	}
	p.mu.Unlock()
	if ok {
		p.closeSession(s, why)
	}
	return ok
}

// CloseSessions closes the sessions whose labels match, as CloseSession
// does, and returns how many it closed.
func (p *Pool) CloseSessions(match func(SessionLabels) bool, why string) int {
	p.mu.Lock()
	var closing []*session
	for k, s := range p.sessions {
		if match(s.labels) {
			closing = append(closing, s)
			delete(p.sessions, k)
		}
	}
	if len(closing) > 0 {
		p.wake()
	}
	p.mu.Unlock()
	for _, s := range closing {
		p.closeSession(s, why)
	}
	return len(closing)
}

func (p *Pool) closeSession(s *session, why string) {
	p.event(SessionEvicted)
	p.log.Info("mcp session closed", "session", s.key, "why", why)
	if err := s.sup.Close(); err != nil {
		p.log.Warn("closing an mcp session", "session", s.key, "err", err)
	}
}

func (p *Pool) closeAll(sessions map[string]*session, why string) {
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Go(func() { p.closeSession(s, why) })
	}
	wg.Wait()
}

func (p *Pool) event(ev SessionEvent) {
	if p.opts.OnEvent != nil {
		p.opts.OnEvent(p.name, ev)
	}
}

// reap closes the sessions idle past IdleTimeout, until Close.
func (p *Pool) reap() {
	every := min(p.opts.IdleTimeout/4, 30*time.Second)
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-p.opts.IdleTimeout)
		p.mu.Lock()
		var idle []*session
		for k, s := range p.sessions {
			if s.inFlight == 0 && s.lastUsed.Before(cutoff) {
				idle = append(idle, s)
				delete(p.sessions, k)
			}
		}
		if len(idle) > 0 {
			p.wake()
		}
		p.mu.Unlock()
		for _, s := range idle {
			p.closeSession(s, fmt.Sprintf("idle for %s", p.opts.IdleTimeout))
		}
	}
}

// Close closes every session (in parallel) and stops the Pool; later calls
// fail at once. It returns the errors of sessions that could not be
// stopped in time.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	sessions := p.sessions
	p.sessions = map[string]*session{}
	p.wake()
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
	defer p.httpTr.CloseIdleConnections()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, s := range sessions {
		wg.Go(func() {
			if err := s.sup.Close(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
