package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// ReadResourceName is the built-in tool that reads a resource of a server
// (resources/read), offered while a server of the catalog has resources.
const ReadResourceName = "read_resource"

// resourceSource is a server of the catalog that declared resources.
type resourceSource struct {
	server  Server
	timeout time.Duration // its policy's
	budget  int
}

// ResourceServers returns the names of the servers that declared
// resources, sorted.
func (c *Catalog) ResourceServers() []string {
	return slices.Sorted(maps.Keys(c.resources))
}

// ReadResourceDefinition returns the definition of read_resource, naming
// the catalog's servers that have resources; false when none has.
func (c *Catalog) ReadResourceDefinition() (switchboard.ToolDefinition, bool) {
	names := c.ResourceServers()
	if len(names) == 0 {
		return switchboard.ToolDefinition{}, false
	}
	enum, _ := json.Marshal(names)
	return switchboard.ToolDefinition{
		Name: ReadResourceName,
		Description: "Read a resource of a connected server by its URI, such as one a tool result links to " +
			"(\"read it with read_resource\"). Servers with resources: " + strings.Join(names, ", ") + ".",
		Parameters: json.RawMessage(`{"type":"object","properties":{` +
			`"server":{"type":"string","enum":` + string(enum) + `,"description":"The server's name."},` +
			`"uri":{"type":"string","description":"The resource's URI."}},` +
			`"required":["server","uri"]}`),
	}, true
}

// ResourceBudget returns the output budget of the server's results, for
// a read of one of its resources.
func (c *Catalog) ResourceBudget(server string) int {
	if r, ok := c.resources[server]; ok {
		return r.budget
	}
	return DefaultOutputBudget
}

// ReadResource runs a prepared call of read_resource: it reads the
// resource named by the call's arguments ({"server", "uri"}) on the
// caller's session of the server (with the caller's credentials, where
// the server acts as its users), and fills in the call as Run does: text
// (text resources, and blobs of a text type) in Result, other blobs in
// Content.
func (c *Catalog) ReadResource(ctx context.Context, call *switchboard.ToolCall) {
	start := time.Now()
	var args struct {
		Server string `json:"server"`
		URI    string `json:"uri"`
	}
	if err := json.Unmarshal(call.Arguments, &args); err != nil || args.Server == "" || args.URI == "" {
		settle(ctx, call, start, nil, fmt.Errorf(`arguments must be {"server": "...", "uri": "..."}: %w`, switchboard.ErrInvalid), nil, "")
		return
	}
	r, ok := c.resources[args.Server]
	if !ok {
		settle(ctx, call, start, nil, fmt.Errorf("no server %q with resources; servers with resources: %s: %w",
			args.Server, strings.Join(c.ResourceServers(), ", "), switchboard.ErrInvalid), nil, "")
		return
	}
	caller := Caller{UserID: call.UserID, ConversationID: call.ConversationID}
	scope, key := r.server.Session(caller)
	call.SessionScope, call.SessionKey = string(scope), key
	readCtx, cancel := context.WithTimeout(ctx, r.timeout)
	res, err := r.server.ReadResource(readCtx, caller, args.URI)
	cancel()
	settle(ctx, call, start, res, err, nil, fmt.Sprintf("the server did not answer within %s", r.timeout))
}
