package switchboard

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every error that reaches a client wraps one of them; the
// HTTP API maps each to one status code in a single table.
var (
	ErrInvalid      = errors.New("invalid input")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrTooLarge     = errors.New("too large")
	// ErrUnprocessable is a well-formed request that cannot be honoured as
	// sent, such as an idempotency key reused for another request.
	ErrUnprocessable = errors.New("unprocessable")
	ErrRateLimited   = errors.New("rate limited")
	// ErrUnavailable is a dependency that is missing or down (the store, an
	// unconfigured model): retrying later may help.
	ErrUnavailable = errors.New("unavailable")
	// ErrUpstream is a model or tool server that answered with a failure.
	ErrUpstream = errors.New("upstream failure")
	// ErrUpstreamTimeout is a model or tool server that did not answer in time.
	ErrUpstreamTimeout = errors.New("upstream timeout")
)

// Error is a failure meant for the client: a sentinel kind, a snake_case code
// and a human sentence. Errors without a code take the kind's default code.
type Error struct {
	Kind    error  // one of the sentinels above
	Code    string // snake_case, optional
	Message string // a human sentence, safe to show to the client
	// RetryAfter, when above 0, is how long the client should wait before
	// trying again (HTTP's Retry-After).
	RetryAfter time.Duration
}

// Errorf returns an *Error of the given kind and code with a formatted message.
func Errorf(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel kind, so errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Kind }

// ErrorCode returns the client-facing code of err: the code of the first
// *Error in its chain, or "" if there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrorMessage returns the client-facing message of err: the message of the
// first *Error in its chain, or "" if there is none. Other errors may carry
// internals and are not shown to clients.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// RetryAfter returns how long the client should wait before retrying err:
// the RetryAfter of the first *Error in its chain, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
