package mcpclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Server requests: what a server asks of us on a connection of the legacy
// era (an open JSON-RPC request that waits for our answer). Every
// transport's frame filter (frames.go) takes them out of the stream before
// mcp-go sees them, so that they are answered here, the same way on stdio,
// streamable HTTP and legacy SSE: mcp-go's own handling answers an
// unsupported method with -32603 where the spec says -32601, drops every
// request on legacy SSE, and gives a request over streamable HTTP 30
// seconds, far less than a person takes to answer.
//
//   - ping is answered at once;
//   - roots/list with the Config's Roots (the capability is declared only
//     with some);
//   - elicitation/create and sampling/createMessage go to the Asker of the
//     call they belong to (see WithAsker); sampling only when the Config's
//     Sampling allows it;
//   - anything else is answered -32601 (method not found).
//
// A modern server asks the same questions inside an input_required result
// instead (era.go's sendRounds): they go to the same Asker, with the
// question's key and the result's requestState, and the call is made again
// with the answers.
//
// Which call a request belongs to: over streamable HTTP the one whose
// response stream carried it; otherwise the only call in flight on the
// connection that has an Asker. A request no call can take is answered
// with an error saying so.

// Sampling policies of Config.Sampling.
const (
	SamplingDeny    = "deny"
	SamplingAllow   = "allow"
	SamplingApprove = "approve"
)

// DefaultAskTimeout bounds the wait for a person's answer to one
// elicitation when Config.AskTimeout is zero.
const DefaultAskTimeout = 10 * time.Minute

// JSON-RPC error codes of our answers.
const (
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeInternal       = -32603
	// codeUserRejected is what the spec's examples answer a sampling
	// request the user rejected with.
	codeUserRejected = -1
)

// Root is a root offered to a server (roots/list).
type Root struct {
	URI  string `json:"uri"`
	Name string `json:"name,omitempty"`
}

// Elicitation is a server's elicitation/create request.
type Elicitation struct {
	// Mode is "form" (the default) or "url".
	Mode    string
	Message string
	// RequestedSchema is the form's schema as the server sent it (form
	// mode).
	RequestedSchema json.RawMessage
	// URL and ElicitationID are the link to open and the id its completion
	// notice names (url mode).
	URL           string
	ElicitationID string
	// RequestKey and RequestState are set when a modern server asks (a
	// tools/call answered input_required): the question's key in
	// inputRequests and the requestState the call is made again with.
	RequestKey   string
	RequestState string
	// InputRequests is the whole round the question came in (the
	// result's inputRequests, a JSON object by key), to keep with it: a
	// call made again later (Resume) answers every one of them.
	InputRequests json.RawMessage
}

// ElicitResult is the person's answer to an Elicitation.
type ElicitResult struct {
	// Action is accept, decline or cancel.
	Action string `json:"action"`
	// Content is the form's content (form mode, accept only).
	Content json.RawMessage `json:"content,omitempty"`
}

// DefaultSamplingMaxTokens caps a sampling request's maxTokens when
// Config.SamplingMaxTokens is zero.
const DefaultSamplingMaxTokens = 1024

// SamplingRequest is a server's sampling/createMessage request.
type SamplingRequest struct {
	// Params are the request's params as sent (messages,
	// modelPreferences, systemPrompt, maxTokens, ...).
	Params json.RawMessage
	// Approve says that a person must approve the request first (the
	// server's sampling setting is approve).
	Approve bool
	// MaxTokens caps the tokens the model may answer with (the server's
	// sampling_max_tokens).
	MaxTokens int
}

// Asker answers what a server asks during one call, on behalf of the
// person whose call it is. Its methods block until there is an answer or
// ctx ends; an error is sent to the server as a JSON-RPC error (a
// *RequestError with its code, else -32603 with the error's message).
type Asker interface {
	Elicit(ctx context.Context, server string, e Elicitation) (ElicitResult, error)
	// CreateMessage answers a sampling request with the result to send
	// (role, content, model, stopReason).
	CreateMessage(ctx context.Context, server string, r SamplingRequest) (json.RawMessage, error)
	// ElicitationComplete is told that the server reported a url-mode
	// elicitation as complete (notifications/elicitation/complete).
	ElicitationComplete(server, elicitationID string)
}

// RequestError is an error an Asker returns to choose the JSON-RPC error
// code the server gets.
type RequestError struct {
	Code    int
	Message string
}

func (e *RequestError) Error() string { return e.Message }

type askerKey struct{}

// WithAsker returns ctx carrying a, for the calls made with it: what
// their servers ask goes to a. Without one, a server's elicitation or
// sampling request is answered with an error.
func WithAsker(ctx context.Context, a Asker) context.Context {
	return context.WithValue(ctx, askerKey{}, a)
}

func askerOf(ctx context.Context) Asker {
	a, _ := ctx.Value(askerKey{}).(Asker)
	return a
}

// callKey marks the context of a call's requests with its token, so that
// a server request on the call's own response stream finds it.
type callKey struct{}

// inflight is a call in flight, as the server requests it may make see it.
type inflight struct {
	ctx   context.Context
	asker Asker
	clock *callClock
}

// callClock is a call's timeout, paused while the call waits for a person.
type callClock struct {
	mu     sync.Mutex
	idle   *time.Timer // no answer or progress within the limit
	limit  time.Duration
	capT   *time.Timer // progress extends up to ProgressCap times the limit
	capEnd time.Time
	paused int
	left   time.Duration // what the cap has left while paused
}

func newCallClock(limit time.Duration, onIdle, onCap func()) *callClock {
	k := &callClock{limit: limit, capEnd: time.Now().Add(ProgressCap * limit)}
	k.idle = time.AfterFunc(limit, onIdle)
	k.capT = time.AfterFunc(ProgressCap*limit, onCap)
	return k
}

// progressed restarts the idle timer.
func (k *callClock) progressed() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.paused == 0 {
		k.idle.Reset(k.limit)
	}
}

// pause stops both timers until resume: the call waits for a person.
func (k *callClock) pause() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.paused++; k.paused == 1 {
		k.idle.Stop()
		k.capT.Stop()
		k.left = max(time.Until(k.capEnd), 0)
	}
}

func (k *callClock) resume() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.paused--; k.paused == 0 {
		k.idle.Reset(k.limit)
		k.capEnd = time.Now().Add(k.left)
		k.capT.Reset(k.left)
	}
}

func (k *callClock) stop() {
	k.idle.Stop()
	k.capT.Stop()
}

// serverRequest takes a request of the server out of the stream (a frame
// filter calls it, on the transport's read loop: it must not block). origin
// is the context of the HTTP request whose response carried it, nil when
// none did.
func (c *Conn) serverRequest(msg []byte, origin context.Context) {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(msg, &req); err != nil || len(req.ID) == 0 {
		c.log.Warn("mcp server sent a request we cannot read", "err", err)
		return
	}
	var token string
	if origin != nil {
		token, _ = origin.Value(callKey{}).(string)
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		result, rerr := c.answerRequest(token, req.Method, req.Params)
		c.reply(req.ID, result, rerr)
	}()
}

// answerRequest answers one request of the server: a result, or an error.
func (c *Conn) answerRequest(token, method string, params json.RawMessage) (any, *RequestError) {
	switch method {
	case string(mcp.MethodPing):
		return struct{}{}, nil
	case string(mcp.MethodListRoots):
		roots := c.roots()
		if roots == nil {
			return nil, &RequestError{codeMethodNotFound, "roots are not configured for this server"}
		}
		c.rootsOnce.Do(func() { close(c.rootsAsked) })
		return map[string]any{"roots": roots}, nil
	case string(mcp.MethodElicitationCreate), string(mcp.MethodSamplingCreateMessage):
		if method == string(mcp.MethodSamplingCreateMessage) && !samplingOn(c.cfg) {
			return nil, &RequestError{codeMethodNotFound, "sampling is not enabled for this server (its sampling setting is deny)"}
		}
		call := c.callFor(token)
		if call == nil {
			return nil, &RequestError{codeInternal, "no call of a user is in flight to take this " + method + " request"}
		}
		return c.ask(call, method, params, nil)
	}
	return nil, &RequestError{codeMethodNotFound, "method not found: " + method}
}

// ask passes a server's elicitation or sampling request on to call's
// Asker, with call's clock paused. m is the question's place in a modern
// server's input_required result (nil for a legacy server's open
// request).
func (c *Conn) ask(call *inflight, method string, params json.RawMessage, m *modernAsk) (any, *RequestError) {
	if method == string(mcp.MethodElicitationCreate) {
		return c.elicit(call, params, m)
	}
	if !samplingOn(c.cfg) {
		return nil, &RequestError{codeMethodNotFound, "sampling is not enabled for this server (its sampling setting is deny)"}
	}
	call.clock.pause()
	defer call.clock.resume()
	ctx, stop := c.askContext(call, 0)
	defer stop()
	res, err := call.asker.CreateMessage(ctx, c.name, SamplingRequest{Params: params,
		Approve: c.cfg.Sampling == SamplingApprove, MaxTokens: cmp.Or(c.cfg.SamplingMaxTokens, DefaultSamplingMaxTokens)})
	if err != nil {
		return nil, requestError(err)
	}
	return res, nil
}

// modernAsk is where a modern server's question came from: its key in the
// result's inputRequests, the result's requestState, and the whole round.
type modernAsk struct {
	key, state string
	round      map[string]json.RawMessage
}

func (c *Conn) elicit(call *inflight, params json.RawMessage, m *modernAsk) (any, *RequestError) {
	var p struct {
		Mode            string          `json:"mode"`
		Message         string          `json:"message"`
		RequestedSchema json.RawMessage `json:"requestedSchema"`
		URL             string          `json:"url"`
		ElicitationID   string          `json:"elicitationId"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, &RequestError{codeInvalidParams, "invalid elicitation params: " + err.Error()}
	}
	switch p.Mode {
	case "", mcp.ElicitationModeForm:
		p.Mode = mcp.ElicitationModeForm
		if len(p.RequestedSchema) == 0 {
			return nil, &RequestError{codeInvalidParams, "a form elicitation needs a requestedSchema"}
		}
	case mcp.ElicitationModeURL:
		if p.URL == "" || p.ElicitationID == "" {
			return nil, &RequestError{codeInvalidParams, "a url elicitation needs a url and an elicitationId"}
		}
	default:
		return nil, &RequestError{codeInvalidParams, fmt.Sprintf("unknown elicitation mode %q", p.Mode)}
	}
	call.clock.pause()
	defer call.clock.resume()
	ctx, stop := c.askContext(call, c.cfg.askTimeout())
	defer stop()
	e := Elicitation{Mode: p.Mode, Message: p.Message, RequestedSchema: p.RequestedSchema, URL: p.URL, ElicitationID: p.ElicitationID}
	if m != nil {
		e.RequestKey, e.RequestState = m.key, m.state
		e.InputRequests, _ = json.Marshal(m.round)
	}
	res, err := call.asker.Elicit(ctx, c.name, e)
	if err != nil {
		return nil, requestError(err)
	}
	if p.Mode == mcp.ElicitationModeURL || res.Action != "accept" {
		res.Content = nil
	}
	return res, nil
}

// askContext is the context of one ask of call: it ends with the call, the
// connection, or after limit (0: no limit of its own). stop releases it.
func (c *Conn) askContext(call *inflight, limit time.Duration) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(call.ctx)
	stopConn := context.AfterFunc(c.ctx, func() { cancel(context.Cause(c.ctx)) })
	t := time.AfterFunc(max(limit, 0), func() {
		if limit > 0 {
			cancel(fmt.Errorf("no answer within the elicitation timeout (%s): %w", limit, context.DeadlineExceeded))
		}
	})
	return ctx, func() { stopConn(); t.Stop(); cancel(nil) }
}

func requestError(err error) *RequestError {
	var re *RequestError
	if errors.As(err, &re) {
		return re
	}
	return &RequestError{codeInternal, err.Error()}
}

// callFor returns the call a server request belongs to: the one of token,
// else the only call in flight with an Asker; nil if none.
func (c *Conn) callFor(token string) *inflight {
	if token != "" {
		if v, ok := c.calls.Load(token); ok && v.(*inflight).asker != nil {
			return v.(*inflight)
		}
	}
	var only *inflight
	n := 0
	c.calls.Range(func(_, v any) bool {
		if v.(*inflight).asker != nil {
			only = v.(*inflight)
			n++
		}
		return n < 2
	})
	if n == 1 {
		return only
	}
	return nil
}

// onElicitationComplete passes a url-mode completion notice to the Askers
// of the calls in flight, and of those waiting for their urls (askURLs).
// It runs on the read loop.
func (c *Conn) onElicitationComplete(n mcp.JSONRPCNotification) {
	id, _ := n.Params.AdditionalFields["elicitationId"].(string)
	if id == "" {
		return
	}
	var askers []Asker
	c.calls.Range(func(_, v any) bool {
		if a := v.(*inflight).asker; a != nil {
			askers = append(askers, a)
		}
		return true
	})
	c.urlAskers.Range(func(_, v any) bool {
		askers = append(askers, v.(Asker))
		return true
	})
	if len(askers) == 0 {
		return
	}
	// Off the read loop: an Asker may read its store.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for _, a := range askers {
			a.ElicitationComplete(c.name, id)
		}
	}()
}

// reply sends our answer to a server request, best effort: a server that
// is gone gets none.
func (c *Conn) reply(id json.RawMessage, result any, rerr *RequestError) {
	msg := map[string]any{"jsonrpc": mcp.JSONRPC_VERSION, "id": id}
	if rerr != nil {
		msg["error"] = map[string]any{"code": rerr.Code, "message": c.scrub.String(rerr.Message)}
	} else {
		msg["result"] = result
	}
	b, err := json.Marshal(msg)
	if err != nil {
		c.log.Warn("could not encode an answer to the mcp server", "err", err)
		return
	}
	if c.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	switch l := c.link.(type) {
	case *stdioLink:
		err = l.write(append(b, '\n'))
	case *httpLink:
		err = c.post(ctx, l, b)
	}
	if err != nil {
		c.log.Warn("could not answer the mcp server's request", "err", c.redact(err))
	}
}

// post sends a message of ours that is not a request (an answer) to a
// remote server: to the session's URL over streamable HTTP, to the
// endpoint the stream named over legacy SSE.
func (c *Conn) post(ctx context.Context, l *httpLink, body []byte) error {
	target := c.cfg.URL
	if l.sse {
		sse, ok := c.client.GetTransport().(*transport.SSE)
		if !ok || sse.GetEndpoint() == nil {
			return errors.New("no endpoint to post to")
		}
		target = sse.GetEndpoint().String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if !l.sse {
		if id := c.client.GetSessionId(); id != "" {
			req.Header.Set("Mcp-Session-Id", id)
		}
		if v := c.client.ProtocolVersion(); v != "" {
			req.Header.Set("Mcp-Protocol-Version", v)
		}
	}
	resp, err := c.httpClient(l.httpTr, !l.sse).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxPeek))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("the server answered %s", resp.Status)
	}
	return nil
}

// roots returns the roots offered to the server; nil when none are
// configured.
func (c *Conn) roots() []Root {
	if r := c.rootList.Load(); r != nil {
		return *r
	}
	return nil
}

// SetRoots replaces the roots offered to the server and, when they
// changed, tells it with notifications/roots/list_changed. A Conn
// configured without roots declared no roots capability: it gains none.
func (c *Conn) SetRoots(roots []Root) {
	old := c.rootList.Load()
	if old == nil || rootsEqual(*old, roots) {
		return
	}
	roots = append([]Root{}, roots...)
	c.rootList.Store(&roots)
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	err := c.client.GetTransport().SendNotification(ctx, mcp.JSONRPCNotification{
		JSONRPC:      mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{Method: mcp.MethodNotificationRootsListChanged},
	})
	if err != nil {
		c.log.Warn("could not tell the mcp server its roots changed", "err", c.redact(err))
	}
}

func rootsEqual(a, b []Root) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// samplingOn reports whether cfg lets the server sample.
func samplingOn(cfg Config) bool {
	return cfg.Sampling == SamplingAllow || cfg.Sampling == SamplingApprove
}

// lockedWriter serialises writes to a stdio child's stdin: mcp-go's
// requests and our answers each go out in one Write.
type lockedWriter struct {
	mu sync.Mutex
	w  io.WriteCloser
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *lockedWriter) Close() error { return w.w.Close() }
