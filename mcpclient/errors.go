package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/redact"
)

// errClosed is the cause of a Conn's end when Close ended it.
var errClosed = errors.New("connection closed")

// ErrMalformed marks an answer that cannot be read: one nested deeper than
// a client can follow. It wraps switchboard.ErrInvalid.
var ErrMalformed = fmt.Errorf("malformed answer: %w", switchboard.ErrInvalid)

// rpcError turns a JSON-RPC error into a Go error: the replacements of a
// frame filter (see frames.go) into switchboard.ErrTooLarge and ErrMalformed.
func rpcError(e *mcp.JSONRPCErrorDetails) error {
	switch e.Code {
	case codeTooLarge:
		return withKind(switchboard.ErrTooLarge, errors.New(e.Message))
	case codeTooDeep:
		return withKind(ErrMalformed, errors.New(e.Message))
	case codeURLElicitationRequired:
		if u := urlRequired(e); u != nil {
			return u
		}
	}
	return e.AsError()
}

// codeURLElicitationRequired is the JSON-RPC error code of a request the
// server refuses until the user has been to the urls it names
// (URLElicitationRequiredError, MCP 2025-11-25).
const codeURLElicitationRequired = -32042

// URLRequiredError is a call the server refused until the user opens the
// urls of Elicitations (its data.elicitations); CallTool asks the call's
// Asker about each and, when all are accepted, calls again.
type URLRequiredError struct {
	Elicitations []Elicitation
	err          error
}

func (e *URLRequiredError) Error() string { return e.err.Error() }
func (e *URLRequiredError) Unwrap() error { return e.err }

// urlRequired reads the elicitations of a -32042 error; nil when it names
// none that can be asked.
func urlRequired(e *mcp.JSONRPCErrorDetails) *URLRequiredError {
	raw, err := json.Marshal(e.Data)
	if err != nil {
		return nil
	}
	var data struct {
		Elicitations []struct {
			Mode, Message, URL, ElicitationID string
		} `json:"elicitations"`
	}
	if json.Unmarshal(raw, &data) != nil || len(data.Elicitations) == 0 {
		return nil
	}
	u := &URLRequiredError{err: e.AsError()}
	for _, el := range data.Elicitations {
		if el.URL == "" || el.ElicitationID == "" {
			return nil
		}
		u.Elicitations = append(u.Elicitations, Elicitation{Mode: mcp.ElicitationModeURL, Message: el.Message, URL: el.URL, ElicitationID: el.ElicitationID})
	}
	return u
}

// errSessionLost ends a Conn whose remote server no longer knows our
// session: it restarted, or expired the session.
var errSessionLost = errors.New("the server ended our session (HTTP 404): it restarted or expired the session")

// sessionLost turns mcp-go's ErrSessionTerminated, which it returns for a
// request the server refused with 404 (or that it did not send, the session
// having ended already), into the end of the Conn, and marks the request as
// never run. Other errors come back as they are.
func (c *Conn) sessionLost(err error) error {
	if !errors.Is(err, transport.ErrSessionTerminated) {
		return err
	}
	lost := withKind(switchboard.ErrUnavailable, errSessionLost)
	c.kill(lost)
	if c.ctx.Err() != nil && !errors.Is(context.Cause(c.ctx), errSessionLost) {
		// The Conn had ended for another reason (Close) first.
		return &notSentError{context.Cause(c.ctx)}
	}
	c.log.Warn("mcp server forgot our session")
	return &notSentError{lost}
}

// notSentError marks a failed request that never reached the server (or
// that the server refused without running it): sending it again on another
// connection cannot run it twice.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }

func (e *notSentError) Unwrap() error { return e.err }

// neverSent reports whether err is a request that never ran on the server.
func neverSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// classify says why a request failed: the connection ended, the caller's
// ctx ended, the request's own limit passed, the server rejected it
// (rejected), or the transport failed.
func (c *Conn) classify(ctx, opCtx context.Context, limit time.Duration, err error, rejected bool) error {
	return c.redact(c.classifyRaw(ctx, opCtx, limit, err, rejected))
}

func (c *Conn) classifyRaw(ctx, opCtx context.Context, limit time.Duration, err error, rejected bool) error {
	if dl, ok := opCtx.Deadline(); ok && opCtx.Err() == nil && time.Until(dl) < deadlineSlack {
		// A transport timer set to our deadline (SSE's response timeout)
		// can fire a hair before it: the failure is the deadline.
		t := time.NewTimer(deadlineSlack)
		select {
		case <-opCtx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	switch {
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return withKind(switchboard.ErrUpstreamTimeout, ctx.Err())
		}
		return ctx.Err()
	case errors.Is(opCtx.Err(), context.DeadlineExceeded):
		return withKind(switchboard.ErrUpstreamTimeout, fmt.Errorf("no answer within %s: %w", limit, context.DeadlineExceeded))
	case c.ctx.Err() != nil:
		return context.Cause(c.ctx)
	case rejected:
		return withKind(switchboard.ErrInvalid, err)
	}
	if c.link.settle(c, err) {
		return context.Cause(c.ctx)
	}
	return withKind(switchboard.ErrUnavailable, err)
}

// redact hides the Config's secrets in err's message; errors.Is and
// errors.As still see err.
func (c *Conn) redact(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, s: c.scrub}
}

type redactedError struct {
	err error
	s   *redact.Scrubber
}

func (e *redactedError) Error() string { return e.s.String(e.err.Error()) }

func (e *redactedError) Unwrap() error { return e.err }

// kindError is err, also matching kind with errors.Is, so that the message
// stays err's own.
type kindError struct {
	kind error
	err  error
}

func withKind(kind, err error) error {
	if errors.Is(err, kind) {
		return err
	}
	return &kindError{kind: kind, err: err}
}

func (e *kindError) Error() string { return e.err.Error() }

func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }
