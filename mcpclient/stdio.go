package mcpclient

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/switchboard-dev/switchboard"
)

// stdioLink runs a stdio server's child for a Conn: the Conn's link over
// stdio (see link). The child is ours, not mcp-go's: what it writes is read
// through a frame filter, and its process group is stopped whole.
type stdioLink struct {
	proc process
	// stdin is the child's stdin, shared by mcp-go's requests and our
	// answers (asks.go).
	stdin *lockedWriter
	// stderr keeps the child's stderr: the Supervisor's, so the lines of
	// a crashed child outlive its Conn, or the Conn's own.
	stderr *lineRing
	mark   int // stderr's mark when the child started
}

func (l *stdioLink) open(c *Conn) (transport.Interface, error) {
	if l.stderr == nil {
		l.stderr = newLineRing(stderrLines)
	}
	l.mark = l.stderr.Mark()
	c.log.Debug("starting mcp server", "transport", kindStdio, "command", filepath.Base(c.cfg.Command))
	stdin, stdout, err := l.proc.start(c.cfg, l.stderr)
	if err != nil {
		return nil, fmt.Errorf("start: %w", withKind(switchboard.ErrUnavailable, fmt.Errorf("failed to start command: %w", err)))
	}
	// mcp-go's stdio transport over the child we started. It logs through
	// slog's default logger, which the service makes its own.
	l.stdin = &lockedWriter{w: stdin}
	lines := newLineFilter(stdout, c.cfg.maxMessageBytes(), c.dropped, c.unroutable)
	lines.request = func(msg []byte) { c.serverRequest(msg, nil) }
	return transport.NewIO(lines, l.stdin, nil), nil
}

// write sends one message of ours to the child.
func (l *stdioLink) write(msg []byte) error {
	_, err := l.stdin.Write(msg)
	return err
}

func (l *stdioLink) started(c *Conn) { l.proc.started(c) }

// stop reaps the child once mcp-go closed its stdin, escalating to signals
// for a child that takes its time (see process.stop).
func (l *stdioLink) stop(c *Conn, closed <-chan error, _ time.Time) error {
	reaped := make(chan error, 1)
	go func() {
		<-closed
		reaped <- l.proc.wait()
	}()
	return l.proc.stop(reaped, c.log)
}

// settle waits a moment after the child's stdout ended: its exit, with the
// status worth reporting, is usually that much behind.
func (l *stdioLink) settle(c *Conn, err error) bool {
	if !canWatchExit || !errors.Is(err, transport.ErrTransportClosed) {
		return false
	}
	t := time.NewTimer(exitReportWait)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return true
	case <-t.C:
		return false
	}
}

func (l *stdioLink) pid() int { return l.proc.pid() }

func (l *stdioLink) ring() (*lineRing, int) { return l.stderr, l.mark }

// Stderr returns the last lines (at most 100) that a stdio server wrote to
// its stderr, an unfinished last line included; nil for a remote server.
func (c *Conn) Stderr() []string {
	ring, _ := c.link.ring()
	if ring == nil {
		return nil
	}
	return ring.Lines()
}

// stderrTail returns the last few stderr lines of a stdio child, for an
// error message.
func (c *Conn) stderrTail() string {
	ring, mark := c.link.ring()
	if ring == nil {
		return ""
	}
	lines := ring.LinesSince(mark)
	var tail []string
	for _, l := range slices.Backward(lines) {
		if l = strings.TrimSpace(l); l != "" {
			tail = append(tail, l)
		}
		if len(tail) == 3 {
			break
		}
	}
	slices.Reverse(tail)
	s := strings.Join(tail, " | ")
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	return strings.ToValidUTF8(s, "")
}
