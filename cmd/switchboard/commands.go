package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/internal/redact"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// migrate applies the database migrations. Use the direct (not pooled) URL.
func migrate(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs, getenv)
	url := fs.String("database-url", "", "Postgres URL (default: the config's database_url)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		cfg, _, _, err := loadConfig(*cfgPath, getenv)
		if err != nil {
			return err
		}
		*url = cfg.DatabaseDirectURL
		if *url == "" {
			*url = cfg.DatabaseURL
		}
	}
	if *url == "" {
		return errors.New("migrate: no database: set DATABASE_URL, database_url in the config, or --database-url")
	}
	logger := newLogger(stderr, redact.New(redact.URLSecrets(*url)...))
	if err := store.Migrate(ctx, *url, logger); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	logger.Info("migrations applied")
	return nil
}

// token prints an HS256 token for the configured secret.
func token(args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs, getenv)
	user := fs.String("user", "", "user id (the token's sub)")
	admin := fs.Bool("admin", false, "give the token the admin role")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*user) == "" {
		return errors.New("token: --user is required")
	}
	if *ttl <= 0 {
		return errors.New("token: --ttl must be positive")
	}
	cfg, _, _, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if cfg.Auth.JWTSecret == "" {
		return errors.New("token: no auth.jwt_secret is configured (set JWT_SECRET_KEY); in dev mode the server prints a token of its own when it starts")
	}
	if len(cfg.Auth.JWTSecret) < auth.MinSecretLen {
		return fmt.Errorf("token: auth.jwt_secret must be at least %d bytes", auth.MinSecretLen)
	}
	tok, err := auth.MintToken([]byte(cfg.Auth.JWTSecret), *user, *ttl, *admin, cfg.Auth.Issuer, cfg.Auth.Audience)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// commandConfig parses a command's flags (-config) and loads the config,
// with a logger that scrubs its secrets; the config's warnings are logged.
func commandConfig(name string, args []string, getenv env, stderr io.Writer) (*Config, *slog.Logger, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg, _, warnings, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return nil, nil, err
	}
	logger := newLogger(stderr, redact.New(configSecrets(cfg)...))
	for _, w := range warnings {
		logger.Warn(w)
	}
	return cfg, logger, nil
}

// connectAll starts a fleet of the configured servers and waits for each
// one's first connection attempt (every one ends within its server's
// init_timeout); the error is Start's. The caller closes the fleet
// (closeServers).
func connectAll(ctx context.Context, cfg *Config, logger *slog.Logger) (*tools.Fleet, error) {
	fleet := tools.NewFleet(&tools.FleetOptions{
		Logger:        logger,
		Client:        mcpclient.Options{ClientName: "switchboard", ClientVersion: version()},
		StartupWait:   24 * time.Hour,
		MaxTools:      cfg.LLM.maxTools(),
		ReservedTools: orchestrator.BuiltinTools,
	})
	return fleet, fleet.Start(ctx, serverSpecs(cfg))
}

// listTools connects to the configured servers and prints the catalog: each
// tool's exposed name, server, annotations and description; the quarantined
// tools with their reasons; those whose outputSchema does not compile (their
// results are not validated); and the servers that did not connect, with why.
// It waits for every server's first connection attempt (each bounded by its
// init_timeout), and fails when a required server does not connect.
func listTools(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	cfg, logger, err := commandConfig("tools", args, getenv, stderr)
	if err != nil {
		return err
	}
	fleet, startErr := connectAll(ctx, cfg, logger)
	defer closeServers(fleet, logger)

	catalog := fleet.Current()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tSERVER\tHINTS\tDESCRIPTION")
	for _, e := range catalog.Entries() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ExposedName, e.Server, hints(e), oneLine(e.Definition.Description, 60))
	}
	tw.Flush()
	if q := catalog.Quarantined(); len(q) > 0 {
		fmt.Fprintln(stdout, "\nQuarantined (left out of the catalog):")
		for _, t := range q {
			fmt.Fprintf(stdout, "  %s/%s: %s\n", t.Server, t.Tool, t.Reason)
		}
	}
	if u := catalog.Unvalidated(); len(u) > 0 {
		fmt.Fprintln(stdout, "\nOffered, their results not validated:")
		for _, t := range u {
			fmt.Fprintf(stdout, "  %s/%s: %s\n", t.Server, t.Tool, t.Reason)
		}
	}
	printProtocols(stdout, fleet.Servers())
	var missing, why []string
	for _, s := range fleet.Servers() {
		if s.State == switchboard.ServerReady || s.State == switchboard.ServerStopped {
			continue
		}
		missing = append(missing, s.Name)
		why = append(why, fmt.Sprintf("  %s: %s", s.Name, describeServer(string(s.State), s.LastError)))
	}
	if len(missing) > 0 {
		fmt.Fprintf(stdout, "\nNot connected: %s\n%s\n", strings.Join(missing, ", "), strings.Join(why, "\n"))
	}
	return startErr
}

// printProtocols prints, for each server that connected, the protocol
// era and version its connection settled on and the server's name,
// version and capabilities.
func printProtocols(w io.Writer, servers []switchboard.ServerStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, s := range servers {
		p := s.Protocol
		if p.Era == "" {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nServers:")
			fmt.Fprintln(tw, "SERVER\tPROTOCOL\tERA\tIMPLEMENTATION\tCAPABILITIES")
			header = true
		}
		impl := strings.TrimSpace(p.ServerName + " " + p.ServerVersion)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, p.Version, p.Era, cmp.Or(impl, "-"), capabilityNames(p.Capabilities))
	}
	tw.Flush()
}

// capabilityNames lists a server's capabilities (a JSON object) by name,
// sorted: "prompts,resources,tools", or "-" for none.
func capabilityNames(raw json.RawMessage) string {
	var caps map[string]json.RawMessage
	if json.Unmarshal(raw, &caps) != nil || len(caps) == 0 {
		return "-"
	}
	var names []string
	for k, v := range caps {
		if string(v) != "null" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return cmp.Or(strings.Join(names, ","), "-")
}

func hints(e *tools.Entry) string {
	var out []string
	a := e.Annotations
	for _, h := range []struct {
		name string
		v    *bool
	}{{"read-only", a.ReadOnly}, {"destructive", a.Destructive}, {"idempotent", a.Idempotent}, {"open-world", a.OpenWorld}} {
		if h.v != nil && *h.v {
			out = append(out, h.name)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

// healthcheck asks the server at the configured listen address for
// /healthz, for container health checks (the image has no curl).
func healthcheck(ctx context.Context, args []string, getenv env, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	cfgPath := configFlag(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, _, _, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("healthcheck: listen %q: %w", cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %d", resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
