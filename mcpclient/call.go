package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-dev/switchboard"
)

// CallTool calls the tool name with args, a JSON object (nil or empty means
// no arguments). It waits at most Config.Timeout (or the tool's entry in
// Config.ToolTimeouts), less if ctx ends sooner.
// When ctx ends first the request is abandoned, and a stdio server is told
// with notifications/cancelled (mcp-go sends it; over HTTP the closed request
// is the signal).
//
// A tool that fails reports it in the Result (IsError), not as an error. The
// error wraps switchboard.ErrInvalid if args is not a JSON object or the
// server rejects the request (a JSON-RPC error: unknown tool, invalid
// params; also a reply that cannot be read); switchboard.ErrUnavailable if
// the connection is broken or closed (the server may or may not have run the
// tool, unless the connection had ended before the call, or the remote server
// had forgotten our session: then the Conn ends too); switchboard.ErrUpstreamTimeout
// and context.DeadlineExceeded if the timeout passed; ctx's error if ctx
// ended first.
//
// A tool that can only be called as a task (TaskSupport "required", on a
// server with TaskCalls) runs as one (see task.go): the Result's Task says
// which, and an error after the task was created is a *TaskError (see
// TaskOf) wrapping the errors above; the task is cancelled with
// tasks/cancel when ctx ends or the timeout passes.
//
// A call the server refuses until the user opens some urls (-32042, a
// URLRequiredError) is asked of the call's Asker (see WithAsker), each url
// as a url-mode elicitation; once all are accepted it is made again, at
// most maxURLRetries times.
func (c *Conn) CallTool(ctx context.Context, name string, args json.RawMessage) (*Result, error) {
	for attempt := 0; ; attempt++ {
		res, err := c.callOnce(ctx, name, args)
		var u *URLRequiredError
		asker := askerOf(ctx)
		if err == nil || asker == nil || attempt == maxURLRetries || !errors.As(err, &u) || !c.askURLs(ctx, asker, u) {
			return res, err
		}
		c.log.Debug("mcp server's urls accepted; calling again", "tool", name)
	}
}

// maxURLRetries bounds the calls made again after their urls were
// accepted.
const maxURLRetries = 2

// askURLs asks the user to open each url of u, and reports whether all
// were accepted.
func (c *Conn) askURLs(ctx context.Context, asker Asker, u *URLRequiredError) bool {
	// No call is in flight meanwhile: the completion notice of a url the
	// user opened must still reach the Asker.
	token := fmt.Sprintf("switchboard-urls-%d", c.reqID.Add(1))
	c.urlAskers.Store(token, asker)
	defer c.urlAskers.Delete(token)
	for _, e := range u.Elicitations {
		actx, cancel := context.WithTimeout(ctx, c.cfg.askTimeout())
		stop := context.AfterFunc(c.ctx, cancel)
		res, err := asker.Elicit(actx, c.name, e)
		stop()
		cancel()
		if err != nil || res.Action != "accept" {
			return false
		}
	}
	return ctx.Err() == nil && c.ctx.Err() == nil
}

// callOnce is one call of CallTool.
func (c *Conn) callOnce(ctx context.Context, name string, args json.RawMessage) (*Result, error) {
	args, err := objectArgs(args)
	if err == nil && name == "" {
		err = errors.New("no tool name")
	}
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, c.name, withKind(switchboard.ErrInvalid, err))
	}
	// The limit bounds the wait for an answer or for progress: a tool that
	// reports progress may run longer, up to ProgressCap times the limit.
	// Neither runs while the call waits for a person (a server's
	// elicitation or sampling request: asks.go), so opCtx has no limit of
	// its own.
	limit := c.cfg.callTimeout(name)
	opCtx, cancel := c.opContext(ctx, noLimit)
	defer cancel()
	if c.ctx.Err() != nil {
		return nil, fmt.Errorf("call %s on %s: %w", name, c.name, &notSentError{context.Cause(c.ctx)})
	}
	idleCtx, idleCancel := context.WithCancelCause(opCtx)
	defer idleCancel(nil)
	clock := newCallClock(limit, func() { idleCancel(errNoProgress) }, func() { idleCancel(errProgressCap) })
	defer clock.stop()
	token := fmt.Sprintf("switchboard-%d", c.reqID.Add(1))
	idleCtx = context.WithValue(idleCtx, callKey{}, token)
	progressed := make(chan struct{}, 1)
	c.progress.Store(token, progressed)
	defer c.progress.Delete(token)
	if fn := progressReporter(ctx); fn != nil {
		c.reports.Store(token, fn)
		defer c.reports.Delete(token)
	}
	c.calls.Store(token, &inflight{ctx: idleCtx, asker: askerOf(ctx), clock: clock})
	defer c.calls.Delete(token)
	go func() {
		for {
			select {
			case <-idleCtx.Done():
				return
			case <-progressed:
				clock.progressed()
			}
		}
	}()
	var (
		res      *mcp.CallToolResult
		task     *Task
		rejected bool
	)
	if _, resumed := ctx.Value(resumeKey{}).(*Resume); resumed && c.runsAsTask(name) {
		return nil, fmt.Errorf("call %s on %s: %w", name, c.name, withKind(switchboard.ErrInvalid,
			errors.New("a call of a tool that runs as a task cannot go on with a modern server's answers")))
	}
	if c.runsAsTask(name) {
		res, task, rejected, err = c.callTask(idleCtx, token, name, args, limit, progressed)
	} else {
		res, rejected, err = c.callTool(idleCtx, token, name, args)
	}
	if err != nil {
		return nil, withTask(task, fmt.Errorf("call %s on %s: %w", name, c.name, c.callError(ctx, opCtx, idleCtx, limit, err, rejected)))
	}
	r := newResult(c.name, res)
	r.Task = task
	return r, nil
}

// callError classifies the error of a call (see CallTool).
func (c *Conn) callError(ctx, opCtx, idleCtx context.Context, limit time.Duration, err error, rejected bool) error {
	if lost := c.sessionLost(err); lost != err {
		return lost
	}
	if ctx.Err() == nil && errors.Is(context.Cause(idleCtx), errNoProgress) {
		return withKind(switchboard.ErrUpstreamTimeout, fmt.Errorf("no answer or progress within %s: %w", limit, context.DeadlineExceeded))
	}
	if ctx.Err() == nil && errors.Is(context.Cause(idleCtx), errProgressCap) {
		return withKind(switchboard.ErrUpstreamTimeout, fmt.Errorf("no answer within %s, progress counted: %w", ProgressCap*limit, context.DeadlineExceeded))
	}
	err = c.classify(ctx, opCtx, ProgressCap*limit, err, rejected)
	if ctx.Err() == nil && errors.Is(err, switchboard.ErrUnavailable) {
		c.checkHealth()
	}
	return err
}

// withTask wraps err in a TaskError when the call ran as task.
func withTask(task *Task, err error) error {
	if task == nil {
		return err
	}
	return &TaskError{Task: *task, err: err}
}

// ProgressCap bounds how far progress notifications may extend a call: to
// this many times its timeout. Each notifications/progress the server sends
// for a call restarts its timeout, as does each status change of a call
// run as a task.
const ProgressCap = 10

// errProgressCap ends a call that reported progress but did not answer
// within ProgressCap times its timeout.
var errProgressCap = fmt.Errorf("no answer in time, progress counted: %w", context.DeadlineExceeded)

// noLimit is the limit of a request whose time is kept otherwise (a
// call's callClock).
const noLimit = 100 * 365 * 24 * time.Hour

// errNoProgress ends a call that neither answered nor reported progress
// within its timeout.
var errNoProgress = fmt.Errorf("no answer or progress in time: %w", context.DeadlineExceeded)

// callTool sends tools/call as a raw request, with an id of ours, so that a
// call whose context ends can be cancelled on every transport: mcp-go's
// client tells only stdio servers, and keeps the request id to itself.
// rejected reports an answer of the server (a JSON-RPC error, or a result
// that does not parse), as opposed to a failure to send or receive.
func (c *Conn) callTool(ctx context.Context, token, name string, args json.RawMessage) (res *mcp.CallToolResult, rejected bool, err error) {
	// The request id doubles as the progress token.
	req := transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      mcp.NewRequestId(token),
		Method:  string(mcp.MethodToolsCall),
		Params:  map[string]any{"name": name, "arguments": args, "_meta": map[string]any{"progressToken": token}},
	}
	resp, rejected, err := c.sendRounds(ctx, &req)
	if err != nil {
		if ctx.Err() != nil {
			c.cancelRequest(req.ID, context.Cause(ctx))
		}
		return nil, rejected, err
	}
	if resp.Error != nil {
		return nil, true, rpcError(resp.Error)
	}
	res, err = mcp.ParseCallToolResult(&resp.Result)
	if err != nil {
		return nil, true, fmt.Errorf("decode result: %w", err)
	}
	return res, false, nil
}

// cancelRequest tells the server to stop working on request id
// (notifications/cancelled), best effort and within a second: the caller
// has its answer already.
func (c *Conn) cancelRequest(id mcp.RequestId, cause error) {
	reason := "cancelled"
	if errors.Is(cause, context.DeadlineExceeded) {
		reason = "timed out"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), time.Second)
	defer cancel()
	err := c.client.GetTransport().SendNotification(ctx, mcp.JSONRPCNotification{
		JSONRPC: mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{
			Method: string(mcp.MethodNotificationCancelled),
			Params: mcp.NotificationParams{AdditionalFields: map[string]any{"requestId": id, "reason": reason}},
		},
	})
	if err != nil {
		c.log.Debug("could not tell the server a call was cancelled", "err", err)
	}
}

// objectArgs checks that args is a JSON object; empty or null means {}.
func objectArgs(args json.RawMessage) (json.RawMessage, error) {
	trimmed := strings.TrimSpace(string(args))
	if trimmed == "" || trimmed == "null" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid(args) {
		return nil, errors.New("arguments are not valid JSON")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("arguments are not a JSON object")
	}
	return args, nil
}
