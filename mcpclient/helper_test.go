//go:build unix

package mcpclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// The test binary doubles as a hand-written MCP server over stdio, a real
// process whose every byte the tests control: it lists malformed tools,
// pages its list, stalls, crashes, and exits if it is ever sent
// server/discover. TestMain runs it when helperEnv is set to a mode:
//
//	raw        answer as described in helperServer.handle
//	mute       read requests, answer none (an initialize that never ends)
//	stubborn   like raw, but ignore SIGTERM and stdin EOF
//	flaky      like raw, but exit once it has listed its tools
//	deeplist   like raw, but its first page lists a tool whose schema
//	           nests 5,000 levels deep
const helperEnv = "MCPCLIENT_TEST_HELPER"

// helperStderrEnv asks the helper to write that many numbered lines to
// stderr at start.
const helperStderrEnv = "MCPCLIENT_TEST_HELPER_STDERR_LINES"

// Tool list pages of the helper. Entries 2 and 3 of page 1 cannot be read;
// the schemas carry keywords and spacing that a decode-encode round trip
// would lose.
const (
	helperEchoSchema = `{"type":"object", "properties":{"x":{"type":"string","pattern":"^a+$"}},"$defs":{"n":{"type":"integer"}},"unevaluatedProperties":false, "x-vendor":[1,2]}`
	helperPage1      = `{"tools":[` +
		`{"name":"echo","description":"Echoes its arguments.","inputSchema":` + helperEchoSchema + `,"annotations":{"title":"Echo it","readOnlyHint":true,"destructiveHint":"yes","openWorldHint":null}},` +
		`{"name":42,"inputSchema":{}},` +
		`"just a string",` +
		`{"name":"weird_schema","title":"Weird","inputSchema":"not a schema","outputSchema":{"type":"object"}}` +
		`],"nextCursor":"page 2"}`
	helperPage2 = `{"tools":[` +
		`{"name":"slow","inputSchema":{"type":"object"}},` +
		`{"name":"crash","inputSchema":{"type":"object"}},` +
		`{"name":"mixed","inputSchema":{"type":"object"}},` +
		`{"name":"fail","inputSchema":{"type":"object"}},` +
		`{"name":"changed","inputSchema":{"type":"object"}},` +
		`{"name":"bad_result","inputSchema":{"type":"object"}},` +
		`{"name":"env","inputSchema":{"type":"object"}},` +
		`{"name":"echo","description":"a second echo","inputSchema":{"type":"object"}}` +
		`%s]}`
	helperAdded = `,{"name":"added","inputSchema":{"type":"object"}}`
	// helperMixedResult has every kind of content part, and structured
	// content with spacing to keep.
	helperMixedResult = `{"content":[` +
		`{"type":"text","text":"first"},` +
		`{"type":"image","data":"iVBORw0KGgo=","mimeType":"image/png"},` +
		`{"type":"audio","data":"UklGRg==","mimeType":"audio/wav"},` +
		`{"type":"resource_link","uri":"file:///a.txt","name":"a.txt","mimeType":"text/plain"},` +
		`{"type":"resource","resource":{"uri":"file:///b.txt","text":"inside b"}},` +
		`{"type":"resource","resource":{"uri":"file:///c.bin","mimeType":"application/octet-stream","blob":"AAECAw=="}},` +
		`{"type":"resource","resource":{"uri":"file:///d.json","mimeType":"application/json; charset=utf-8","blob":"eyJkIjoxfQ"}},` +
		`{"type":"resource","resource":{"uri":"file:///e.txt","mimeType":"text/plain","blob":"/w=="}},` +
		`{"type":"image","data":"not base64!","mimeType":"image/png"},` +
		`{"type":"text","text":"last"}` +
		`],"structuredContent":{"k": [1, 2], "s":"x"}}`
)

type helperServer struct {
	mu       sync.Mutex                 // serialises stdout
	asks     map[string]json.RawMessage // our request id -> the call waiting for its answer
	askN     int
	added    bool
	flaky    bool
	deepList bool
}

func runHelper(mode string) {
	if n := os.Getenv(helperStderrEnv); n != "" {
		var count int
		fmt.Sscan(n, &count)
		for i := range count {
			fmt.Fprintf(os.Stderr, "line %d\n", i)
		}
	}
	if strings.HasPrefix(mode, "mcptasks") {
		runTaskHelper(mode) // taskhelper_test.go
		return
	}
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	}
	h := &helperServer{flaky: mode == "flaky", deepList: mode == "deeplist"}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		if mode == "mute" {
			continue
		}
		h.handle(in.Bytes())
	}
	fmt.Fprintln(os.Stderr, "helper: stdin ended")
	if mode == "stubborn" {
		select {} // until SIGKILL
	}
}

func (h *helperServer) write(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	os.Stdout.WriteString(s + "\n")
}

func (h *helperServer) reply(id json.RawMessage, result string) {
	h.write(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":` + result + `}`)
}

func (h *helperServer) fail(id json.RawMessage, code int, msg string) {
	b, _ := json.Marshal(msg)
	h.write(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s}}`, id, code, b))
}

func (h *helperServer) handle(line []byte) {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		fmt.Fprintf(os.Stderr, "helper: bad line %q\n", line)
		return
	}
	if msg.Method == "" && msg.ID != nil {
		h.answered(msg.ID, line)
		return
	}
	var params struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Cursor          string          `json:"cursor"`
		Name            string          `json:"name"`
		Arguments       json.RawMessage `json:"arguments"`
		RequestID       json.RawMessage `json:"requestId"`
	}
	json.Unmarshal(msg.Params, &params)

	switch msg.Method {
	case "server/discover":
		// Like servers that exit on a method they do not know.
		fmt.Fprintln(os.Stderr, "helper: got server/discover, exiting")
		os.Exit(2)
	case "initialize":
		h.reply(msg.ID, fmt.Sprintf(`{"protocolVersion":%q,"capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"helper","version":"1.0"}}`, params.ProtocolVersion))
	case "notifications/initialized":
	case "notifications/cancelled":
		fmt.Fprintf(os.Stderr, "helper: cancelled %s\n", params.RequestID)
	case "notifications/roots/list_changed":
		fmt.Fprintln(os.Stderr, "helper: roots changed")
	case "tools/list":
		switch params.Cursor {
		case "":
			page := helperPage1
			if h.deepList {
				deep := strings.Repeat(`{"type":"object","properties":{"a":`, 2500) + `{}` + strings.Repeat(`}}`, 2500)
				page = strings.Replace(page, `{"tools":[`, `{"tools":[{"name":"deep","inputSchema":`+deep+`},`, 1)
			}
			h.reply(msg.ID, page)
		case "page 2":
			added := ""
			if h.added {
				added = helperAdded
			}
			h.reply(msg.ID, fmt.Sprintf(helperPage2, added))
			if h.flaky {
				fmt.Fprintln(os.Stderr, "helper: flaky, exiting after the list")
				os.Exit(4)
			}
		default:
			h.fail(msg.ID, -32602, "bad cursor")
		}
	case "tools/call":
		h.call(msg.ID, params.Name, params.Arguments)
	default:
		if msg.ID != nil {
			h.fail(msg.ID, -32601, "method not found: "+msg.Method)
		}
	}
}

// answered answers the call that asked the client with id with the
// client's answer.
func (h *helperServer) answered(id json.RawMessage, line []byte) {
	call, ok := h.asks[string(id)]
	if !ok {
		fmt.Fprintf(os.Stderr, "helper: an answer to no request: %s\n", line)
		return
	}
	delete(h.asks, string(id))
	b, _ := json.Marshal(string(line))
	h.reply(call, `{"content":[{"type":"text","text":`+string(b)+`}]}`)
}

func (h *helperServer) call(id json.RawMessage, name string, args json.RawMessage) {
	text := func(s string) string {
		b, _ := json.Marshal(s)
		return `{"content":[{"type":"text","text":` + string(b) + `}]}`
	}
	switch name {
	case "echo":
		h.reply(id, `{"content":[{"type":"text","text":"echo"}],"structuredContent":{"args":`+string(args)+`}}`)
	case "slow":
		fmt.Fprintf(os.Stderr, "helper: slow call %s\n", id) // and no answer
	case "ask":
		// Asks the client what the arguments say ({"method", "params"})
		// and answers the call with the client's answer, as it came.
		var a struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		json.Unmarshal(args, &a)
		if a.Params == nil {
			a.Params = json.RawMessage("{}")
		}
		h.askN++
		askID := fmt.Sprintf(`"helper-ask-%d"`, h.askN)
		if h.asks == nil {
			h.asks = map[string]json.RawMessage{}
		}
		h.asks[askID] = id
		h.write(`{"jsonrpc":"2.0","id":` + askID + `,"method":"` + a.Method + `","params":` + string(a.Params) + `}`)
	case "crash":
		fmt.Fprintln(os.Stderr, "helper: crashing")
		os.Exit(3)
	case "mixed":
		h.reply(id, helperMixedResult)
	case "fail":
		h.reply(id, `{"content":[{"type":"text","text":"it broke"}],"isError":true}`)
	case "changed":
		h.added = true
		h.write(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
		h.reply(id, text("changed"))
	case "huge":
		// An answer of about n bytes, its id last, as the TypeScript SDK
		// writes them.
		var a struct{ Bytes int }
		json.Unmarshal(args, &a)
		h.mu.Lock()
		w := bufio.NewWriterSize(os.Stdout, 1<<16)
		w.WriteString(`{"result":{"content":[{"type":"text","text":"`)
		chunk := []byte(strings.Repeat("x", 1<<16))
		for left := a.Bytes; left > 0; left -= len(chunk) {
			w.Write(chunk[:min(len(chunk), left)])
		}
		w.WriteString(`"}]},"jsonrpc":"2.0","id":` + string(id) + "}\n")
		w.Flush()
		h.mu.Unlock()
	case "garbage":
		// A line of n bytes that is not JSON: it answers nothing we can tell.
		var a struct{ Bytes int }
		json.Unmarshal(args, &a)
		h.mu.Lock()
		w := bufio.NewWriterSize(os.Stdout, 1<<16)
		chunk := []byte(strings.Repeat("g", 1<<16))
		for left := a.Bytes; left > 0; left -= len(chunk) {
			w.Write(chunk[:min(len(chunk), left)])
		}
		w.WriteString("\n")
		w.Flush()
		h.mu.Unlock()
	case "deep":
		var a struct{ Levels int }
		json.Unmarshal(args, &a)
		h.reply(id, `{"content":[{"type":"text","text":"deep"}],"structuredContent":`+strings.Repeat(`{"a":`, a.Levels)+`1`+strings.Repeat(`}`, a.Levels)+`}`)
	case "bad_result":
		h.reply(id, `{"nothing":"here"}`)
	case "env":
		h.reply(id, text(os.Getenv("MCPCLIENT_TEST_SECRET")+"|"+strings.Join(os.Args[1:], " ")+"|"+os.Getenv("SWITCHBOARD_CANARY")+"|"+os.Getenv("PATH")))
	default:
		h.fail(id, -32602, "unknown tool: "+name)
	}
}
