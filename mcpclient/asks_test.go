//go:build unix

package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

// askServer is a hand-written streamable HTTP MCP server with one tool,
// ask, as the stdio helper has: it sends the client the request its
// arguments describe on the call's response stream, waits for the client's
// answer (a POST of its own), and answers the call with it as text.
type askServer struct {
	mu      sync.Mutex
	n       int
	waiting map[string]chan []byte // our request id -> the call's
	notes   []string               // notifications received
	caps    json.RawMessage        // the client's capabilities in initialize
}

func (s *askServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	json.Unmarshal(body, &msg)
	if msg.ID == nil || msg.Method == "" {
		s.mu.Lock()
		if msg.ID == nil {
			s.notes = append(s.notes, msg.Method)
		} else if ch, ok := s.waiting[string(msg.ID)]; ok {
			ch <- body
			delete(s.waiting, string(msg.ID))
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	reply := func(result string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
	}
	switch msg.Method {
	case "initialize":
		var p struct {
			Capabilities    json.RawMessage `json:"capabilities"`
			ProtocolVersion string          `json:"protocolVersion"`
		}
		json.Unmarshal(msg.Params, &p)
		s.mu.Lock()
		s.caps = p.Capabilities
		s.mu.Unlock()
		w.Header().Set("Mcp-Session-Id", "ask-session")
		reply(fmt.Sprintf(`{"protocolVersion":%q,"capabilities":{"tools":{}},"serverInfo":{"name":"ask","version":"1"}}`, p.ProtocolVersion))
	case "tools/list":
		reply(`{"tools":[{"name":"ask","inputSchema":{"type":"object"}}]}`)
	case "tools/call":
		var p struct {
			Arguments struct {
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			} `json:"arguments"`
		}
		json.Unmarshal(msg.Params, &p)
		if p.Arguments.Params == nil {
			p.Arguments.Params = json.RawMessage("{}")
		}
		s.mu.Lock()
		s.n++
		id := fmt.Sprintf(`"ask-%d"`, s.n)
		ch := make(chan []byte, 1)
		if s.waiting == nil {
			s.waiting = map[string]chan []byte{}
		}
		s.waiting[id] = ch
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":%q,\"params\":%s}\n\n", id, p.Arguments.Method, p.Arguments.Params)
		w.(http.Flusher).Flush()
		select {
		case answer := <-ch:
			text, _ := json.Marshal(string(answer))
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":%s}]}}\n\n", msg.ID, text)
		case <-r.Context().Done():
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no"}}`, msg.ID)
	}
}

// askerFunc is an Asker whose answers a test scripts.
type askerFunc struct {
	elicit func(e Elicitation) (ElicitResult, error)
	sample func(r SamplingRequest) (json.RawMessage, error)
}

func (a askerFunc) Elicit(_ context.Context, _ string, e Elicitation) (ElicitResult, error) {
	return a.elicit(e)
}

func (a askerFunc) CreateMessage(_ context.Context, _ string, r SamplingRequest) (json.RawMessage, error) {
	return a.sample(r)
}

func (a askerFunc) ElicitationComplete(string, string) {}

// answerOf reads the answer the server got, which its ask tool returns.
type answerOf struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestServerRequests: what a server asks the client is answered the same
// over stdio and streamable HTTP: a method the client does not support
// with -32601, ping, roots/list with the configured roots, elicitation and
// sampling by the call's Asker (sampling only when allowed).
func TestServerRequests(t *testing.T) {
	asker := askerFunc{
		elicit: func(e Elicitation) (ElicitResult, error) {
			return ElicitResult{Action: "accept", Content: json.RawMessage(`{"name":"` + e.Message + `"}`)}, nil
		},
		sample: func(r SamplingRequest) (json.RawMessage, error) {
			return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`), nil
		},
	}
	roots := []Root{{URI: "file:///srv/alice", Name: "alice"}}
	cases := []struct {
		name     string
		cfg      func(*Config)
		asker    Asker
		method   string
		params   string
		wantCode int
		want     string // the result, when wantCode is 0
	}{
		{name: "unknown method", method: "something/else", wantCode: -32601},
		{name: "ping", method: "ping", want: `{}`},
		{name: "roots without roots", method: "roots/list", wantCode: -32601},
		{name: "roots", cfg: func(c *Config) { c.Roots = roots }, method: "roots/list", want: `{"roots":[{"uri":"file:///srv/alice","name":"alice"}]}`},
		{name: "elicitation", asker: asker, method: "elicitation/create",
			params: `{"message":"bob","requestedSchema":{"type":"object"}}`, want: `{"action":"accept","content":{"name":"bob"}}`},
		{name: "elicitation without an asker", method: "elicitation/create",
			params: `{"message":"bob","requestedSchema":{"type":"object"}}`, wantCode: -32603},
		{name: "sampling denied", asker: asker, method: "sampling/createMessage", params: `{"messages":[],"maxTokens":5}`, wantCode: -32601},
		{name: "sampling allowed", cfg: func(c *Config) { c.Sampling = SamplingAllow }, asker: asker, method: "sampling/createMessage",
			params: `{"messages":[],"maxTokens":5}`, want: `{"role":"assistant","content":{"type":"text","text":"sampled"},"model":"m"}`},
	}
	srv := httptest.NewServer(&askServer{})
	defer srv.Close()
	transports := map[string]func() Config{
		"stdio": func() Config { return helperConfig("raw") },
		"http":  func() Config { return Config{Name: "ask", URL: srv.URL, HealthInterval: -1} },
	}
	for tname, base := range transports {
		for _, tc := range cases {
			t.Run(tname+"/"+tc.name, func(t *testing.T) {
				cfg := base()
				if tc.cfg != nil {
					tc.cfg(&cfg)
				}
				c := dial(t, cfg, nil)
				ctx := t.Context()
				if tc.asker != nil {
					ctx = WithAsker(ctx, tc.asker)
				}
				args := map[string]any{"method": tc.method}
				if tc.params != "" {
					args["params"] = json.RawMessage(tc.params)
				}
				b, _ := json.Marshal(args)
				res, err := c.CallTool(ctx, "ask", b)
				if err != nil {
					t.Fatalf("CallTool: %v", err)
				}
				var got answerOf
				if err := json.Unmarshal([]byte(res.Text), &got); err != nil {
					t.Fatalf("the server got %q: %v", res.Text, err)
				}
				if tc.wantCode != 0 {
					if got.Error == nil || got.Error.Code != tc.wantCode {
						t.Fatalf("the server got %s, want error code %d", res.Text, tc.wantCode)
					}
					return
				}
				if got.Error != nil {
					t.Fatalf("the server got error %+v, want %s", got.Error, tc.want)
				}
				var gotV, wantV any
				json.Unmarshal(got.Result, &gotV)
				json.Unmarshal([]byte(tc.want), &wantV)
				if diff := cmp.Diff(wantV, gotV); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestClientCapabilities: the client declares elicitation always, roots
// only with roots configured, sampling (with tools) only when it is not
// denied.
func TestClientCapabilities(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"default", nil, `{"elicitation":{"form":{},"url":{}}}`},
		{"roots and sampling", func(c *Config) {
			c.Roots = []Root{}
			c.Sampling = SamplingApprove
		}, `{"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true},"sampling":{"tools":{}}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &askServer{}
			srv := httptest.NewServer(s)
			defer srv.Close()
			cfg := Config{Name: "ask", URL: srv.URL, HealthInterval: -1}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			dial(t, cfg, nil)
			s.mu.Lock()
			got := s.caps
			s.mu.Unlock()
			var gotV, wantV any
			json.Unmarshal(got, &gotV)
			json.Unmarshal([]byte(tc.want), &wantV)
			if diff := cmp.Diff(wantV, gotV); diff != "" {
				t.Errorf("capabilities %s (-want +got):\n%s", got, diff)
			}
		})
	}
}

// TestSetRoots: changed roots are what roots/list answers next, and the
// server is told with notifications/roots/list_changed; the same roots
// again tell it nothing.
func TestSetRoots(t *testing.T) {
	s := &askServer{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := dial(t, Config{Name: "ask", URL: srv.URL, HealthInterval: -1, Roots: []Root{{URI: "file:///a"}}}, nil)
	c.SetRoots([]Root{{URI: "file:///a"}})
	c.SetRoots([]Root{{URI: "file:///b", Name: "b"}})
	res, err := c.CallTool(t.Context(), "ask", json.RawMessage(`{"method":"roots/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Text, `{"roots":[{"uri":"file:///b","name":"b"}]}`) {
		t.Errorf("roots/list got %s, want the new roots", res.Text)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := strings.Count(strings.Join(s.notes, " "), "notifications/roots/list_changed")
	if n != 1 {
		t.Errorf("the server was told %d times that the roots changed (%v), want once", n, s.notes)
	}
}

// TestAskPausesTimeout: a call's timeout does not run while its server
// waits for a person's answer: a question answered after three times the
// call's timeout still gets the call's result; a server that then stalls
// times out as before.
func TestAskPausesTimeout(t *testing.T) {
	cfg := helperConfig("raw")
	cfg.Timeout = 200 * time.Millisecond
	c := dial(t, cfg, nil)
	slow := askerFunc{elicit: func(Elicitation) (ElicitResult, error) {
		time.Sleep(3 * cfg.Timeout) // a person taking their time
		return ElicitResult{Action: "decline"}, nil
	}}
	ctx := WithAsker(t.Context(), slow)
	res, err := c.CallTool(ctx, "ask", json.RawMessage(`{"method":"elicitation/create","params":{"message":"?","requestedSchema":{"type":"object"}}}`))
	if err != nil || !strings.Contains(res.Text, `"action":"decline"`) {
		t.Fatalf("a call whose question took 3x its timeout: got %+v, %v; want the answer", res, err)
	}
	if _, err := c.CallTool(ctx, "slow", nil); !errors.Is(err, switchboard.ErrUpstreamTimeout) {
		t.Errorf("a stalled call after: got %v, want a timeout", err)
	}
}
