package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// The built-in tool that pages through a truncated tool result.
const (
	builtinServer      = "switchboard"
	readToolResultName = "read_tool_result"
	truncationMarker   = "[truncated: showing"
)

// BuiltinTools is how many tools a turn may offer the model beside its
// catalog's (read_tool_result, read_resource): a cap on the tools of one
// model request must keep room for them (tools.FleetOptions.ReservedTools).
const BuiltinTools = 2

var readToolResultDef = switchboard.ToolDefinition{
	Name:        readToolResultName,
	Description: "Read more of a tool result that was truncated. Give the call_id named in the truncation notice and the offset (in bytes) to read from.",
	Parameters: json.RawMessage(`{"type":"object","properties":{` +
		`"call_id":{"type":"string","description":"The call_id given in the truncation notice."},` +
		`"offset":{"type":"integer","minimum":0,"description":"Byte offset to read from."},` +
		`"limit":{"type":"integer","minimum":1,"description":"Bytes to read; at most the output budget."}},` +
		`"required":["call_id","offset"]}`),
}

// budget returns how many bytes of c's result the model sees at once: its
// catalog entry's budget (a tool no longer in the turn's catalog gets the
// default), or for read_resource its server's.
func (t *turn) budget(c switchboard.ToolCall) int {
	if c.Server == builtinServer && c.Tool == tools.ReadResourceName {
		var args struct {
			Server string `json:"server"`
		}
		_ = json.Unmarshal(c.Arguments, &args)
		return t.catalog.ResourceBudget(args.Server)
	}
	if e, ok := t.catalog.Lookup(c.ExposedName); ok {
		return e.OutputBudget()
	}
	return tools.DefaultOutputBudget
}

// truncate cuts s to at most budget bytes (on a character boundary) and
// appends a notice telling the model how to read the rest of ledger row
// callID. It reports whether it cut.
func truncate(s string, budget int, callID string) (string, bool) {
	if len(s) <= budget {
		return s, false
	}
	cut := runeBoundary(s, budget)
	return s[:cut] + fmt.Sprintf("\n\n%s %d of %d bytes. Call %s with call_id %q and offset %d to read more.]",
		truncationMarker, cut, len(s), readToolResultName, callID, cut), true
}

// runeBoundary returns the largest i <= n that does not split a character.
func runeBoundary(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// readToolResult runs the built-in read_tool_result: a window of a ledger
// row's full result, for the user's own calls only.
func (t *turn) readToolResult(ctx context.Context, c *switchboard.ToolCall) {
	start := time.Now()
	defer func() {
		c.Duration = time.Since(start)
		c.FinishedAt = start.Add(c.Duration)
		c.ResultSize = len(c.Result)
	}()
	fail := func(msg string) {
		c.Status, c.ErrorClass, c.Error = switchboard.CallFailed, switchboard.ErrorClassInvalid, msg
		c.Result = "error: " + msg
	}
	var args struct {
		CallID string `json:"call_id"`
		Offset int    `json:"offset"`
		Limit  int    `json:"limit"`
	}
	if err := json.Unmarshal(c.Arguments, &args); err != nil || args.CallID == "" {
		fail("arguments must be {\"call_id\": \"...\", \"offset\": 0}")
		return
	}
	target, err := t.o.store.GetToolCall(ctx, t.caller.UserID, args.CallID)
	if err != nil {
		fail(fmt.Sprintf("no tool result with call_id %q", args.CallID))
		return
	}
	full := tools.ResultText(target) // what the model read of it, whole
	budget := t.budget(target)
	if args.Limit <= 0 || args.Limit > budget {
		args.Limit = budget
	}
	if args.Offset < 0 || args.Offset > len(full) {
		fail(fmt.Sprintf("offset %d is outside the result (%d bytes)", args.Offset, len(full)))
		return
	}
	from := runeBoundary(full, args.Offset)
	to := runeBoundary(full, from+args.Limit)
	if to == from && from < len(full) { // a window smaller than one character
		_, size := utf8.DecodeRuneInString(full[from:])
		to = from + size
	}
	c.Result = full[from:to]
	if to < len(full) {
		c.Result += fmt.Sprintf("\n\n%s bytes %d-%d of %d. Call %s with call_id %q and offset %d to read more.]",
			truncationMarker, from, to, len(full), readToolResultName, args.CallID, to)
	}
	c.Status = switchboard.CallSucceeded
}
