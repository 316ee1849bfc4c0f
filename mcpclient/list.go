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
)

// listTools reads every page of tools/list with raw requests, not mcp-go's
// ListTools: that decodes into mcp.Tool, which fails the whole list on one
// malformed tool and re-encodes schemas, losing keywords it does not model.
// Here each schema stays the bytes the server sent, and a bad entry costs
// only itself.
func (c *Conn) listTools(ctx, opCtx context.Context, limit time.Duration) ([]Tool, error) {
	var tools []Tool
	names := map[string]bool{}
	cursors := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		if page == maxToolPages {
			return nil, withKind(switchboard.ErrInvalid, fmt.Errorf("tools/list: more than %d pages", maxToolPages))
		}
		var params any
		if cursor != "" {
			params = map[string]string{"cursor": cursor}
		}
		raw, rejected, err := c.request(opCtx, string(mcp.MethodToolsList), params)
		if err != nil {
			return nil, fmt.Errorf("tools/list: %w", c.classify(ctx, opCtx, limit, err, rejected))
		}
		var res struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor json.RawMessage   `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, withKind(switchboard.ErrInvalid, fmt.Errorf("tools/list: decode result: %w", err))
		}
		for i, entry := range res.Tools {
			t, err := decodeTool(entry)
			if err != nil {
				c.log.Warn("skipping a tool the mcp server listed", "page", page, "index", i, "err", err)
				continue
			}
			if err := c.badHeaderAnnotations(t); err != nil {
				c.log.Warn("skipping a tool with invalid x-mcp-header annotations", "tool", t.Name, "err", err)
				continue
			}
			if names[t.Name] {
				c.log.Warn("skipping a second tool of the same name", "tool", t.Name)
				continue
			}
			names[t.Name] = true
			t.TaskCalls = c.tasks.call
			tools = append(tools, t)
		}
		next, err := decodeCursor(res.NextCursor)
		if err != nil {
			return nil, withKind(switchboard.ErrInvalid, fmt.Errorf("tools/list: %w", err))
		}
		if next == "" {
			break
		}
		if cursors[next] {
			return nil, withKind(switchboard.ErrInvalid, fmt.Errorf("tools/list: cursor %q repeated", next))
		}
		cursors[next] = true
		cursor = next
	}
	if tools == nil {
		tools = []Tool{}
	}
	return tools, nil
}

// request sends one raw JSON-RPC request and returns its result; when ctx
// ends first, the server is told that the request is cancelled. rejected
// reports an error the server answered with (a JSON-RPC error), as opposed to
// a failure to send or receive.
func (c *Conn) request(ctx context.Context, method string, params any) (result json.RawMessage, rejected bool, err error) {
	// String ids cannot collide with mcp-go's own, which are integers. Those
	// of tools/list tell the frame filter to keep a list with a tool too
	// deep (see frames.go).
	prefix := "switchboard-"
	if method == string(mcp.MethodToolsList) {
		prefix = listIDPrefix
	}
	req := transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      mcp.NewRequestId(fmt.Sprintf("%s%d", prefix, c.reqID.Add(1))),
		Method:  method,
		Params:  params,
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
	return resp.Result, false, nil
}

// decodeTool reads one entry of a tools/list result. Only the name is
// required; fields of the wrong type are ignored, and the schemas are kept
// as sent for the catalog to judge.
func decodeTool(entry json.RawMessage) (Tool, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(entry, &fields); err != nil || fields == nil {
		return Tool{}, errors.New("tool entry is not a JSON object")
	}
	var t Tool
	if err := json.Unmarshal(fields["name"], &t.Name); err != nil || t.Name == "" {
		return Tool{}, errors.New("tool entry without a name")
	}
	t.Title = stringField(fields["title"])
	t.Description = stringField(fields["description"])
	t.InputSchema = fields["inputSchema"]
	t.OutputSchema = fields["outputSchema"]
	t.Icons = decodeIcons(fields["icons"])
	var exec map[string]json.RawMessage
	if json.Unmarshal(fields["execution"], &exec) == nil {
		t.TaskSupport = stringField(exec["taskSupport"])
	}
	var ann map[string]json.RawMessage
	if json.Unmarshal(fields["annotations"], &ann) == nil {
		t.Annotations = Annotations{
			ReadOnly:    boolField(ann["readOnlyHint"]),
			Destructive: boolField(ann["destructiveHint"]),
			Idempotent:  boolField(ann["idempotentHint"]),
			OpenWorld:   boolField(ann["openWorldHint"]),
		}
		if t.Title == "" {
			t.Title = stringField(ann["title"])
		}
	}
	return t, nil
}

// decodeCursor reads nextCursor: absent, null or "" end the list.
func decodeCursor(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("nextCursor %s is not a string", raw)
	}
	return s, nil
}

func stringField(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func boolField(raw json.RawMessage) *bool {
	var b bool
	if json.Unmarshal(raw, &b) != nil || string(raw) == "null" {
		return nil
	}
	return &b
}
