package api

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// deadlines adapts the server's timeouts (cmd/switchboard's http block) to
// requests whose handling takes long. The write deadline (write_timeout)
// is a whole-reply deadline on the connection, counted from the end of the
// request's headers: it is pushed ahead before each write and flush of the
// reply instead, so that a reply that waits for a long turn, and a stream
// that lasts as long as its turn, are not cut off, while a write that the
// client does not take within write_timeout still fails. (The read
// deadline, read_timeout, needs nothing: net/http lifts it once the body
// has been read, so it never ends a turn.) The body is tracked too, for
// writeError to tell whether it was read.
func (h *Handler) deadlines(c *gin.Context) {
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = &trackedBody{ReadCloser: c.Request.Body}
	}
	if h.opts.WriteTimeout > 0 {
		c.Writer = &deadlineWriter{ResponseWriter: c.Writer, rc: http.NewResponseController(c.Writer), timeout: h.opts.WriteTimeout}
	}
}

// trackedBody records that the body was read to its end.
type trackedBody struct {
	io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.read.Store(true)
	}
	return n, err
}

// unread reports whether the request has a body that was not read to its
// end.
func unread(r *http.Request) bool {
	b, ok := r.Body.(*trackedBody)
	return ok && !b.read.Load()
}

// deadlineWriter gives each write of a reply its own write deadline.
type deadlineWriter struct {
	gin.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) }

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) WriteString(s string) (int, error) {
	w.extend()
	return w.ResponseWriter.WriteString(s)
}

func (w *deadlineWriter) WriteHeaderNow() {
	w.extend()
	w.ResponseWriter.WriteHeaderNow()
}

func (w *deadlineWriter) Flush() {
	w.extend()
	w.ResponseWriter.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
