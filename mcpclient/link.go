package mcpclient

import (
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
)

// link is what one transport kind adds to a Conn: a stdio link starts and
// stops a child process (stdio.go), an HTTP link keeps an HTTP transport of
// the Conn's own (http.go). Everything else a Conn does is the same over
// every kind.
type link interface {
	// open makes mcp-go's transport for c; a stdio link starts the child
	// here. The error wraps a sentinel of the root package.
	open(c *Conn) (transport.Interface, error)
	// started runs once mcp-go's transport has started.
	started(c *Conn)
	// stop ends what open started, once closed yields the result of
	// closing mcp-go's client, by deadline. It returns an error only if
	// something could not be stopped.
	stop(c *Conn, closed <-chan error, deadline time.Time) error
	// settle waits, after a request failed with err, for a moment in which
	// the end of the connection behind err is likely to be known, and
	// reports whether c ended meanwhile.
	settle(c *Conn, err error) bool
	// pid returns a stdio child's process id; 0 for a remote server.
	pid() int
	// ring returns the stdio child's stderr and where this Conn's lines
	// start in it; nil for a remote server.
	ring() (*lineRing, int)
}
