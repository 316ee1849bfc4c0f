package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/switchboard-dev/switchboard"
)

// DefaultHealthInterval is how often a remote server is pinged when
// Config.HealthInterval is zero.
const DefaultHealthInterval = 30 * time.Second

// maxPingWait bounds the wait for a ping's answer (less if InitTimeout is
// shorter).
const maxPingWait = 10 * time.Second

// watchHealth notices a remote server that went away while nothing else
// would: a streamable HTTP connection has no process to watch, and with no
// call in flight nothing fails. It pings the server every interval, and at
// once when a call failed in transport or the standalone GET stream ended
// (checkHealth); a ping that fails in transport, or gets no answer in time,
// ends the connection, so a Supervisor reports the server degraded and
// connects again. A JSON-RPC error is an answer: the server is there.
func (c *Conn) watchHealth(interval time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.recheck:
		}
		if err := c.ping(); err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("mcp server failed its health check", "err", err)
				c.kill(withKind(switchboard.ErrUnavailable, fmt.Errorf("health check failed: %w", err)))
			}
			return
		}
	}
}

// ping sends one ping and reports a failure to get an answer.
func (c *Conn) ping() error {
	ctx, cancel := c.opContext(context.Background(), min(c.cfg.InitTimeout, maxPingWait))
	defer cancel()
	// The modern era has no ping: server/discover, which every modern
	// server answers, stands in for it.
	method := string(mcp.MethodPing)
	if c.modern() {
		method = string(mcp.MethodServerDiscover)
	}
	_, rejected, err := c.request(ctx, method, nil)
	if err == nil || rejected {
		return nil
	}
	if lost := c.sessionLost(err); lost != err {
		return lost
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer to a ping within %s", min(c.cfg.InitTimeout, maxPingWait))
	}
	return c.redact(err)
}

// checkHealth asks for a ping now; it never blocks.
func (c *Conn) checkHealth() {
	if c.recheck == nil {
		return
	}
	select {
	case c.recheck <- struct{}{}:
	default:
	}
}
