// Command modernmcp is a test MCP server built on the official go-sdk,
// limited by default to protocol version 2026-07-28 (the modern era: no
// initialize handshake, per-request _meta). It serves stdio, or streamable
// HTTP (stateless, as the modern era requires) with -http.
//
// Its tools: echo returns its text; meta returns what the request carried
// (the _meta keys and the Mcp-Method and Mcp-Name headers); region returns
// the Mcp-Param-Region header its x-mcp-header argument asks for; grow adds
// the tool extra, so the server sends notifications/tools/list_changed to
// clients subscribed with subscriptions/listen; greet asks the user's
// name with an input_required result before it greets; greetings counts
// the calls of greet that finished with an answer; haiku asks the
// client's model for a poem with an input_required result; plan lets the
// client's model use one of its tools (sampling with tools).
//
// It lives in a module of its own under testdata so that the service never
// links the go-sdk.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoIn struct {
	Text string `json:"text"`
}

type planIn struct {
	Tool string `json:"tool,omitempty"`
}

type greetIn struct {
	Greeting string `json:"greeting,omitempty"`
}

type metaOut struct {
	ProtocolVersion    string         `json:"protocolVersion"`
	ClientInfo         any            `json:"clientInfo"`
	ClientCapabilities any            `json:"clientCapabilities"`
	Headers            map[string]any `json:"headers"`
}

func main() {
	var greeted atomic.Int64
	addr := flag.String("http", "", "serve streamable HTTP on this address (host:port; :0 picks a port, printed on stdout)")
	versions := flag.String("versions", "2026-07-28", "comma-separated protocol versions to support")
	flag.Parse()

	server := mcp.NewServer(&mcp.Implementation{Name: "modernmcp", Version: "1.2.3"}, &mcp.ServerOptions{
		SupportedProtocolVersions: strings.Split(*versions, ","),
		Capabilities:              &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}},
	})
	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "Returns its text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Text}}}, nil, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "meta", Description: "Returns what the request carried."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, metaOut, error) {
			m := req.Params.GetMeta()
			out := metaOut{
				ProtocolVersion:    fmt.Sprint(m["io.modelcontextprotocol/protocolVersion"]),
				ClientInfo:         m["io.modelcontextprotocol/clientInfo"],
				ClientCapabilities: m["io.modelcontextprotocol/clientCapabilities"],
				Headers:            map[string]any{},
			}
			if req.Extra != nil && req.Extra.Header != nil {
				out.Headers["Mcp-Method"] = req.Extra.Header.Get("Mcp-Method")
				out.Headers["Mcp-Name"] = req.Extra.Header.Get("Mcp-Name")
			}
			return nil, out, nil
		})
	// region's argument is marked x-mcp-header: over HTTP the go-sdk
	// refuses a call whose Mcp-Param-Region header does not mirror it.
	server.AddTool(&mcp.Tool{Name: "region", Description: "Returns the Mcp-Param-Region header it got.",
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{
			"region": map[string]any{"type": "string", "x-mcp-header": "Region"}}}},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			got := ""
			if req.Extra != nil && req.Extra.Header != nil {
				got = req.Extra.Header.Get("Mcp-Param-Region")
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "header: " + got}}}, nil
		})
	// ask asks the caller's name the modern way: an input_required result
	// with an elicitation, answered by the call sent again with
	// inputResponses and the requestState echoed.
	server.AddTool(&mcp.Tool{Name: "ask", Description: "Asks your name.", InputSchema: map[string]any{"type": "object"}},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if r, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult); ok {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{
					Text: fmt.Sprintf("%s: %v (state %s)", r.Action, r.Content["name"], req.Params.RequestState)}}}, nil
			}
			return &mcp.CallToolResult{RequestState: "asked-once", InputRequests: mcp.InputRequestMap{
				"name": &mcp.ElicitParams{Mode: "form", Message: "Your name?", RequestedSchema: map[string]any{
					"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}, "required": []string{"name"}}},
			}}, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "grow", Description: "Adds the tool extra."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			mcp.AddTool(server, &mcp.Tool{Name: "extra", Description: "Added by grow."},
				func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "extra"}}}, nil, nil
				})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "grown"}}}, nil, nil
		})

	// greet asks the user's name the modern way (MCP 2026-07-28's multi
	// round-trip requests): its first call answers input_required with an
	// elicitation and a requestState carrying the greeting; the call made
	// again with the answer in inputResponses and that state greets, or
	// says how the user refused.
	mcp.AddTool(server, &mcp.Tool{Name: "greet", Description: "Asks the user's name, then greets them."},
		func(_ context.Context, req *mcp.CallToolRequest, in greetIn) (*mcp.CallToolResult, any, error) {
			greeting := in.Greeting
			if greeting == "" {
				greeting = "hello"
			}
			if len(req.Params.InputResponses) == 0 {
				return &mcp.CallToolResult{
					InputRequests: mcp.InputRequestMap{"name": &mcp.ElicitParams{Mode: "form", Message: "What is your name?",
						RequestedSchema: map[string]any{"type": "object", "required": []any{"name"},
							"properties": map[string]any{"name": map[string]any{"type": "string", "minLength": 1}}}}},
					RequestState: "greet:" + greeting,
				}, nil, nil
			}
			if req.Params.RequestState != "greet:"+greeting {
				return nil, nil, fmt.Errorf("requestState %q, want %q", req.Params.RequestState, "greet:"+greeting)
			}
			res, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult)
			if !ok {
				return nil, nil, fmt.Errorf("no elicitation answer under name: %T", req.Params.InputResponses["name"])
			}
			greeted.Add(1)
			text := "no name (" + res.Action + ")"
			if res.Action == "accept" {
				text = fmt.Sprintf("%s, %v", greeting, res.Content["name"])
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})

	// haiku asks the client's model for a poem the same way: a
	// sampling/createMessage in inputRequests, answered in inputResponses.
	mcp.AddTool(server, &mcp.Tool{Name: "haiku", Description: "Asks the client's model for a haiku."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if len(req.Params.InputResponses) == 0 {
				return &mcp.CallToolResult{
					InputRequests: mcp.InputRequestMap{"poem": &mcp.CreateMessageParams{MaxTokens: 100,
						SystemPrompt: "You are modernmcp, a test server.",
						Messages:     []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "write a haiku"}}}}},
					RequestState: "haiku",
				}, nil, nil
			}
			res, ok := req.Params.InputResponses["poem"].(*mcp.CreateMessageWithToolsResult)
			if !ok || req.Params.RequestState != "haiku" {
				return nil, nil, fmt.Errorf("no sampling answer under poem (%T) or state %q", req.Params.InputResponses["poem"], req.Params.RequestState)
			}
			text := ""
			for _, c := range res.Content {
				if t, ok := c.(*mcp.TextContent); ok {
					text += t.Text
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sampled: " + text}}}, nil, nil
		})
	// plan lets the client's model use one of this server's tools through
	// sampling with tools (MCP 2025-11-25): the first round offers the
	// tool (echo, or the one its argument names) in a sampling request;
	// when the model asks for it, the server runs it itself (echo's way)
	// and sends the result in a second round, whose text it returns.
	mcp.AddTool(server, &mcp.Tool{Name: "plan", Description: "Lets the client's model use a tool of this server."},
		func(_ context.Context, req *mcp.CallToolRequest, in planIn) (*mcp.CallToolResult, any, error) {
			tool := in.Tool
			if tool == "" {
				tool = "echo"
			}
			offered := []*mcp.Tool{{Name: tool, Description: "Returns its text.", InputSchema: map[string]any{"type": "object",
				"properties": map[string]any{"text": map[string]any{"type": "string"}}}}}
			ask := &mcp.SamplingMessageV2{Role: "user", Content: []mcp.Content{&mcp.TextContent{Text: "say hi through the tool"}}}
			switch req.Params.RequestState {
			case "":
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"step1": &mcp.CreateMessageWithToolsParams{MaxTokens: 100,
					SystemPrompt: "You are modernmcp, planning.", Messages: []*mcp.SamplingMessageV2{ask}, Tools: offered,
					ToolChoice: &mcp.ToolChoice{Mode: "auto"}}}, RequestState: "plan:1"}, nil, nil
			case "plan:1":
				res, ok := req.Params.InputResponses["step1"].(*mcp.CreateMessageWithToolsResult)
				if !ok {
					return nil, nil, fmt.Errorf("no sampling answer under step1: %T", req.Params.InputResponses["step1"])
				}
				var use *mcp.ToolUseContent
				for _, c := range res.Content {
					if u, ok := c.(*mcp.ToolUseContent); ok {
						use = u
					}
				}
				if use == nil || res.StopReason != "toolUse" || use.Name != tool {
					return nil, nil, fmt.Errorf("the model did not use %s: stopReason %q", tool, res.StopReason)
				}
				out := fmt.Sprintf("echo: %v", use.Input["text"])
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"step2": &mcp.CreateMessageWithToolsParams{MaxTokens: 100,
					SystemPrompt: "You are modernmcp, planning.", Tools: offered, Messages: []*mcp.SamplingMessageV2{ask,
						{Role: "assistant", Content: res.Content},
						{Role: "user", Content: []mcp.Content{&mcp.ToolResultContent{ToolUseID: use.ID, Content: []mcp.Content{&mcp.TextContent{Text: out}}}}},
					}}}, RequestState: "plan:2"}, nil, nil
			case "plan:2":
				res, ok := req.Params.InputResponses["step2"].(*mcp.CreateMessageWithToolsResult)
				if !ok {
					return nil, nil, fmt.Errorf("no sampling answer under step2: %T", req.Params.InputResponses["step2"])
				}
				text := ""
				for _, c := range res.Content {
					if t, ok := c.(*mcp.TextContent); ok {
						text += t.Text
					}
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "planned: " + text}}}, nil, nil
			}
			return nil, nil, fmt.Errorf("unknown requestState %q", req.Params.RequestState)
		})
	mcp.AddTool(server, &mcp.Tool{Name: "greetings", Description: "Returns how many calls of greet finished with an answer."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(greeted.Load())}}}, nil, nil
		})

	if *addr == "" {
		if err := server.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			log.Fatal(err)
		}
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "http://%s/mcp\n", ln.Addr())
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true})
	mux := http.NewServeMux()
	mux.Handle("/mcp", handler)
	log.Fatal(http.Serve(ln, mux))
}
