package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

var openAIName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func TestExposedName(t *testing.T) {
	long := strings.Repeat("x", 80)
	tests := []struct{ server, tool, want string }{
		{"tasks", "add_task", "tasks__add_task"},
		{"my.server", "get/thing", "my_server__get_thing"},
		{"fs", "read-file", "fs__read-file"},
		{"", "", "____"},
		{"ünï", "tool", "__n____tool"}, // each byte outside the set becomes _
	}
	for _, tt := range tests {
		if got := tools.ExposedName(tt.server, tt.tool); got != tt.want {
			t.Errorf("ExposedName(%q, %q): got %q, want %q", tt.server, tt.tool, got, tt.want)
		}
	}
	a, b := tools.ExposedName("srv", long+"a"), tools.ExposedName("srv", long+"b")
	if a == b || len(a) != 64 || !openAIName.MatchString(a) || !openAIName.MatchString(b) {
		t.Errorf("long names: got %q and %q, want distinct valid 64-character names", a, b)
	}
}

func TestNormalizeSchema(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		hidden []string
		want   string
		err    string
	}{
		{"absent", ``, nil, `{"type":"object","properties":{}}`, ""},
		{"null", `null`, nil, `{"type":"object","properties":{}}`, ""},
		{"object without properties", `{"type":"object"}`, nil, `{"properties":{},"type":"object"}`, ""},
		{"no type", `{"properties":{"a":{"type":"string"}}}`, nil, `{"properties":{"a":{"type":"string"}},"type":"object"}`, ""},
		{"drops $schema", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{}}`, nil, `{"properties":{},"type":"object"}`, ""},
		{"array without items", `{"type":"object","properties":{"tags":{"type":"array"}}}`, nil, `{"properties":{"tags":{"items":{},"type":"array"}},"type":"object"}`, ""},
		{"nested object", `{"type":"object","properties":{"o":{"type":"object","properties":{"l":{"type":["array","null"]}}}}}`, nil,
			`{"properties":{"o":{"properties":{"l":{"items":{},"type":["array","null"]}},"type":"object"}},"type":"object"}`, ""},
		{"hides injected", `{"type":"object","properties":{"user_id":{"type":"string"},"title":{"type":"string"}},"required":["user_id","title"]}`, []string{"user_id"},
			`{"properties":{"title":{"type":"string"}},"required":["title"],"type":"object"}`, ""},
		{"only injected required", `{"type":"object","properties":{"user_id":{"type":"string"}},"required":["user_id"]}`, []string{"user_id"},
			`{"properties":{},"type":"object"}`, ""},
		{"big integers survive", `{"type":"object","properties":{"n":{"type":"integer","maximum":9007199254740993}}}`, nil,
			`{"properties":{"n":{"maximum":9007199254740993,"type":"integer"}},"type":"object"}`, ""},
		{"not an object", `[1]`, nil, "", "not an object"},
		{"string type", `{"type":"string"}`, nil, "", `type "string"`},
		{"invalid JSON", `{"type":`, nil, "", "not valid JSON"},
		{"properties not object", `{"type":"object","properties":[1]}`, nil, "", "properties is a JSON array"},
		{"property not schema", `{"type":"object","properties":{"a":3}}`, nil, "", "not a schema object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tools.NormalizeSchema(json.RawMessage(tt.in), tt.hidden)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %s, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// server is an in-process stand-in for a connected MCP server, for the
// catalog's own logic (naming, policies, routing, error mapping).
type server struct {
	name  string
	tools []mcpclient.Tool
	call  func(ctx context.Context, name string, args json.RawMessage) (*mcpclient.Result, error)
}

func (s *server) Name() string            { return s.name }
func (s *server) Tools() []mcpclient.Tool { return s.tools }
func (s *server) CallTool(ctx context.Context, name string, args json.RawMessage) (*mcpclient.Result, error) {
	return s.call(ctx, name, args)
}

func tool(name, schema string) mcpclient.Tool {
	return mcpclient.Tool{Name: name, Description: "does " + name, InputSchema: json.RawMessage(schema)}
}

func TestCatalog(t *testing.T) {
	var gotArgs json.RawMessage
	tasks := &server{name: "tasks", tools: []mcpclient.Tool{
		tool("add_task", `{"type":"object","properties":{"user_id":{"type":"string"},"title":{"type":"string"}},"required":["user_id","title"]}`),
		tool("broken", `{"type":"string"}`),
		tool("secret", `{}`),
	}, call: func(_ context.Context, name string, args json.RawMessage) (*mcpclient.Result, error) {
		gotArgs = args
		return &mcpclient.Result{Text: "ran " + name}, nil
	}}
	other := &server{name: "other", tools: []mcpclient.Tool{tool("echo", `{"type":"object","properties":{"m":{"type":"string"}}}`), tool("add", `{}`)},
		call: func(context.Context, string, json.RawMessage) (*mcpclient.Result, error) { return nil, nil }}
	c, err := tools.NewCatalog([]tools.Source{
		{Server: tools.Shared(tasks), Policy: tools.Policy{Inject: map[string]string{"user_id": "user_id"}, ExcludedTools: []string{"secret"}}},
		{Server: tools.Shared(other), Policy: tools.Policy{AllowedTools: []string{"echo"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range c.Definitions() {
		names = append(names, d.Name)
	}
	if diff := cmp.Diff([]string{"other__echo", "tasks__add_task"}, names); diff != "" {
		t.Errorf("exposed tools (-want +got):\n%s", diff)
	}
	if q := c.Quarantined(); len(q) != 1 || q[0].Tool != "broken" || !strings.Contains(q[0].Reason, "must be an object") {
		t.Errorf("quarantined: got %+v", q)
	}
	e, _ := c.Lookup("tasks__add_task")
	if strings.Contains(string(e.Definition.Parameters), "user_id") {
		t.Errorf("the model sees the injected argument: %s", e.Definition.Parameters)
	}

	// The model tries to act as someone else: the injected value wins.
	call := c.Prepare(switchboard.RequestedCall{ID: "c1", Name: "tasks__add_task", Arguments: `{"title":"milk","user_id":"mallory"}`},
		tools.Caller{UserID: "alice", ConversationID: "conv"})
	if call.Status != switchboard.CallRunning || call.Server != "tasks" || call.Tool != "add_task" {
		t.Fatalf("prepared call: got %+v", call)
	}
	c.Run(context.Background(), &call)
	if call.Status != switchboard.CallSucceeded || call.Result != "ran add_task" {
		t.Errorf("run: got %+v", call)
	}
	if string(gotArgs) != `{"title":"milk","user_id":"alice"}` {
		t.Errorf("server received %s, want user_id alice", gotArgs)
	}

	for _, bad := range []switchboard.RequestedCall{
		{ID: "c2", Name: "tasks__nope", Arguments: `{}`},
		{ID: "c3", Name: "tasks__add_task", Arguments: `[1,2]`},
		{ID: "c4", Name: "tasks__add_task", Arguments: `{"title":`},
	} {
		call := c.Prepare(bad, tools.Caller{UserID: "alice"})
		if call.Status != switchboard.CallFailed || call.ErrorClass != switchboard.ErrorClassInvalid || !json.Valid(call.Arguments) || !strings.HasPrefix(call.Result, "error: ") {
			t.Errorf("Prepare(%+v): got %+v, want a failed call with valid JSON arguments", bad, call)
		}
	}
}

func TestRunMapsFailures(t *testing.T) {
	tests := []struct {
		name      string
		result    *mcpclient.Result
		err       error
		timeout   time.Duration
		cancel    bool
		status    switchboard.ToolCallStatus
		class     string
		resultHas string
	}{
		{"tool error", &mcpclient.Result{Text: "no such task 7", IsError: true}, nil, 0, false, switchboard.CallFailed, switchboard.ErrorClassTool, "no such task 7"},
		{"rejected", nil, errors.Join(errors.New("invalid params"), switchboard.ErrInvalid), 0, false, switchboard.CallFailed, switchboard.ErrorClassInvalid, "invalid params"},
		{"transport", nil, errors.New("connection closed"), 0, false, switchboard.CallFailed, switchboard.ErrorClassTransport, "connection closed"},
		{"timeout", nil, nil, 20 * time.Millisecond, false, switchboard.CallTimedOut, switchboard.ErrorClassTimeout, "did not answer within"},
		{"cancelled", nil, nil, 0, true, switchboard.CallCancelled, switchboard.ErrorClassCancelled, "cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &server{name: "s", tools: []mcpclient.Tool{tool("t", `{}`)},
				call: func(ctx context.Context, _ string, _ json.RawMessage) (*mcpclient.Result, error) {
					if tt.result == nil && tt.err == nil {
						<-ctx.Done()
						return nil, ctx.Err()
					}
					return tt.result, tt.err
				}}
			c, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(srv), Policy: tools.Policy{Timeout: tt.timeout}}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			call := c.Prepare(switchboard.RequestedCall{ID: "x", Name: "s__t"}, tools.Caller{UserID: "u"})
			c.Run(ctx, &call)
			if call.Status != tt.status || call.ErrorClass != tt.class || !strings.Contains(call.Result, tt.resultHas) {
				t.Errorf("got status %s class %s result %q; want %s %s containing %q", call.Status, call.ErrorClass, call.Result, tt.status, tt.class, tt.resultHas)
			}
		})
	}
}

func TestCatalogRefusesCollisions(t *testing.T) {
	a := &server{name: "my.srv", tools: []mcpclient.Tool{tool("x", `{}`)}}
	b := &server{name: "my_srv", tools: []mcpclient.Tool{tool("y", `{}`)}}
	_, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(a)}, {Server: tools.Shared(b)}})
	if !errors.Is(err, switchboard.ErrConflict) || !strings.Contains(err.Error(), "my.srv") {
		t.Fatalf("got %v, want a conflict naming both servers", err)
	}
	same := &server{name: "s", tools: []mcpclient.Tool{tool("a.b", `{}`), tool("a_b", `{}`)}}
	c, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(same)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Entries()) != 1 || len(c.Quarantined()) != 1 {
		t.Errorf("same-server collision: got %d entries and %+v", len(c.Entries()), c.Quarantined())
	}
}

func TestCatalogLimit(t *testing.T) {
	// Server zeta comes first although it sorts last, and lists its tools
	// out of name order: the cut keeps the sources' order and each
	// server's own order, and a quarantined tool takes no place.
	zeta := &server{name: "zeta", tools: []mcpclient.Tool{tool("zz", `{}`), tool("bad", `{"type":"string"}`), tool("aa", `{}`), tool("mm", `{}`)}}
	alpha := &server{name: "alpha", tools: []mcpclient.Tool{tool("b", `{}`), tool("a", `{}`)}}
	c, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(zeta)}, {Server: tools.Shared(alpha)}})
	if err != nil {
		t.Fatal(err)
	}
	const reason = "over llm.max_tools (5): not sent to the model"
	left := func(names ...string) []switchboard.QuarantinedTool {
		var out []switchboard.QuarantinedTool
		for _, n := range names {
			server, tool, _ := strings.Cut(n, "/")
			out = append(out, switchboard.QuarantinedTool{Server: server, Tool: tool, Reason: reason})
		}
		return out
	}
	tests := []struct {
		n       int
		defs    []string // sorted by name, as the model sees them
		leftOut []switchboard.QuarantinedTool
	}{
		{-1, []string{"alpha__a", "alpha__b", "zeta__aa", "zeta__mm", "zeta__zz"}, nil},
		{5, []string{"alpha__a", "alpha__b", "zeta__aa", "zeta__mm", "zeta__zz"}, nil},
		{4, []string{"alpha__b", "zeta__aa", "zeta__mm", "zeta__zz"}, left("alpha/a")},
		{2, []string{"zeta__aa", "zeta__zz"}, left("zeta/mm", "alpha/b", "alpha/a")},
		{0, nil, left("zeta/zz", "zeta/aa", "zeta/mm", "alpha/b", "alpha/a")},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.n), func(t *testing.T) {
			l := c.Limit(tt.n, reason)
			var defs, entries, infos []string
			for _, d := range l.Definitions() {
				defs = append(defs, d.Name)
			}
			for _, e := range l.Entries() {
				entries = append(entries, e.ExposedName)
			}
			for _, i := range l.Infos() {
				infos = append(infos, i.Name)
			}
			if diff := cmp.Diff(tt.defs, defs); diff != "" {
				t.Errorf("definitions (-want +got):\n%s", diff)
			}
			if !slices.Equal(defs, entries) || !slices.Equal(defs, infos) {
				t.Errorf("entries %v and infos %v, want the definitions %v", entries, infos, defs)
			}
			if diff := cmp.Diff(tt.leftOut, l.LeftOut()); diff != "" {
				t.Errorf("left out (-want +got):\n%s", diff)
			}
			quarantined := append([]switchboard.QuarantinedTool{{Server: "zeta", Tool: "bad", Reason: c.Quarantined()[0].Reason}}, tt.leftOut...)
			if diff := cmp.Diff(quarantined, l.Quarantined()); diff != "" {
				t.Errorf("quarantined (-want +got):\n%s", diff)
			}
			// A tool left out is, to a model that asks for it anyway, an
			// unknown tool.
			for _, q := range tt.leftOut {
				name := tools.ExposedName(q.Server, q.Tool)
				if _, ok := l.Lookup(name); ok {
					t.Errorf("Lookup(%s) finds a tool left out", name)
				}
				call := l.Prepare(switchboard.RequestedCall{ID: "c", Name: name, Arguments: `{}`}, tools.Caller{UserID: "u"})
				if want := fmt.Sprintf("unknown tool %q", name); call.Status != switchboard.CallFailed ||
					call.ErrorClass != switchboard.ErrorClassInvalid || call.Error != want {
					t.Errorf("call of %s: got %s %s %q, want failed invalid %q", name, call.Status, call.ErrorClass, call.Error, want)
				}
			}
		})
	}
	if len(c.Definitions()) != 5 || len(c.LeftOut()) != 0 {
		t.Errorf("Limit changed the catalog it was called on: %d definitions, %d left out", len(c.Definitions()), len(c.LeftOut()))
	}
}
