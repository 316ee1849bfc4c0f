package api

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Scrubber hides configured secrets in text. *redact.Scrubber implements
// it.
type Scrubber interface {
	String(s string) string
}

// scrubReplies hides secrets in the whole body of every reply of the
// admin routes: they show what servers printed (stderr), the errors of
// calls and servers, and tool arguments and results, any of which may
// carry a configured secret. The body is held until the handler ends.
func (h *Handler) scrubReplies(c *gin.Context) {
	if h.opts.Scrub == nil {
		c.Next()
		return
	}
	w := &heldWriter{ResponseWriter: c.Writer}
	c.Writer = w
	c.Next()
	body := []byte(h.opts.Scrub.String(w.body.String()))
	header := w.ResponseWriter.Header()
	if header.Get("Content-Length") != "" {
		header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.ResponseWriter.WriteHeader(w.Status())
	w.ResponseWriter.Write(body)
}

// heldWriter keeps a reply's body until scrubReplies writes it.
type heldWriter struct {
	gin.ResponseWriter
	body   bytes.Buffer
	status int
}

func (w *heldWriter) WriteHeader(code int) { w.status = code }
func (w *heldWriter) WriteHeaderNow()      {}
func (w *heldWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
func (w *heldWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }
func (w *heldWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
func (w *heldWriter) Written() bool { return w.status != 0 }
func (w *heldWriter) Size() int     { return w.body.Len() }
func (w *heldWriter) Flush()        {}
