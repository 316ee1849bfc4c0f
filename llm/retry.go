package llm

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// maxRetryAfter is the longest Retry-After we wait for; a server asking for
// more is answered with its error at once.
const maxRetryAfter = 30 * time.Second

// retryTransport retries a request that met a rate limit (429) or a server
// error (500, 502, 503, 504), with jittered exponential backoff that honours
// Retry-After. It sits under go-openai, which does not retry itself. Only
// requests whose body can be replayed (GetBody) are retried.
type retryTransport struct {
	base   http.RoundTripper
	max    int
	logger *slog.Logger
	// backoff is the base delay of the first retry; 0 means 500ms.
	backoff time.Duration
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(req.Context())
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil || attempt >= t.max || !retryable(resp.StatusCode) || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		delay, ok := t.delay(attempt, resp.Header.Get("Retry-After"))
		if !ok {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		t.logger.Info("model server asked us to retry", "status", resp.StatusCode, "attempt", attempt+1, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
	}
}

// CloseIdleConnections closes the idle connections of the transport under
// it, for http.Client.CloseIdleConnections.
func (t *retryTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// delay returns how long to wait before retry attempt+1, and false when the
// server asked for longer than we are willing to wait.
func (t *retryTransport) delay(attempt int, retryAfter string) (time.Duration, bool) {
	if retryAfter != "" {
		if secs, err := strconv.Atoi(retryAfter); err == nil && secs >= 0 {
			d := time.Duration(secs) * time.Second
			return d, d <= maxRetryAfter
		}
		if at, err := http.ParseTime(retryAfter); err == nil {
			d := max(time.Until(at), 0)
			return d, d <= maxRetryAfter
		}
	}
	base := t.backoff
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	ceiling := base << attempt
	// Equal jitter: half fixed, half random, so retries spread out but never
	// come back at once.
	return ceiling/2 + rand.N(ceiling/2+1), true
}
