package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Tasks (MCP 2025-11-25): a tool whose execution.taskSupport is "required"
// is called with a task parameter; the server answers at once with the task
// it created (CreateTaskResult), and the call follows it with tasks/get
// until it ends, then fetches its result with tasks/result. The call's
// timeout bounds the task as it bounds a plain call: each status change,
// like each progress notification, restarts it, up to ProgressCap times in
// all; a call whose context ends cancels its task with tasks/cancel.
//
// A tool whose taskSupport is "optional" is called as a plain request: the
// call waits for its result anyway, and a plain call is the one every
// server takes.
//
// The client declares no tasks capability: it is for the requests a party
// receives as tasks (sampling, elicitation, neither of which Switchboard
// answers), and neither the TypeScript SDK's servers nor mcp-go's ask for it
// before they run a tool call as a task. What a server must declare is
// tasks.requests.tools.call; without it, no tool of its is called as a task.

// Task is what a call run as a task last knew of it.
type Task struct {
	ID string
	// Status is working, input_required, completed, failed or cancelled.
	Status        string
	StatusMessage string
}

// TaskError is the error of a call that ran as a task and got no result:
// its context ended, it timed out, or its connection broke. Task says
// where the task was; Unwrap gives the error, with the meaning it has for a
// plain call.
type TaskError struct {
	Task Task
	err  error
}

func (e *TaskError) Error() string { return e.err.Error() }
func (e *TaskError) Unwrap() error { return e.err }

// TaskOf returns the task of a call that ran as one, from its error.
func TaskOf(err error) (Task, bool) {
	var te *TaskError
	if errors.As(err, &te) {
		return te.Task, true
	}
	return Task{}, false
}

// Polling bounds.
const (
	// defaultPollInterval is how often a task is polled when its server
	// suggests no interval.
	defaultPollInterval = time.Second
	// minPollInterval bounds how often a task is polled, whatever its
	// server suggests.
	minPollInterval = 10 * time.Millisecond
	// createGrace is how long a call whose context ended waits on for the
	// task it asked for, to cancel it: a task-augmented request is
	// cancelled with tasks/cancel, never notifications/cancelled, and that
	// needs the task's id.
	createGrace = time.Second
)

// taskCaps is what a server's initialize result says of tasks.
type taskCaps struct {
	call   bool // tasks.requests.tools.call: tool calls may be tasks
	cancel bool // tasks.cancel: tasks/cancel is supported
}

// serverTaskCaps reads the tasks capability of a server.
func serverTaskCaps(caps mcp.ServerCapabilities) taskCaps {
	t := caps.Tasks
	if t == nil {
		return taskCaps{}
	}
	call := t.Requests != nil && t.Requests.Tools != nil && t.Requests.Tools.Call != nil
	return taskCaps{call: call, cancel: t.Cancel != nil}
}

// runsAsTask reports whether tool name is called as a task: it must be,
// and its server takes tasks.
func (c *Conn) runsAsTask(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tools {
		if t.Name == name {
			return t.TaskSupport == "required" && t.TaskCalls
		}
	}
	return false
}

// callTask calls tool name as a task and follows it to its result. Each
// status change is signalled on progressed (which restarts the call's
// timeout). The task is nil if the server created none (it failed the call,
// or answered it at once as a plain one); rejected reports an answer of the
// server, as in callTool. When ctx ends before the task does, the task is
// cancelled.
func (c *Conn) callTask(ctx context.Context, token, name string, args json.RawMessage, limit time.Duration, progressed chan<- struct{}) (res *mcp.CallToolResult, task *Task, rejected bool, err error) {
	created, res, rejected, err := c.createTask(ctx, token, name, args, limit)
	if created == nil {
		return res, nil, rejected, err
	}
	task = &Task{ID: created.TaskId, Status: string(created.Status), StatusMessage: created.StatusMessage}
	if task.ID == "" {
		return nil, nil, true, errors.New("decode result: a task without an id")
	}
	if err == nil {
		updates := make(chan mcp.Task, 1)
		c.taskStatus.Store(task.ID, updates)
		defer c.taskStatus.Delete(task.ID)
		res, rejected, err = c.followTask(ctx, created, task, limit, updates, progressed)
	}
	if err != nil && !terminal(task.Status) && ctx.Err() != nil && c.ctx.Err() == nil {
		c.cancelTask(task)
	}
	return res, task, rejected, err
}

// createTask sends tools/call with a task parameter. It returns the task
// the server created, or the result if the server answered with one (a
// server that does not run the call as a task). If ctx ends first, it waits
// a little longer (createGrace) for the task, and returns it with ctx's
// error, for the caller to cancel.
func (c *Conn) createTask(ctx context.Context, token, name string, args json.RawMessage, limit time.Duration) (*mcp.Task, *mcp.CallToolResult, bool, error) {
	// The request id doubles as the progress token, which stays valid for
	// the task's lifetime.
	id := mcp.NewRequestId(token)
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopConn := context.AfterFunc(c.ctx, cancel)
	defer stopConn()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(createGrace, cancel) })
	defer stopGrace()
	// The server may forget the task once the call would have given up.
	ttl := (ProgressCap*limit + time.Minute).Milliseconds()
	resp, err := c.send(sendCtx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      id,
		Method:  string(mcp.MethodToolsCall),
		Params: map[string]any{"name": name, "arguments": args, "task": map[string]any{"ttl": ttl},
			"_meta": map[string]any{"progressToken": token}},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, false, context.Cause(ctx)
		}
		return nil, nil, false, err
	}
	if resp.Error != nil {
		return nil, nil, true, rpcError(resp.Error)
	}
	var created struct {
		Task *mcp.Task `json:"task"`
	}
	if err := json.Unmarshal(resp.Result, &created); err != nil {
		return nil, nil, true, fmt.Errorf("decode result: %w", err)
	}
	if created.Task == nil {
		// Not a task: the result itself.
		res, err := mcp.ParseCallToolResult(&resp.Result)
		if err != nil {
			return nil, nil, true, fmt.Errorf("decode result: %w", err)
		}
		return nil, res, false, nil
	}
	if ctx.Err() != nil {
		// Created after the call had ended.
		return created.Task, nil, false, context.Cause(ctx)
	}
	return created.Task, nil, false, nil
}

// followTask polls the task (tasks/get, at the server's pollInterval, but
// at least twice within the call's timeout limit, which would otherwise
// pass before anyone asked) and reads its status notifications until it
// ends, or needs input, then fetches its result. task is kept up to date.
func (c *Conn) followTask(ctx context.Context, last *mcp.Task, task *Task, limit time.Duration, updates <-chan mcp.Task, progressed chan<- struct{}) (*mcp.CallToolResult, bool, error) {
	update := func(t mcp.Task) {
		if string(t.Status) == task.Status && t.StatusMessage == task.StatusMessage {
			return
		}
		task.Status, task.StatusMessage = string(t.Status), t.StatusMessage
		select {
		case progressed <- struct{}{}:
		default: // one is pending already
		}
	}
	wait := func(t *mcp.Task) time.Duration { return min(pollInterval(t), max(limit/2, minPollInterval)) }
	timer := time.NewTimer(wait(last))
	defer timer.Stop()
	for !terminal(task.Status) && task.Status != string(mcp.TaskStatusInputRequired) {
		select {
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		case t := <-updates:
			// The full task, as tasks/get would say.
			update(t)
			continue
		case <-timer.C:
		}
		raw, rejected, err := c.request(ctx, string(mcp.MethodTasksGet), map[string]string{"taskId": task.ID})
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return nil, rejected, fmt.Errorf("tasks/get %s: %w", task.ID, err)
		}
		got, err := mcp.ParseGetTaskResult(&raw)
		if err != nil {
			return nil, true, fmt.Errorf("tasks/get %s: decode result: %w", task.ID, err)
		}
		update(got.Task)
		timer.Reset(wait(&got.Task))
	}
	// For a task that needs input, tasks/result is where the server asks
	// for it, and it answers when the task ends.
	raw, rejected, err := c.request(ctx, string(mcp.MethodTasksResult), map[string]string{"taskId": task.ID})
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, context.Cause(ctx)
		}
		if rejected && (task.Status == string(mcp.TaskStatusFailed) || task.Status == string(mcp.TaskStatusCancelled)) {
			// The task's own failure, as the underlying tools/call would
			// have answered it: data for the model.
			return taskFailure(task, err), false, nil
		}
		return nil, rejected, fmt.Errorf("tasks/result %s: %w", task.ID, err)
	}
	if !terminal(task.Status) {
		// tasks/result answers once the task has ended.
		task.Status = string(mcp.TaskStatusCompleted)
	}
	res, err := mcp.ParseCallToolResult(&raw)
	if err != nil {
		return nil, true, fmt.Errorf("tasks/result %s: decode result: %w", task.ID, err)
	}
	if task.Status == string(mcp.TaskStatusCancelled) && !res.IsError {
		return taskFailure(task, nil), false, nil
	}
	return res, false, nil
}

// taskFailure is the error result of a task that failed or was cancelled
// by its server, for the model.
func taskFailure(task *Task, err error) *mcp.CallToolResult {
	msg := "the task failed"
	if task.Status == string(mcp.TaskStatusCancelled) {
		msg = "the server cancelled the task"
	}
	switch {
	case task.StatusMessage != "":
		msg += ": " + task.StatusMessage
	case err != nil:
		msg += ": " + err.Error()
	}
	return mcp.NewToolResultError(msg)
}

// cancelTask asks the server to cancel the task (tasks/cancel), best effort
// and within a second, and records the status it answers with.
func (c *Conn) cancelTask(task *Task) {
	if !c.tasks.cancel {
		c.log.Debug("the mcp server cannot cancel tasks; leaving it to end by itself", "task", task.ID)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), time.Second)
	defer cancel()
	raw, _, err := c.request(ctx, string(mcp.MethodTasksCancel), map[string]string{"taskId": task.ID})
	if err != nil {
		c.log.Debug("could not cancel a task", "task", task.ID, "err", err)
		return
	}
	if got, err := mcp.ParseCancelTaskResult(&raw); err == nil && got.Status != "" {
		task.Status, task.StatusMessage = string(got.Status), got.StatusMessage
	}
}

// onTaskStatus hands a notifications/tasks/status to the call following
// the task, if any. It runs on the read loop: it never blocks, and keeps
// only the latest status.
func (c *Conn) onTaskStatus(n mcp.JSONRPCNotification) {
	b, err := json.Marshal(n.Params.AdditionalFields)
	if err != nil {
		return
	}
	var t mcp.Task
	if json.Unmarshal(b, &t) != nil || t.TaskId == "" || t.Status == "" {
		return
	}
	ch, ok := c.taskStatus.Load(t.TaskId)
	if !ok {
		return
	}
	updates := ch.(chan mcp.Task)
	for {
		select {
		case updates <- t:
			return
		default:
			select {
			case <-updates: // a staler status
			default:
			}
		}
	}
}

// pollInterval is the wait before the next tasks/get: the server's
// pollInterval, if it gave one.
func pollInterval(t *mcp.Task) time.Duration {
	if t.PollInterval == nil || *t.PollInterval <= 0 {
		return defaultPollInterval
	}
	const maxMS = int64(time.Hour / time.Millisecond)
	return max(time.Duration(min(*t.PollInterval, maxMS))*time.Millisecond, minPollInterval)
}

func terminal(status string) bool { return mcp.TaskStatus(status).IsTerminal() }
