package mcpclient

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
)

// The protocol eras against servers that speak only MCP 2026-07-28: the
// go-sdk's (testdata/modernmcp, a module of its own so that nothing of ours
// links the go-sdk).

// modernStdio returns the Config of modernmcp over stdio.
func modernStdio(t testing.TB, protocol string, args ...string) Config {
	return Config{Name: "modern", Command: mcptest.ModernBin(t), Args: args, Protocol: protocol}
}

// modernOver returns the Config of modernmcp over transport (stdio or
// http) with protocol.
func modernOver(t testing.TB, transport, protocol string) Config {
	if transport == "http" {
		return Config{Name: "modern", URL: mcptest.StartModernHTTP(t), Protocol: protocol}
	}
	return modernStdio(t, protocol)
}

func TestModernOnlyServer(t *testing.T) {
	for _, transport := range []string{"stdio", "http"} {
		for _, protocol := range []string{"auto", "modern"} {
			t.Run(transport+"/"+protocol, func(t *testing.T) {
				cfg := modernOver(t, transport, protocol)
				changed := make(chan struct{}, 1)
				eras := NewEras()
				c := dial(t, cfg, &Options{Eras: eras, ClientName: "switchboard-test", ClientVersion: "9.9",
					OnToolsChanged: func() {
						select {
						case changed <- struct{}{}:
						default:
						}
					}})
				// Over stdio auto sends initialize, which the go-sdk
				// (v1.8.0) answers with 2025-11-25 even when limited to
				// 2026-07-28, and serves: no announcement, so auto stays
				// on the legacy era there.
				wantEra, wantVersion := EraModern, "2026-07-28"
				if transport == "stdio" && protocol == "auto" {
					wantEra, wantVersion = EraLegacy, "2025-11-25"
				}
				p := c.Protocol()
				if p.Era != wantEra || p.Version != wantVersion || p.ServerName != "modernmcp" || p.ServerVersion != "1.2.3" ||
					!strings.Contains(string(p.Capabilities), `"tools":{"listChanged":true}`) {
					t.Errorf("Protocol() = %+v (capabilities %s), want %s %s of modernmcp 1.2.3 with tools", p, p.Capabilities, wantEra, wantVersion)
				}
				if protocol == "auto" {
					if got := eras.Era(cfg); got != wantEra {
						t.Errorf("Eras remember %q for the server, want %q", got, wantEra)
					}
				}

				res, err := callJSON(t, c, "echo", map[string]string{"text": "hi"})
				if err != nil || res.Text != "echo: hi" {
					t.Fatalf("echo: %+v, %v; want echo: hi", res, err)
				}
				// The raw tools/call carries the modern _meta (and the
				// headers over HTTP: the go-sdk refuses a request without
				// them).
				res, err = callJSON(t, c, "meta", map[string]any{})
				if err != nil {
					t.Fatalf("meta: %v", err)
				}
				var meta struct {
					ProtocolVersion    string            `json:"protocolVersion"`
					ClientInfo         map[string]string `json:"clientInfo"`
					ClientCapabilities map[string]any    `json:"clientCapabilities"`
					Headers            map[string]string `json:"headers"`
				}
				if err := json.Unmarshal(res.Structured, &meta); err != nil {
					t.Fatalf("meta result %s: %v", res.Structured, err)
				}
				if wantEra == EraModern && (meta.ProtocolVersion != "2026-07-28" || meta.ClientInfo["name"] != "switchboard-test" ||
					meta.ClientInfo["version"] != "9.9" || meta.ClientCapabilities == nil) {
					t.Errorf("the server read _meta %+v, want protocol version 2026-07-28, our client info and capabilities", meta)
				}
				if wantEra == EraModern && transport == "http" && (meta.Headers["Mcp-Method"] != "tools/call" || meta.Headers["Mcp-Name"] != "meta") {
					t.Errorf("the server read headers %v, want Mcp-Method tools/call and Mcp-Name meta", meta.Headers)
				}

				// An argument marked x-mcp-header is mirrored in its header
				// (the go-sdk checks it over HTTP).
				res, err = callJSON(t, c, "region", map[string]string{"region": "eu-west"})
				if err != nil || res.IsError {
					t.Fatalf("region: %+v, %v", res, err)
				}
				if want := "header: eu-west"; wantEra == EraModern && transport == "http" && res.Text != want {
					t.Errorf("region: %q, want %q", res.Text, want)
				}

				// A list change reaches us on subscriptions/listen.
				if _, err := callJSON(t, c, "grow", map[string]any{}); err != nil {
					t.Fatalf("grow: %v", err)
				}
				select {
				case <-changed:
				case <-time.After(10 * time.Second):
					t.Fatal("no tools/list_changed within 10s of grow")
				}
				tools, err := c.ListTools(t.Context())
				if err != nil {
					t.Fatalf("ListTools: %v", err)
				}
				if _, ok := toolNamed(tools, "extra"); !ok {
					t.Errorf("tools %v after grow, want extra among them", names(tools))
				}
			})
		}
	}
}

func TestModernOnlyServerLegacy(t *testing.T) {
	// Over HTTP the go-sdk answers initialize, then refuses every request
	// of the legacy version: protocol: legacy fails, saying what to do.
	cfg := modernOver(t, "http", "legacy")
	cfg.InitTimeout = 5 * time.Second
	_, err := Dial(t.Context(), cfg, nil)
	if err == nil || !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), "speaks only the modern MCP era") ||
		!strings.Contains(err.Error(), "protocol: auto or modern") {
		t.Fatalf("Dial with protocol legacy: %v, want an invalid-configuration error that names the modern era", err)
	}

	// Over stdio the go-sdk (v1.8.0) limited to 2026-07-28 still answers
	// initialize with 2025-11-25 and serves that session: legacy connects
	// there, on the legacy era.
	c := dial(t, modernStdio(t, "legacy"), nil)
	if p := c.Protocol(); p.Era != EraLegacy || p.Version != "2025-11-25" {
		t.Errorf("Protocol() = %+v over stdio with protocol legacy, want legacy 2025-11-25", p)
	}
}

func TestLegacyServerProtocols(t *testing.T) {
	// tasks-mcp (mcp-go's server, which speaks both eras) with each
	// protocol over both transports: over stdio auto stays on the
	// initialize the server answers, over HTTP it finds the modern era.
	for _, tc := range []struct {
		transport, protocol, era string
	}{
		{"stdio", "legacy", EraLegacy},
		{"stdio", "auto", EraLegacy},
		{"stdio", "modern", EraModern},
		{"http", "legacy", EraLegacy},
		{"http", "auto", EraModern},
		{"http", "modern", EraModern},
	} {
		t.Run(tc.transport+"/"+tc.protocol, func(t *testing.T) {
			cfg := Config{Name: "tasks", Command: tasksBin, Protocol: tc.protocol}
			if tc.transport == "http" {
				cfg = Config{Name: "tasks", URL: startTasksHTTP(t), Protocol: tc.protocol}
			}
			c := dial(t, cfg, &Options{OnToolsChanged: func() {}})
			if p := c.Protocol(); p.Era != tc.era || p.ServerName == "" {
				t.Errorf("Protocol() = %+v, want era %s and the server's name", p, tc.era)
			}
			res, err := callJSON(t, c, "list_tasks", map[string]string{"user_id": "u1"})
			if err != nil || res.IsError {
				t.Fatalf("list_tasks: %+v, %v", res, err)
			}
		})
	}
}

func TestTypeScriptModernServer(t *testing.T) {
	// The TypeScript SDK v2 server refuses initialize with an error that
	// names 2026-07-28. Over stdio auto moves to the modern era on a
	// connection of its own, over HTTP it finds it with server/discover;
	// both remember it. protocol: legacy says what is wrong.
	nodetest.Module(t, "@modelcontextprotocol/server")
	for _, transport := range []string{"stdio", "http"} {
		t.Run(transport, func(t *testing.T) {
			cfg := Config{Name: "tsmodern", Command: nodetest.Node(t), Args: []string{filepath.Join("testdata", "tsmodern.mjs")}}
			if transport == "http" {
				cfg = Config{Name: "tsmodern", URL: mcptest.StartURL(t, nodetest.Node(t), filepath.Join("testdata", "tsmodern.mjs"), "--http")}
			}
			eras := NewEras()
			changed := make(chan struct{}, 1)
			c := dial(t, cfg, &Options{Eras: eras, OnToolsChanged: func() {
				select {
				case changed <- struct{}{}:
				default:
				}
			}})
			if p := c.Protocol(); p.Era != EraModern || p.Version != "2026-07-28" || p.ServerName != "tsmodern" || p.ServerVersion != "2.4.0-test" {
				t.Errorf("Protocol() = %+v, want modern 2026-07-28 of tsmodern 2.4.0-test", p)
			}
			if got := eras.Era(cfg); got != EraModern {
				t.Errorf("Eras remember %q, want %q", got, EraModern)
			}
			res, err := callJSON(t, c, "echo", map[string]string{"text": "hi"})
			if err != nil || res.Text != "echo: hi" {
				t.Fatalf("echo: %+v, %v", res, err)
			}
			if _, err := callJSON(t, c, "grow", map[string]any{}); err != nil {
				t.Fatalf("grow: %v", err)
			}
			select {
			case <-changed:
			case <-time.After(10 * time.Second):
				t.Fatal("no tools/list_changed within 10s of grow")
			}
			tools, err := c.ListTools(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := toolNamed(tools, "extra"); !ok {
				t.Errorf("tools %v after grow, want extra", names(tools))
			}

			// With the era remembered the next connection goes straight to it.
			c2 := dial(t, cfg, &Options{Eras: eras})
			if p := c2.Protocol(); p.Era != EraModern {
				t.Errorf("second connection: %+v, want modern", p)
			}
			legacy := cfg
			legacy.Protocol = ProtocolLegacy
			if _, err := Dial(t.Context(), legacy, nil); err == nil || !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), "speaks only the modern MCP era") {
				t.Errorf("Dial with protocol legacy: %v, want an invalid-configuration error naming the modern era", err)
			}
		})
	}
}

func TestPostgresServerAuto(t *testing.T) {
	// server-postgres 0.6.2 answers initialize with 2024-11-05: auto
	// stays on the legacy era and its tool works.
	dir := nodetest.Module(t, "@modelcontextprotocol/server-postgres")
	dbURL := os.Getenv("TEST_DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	c := dial(t, Config{Name: "postgres", Command: nodetest.Node(t), Args: []string{filepath.Join(dir, "dist", "index.js"), dbURL}}, nil)
	if p := c.Protocol(); p.Era != EraLegacy || p.Version != "2024-11-05" || p.ServerName == "" {
		t.Errorf("Protocol() = %+v, want legacy 2024-11-05 and the server's name", p)
	}
	res, err := callJSON(t, c, "query", map[string]string{"sql": "SELECT 41 + 1 AS answer"})
	if err != nil || res.IsError || !strings.Contains(res.Text, `"answer": 42`) {
		t.Fatalf("query: %+v, %v; want answer 42", res, err)
	}
}

func TestLegacyOnlyServerModern(t *testing.T) {
	// A legacy-only server (the helper, which exits when sent
	// server/discover) fails with protocol: modern, saying why.
	cfg := helperConfig("raw")
	cfg.Protocol = ProtocolModern
	_, err := Dial(t.Context(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "protocol: modern") {
		t.Fatalf("Dial with protocol modern: %v, want an error that names protocol: modern", err)
	}
	// server-everything answers discover with an error, then initialize.
	cfg = everythingStdio(t)
	cfg.Protocol = ProtocolModern
	_, err = Dial(t.Context(), cfg, nil)
	if !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), "does not speak the modern MCP era") {
		t.Fatalf("Dial server-everything with protocol modern: %v, want an invalid-configuration error", err)
	}
}

// scriptedModern is a modern MCP server over HTTP written by hand, so that
// a test controls every result's resultType.
type scriptedModern struct {
	mu     sync.Mutex
	ids    []string // ids of the tools/call requests, in order
	states []string // their requestState ("" for none)
}

func (s *scriptedModern) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name           string          `json:"name"`
			RequestState   string          `json:"requestState"`
			InputResponses json.RawMessage `json:"inputResponses"`
			Meta           map[string]any  `json:"_meta"`
		} `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.ID == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if r.Header.Get("Mcp-Method") != msg.Method || msg.Params.Meta["io.modelcontextprotocol/protocolVersion"] != "2026-07-28" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32020,"message":"missing the modern headers or _meta"}}`, msg.ID)
		return
	}
	result := `{}`
	switch msg.Method {
	case "server/discover":
		result = `{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"scripted","version":"0.1"}}}`
	case "tools/list":
		result = `{"resultType":"complete","tools":[{"name":"state","inputSchema":{"type":"object"}},{"name":"ask","inputSchema":{"type":"object"}},{"name":"weird","inputSchema":{"type":"object"}},{"name":"roots","inputSchema":{"type":"object"}},` +
			`{"name":"badheader","inputSchema":{"type":"object","properties":{"o":{"type":"object","x-mcp-header":"O"}}}}]}`
	case "tools/call":
		s.mu.Lock()
		s.ids = append(s.ids, string(msg.ID))
		s.states = append(s.states, msg.Params.RequestState)
		s.mu.Unlock()
		switch msg.Params.Name {
		case "state":
			switch msg.Params.RequestState {
			case "":
				result = `{"resultType":"input_required","requestState":"s1"}`
			case "s1":
				result = `{"resultType":"input_required","requestState":"s2"}`
			default:
				result = `{"resultType":"complete","content":[{"type":"text","text":"done at ` + msg.Params.RequestState + `"}]}`
			}
		case "ask":
			result = `{"resultType":"input_required","inputRequests":{"login":{"method":"elicitation/create","params":{"mode":"form","message":"Who are you?","requestedSchema":{"type":"object"}}}},"requestState":"x"}`
		case "weird":
			result = `{"resultType":"later","content":[]}`
		case "roots":
			if msg.Params.RequestState == "" {
				result = `{"resultType":"input_required","inputRequests":{"where":{"method":"roots/list"}},"requestState":"r"}`
				break
			}
			text, _ := json.Marshal(msg.Params.RequestState + " " + string(msg.Params.InputResponses))
			result = `{"resultType":"complete","content":[{"type":"text","text":` + string(text) + `}]}`
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
}

func TestResultType(t *testing.T) {
	srv := &scriptedModern{}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c := dial(t, Config{Name: "scripted", URL: ts.URL, Protocol: ProtocolModern}, nil)
	// A tool whose x-mcp-header annotations break SEP-2243 is left out.
	if _, ok := toolNamed(c.Tools(), "badheader"); ok || len(c.Tools()) != 4 {
		t.Errorf("tools %v, want state, ask, weird and roots, not badheader", names(c.Tools()))
	}

	// input_required with only a requestState: sent again at once, with
	// the state echoed and a new id each time.
	res, err := callJSON(t, c, "state", map[string]any{})
	if err != nil || res.Text != "done at s2" {
		t.Fatalf("state: %+v, %v; want done at s2", res, err)
	}
	srv.mu.Lock()
	ids, states := slices.Clone(srv.ids), slices.Clone(srv.states)
	srv.mu.Unlock()
	if want := []string{"", "s1", "s2"}; !slices.Equal(states, want) {
		t.Errorf("request states %q, want %q", states, want)
	}
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Errorf("request ids %v, want three different ones", ids)
	}

	// input_required asking for input: the call fails with what was
	// asked (this client declares no capability to answer it).
	_, err = callJSON(t, c, "ask", map[string]any{})
	var ir *InputRequiredError
	if !errors.As(err, &ir) || !errors.Is(err, switchboard.ErrInvalid) || ir.RequestState != "x" || ir.InputRequests["login"] == nil {
		t.Errorf("ask: %v, want an InputRequiredError with the login request and state x", err)
	}

	// An unknown resultType makes the result invalid.
	if _, err := callJSON(t, c, "weird", map[string]any{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("weird: %v, want ErrMalformed", err)
	}

	// roots/list asked in inputRequests needs no Asker: answered with the
	// configured roots, and, with none configured, the call fails naming
	// it.
	if _, err := callJSON(t, c, "roots", map[string]any{}); err == nil || !strings.Contains(err.Error(), `"where" (roots/list) could not be answered`) {
		t.Errorf("roots without roots configured: %v, want an error naming the roots/list request", err)
	}
	withRoots := dial(t, Config{Name: "scripted", URL: ts.URL, Protocol: ProtocolModern, Roots: []Root{{URI: "file:///srv/alice", Name: "alice"}}}, nil)
	res, err = callJSON(t, withRoots, "roots", map[string]any{})
	if err != nil || res.Text != `r {"where":{"roots":[{"name":"alice","uri":"file:///srv/alice"}]}}` {
		t.Errorf("roots with a root configured: %+v, %v; want the state and the root in inputResponses", res, err)
	}
}

func TestModernHealthCheck(t *testing.T) {
	// The modern era has no ping: the health check asks server/discover,
	// and a server that went away ends the connection.
	cmd := exec.Command(mcptest.ModernBin(t), "-http", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	methods := map[string]int{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.ErrorLog = log.New(io.Discard, "", 0) // the server is killed on purpose
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods[r.Header.Get("Mcp-Method")]++
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := dial(t, Config{Name: "modern", URL: ts.URL + target.Path, HealthInterval: 20 * time.Millisecond}, nil)
	waitFor(t, 10*time.Second, "health checks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return methods["server/discover"] >= 3 // the handshake's and two checks
	})
	mu.Lock()
	pings := methods["ping"]
	mu.Unlock()
	if pings != 0 {
		t.Errorf("%d pings on a modern connection, want none", pings)
	}
	cmd.Process.Kill()
	select {
	case <-c.Done():
		if err := c.Err(); !errors.Is(err, switchboard.ErrUnavailable) || !strings.Contains(err.Error(), "health check failed") {
			t.Errorf("the connection ended with %v, want a failed health check", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived its server by 10s")
	}
}

func TestAutoStartsAStdioServerOnce(t *testing.T) {
	// auto over stdio sends initialize only: a legacy server that answers
	// it is started once, and never sent server/discover (the helper
	// would exit).
	starts := filepath.Join(t.TempDir(), "starts")
	cfg := helperConfig("raw", "STARTS_FILE", starts)
	cfg.Command, cfg.Args = "/bin/sh", []string{"-c", `echo started >> "$STARTS_FILE"; exec "$0"`, os.Args[0]}
	c := dial(t, cfg, &Options{Eras: NewEras(), OnToolsChanged: func() {}})
	if p := c.Protocol(); p.Era != EraLegacy {
		t.Errorf("Protocol() = %+v, want legacy", p)
	}
	if _, err := callJSON(t, c, "echo", map[string]any{}); err != nil {
		t.Errorf("echo: %v", err)
	}
	b, err := os.ReadFile(starts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "started"); n != 1 {
		t.Errorf("the server was started %d times, want once", n)
	}
}

// TestModernInputRequired: a modern server (go-sdk, over stdio and
// streamable HTTP) that answers tools/call with input_required asking the
// user something gets the answer of the call's Asker in inputResponses,
// with its requestState echoed, on a call made again; the Asker sees the
// question with its key and that state. A call without an Asker fails with
// what was asked. Over stdio with auto the go-sdk serves the legacy era
// (see TestModernOnlyServer) and asks the same question as an open
// elicitation/create request, which the same Asker answers.
func TestModernInputRequired(t *testing.T) {
	for _, tc := range []struct{ transport, protocol string }{{"stdio", ProtocolModern}, {"http", ProtocolAuto}, {"stdio", ProtocolAuto}} {
		t.Run(tc.transport+"/"+tc.protocol, func(t *testing.T) {
			c := dial(t, modernOver(t, tc.transport, tc.protocol), nil)
			modern := c.modern()
			if tc.protocol == ProtocolAuto && tc.transport == "http" && !modern {
				t.Fatalf("era %q, want modern", c.Protocol().Era)
			}
			var asked []Elicitation
			asker := askerFunc{elicit: func(e Elicitation) (ElicitResult, error) {
				asked = append(asked, e)
				if len(asked) == 1 {
					return ElicitResult{Action: "accept", Content: json.RawMessage(`{"name":"Alice"}`)}, nil
				}
				return ElicitResult{Action: "decline", Content: json.RawMessage(`{"name":"ignored"}`)}, nil
			}}
			ctx := WithAsker(t.Context(), asker)
			res, err := c.CallTool(ctx, "greet", json.RawMessage(`{"greeting":"hi"}`))
			if err != nil || res.Text != "hi, Alice" {
				t.Fatalf("greet: %+v, %v; want hi, Alice", res, err)
			}
			if len(asked) != 1 {
				t.Fatalf("asked %d times, want once", len(asked))
			}
			e := asked[0]
			wantKey, wantState := "name", "greet:hi"
			if !modern {
				wantKey, wantState = "", ""
			}
			if e.Mode != "form" || e.Message != "What is your name?" || e.RequestKey != wantKey || e.RequestState != wantState ||
				!strings.Contains(string(e.RequestedSchema), `"minLength":1`) {
				t.Errorf("the question: %+v; want the form, key %q, state %q", e, wantKey, wantState)
			}
			res, err = c.CallTool(ctx, "greet", json.RawMessage(`{}`))
			if err != nil || res.Text != "no name (decline)" {
				t.Errorf("greet declined: %+v, %v; want no name (decline)", res, err)
			}

			if !modern {
				return
			}
			// A call without an Asker fails with what was asked, also
			// while another call's Asker waits for its person: that user
			// is not asked in its place.
			waiting, release := make(chan struct{}), make(chan struct{})
			var others atomic.Int32
			blocked := askerFunc{elicit: func(Elicitation) (ElicitResult, error) {
				if others.Add(1) == 1 {
					close(waiting)
					<-release
				}
				return ElicitResult{Action: "decline"}, nil
			}}
			done := make(chan error, 1)
			go func() {
				_, err := c.CallTool(WithAsker(t.Context(), blocked), "greet", json.RawMessage(`{}`))
				done <- err
			}()
			<-waiting
			_, err = c.CallTool(t.Context(), "greet", json.RawMessage(`{}`))
			close(release)
			var ir *InputRequiredError
			if !errors.As(err, &ir) || ir.RequestState != "greet:hello" || ir.InputRequests["name"] == nil {
				t.Errorf("greet without an Asker: %v, want an InputRequiredError with the name request", err)
			}
			if err := <-done; err != nil || others.Load() != 1 {
				t.Errorf("the other call: %v, its Asker asked %d times; want it answered, asked once", err, others.Load())
			}
		})
	}
}
