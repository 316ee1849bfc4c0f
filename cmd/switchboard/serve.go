package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/credentials"
	"github.com/switchboard-dev/switchboard/internal/redact"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/metrics"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// appStore is what the service needs of a store; store.Memory and
// store.Postgres both provide it.
type appStore interface {
	orchestrator.Store
	api.Store
	api.AdminStore
	pruner
	tools.SessionStore
	credentials.Store
}

// devUser is the user of the token printed in dev mode.
const devUser = "dev"

func serve(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, from, warnings, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	// Every log line goes through scrub, which hides the configured
	// secrets whichever library wrote the line; mcp-go's stdio transport
	// logs through slog's default logger, made ours.
	scrub := redact.New(configSecrets(cfg)...)
	logger := newLogger(stderr, scrub)
	slog.SetDefault(logger)
	logger.Info("config loaded", "from", from)
	for _, w := range warnings {
		logger.Warn(w)
	}

	tp, stopTracing, err := tracing(ctx, getenv, scrub, logger)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(ctx); err != nil {
			logger.Warn("flushing spans", "err", err)
		}
	}()

	st, ready, closeStore, err := openStore(ctx, cfg, tracer(tp, "switchboard/store"), logger)
	if err != nil {
		return err
	}
	defer closeStore()

	authn, dev, err := newAuth(ctx, cfg, logger)
	if err != nil {
		return err
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	if dev != nil {
		listen = loopbackOnly(listen, logger)
	}

	model := llm.New(llm.Config{BaseURL: cfg.LLM.BaseURL, APIKey: cfg.LLM.APIKey, Model: cfg.LLM.Model,
		Timeout: time.Duration(cfg.LLM.Timeout)}, &llm.Options{Logger: logger})
	defer model.CloseIdleConnections()
	if err := model.Ready(); err != nil {
		logger.Warn("no model configured: chat answers 503 llm_not_configured until one is", "hint", err.Error())
	}
	var fleet *tools.Fleet // set before anything scrapes the metrics
	mx := metrics.New(&metrics.Options{Model: model.Model(), Servers: func() []switchboard.ServerStatus { return fleet.Servers() }, Pool: poolStats(st)})
	creds, err := newCredentials(cfg, st, dev != nil, listen, logger)
	if err != nil {
		return err
	}
	fleet, err = startServers(ctx, cfg, reloader(*cfgPath, getenv, scrub, creds, logger), startupWait(cfg), mx.SessionEvent, st, creds, logger)
	if err != nil {
		return err
	}
	defer closeServers(fleet, logger)
	stopHUP := reloadOnHUP(ctx, fleet, logger)
	defer stopHUP()
	if problems := agentProblems(cfg, fleet.Current(), readyServers(fleet)); len(problems) > 0 {
		return fmt.Errorf("agents: %s (switchboard agents lists them)", strings.Join(problems, "; "))
	}
	agentModels, closeAgentModels := modelClients(cfg, logger)
	defer closeAgentModels()

	orch := orchestrator.New(model, fleet, st, &orchestrator.Options{
		MaxSteps: cfg.LLM.MaxSteps, HistoryLimit: cfg.LLM.HistoryLimit, HistoryTokens: cfg.LLM.HistoryTokens,
		SystemPrompt: cfg.LLM.SystemPrompt, TurnWait: turnWait(cfg), Observer: mx, Tracer: tracer(tp, "switchboard/orchestrator"), Logger: logger,
		Agents: configAgents(cfg, agentModels), DefaultAgent: cfg.DefaultAgent, MaxHandoffs: cfg.MaxHandoffs,
		SamplingModels: append([]string{cfg.LLM.Model}, cfg.LLM.SamplingModels...),
		Vision:         orchestrator.Vision{Enabled: cfg.LLM.Vision, MaxImagesPerStep: cfg.LLM.MaxImagesPerStep, MaxImageBytes: cfg.LLM.MaxImageBytes}})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = orch.Close(ctx)
	}()
	stopListening := listenCancels(ctx, cfg, orch, logger)
	defer stopListening()
	timeouts := cfg.HTTP.timeouts()
	metricsHandler, stopMetrics, err := serveMetrics(cfg, mx.Handler(), dev != nil, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	gin.SetMode(gin.ReleaseMode)
	handler := api.NewHandler(api.Deps{Chat: orch, Store: st, Tools: fleet, Auth: authn, Admin: st, Servers: fleet, Sessions: fleet, Connections: connections(creds), Ready: ready, Agents: orch},
		&api.Options{Logger: logger, MaxBodyBytes: cfg.Limits.MaxBodyBytes, MaxMessageChars: cfg.Limits.MaxMessageChars,
			Limits:   api.Limits{RatePerMinute: cfg.Limits.RatePerMinute, Burst: cfg.Limits.Burst, MaxConcurrentTurns: cfg.Limits.MaxConcurrentTurns},
			Observer: mx, Metrics: metricsHandler, Tracer: tracer(tp, "switchboard/api"), Scrub: scrub, WriteTimeout: timeouts.write})
	stopRetention := retention(ctx, st, cfg.Retention, logger)
	defer stopRetention()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	// Holding the address, this is the only live process of its instance
	// id on this host: the turns that name it with an earlier boot are
	// dead (it was killed, or crashed), and are failed before requests
	// come.
	recoverTurns(ctx, orch, logger)
	// Requests get a context of their own, cancelled only when the grace
	// period of a shutdown is over: a signal stops new requests, not the
	// turns already running.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := timeouts.server(handler, logger)
	srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	base := "http://" + ln.Addr().String()
	logger.Info("listening", "addr", base, "tools", len(fleet.Current().Entries()), "model", model.Model())
	if dev != nil {
		printDevBanner(stdout, base, dev)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	grace := shutdownGrace(cfg)
	logger.Info("shutting down: taking no new requests, letting running turns finish", "grace", grace)
	if err := shutdown(srv, grace, cancelRequests); err != nil {
		logger.Warn("shutdown: requests were cut off", "err", err)
	} else {
		logger.Info("all requests finished")
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serveMetrics serves h at /metrics on cfg.MetricsListen, when set (on
// loopback in dev mode), and returns nil for the main listener not to
// serve it too; else it returns h, for the main listener. stop closes the
// metrics listener.
func serveMetrics(cfg *Config, h http.Handler, dev bool, logger *slog.Logger) (main http.Handler, stop func(), err error) {
	if cfg.MetricsListen == "" {
		return h, func() {}, nil
	}
	addr := cfg.MetricsListen
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, fmt.Errorf("metrics_listen %q: %w", addr, err)
	}
	if dev {
		addr = loopbackOnly(addr, logger)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := cfg.HTTP.timeouts().server(mux, logger)
	go func() { _ = srv.Serve(ln) }()
	logger.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return nil, func() { _ = srv.Close() }, nil
}

// server returns an HTTP server of h with these timeouts: a client that
// sends a request slowly, stops reading its reply, or keeps an idle
// connection open is let go (see HTTPConfig).
func (t httpTimeouts) server(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.readHeader, ReadTimeout: t.read, WriteTimeout: t.write,
		IdleTimeout: t.idle, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
}

// shutdown stops srv: no new connections, running requests get grace to
// finish; then their contexts are cancelled, so that turns end as cancelled
// and are stored as such, and they get a little longer to do so. It returns
// an error only when requests had to be cut off.
func shutdown(srv *http.Server, grace time.Duration, cancelRequests context.CancelFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		return nil
	}
	cancelRequests()
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("requests still running 15s after they were cancelled: %w", err)
	}
	return nil
}

// shutdownGrace is how long running turns may take to finish on shutdown.
func shutdownGrace(cfg *Config) time.Duration {
	if cfg.ShutdownGrace > 0 {
		return time.Duration(cfg.ShutdownGrace)
	}
	return 30 * time.Second
}

// newLogger logs JSON, or text when stderr is a terminal.
// newLogger logs to w (text on a terminal, else JSON), each line through
// scrub (nil hides nothing).
func newLogger(w io.Writer, scrub *redact.Scrubber) *slog.Logger {
	text := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			text = true
		}
	}
	if scrub != nil {
		w = scrub.Writer(w)
	}
	if text {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// openStore opens Postgres when database_url is set, else the memory store.
func openStore(ctx context.Context, cfg *Config, tr trace.Tracer, logger *slog.Logger) (appStore, api.Pinger, func(), error) {
	if cfg.DatabaseURL == "" {
		logger.Warn("NO DATABASE CONFIGURED: using the in-memory store; every conversation and tool-call log is LOST when the process exits. Set DATABASE_URL to a Postgres URL to keep them.")
		return store.OpenMemory(&store.MemoryOptions{MaxBytes: cfg.MemoryStore.MaxBytes, Logger: logger}), nil, func() {}, nil
	}
	opts := &store.Options{Logger: logger, Tracer: tr, Instance: instanceID(cfg, os.Hostname)}
	logger.Info("instance", "id", opts.Instance)
	if cfg.DatabaseDirectURL != "" {
		// Migrate over the direct connection; serve through the pooled one.
		if err := store.Migrate(ctx, cfg.DatabaseDirectURL, logger); err != nil {
			return nil, nil, nil, fmt.Errorf("migrate database: %w", err)
		}
		opts.SkipMigrate = true
	}
	pg, err := store.OpenPostgres(ctx, cfg.DatabaseURL, opts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open database: %w", err)
	}
	return pg, pg, pg.Close, nil
}

// tracer returns a tracer of tp, or nil (no tracing) when tp is nil.
func tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(name)
}

// poolStats reports the store's connection pool, for a Postgres store.
func poolStats(st appStore) func() switchboard.PoolStats {
	if pg, ok := st.(interface{ PoolStats() switchboard.PoolStats }); ok {
		return pg.PoolStats
	}
	return nil
}

// devAuth is the ephemeral secret and token of dev mode.
type devAuth struct {
	token string
}

// newAuth builds the authenticator. With no auth configured it returns a
// dev-mode authenticator over an ephemeral secret, and the token to print.
// A JWKS is refreshed until ctx ends.
func newAuth(ctx context.Context, cfg *Config, logger *slog.Logger) (*auth.Authenticator, *devAuth, error) {
	if cfg.Auth.JWTSecret != "" || cfg.Auth.JWKSURL != "" {
		a, err := auth.New(ctx, auth.Config{Secret: []byte(cfg.Auth.JWTSecret), JWKSURL: cfg.Auth.JWKSURL,
			Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, AdminUsers: cfg.Auth.AdminUsers, Logger: logger})
		return a, nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	a, err := auth.New(ctx, auth.Config{Secret: secret, AdminUsers: []string{devUser}})
	if err != nil {
		return nil, nil, err
	}
	tok, err := auth.MintToken(secret, devUser, 24*time.Hour, true, "", "")
	if err != nil {
		return nil, nil, err
	}
	return a, &devAuth{token: tok}, nil
}

// loopbackOnly rewrites a listen address to a loopback host: dev mode must
// not be reachable from the network.
func loopbackOnly(addr string, logger *slog.Logger) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:8080"
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return addr
	}
	logger.Warn("dev mode (no auth configured): listening on loopback only", "configured", addr)
	return net.JoinHostPort("127.0.0.1", port)
}

// printDevBanner prints dev mode's token and the URLs that use it. The
// browser URLs carry the token in the fragment, which browsers never send:
// it stays out of request logs, and the page moves it to sessionStorage.
func printDevBanner(w io.Writer, base string, dev *devAuth) {
	fmt.Fprintf(w, `
Switchboard is running in dev mode: no auth is configured, so it listens on loopback only
and signs its own tokens with a secret that changes on every start.

  User:   %s (an admin)
  Token:  %s

Open the chat, signed in:
  %s/#token=%s
The admin console (tool-call log, stats, servers):
  %s/admin#token=%s

Try it:
  curl -s -X POST %s/api/%s/chat \
    -H 'Authorization: Bearer %s' \
    -H 'Content-Type: application/json' \
    -d '{"message": {"content": "Add a task to buy milk"}}'

`, devUser, dev.token, base, dev.token, base, dev.token, base, devUser, dev.token)
}

// listenCancels makes the turns this instance runs hear cancels asked of
// other instances on the same database, until the returned function is
// called (after the grace period of a shutdown: turns still running may be
// cancelled until then). LISTEN needs a session: behind a
// transaction-pooling proxy, database_direct_url is the one that has it.
func listenCancels(ctx context.Context, cfg *Config, orch *orchestrator.Orchestrator, logger *slog.Logger) func() {
	url := cmp.Or(cfg.DatabaseDirectURL, cfg.DatabaseURL)
	if url == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		store.ListenCancels(ctx, url, logger, func(turnID string) { orch.CancelTurn(turnID) })
	}()
	// Answers to servers' questions, for the calls of this instance that
	// wait for them.
	go func() {
		defer func() { done <- struct{}{} }()
		store.ListenInputs(ctx, url, logger, orch.InputAnswered)
	}()
	return func() {
		cancel()
		<-done
		<-done
	}
}

// connections is creds as the API's Connections, nil when no server takes
// per-user credentials (an interface holding a nil *Manager is not nil).
func connections(creds *credentials.Manager) api.Connections {
	if creds == nil {
		return nil
	}
	return creds
}
