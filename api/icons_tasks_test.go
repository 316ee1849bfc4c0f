package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// iconServers reports one server with icons, for itself and a tool.
type iconServers struct{}

func (iconServers) Servers() []switchboard.ServerStatus {
	return []switchboard.ServerStatus{{Name: "drawn", Transport: "http", State: switchboard.ServerReady,
		Tools: []string{"drawn__pen", "drawn__plain"},
		Icons: []switchboard.Icon{{Src: "https://example.com/logo.png", MIMEType: "image/png", Sizes: []string{"48x48"}, Theme: "light"}},
		ToolIcons: map[string][]switchboard.Icon{
			"drawn__pen": {{Src: "data:image/png;base64,iVBORw0KGgo="}},
		}}}
}

func (iconServers) Reload(context.Context) error { return nil }

func TestIconsInTheAPI(t *testing.T) {
	// The icons servers declare reach the tools route (a tool's) and the
	// admin's servers (a server's and its tools').
	s := server.NewMCPServer("drawn", "1.0")
	s.AddTool(mcp.NewTool("pen", mcp.WithToolIcons(mcp.Icon{Src: "data:image/gif;base64,R0lGODlh", MIMEType: "image/gif"})),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("ok"), nil
		})
	s.AddTool(mcp.NewTool("plain"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	conn, err := mcpclient.Dial(t.Context(), mcpclient.Config{Name: "drawn", URL: ts.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), conn, iconServers{}, nil, tools.ApprovalPolicy{})

	type icon struct {
		Src      string   `json:"src"`
		MIMEType string   `json:"mime_type"`
		Sizes    []string `json:"sizes"`
		Theme    string   `json:"theme"`
	}
	var toolsReply struct {
		Tools []struct {
			Name  string `json:"name"`
			Icons []icon `json:"icons"`
		} `json:"tools"`
	}
	if resp := do(t, "GET", svc.url+"/api/alice/tools", token(t, "alice"), "", &toolsReply); resp.StatusCode != 200 {
		t.Fatalf("tools: %d", resp.StatusCode)
	}
	got := map[string][]icon{}
	for _, tl := range toolsReply.Tools {
		got[tl.Name] = tl.Icons
	}
	if diff := cmp.Diff(map[string][]icon{"drawn__pen": {{Src: "data:image/gif;base64,R0lGODlh", MIMEType: "image/gif"}}, "drawn__plain": nil}, got); diff != "" {
		t.Errorf("tools' icons (-want +got):\n%s", diff)
	}

	var servers struct {
		Servers []struct {
			Icons     []icon            `json:"icons"`
			ToolIcons map[string][]icon `json:"tool_icons"`
		} `json:"servers"`
	}
	if resp := do(t, "GET", svc.url+"/api/admin/servers", adminToken(t, "carol"), "", &servers); resp.StatusCode != 200 || len(servers.Servers) != 1 {
		t.Fatalf("servers: %d %+v", resp.StatusCode, servers)
	}
	if diff := cmp.Diff([]icon{{Src: "https://example.com/logo.png", MIMEType: "image/png", Sizes: []string{"48x48"}, Theme: "light"}}, servers.Servers[0].Icons); diff != "" {
		t.Errorf("the server's icons (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]icon{"drawn__pen": {{Src: "data:image/png;base64,iVBORw0KGgo="}}}, servers.Servers[0].ToolIcons); diff != "" {
		t.Errorf("its tools' icons (-want +got):\n%s", diff)
	}
}

func TestAdminToolCallsShowTheirTask(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			ctx := context.Background()
			ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "research"}}
			if _, err := st.BeginTurn(ctx, &ts); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			u := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted, FinishedAt: now},
				ToolCalls: []switchboard.ToolCall{
					{CallID: "c1", Server: "everything", Tool: "simulate-research-query", ExposedName: "everything__simulate-research-query",
						Arguments: json.RawMessage(`{}`), Status: switchboard.CallCancelled, ErrorClass: switchboard.ErrorClassCancelled,
						StartedAt: now.Add(-time.Second), FinishedAt: now, TaskID: "task-7", TaskStatus: "cancelled"},
					{CallID: "c2", Server: "everything", Tool: "echo", ExposedName: "everything__echo",
						Arguments: json.RawMessage(`{}`), Status: switchboard.CallSucceeded, StartedAt: now, FinishedAt: now},
				}}
			if err := st.SaveTurn(ctx, &u); err != nil {
				t.Fatal(err)
			}
			var list struct {
				ToolCalls []map[string]any `json:"tool_calls"`
			}
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls", adminToken(t, "carol"), "", &list); resp.StatusCode != http.StatusOK || len(list.ToolCalls) != 2 {
				t.Fatalf("list: %d %+v", resp.StatusCode, list)
			}
			for _, c := range list.ToolCalls {
				switch c["tool"] {
				case "simulate-research-query":
					if c["task_id"] != "task-7" || c["task_status"] != "cancelled" {
						t.Errorf("the task's row: %v", c)
					}
				default:
					if _, ok := c["task_id"]; ok {
						t.Errorf("a plain call's row names a task: %v", c)
					}
				}
			}
			var detail struct {
				ToolCall map[string]any `json:"tool_call"`
			}
			id := u.ToolCalls[0].ID
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls/"+id, adminToken(t, "carol"), "", &detail); resp.StatusCode != 200 ||
				detail.ToolCall["task_id"] != "task-7" || detail.ToolCall["task_status"] != "cancelled" {
				t.Errorf("detail: %d %v", resp.StatusCode, detail.ToolCall)
			}
		})
	}
}

func TestAdminConsoleMayShowHTTPSIcons(t *testing.T) {
	// Only the admin console shows server icons from their https: URLs;
	// the chat page keeps images to this origin, data: URLs and blob: URLs
	// (tool results' images, read with the token).
	svc := newService(t, store.NewMemory(), nil, nil)
	for path, want := range map[string]string{"/admin": "img-src https: 'self' data: blob:;", "/": "img-src 'self' data: blob:;"} {
		resp, err := http.Get(svc.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, want) || strings.Contains(csp, "http:") {
			t.Errorf("%s: Content-Security-Policy %q, want %q and no http:", path, csp, want)
		}
	}
}
