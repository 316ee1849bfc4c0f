package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/credentials"
	"github.com/switchboard-dev/switchboard/internal/redact"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/tools"
)

// defaultStartupWait is how long start-up waits for MCP servers that are not
// required, when mcp_startup_wait is absent.
const defaultStartupWait = 2 * time.Second

// serverSpecs turns the mcpServers block into the fleet's specs, in the
// configuration file's order (the catalog's: with more tools than
// llm.max_tools, the first servers' are sent to the model).
func serverSpecs(cfg *Config) []tools.ServerSpec {
	specs := make([]tools.ServerSpec, 0, len(cfg.MCPServers))
	for _, name := range serverNames(cfg) {
		sc := cfg.MCPServers[name]
		var toolTimeouts map[string]time.Duration
		if len(sc.ToolTimeouts) > 0 {
			toolTimeouts = make(map[string]time.Duration, len(sc.ToolTimeouts))
			for tool, d := range sc.ToolTimeouts {
				toolTimeouts[tool] = time.Duration(d)
			}
		}
		var roots []mcpclient.Root
		if sc.Roots != nil {
			roots = make([]mcpclient.Root, len(sc.Roots))
			for i, r := range sc.Roots {
				roots[i] = mcpclient.Root{URI: r.URI, Name: r.Name}
			}
		}
		specs = append(specs, tools.ServerSpec{
			Config: mcpclient.Config{Name: name, Command: sc.Command, Args: sc.Args, Env: sc.Env, Dir: sc.Cwd,
				URL: sc.URL, Type: sc.Type, Headers: sc.Headers, Protocol: sc.Protocol,
				InitTimeout: time.Duration(sc.InitTimeout), Timeout: time.Duration(sc.Timeout), ToolTimeouts: toolTimeouts,
				MaxMessageBytes: sc.MaxResultBytes, HealthInterval: time.Duration(sc.HealthInterval),
				Roots: roots, Sampling: sc.Sampling, SamplingMaxTokens: sc.SamplingMaxTokens, AskTimeout: time.Duration(sc.ElicitationTimeout)},
			Policy: tools.Policy{Inject: sc.Inject, AllowedTools: sc.AllowedTools, ExcludedTools: sc.ExcludedTools,
				RequireApproval: tools.ApprovalPolicy(sc.RequireApproval), Parallel: sc.Parallel,
				OutputBudget: sc.OutputBudget, ToolOutputBudgets: sc.ToolOutputBudgets},
			Required:    sc.Required,
			Disabled:    sc.Disabled,
			Scope:       tools.Scope(sc.Scope),
			MaxSessions: sc.MaxSessions,
			IdleTimeout: time.Duration(sc.IdleTimeout),
		})
		if a := sc.Auth; a != nil {
			spec := &specs[len(specs)-1]
			spec.Credentials = a.Type
			spec.Secrets = slices.Sorted(maps.Keys(a.Secrets))
			if spec.Scope == "" {
				spec.Scope = tools.ScopeUser // a server acting as each user has a session each
			}
		}
	}
	return specs
}

// serverNames returns the names of the configured servers in the file's
// order; servers of a Config not read from a file follow, by name.
func serverNames(cfg *Config) []string {
	names := make([]string, 0, len(cfg.MCPServers))
	seen := make(map[string]bool, len(cfg.MCPServers))
	for _, name := range cfg.serverOrder {
		if _, ok := cfg.MCPServers[name]; ok && !seen[name] {
			names = append(names, name)
			seen[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.MCPServers)) {
		if !seen[name] {
			names = append(names, name)
		}
	}
	return names
}

// startupWait is how long start-up waits for servers that are not required.
func startupWait(cfg *Config) time.Duration {
	if cfg.MCPStartupWait == nil {
		return defaultStartupWait
	}
	if *cfg.MCPStartupWait == 0 {
		return -1 // the fleet's "no wait"
	}
	return time.Duration(*cfg.MCPStartupWait)
}

// startServers starts the configured MCP servers under a fleet (see
// tools.Fleet.Start). It fails when a required server does not connect; the
// fleet is then closed already.
//
// sessionEvent, when set, is told of the sessions of servers of scope user
// or conversation that start, are evicted or crash (for the metrics);
// sessions keeps users' streamable HTTP sessions for other instances.
func startServers(ctx context.Context, cfg *Config, load func(context.Context) ([]tools.ServerSpec, error),
	wait time.Duration, sessionEvent func(server, event string), sessions tools.SessionStore, creds *credentials.Manager, logger *slog.Logger) (*tools.Fleet, error) {
	var onSession func(string, mcpclient.SessionEvent)
	if sessionEvent != nil {
		onSession = func(server string, ev mcpclient.SessionEvent) { sessionEvent(server, string(ev)) }
	}
	var userCreds tools.Credentials
	if creds != nil {
		userCreds = creds
	}
	fleet := tools.NewFleet(&tools.FleetOptions{
		OnSessionEvent: onSession,
		Sessions:       sessions,
		Credentials:    userCreds,
		Logger:         logger,
		Client:         mcpclient.Options{ClientName: "switchboard", ClientVersion: version()},
		Load:           load,
		StartupWait:    wait,
		MaxTools:       cfg.LLM.maxTools(),
		ReservedTools:  orchestrator.BuiltinTools,
	})
	if err := fleet.Start(ctx, serverSpecs(cfg)); err != nil {
		closeServers(fleet, logger)
		return nil, err
	}
	for _, s := range fleet.Servers() {
		if s.State != "ready" && s.State != "stopped" {
			logger.Warn("MCP server not connected yet; it keeps trying in the background", "server", s.Name, "state", s.State, "err", s.LastError)
		}
	}
	return fleet, nil
}

// closeServers stops every MCP server, whole process groups included.
func closeServers(fleet *tools.Fleet, logger *slog.Logger) {
	if err := fleet.Close(); err != nil {
		logger.Warn("stopping MCP servers", "err", err)
	}
}

// reloader returns the fleet's Load: the configuration read again from
// where it was read at start-up. Only mcpServers is applied (the servers
// and their policies: require_approval, parallel, output budgets, which the
// catalog carries); other changes need a restart.
//
// creds, when set, learns the servers that act as each user, from a file
// the fleet will take.
func reloader(path string, getenv env, scrub *redact.Scrubber, creds *credentials.Manager, logger *slog.Logger) func(context.Context) ([]tools.ServerSpec, error) {
	return func(context.Context) ([]tools.ServerSpec, error) {
		cfg, from, warnings, err := loadConfig(path, getenv)
		if err != nil {
			return nil, err
		}
		// The new file's secrets join the old ones, even when the fleet
		// refuses it: a line about a server being stopped may still show
		// the old, and the refusal may quote the new.
		scrub.Add(configSecrets(cfg)...)
		for _, w := range warnings {
			logger.Warn(w)
		}
		logger.Info("config read again for a reload of the MCP servers (other settings need a restart)", "from", from)
		specs := serverSpecs(cfg)
		if creds != nil && tools.ValidateSpecs(specs) == nil {
			creds.SetServers(credentialServers(cfg))
		}
		return specs, nil
	}
}

// reloadOnHUP reloads the MCP servers on SIGHUP until ctx ends or the
// returned stop is called; stop waits for a reload in progress.
func reloadOnHUP(ctx context.Context, fleet *tools.Fleet, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				logger.Info("SIGHUP: reloading the MCP servers")
				if err := fleet.Reload(ctx); err != nil {
					logger.Error("reload failed; the servers are as they were", "err", err)
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(done)
			wg.Wait()
		})
	}
}

// describeServer is one line about a server that is not ready, for
// `switchboard tools`.
func describeServer(state, lastErr string) string {
	if lastErr == "" {
		return state
	}
	return fmt.Sprintf("%s: %s", state, lastErr)
}

// credentialServers lists the servers whose users connect with their own
// credentials, for the credentials Manager.
func credentialServers(cfg *Config) []credentials.Server {
	var out []credentials.Server
	for _, name := range serverNames(cfg) {
		sc := cfg.MCPServers[name]
		if sc.Auth == nil || sc.Disabled {
			continue
		}
		a := sc.Auth
		out = append(out, credentials.Server{Name: name, URL: sc.URL, Auth: credentials.Auth{Type: a.Type, Scopes: a.Scopes,
			ClientID: a.ClientID, ClientSecret: a.ClientSecret, ClientMetadataURL: a.ClientMetadataURL, Secrets: a.Secrets}})
	}
	return out
}
