package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/switchboard-dev/switchboard/credentials"
	"github.com/switchboard-dev/switchboard/internal/redact"
	"github.com/switchboard-dev/switchboard/keyring"
	"github.com/switchboard-dev/switchboard/store"
)

// newCredentials returns the Manager of users' credentials for the servers
// that act as each user, or nil when no server does. Outside dev mode it
// needs secrets_key, and public_url for OAuth servers; dev mode makes an
// ephemeral key (connections are lost with the process) and uses the
// listen address.
func newCredentials(cfg *Config, st credentials.Store, dev bool, listen string, logger *slog.Logger) (*credentials.Manager, error) {
	servers := credentialServers(cfg)
	if len(servers) == 0 {
		return nil, nil
	}
	names := make([]string, len(servers))
	oauth := false
	for i, s := range servers {
		names[i] = s.Name
		oauth = oauth || s.Auth.Type == credentials.KindOAuth
	}
	var ring *keyring.Ring
	switch {
	case cfg.SecretsKey != "":
		var err error
		if ring, err = keyring.Parse(cfg.SecretsKey); err != nil {
			return nil, fmt.Errorf("secrets_key: %w", err)
		}
	case dev:
		ring = keyring.Generate()
		logger.Warn("dev mode: users' credentials are sealed with an ephemeral key; they are lost when the process ends (set secrets_key to keep them)",
			"servers", names)
	default:
		return nil, fmt.Errorf("mcpServers %s act as each user and keep their credentials sealed: set secrets_key (or SWITCHBOARD_SECRETS_KEY) to a key made with `openssl rand -base64 32`",
			strings.Join(names, ", "))
	}
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	if public == "" && oauth {
		if !dev {
			return nil, errors.New("an MCP server signs its users in with OAuth: set public_url (or SWITCHBOARD_PUBLIC_URL) to this service's URL as browsers reach it; the callback is public_url/oauth/callback")
		}
		public = "http://" + listen
	}
	m := credentials.New(st, ring, &credentials.Options{PublicURL: public, ClientName: "Switchboard", Logger: logger})
	m.SetServers(servers)
	return m, nil
}

// secretsCommand runs `switchboard secrets rotate`: every credential and
// registered OAuth client sealed under an older key of secrets_key is
// sealed again under its first (current) key. Keep the old keys in the
// ring until it has run.
func secretsCommand(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: switchboard secrets rotate [--config FILE]")
	}
	fs := flag.NewFlagSet("secrets rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := configFlag(fs, getenv)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, _, _, err := loadConfig(*cfgPath, getenv)
	if err != nil {
		return err
	}
	if cfg.SecretsKey == "" {
		return errors.New("secrets rotate: no secrets_key: give the ring, the new key first and the old ones after it")
	}
	ring, err := keyring.Parse(cfg.SecretsKey)
	if err != nil {
		return fmt.Errorf("secrets_key: %w", err)
	}
	if cfg.DatabaseURL == "" {
		return errors.New("secrets rotate: no database_url: the in-memory store keeps nothing to rotate")
	}
	logger := newLogger(stderr, redact.New(configSecrets(cfg)...))
	pg, err := store.OpenPostgres(ctx, cfg.DatabaseURL, &store.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer pg.Close()
	n, err := credentials.New(pg, ring, &credentials.Options{Logger: logger}).Rotate(ctx)
	if err != nil {
		return fmt.Errorf("secrets rotate: %d sealed again before: %w", n, err)
	}
	fmt.Fprintf(stdout, "sealed %d values again under key %s\n", n, ring.Current())
	return nil
}
