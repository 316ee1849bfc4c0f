package tools

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
)

// defaultStartupWait is how long Start and Reload wait for servers that
// are not required.
const defaultStartupWait = 2 * time.Second

// ServerSpec is one configured MCP server: how to reach it and what of it
// the catalog exposes.
type ServerSpec struct {
	// Config says how to reach the server, and names it. Its Timeout and
	// ToolTimeouts bound the catalog's calls too (Policy's are ignored).
	Config mcpclient.Config
	// Policy is what the catalog exposes of the server, and how.
	Policy Policy
	// Required makes Start fail when the server's first connection attempt
	// fails.
	Required bool
	// Disabled keeps the server configured but stopped.
	Disabled bool
	// Scope says whose session a call runs on; empty means ScopeUser, or
	// ScopeShared for a server whose Policy injects the caller (it was
	// written for many users). Config may use PlaceholderUserID (scope
	// user or conversation) and PlaceholderConversationID (scope
	// conversation).
	Scope Scope
	// MaxSessions and IdleTimeout bound the sessions of a server of scope
	// user or conversation (see mcpclient.PoolOptions); zero means the
	// defaults (mcpclient.DefaultMaxSessions, DefaultIdleTimeout).
	MaxSessions int
	IdleTimeout time.Duration
	// Credentials, when set, makes the server act as each user with their
	// own credentials: CredentialsOAuth (a bearer token of the user's
	// grant) or CredentialsUserSecret (the user's secrets, named in
	// Secrets, fill ${user.NAME} in the Config). Such a server has scope
	// user, and FleetOptions.Credentials gives the credentials.
	Credentials string
	Secrets     []string
}

// ValidateSpecs checks what Fleet.Apply would refuse: a duplicate or empty
// name, two names that would expose their tools under one prefix, a Config
// that cannot be dialled, an invalid policy. The error wraps
// switchboard.ErrInvalid or switchboard.ErrConflict and names the server.
func ValidateSpecs(specs []ServerSpec) error {
	var errs []error
	names := make([]string, 0, len(specs))
	seen := map[string]bool{}
	for _, s := range specs {
		name := s.Config.Name
		if seen[name] {
			errs = append(errs, fmt.Errorf("server %q is configured twice: %w", name, switchboard.ErrInvalid))
			continue
		}
		seen[name] = true
		names = append(names, name)
		if err := ValidatePolicy(name, s.Policy); err != nil {
			errs = append(errs, err)
		}
		switch {
		case s.Credentials != "" && s.Credentials != CredentialsOAuth && s.Credentials != CredentialsUserSecret:
			errs = append(errs, fmt.Errorf("server %s: unknown auth type %q (want oauth or user_secret): %w", name, s.Credentials, switchboard.ErrInvalid))
		case s.Credentials != "" && s.scope() != ScopeUser:
			errs = append(errs, fmt.Errorf("server %s: a server with per-user credentials has scope user, not %s: %w", name, s.scope(), switchboard.ErrInvalid))
		case s.Credentials == CredentialsOAuth && s.Config.Transport() == "stdio":
			errs = append(errs, fmt.Errorf("server %s: OAuth is for remote servers (url): give a stdio server its user's secrets (auth: {type: user_secret}): %w", name, switchboard.ErrInvalid))
		}
		if !s.scope().Valid() {
			errs = append(errs, fmt.Errorf("server %s: unknown scope %q (want shared, user or conversation): %w", name, s.Scope, switchboard.ErrInvalid))
		} else if err := checkPlaceholders(name, s.scope(), s.Config, s.Secrets); err != nil {
			errs = append(errs, err)
		}
		if s.MaxSessions < 0 || s.IdleTimeout < 0 {
			errs = append(errs, fmt.Errorf("server %s: max_sessions and idle_timeout must not be negative: %w", name, switchboard.ErrInvalid))
		}
		if !s.Disabled {
			if err := expand(s.Config, listerID, listerID, nil).Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := CheckServerNames(names); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FleetOptions tune a Fleet. A nil *FleetOptions means the defaults.
type FleetOptions struct {
	// Logger receives the fleet's and the servers' logs; nil discards them.
	Logger *slog.Logger
	// Client tunes every server's Supervisor (client name and version,
	// restart backoff, crash-loop threshold); the Fleet sets its Logger and
	// OnChange.
	Client mcpclient.Options
	// Load reads the server specs again for Reload, typically from the
	// configuration file the service started with: the servers and their
	// policies, which the catalog carries. Nil makes Reload fail.
	Load func(ctx context.Context) ([]ServerSpec, error)
	// StartupWait is how long Start and Reload wait for servers that are
	// not required before returning; those still connecting then join the
	// catalog when they are ready. Zero means 2s; negative, no wait.
	StartupWait time.Duration
	// MaxTools caps the tools one model request carries (llm.max_tools:
	// OpenAI refuses a request with more than 128); 0 means no cap. When
	// the servers expose more, the catalog keeps the first ones in server
	// order (the order of the specs applied) and each server's own order
	// (see Catalog.Limit); the others are reported by Servers with a
	// reason, and logged as a warning whenever they change and on every
	// Reload.
	MaxTools int
	// ReservedTools are the places of MaxTools kept for the tools the loop
	// offers beside the catalog's (orchestrator.BuiltinTools), so that a
	// request stays within MaxTools when it carries them.
	ReservedTools int
	// OnSessionEvent, when set, is told of each session of a server of
	// scope user or conversation that starts, is evicted or crashes (see
	// mcpclient.PoolOptions.OnEvent), for metrics. It must not block.
	OnSessionEvent func(server string, ev mcpclient.SessionEvent)
	// Sessions, when set, keeps the streamable HTTP sessions of servers of
	// scope user, so that a user's session started by one instance is
	// resumed by another (where the server allows it) instead of started
	// again.
	Sessions SessionStore
	// Credentials gives the sessions of servers with per-user credentials
	// the user's (see ServerSpec.Credentials); required when a spec has
	// some.
	Credentials Credentials
}

// Fleet runs the configured MCP servers, each under an
// mcpclient.Supervisor, and keeps a catalog of their tools current: it
// rebuilds it when a server connects, restarts, says its tools changed, or
// the configuration is applied again. Catalogs are immutable snapshots:
// a turn that took one (Current) keeps it, and its calls reach the servers
// through their Supervisors, across restarts. *Fleet implements
// api.ServerAdmin, orchestrator.Catalogs and api.ToolLister.
type Fleet struct {
	opts FleetOptions
	log  *slog.Logger
	reg  Registry

	applyMu sync.Mutex // serialises Apply, Reload and Close

	mu      sync.Mutex
	specs   map[string]ServerSpec
	order   []string // the names of specs, in the order applied
	servers map[string]*running
	closed  bool

	rebuildMu   sync.Mutex
	reported    map[switchboard.QuarantinedTool]bool // quarantines and unvalidated tools logged already
	leftOutKey  string                               // the tools over MaxTools logged last
	reportAgain bool                                 // log the tools over MaxTools even if unchanged

	dirty chan struct{} // capacity 1: a rebuild is due
	quit  chan struct{}
	done  chan struct{}
}

// NewFleet returns a Fleet with no servers; Start gives it some. The
// caller must Close it.
func NewFleet(opts *FleetOptions) *Fleet {
	f := &Fleet{
		specs:    map[string]ServerSpec{},
		servers:  map[string]*running{},
		reported: map[switchboard.QuarantinedTool]bool{},
		dirty:    make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if opts != nil {
		f.opts = *opts
	}
	if f.opts.StartupWait == 0 {
		f.opts.StartupWait = defaultStartupWait
	}
	f.log = f.opts.Logger
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.opts.Client.Logger = f.log
	if f.opts.Client.Eras == nil {
		// One for the fleet's life: a reload or a restart of a server
		// skips the probe auto made before.
		f.opts.Client.Eras = mcpclient.NewEras()
	}
	f.opts.Client.OnChange = f.markDirty
	f.reg.Set(&Catalog{byName: map[string]*Entry{}})
	go f.rebuildLoop()
	return f
}

// Start applies specs (see Apply) and waits for the servers' first
// connection attempts: for a required server until it ends, for the others
// at most FleetOptions.StartupWait. A server that is slow, hangs or fails
// never holds up the others, and keeps connecting in the background. The
// error names every required server whose first attempt failed (wrapping
// its Dial error), or is Apply's; ctx bounds the wait.
func (f *Fleet) Start(ctx context.Context, specs []ServerSpec) error {
	started, err := f.apply(specs)
	if err != nil {
		return err
	}
	return f.wait(ctx, started)
}

// Apply makes the running servers match specs: servers added start,
// servers removed (or now disabled) stop, whole process group included;
// servers whose Config changed restart with the new one (their calls in
// flight fail); servers whose Config is unchanged are untouched, even when
// their policy changed, which only rebuilds the catalog. The order of specs
// is the servers' order in the catalog (see NewCatalog and
// FleetOptions.MaxTools): give them in configuration order. It returns once
// the removed servers are stopped, without waiting for the others to
// connect. The error, from ValidateSpecs, leaves everything as it was.
func (f *Fleet) Apply(ctx context.Context, specs []ServerSpec) error {
	_, err := f.apply(specs)
	return err
}

// Reload reads the specs again with FleetOptions.Load and applies them (see
// Apply): the servers and their policies change together, in the next
// catalog. Then it waits up to FleetOptions.StartupWait for the servers it
// started. A
// configuration that cannot be read or is invalid changes nothing: the
// error then wraps switchboard.ErrInvalid, as a *switchboard.Error whose
// message says why.
func (f *Fleet) Reload(ctx context.Context) error {
	if f.opts.Load == nil {
		return switchboard.Errorf(switchboard.ErrUnavailable, "reload_unavailable", "this server has no configuration file to reload")
	}
	specs, err := f.opts.Load(ctx)
	if err == nil {
		err = ValidateSpecs(specs)
	}
	if err != nil {
		f.log.Warn("mcp servers not reloaded: the configuration is invalid", "err", err)
		return switchboard.Errorf(switchboard.ErrInvalid, "invalid_config", "the configuration was not applied: %v", err)
	}
	f.rebuildMu.Lock()
	f.reportAgain = true // an operator who reloads hears again what is left out
	f.rebuildMu.Unlock()
	if _, err := f.apply(specs); err != nil {
		return err
	}
	f.log.Info("mcp servers reloaded", "servers", len(specs))
	// Required is for start-up: after a reload, their state says how they are.
	_ = f.wait(ctx, nil)
	return nil
}

// apply does Apply's work and returns the servers it started or restarted.
func (f *Fleet) apply(specs []ServerSpec) ([]ServerSpec, error) {
	if err := ValidateSpecs(specs); err != nil {
		return nil, err
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	next := make(map[string]ServerSpec, len(specs))
	order := make([]string, len(specs))
	for i, s := range specs {
		next[s.Config.Name] = s
		order[i] = s.Config.Name
	}

	var (
		stopping   []*running
		restarting []func()
		started    []ServerSpec
	)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, fmt.Errorf("apply mcp servers: the fleet is closed: %w", switchboard.ErrUnavailable)
	}
	for _, name := range slices.Sorted(maps.Keys(f.servers)) {
		s, ok := next[name]
		switch {
		case !ok || s.Disabled:
			f.log.Info("stopping mcp server", "server", name, "why", map[bool]string{true: "disabled", false: "removed"}[ok])
		case s.scope() != f.specs[name].scope() || s.MaxSessions != f.specs[name].MaxSessions || s.IdleTimeout != f.specs[name].IdleTimeout:
			f.log.Info("restarting mcp server", "server", name, "why", "its scope or session bounds changed")
		default:
			continue
		}
		stopping = append(stopping, f.servers[name])
		delete(f.servers, name)
	}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		s := next[name]
		if s.Disabled {
			continue
		}
		r, ok := f.servers[name]
		switch {
		case !ok:
			if _, known := f.specs[name]; known {
				f.log.Info("starting mcp server", "server", name, "why", "enabled")
			} else if len(f.specs) > 0 {
				f.log.Info("starting mcp server", "server", name, "why", "added")
			}
			f.servers[name] = f.start(s)
			started = append(started, s)
		case !f.specs[name].sameSessions(s) && f.specs[name].sameButRoots(s):
			f.log.Info("new roots for mcp server", "server", name)
			restarting = append(restarting, func() {
				if r.sup != nil {
					cfg, _ := sessionConfig(s, listerID, listerID, nil)
					r.sup.SetRoots(cfg.Roots)
				}
				if r.pool != nil {
					r.pool.SetRoots(f.poolConfig(s))
				}
			})
		case !f.specs[name].sameSessions(s):
			// In place, so that the catalogs of running turns reach the
			// server with its new configuration.
			f.log.Info("restarting mcp server", "server", name, "why", "its configuration changed")
			restarting = append(restarting, func() {
				if r.sup != nil {
					cfg, _ := sessionConfig(s, listerID, listerID, nil)
					r.sup.Restart(cfg)
				}
				if r.pool != nil {
					r.pool.SetConfig(f.poolConfig(s))
				}
			})
			started = append(started, s)
		}
	}
	f.specs, f.order = next, order
	f.mu.Unlock()

	var wg sync.WaitGroup
	for _, r := range stopping {
		wg.Go(func() {
			if err := r.close(); err != nil {
				f.log.Warn("stopping mcp server", "server", r.name, "err", err)
			}
		})
	}
	for _, restart := range restarting {
		wg.Go(restart)
	}
	wg.Wait()
	f.rebuild()
	return started, nil
}

// wait waits for the first connection attempts of the servers running now:
// of the required ones in started until they end, of the others at most
// StartupWait. It returns the failures of the required ones.
func (f *Fleet) wait(ctx context.Context, started []ServerSpec) error {
	f.mu.Lock()
	servers := maps.Clone(f.servers)
	f.mu.Unlock()
	required := map[string]bool{}
	for _, s := range started {
		required[s.Config.Name] = s.Required
	}
	graceCtx, cancel := context.WithTimeout(ctx, max(f.opts.StartupWait, 0))
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for name, r := range servers {
		if r.sup == nil {
			continue // per-user credentials: nothing connects before a user does
		}
		wg.Go(func() {
			if required[name] {
				if err := r.sup.Started(ctx); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("required MCP server %s: %w", name, err))
					mu.Unlock()
				}
				return
			}
			_ = r.sup.Started(graceCtx)
		})
	}
	wg.Wait()
	f.rebuild()
	slices.SortFunc(errs, func(a, b error) int { return cmpString(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Close stops every server (in parallel; each takes at most about 5s) and
// the Fleet's own goroutine. The catalog stays, and its calls fail with
// switchboard.ErrUnavailable. It returns the errors of servers that could
// not be stopped in time.
func (f *Fleet) Close() error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	servers := f.servers
	f.servers = map[string]*running{}
	f.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, r := range servers {
		wg.Go(func() {
			if err := r.close(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(f.quit)
	<-f.done
	return errors.Join(errs...)
}

// Current returns the current catalog; never nil. Callers keep it for as
// long as they need a stable view (a turn).
func (f *Fleet) Current() *Catalog { return f.reg.Current() }

// Tools describes the tools of the current catalog.
func (f *Fleet) Tools() []switchboard.ToolInfo { return f.Current().Infos() }

// Supervisor returns the running Supervisor of the named server (of scope
// user or conversation: the one that lists its tools), or nil if the server
// is not running (unknown, disabled, or the Fleet is closed).
func (f *Fleet) Supervisor(name string) *mcpclient.Supervisor {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.servers[name]; ok {
		return r.sup
	}
	return nil
}

// Servers reports on every configured server, by name: its state, the tools
// the catalog exposes of it, those it quarantined or left out over
// FleetOptions.MaxTools and why, restarts, last error and stderr tail, its
// scope and its sessions, its icons and its tools'. A disabled server is
// reported stopped.
func (f *Fleet) Servers() []switchboard.ServerStatus {
	f.mu.Lock()
	specs := maps.Clone(f.specs)
	servers := maps.Clone(f.servers)
	f.mu.Unlock()
	cat := f.Current()
	exposed := map[string][]string{}
	icons := map[string]map[string][]switchboard.Icon{}
	for _, e := range cat.Entries() {
		exposed[e.Server] = append(exposed[e.Server], e.ExposedName)
		if len(e.Icons) > 0 {
			if icons[e.Server] == nil {
				icons[e.Server] = map[string][]switchboard.Icon{}
			}
			icons[e.Server][e.ExposedName] = e.Icons
		}
	}
	quarantined := map[string][]switchboard.QuarantinedTool{}
	for _, q := range cat.Quarantined() {
		quarantined[q.Server] = append(quarantined[q.Server], q)
	}
	out := make([]switchboard.ServerStatus, 0, len(specs))
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		spec := specs[name]
		st := switchboard.ServerStatus{
			Name:      name,
			Transport: spec.Config.Transport(),
			State:     switchboard.ServerStopped,
			Required:  spec.Required,
			Scope:     string(spec.scope()),
		}
		if r, ok := servers[name]; ok {
			if r.sup != nil {
				s := r.sup.Status()
				st.State, st.Restarts = s.State, s.Restarts
				st.LastError, st.LastErrorAt, st.ConnectedAt = s.LastError, s.LastErrorAt, s.ConnectedAt
				st.StderrTail, st.Icons, st.Protocol = s.Stderr, s.Icons, s.Protocol
			} else {
				// Per-user credentials: the server is its users' sessions.
				st.State = switchboard.ServerReady
				if r.listed.Load() == nil {
					st.State, st.LastError = switchboard.ServerStarting, "its tools are not known until a user who connected it calls it"
				}
			}
			st.Tools, st.Quarantined, st.ToolIcons = exposed[name], quarantined[name], icons[name]
			if r.pool != nil {
				st.Sessions = sessionStatuses(r.pool.Sessions())
			}
		}
		out = append(out, st)
	}
	return out
}

// markDirty asks for a rebuild; it never blocks (Supervisors call it).
func (f *Fleet) markDirty() {
	select {
	case f.dirty <- struct{}{}:
	default:
	}
}

func (f *Fleet) rebuildLoop() {
	defer close(f.done)
	for {
		select {
		case <-f.quit:
			return
		case <-f.dirty:
			f.rebuild()
		}
	}
}

// rebuild builds the catalog from the running servers, in the order of
// their specs, and makes it current. Rebuilds are serialised, so an older
// view never replaces a newer one.
func (f *Fleet) rebuild() {
	f.rebuildMu.Lock()
	defer f.rebuildMu.Unlock()
	f.mu.Lock()
	var sources []Source
	for _, name := range f.order {
		r, ok := f.servers[name]
		if !ok {
			continue
		}
		spec := f.specs[name]
		p := spec.Policy
		p.Timeout, p.ToolTimeouts = spec.Config.Timeout, spec.Config.ToolTimeouts
		sources = append(sources, Source{Server: r.server(), Policy: p})
	}
	f.mu.Unlock()
	cat, err := NewCatalog(sources)
	if err != nil {
		// ValidateSpecs refuses what NewCatalog would.
		f.log.Error("tool catalog not rebuilt", "err", err)
		return
	}
	if f.opts.MaxTools > 0 {
		cat = cat.Limit(max(f.opts.MaxTools-f.opts.ReservedTools, 0),
			fmt.Sprintf("over llm.max_tools (%d): not sent to the model", f.opts.MaxTools))
	}
	f.reg.Set(cat)
	for _, q := range cat.quarantined {
		if !f.reported[q] {
			f.reported[q] = true
			f.log.Warn("tool quarantined", "server", q.Server, "tool", q.Tool, "reason", q.Reason)
		}
	}
	for _, q := range cat.Unvalidated() {
		if !f.reported[q] {
			f.reported[q] = true
			f.log.Warn("tool results not validated", "server", q.Server, "tool", q.Tool, "reason", q.Reason)
		}
	}
	f.reportLeftOut(cat)
}

// reportLeftOut logs the tools that MaxTools leaves out of cat, when they
// are not those it logged last or a reload asked to hear them again; and
// that none is left out any more, when that changed. Called under
// rebuildMu.
func (f *Fleet) reportLeftOut(cat *Catalog) {
	left := cat.LeftOut()
	names := make([]string, len(left))
	for i, q := range left {
		names[i] = q.Server + "/" + q.Tool
	}
	key := strings.Join(names, "\n")
	if key == f.leftOutKey && !f.reportAgain {
		return
	}
	hadLeftOut := f.leftOutKey != ""
	f.leftOutKey, f.reportAgain = key, false
	switch {
	case len(left) > 0:
		f.log.Warn("tools left out: the MCP servers expose more tools than llm.max_tools lets one model request carry; "+
			"the first in configuration order are sent to the model, the tools listed here are not: choose the tools to offer "+
			"with allowed_tools or excluded_tools, or raise llm.max_tools if the model takes more",
			"left_out", len(left), "sent", len(cat.Entries()), "max_tools", f.opts.MaxTools,
			"reserved_for_builtin_tools", f.opts.ReservedTools, "tools", names)
	case hadLeftOut:
		f.log.Info("every tool is sent to the model again: the catalog is within llm.max_tools",
			"sent", len(cat.Entries()), "max_tools", f.opts.MaxTools)
	}
}
