//go:build !unix

package mcpclient

import (
	"errors"
	"io"
	"log/slog"
)

// canWatchExit reports whether a stdio child's exit is watched.
const canWatchExit = false

// process is the stdio child of a Conn; stdio servers need a Unix system,
// where the child's process group can be stopped as a whole.
type process struct{}

func (p *process) start(Config, io.Writer) (io.WriteCloser, io.Reader, error) {
	return nil, nil, errors.New("stdio servers are supported on Unix systems only")
}

func (p *process) wait() error { return nil }

func (p *process) started(*Conn) {}

func (p *process) pid() int { return 0 }

func (p *process) stop(closed <-chan error, _ *slog.Logger) error {
	<-closed
	return nil
}
