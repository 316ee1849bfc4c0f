package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/switchboard-dev/switchboard/orchestrator"
)

// instanceID is this instance's identity in the leases of the turns it
// runs (store.Options.Instance): instance_id when set, else the host name
// and the listen address. On one host two live processes cannot have that
// pair (the second cannot listen), and a process started again with the
// same configuration gets it back: it then fails at once the turns its
// earlier life left running (it recovers them once it holds the address).
// Hosts that share a name (containers given the same hostname) need
// instance_id. A listen port of 0 (any free port) makes no such pair: no
// identity, and the turns of a process that died are failed when their
// leases run out.
func instanceID(cfg *Config, hostname func() (string, error)) string {
	if cfg.InstanceID != "" {
		return cfg.InstanceID
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	if _, port, err := net.SplitHostPort(listen); err != nil || port == "0" || port == "" {
		return ""
	}
	host, err := hostname()
	if err != nil || host == "" {
		return ""
	}
	return host + "/" + listen
}

// turnWait is limits.turn_wait as orchestrator.Options.TurnWait takes it:
// 0 for its default (5s), below 0 for no wait.
func turnWait(cfg *Config) time.Duration {
	switch {
	case cfg.Limits.TurnWait == nil:
		return 0
	case *cfg.Limits.TurnWait == 0:
		return -1
	}
	return time.Duration(*cfg.Limits.TurnWait)
}

// recoverTurns fails the turns this instance's earlier life left running,
// within 10s; when it cannot, they are failed when a message or a cancel
// of their conversations comes to this instance, or their leases run out.
func recoverTurns(ctx context.Context, orch *orchestrator.Orchestrator, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := orch.Recover(ctx); err != nil {
		logger.Warn("could not fail the turns this instance left running when it stopped: they fail once found, when their leases run out at the latest", "err", err)
	}
}
