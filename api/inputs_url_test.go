package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestInputURLEverything: server-everything's trigger-url-elicitation
// (the request path) asks the user to open a link: the turn stops
// awaiting_input with the url question, and accepting it continues the
// call.
func TestInputURLEverything(t *testing.T) {
	conn := everythingConn(t, mcpclient.Config{})
	model := func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "everything__trigger-url-elicitation",
			Arguments: `{"url":"https://example.com/consent","message":"Open this to consent."}`}}}
	}
	svc := newServiceOver(t, store.NewMemory(), []tools.Source{{Server: tools.Shared(conn)}}, model, nil, nil, nil, api.Deps{})
	alice := token(t, "alice")
	var r inputReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"consent"}}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || r.PendingInputs[0].Mode != "url" ||
		r.PendingInputs[0].URL != "https://example.com/consent" || r.PendingInputs[0].RequestedSchema != nil {
		t.Fatalf("url question: got %+v", r)
	}
	url := svc.url + "/api/alice/conversations/" + r.ConversationID + "/inputs/" + r.PendingInputs[0].ID
	r = inputReply{}
	if resp := do(t, "POST", url, alice, `{"action":"accept"}`, &r); resp.StatusCode != 200 || r.Status != "completed" || !strings.Contains(r.Message.Content, "accept") {
		t.Fatalf("accepted: got %d %+v", resp.StatusCode, r)
	}
}

// urlServer is a hand-written streamable HTTP MCP server whose one tool,
// pay, asks the user to open a link (elicitation/create in url mode) and,
// a moment later, reports it complete (notifications/elicitation/complete)
// without waiting for the user: as a server whose browser flow finished.
type urlServer struct {
	mu      sync.Mutex
	answers chan []byte
}

func (s *urlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	if msg.Method == "" {
		if msg.ID != nil {
			s.answers <- body
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if msg.ID == nil {
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
			ProtocolVersion string `json:"protocolVersion"`
		}
		json.Unmarshal(msg.Params, &p)
		w.Header().Set("Mcp-Session-Id", "url-session")
		reply(fmt.Sprintf(`{"protocolVersion":%q,"capabilities":{"tools":{}},"serverInfo":{"name":"pay","version":"1"}}`, p.ProtocolVersion))
	case "tools/list":
		reply(`{"tools":[{"name":"pay","inputSchema":{"type":"object"}}]}`)
	case "tools/call":
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"pay-1\",\"method\":\"elicitation/create\",\"params\":{\"mode\":\"url\",\"message\":\"Confirm the payment\",\"url\":\"https://pay.example.com/confirm\",\"elicitationId\":\"el-1\"}}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond) // the user's browser flow, elsewhere
		fmt.Fprint(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/elicitation/complete\",\"params\":{\"elicitationId\":\"el-1\"}}\n\n")
		w.(http.Flusher).Flush()
		var answer []byte
		select {
		case answer = <-s.answers:
		case <-r.Context().Done():
			return
		}
		text, _ := json.Marshal("paid; the client answered " + string(answer))
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":%s}]}}\n\n", msg.ID, text)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no"}}`, msg.ID)
	}
}

// TestInputURLCompletionNotice: a url question that the server reports
// complete continues the turn by itself: the input closes as completed,
// the server is answered accept, and the turn ends without the user
// answering.
func TestInputURLCompletionNotice(t *testing.T) {
	srv := httptest.NewServer(&urlServer{answers: make(chan []byte, 1)})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "pay", URL: srv.URL, HealthInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := store.NewMemory()
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}}, askingModel("pay__pay"), nil, nil, nil, api.Deps{})
	alice := token(t, "alice")
	var r inputReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask to pay"}}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || r.PendingInputs[0].URL != "https://pay.example.com/confirm" {
		t.Fatalf("pay: got %+v", r)
	}
	waitUntil(t, "the turn to end on the completion notice", func() bool {
		got, err := st.GetTurn(t.Context(), "alice", r.TurnID)
		return err == nil && got.Status == "completed"
	})
	in, err := st.GetInput(t.Context(), "alice", r.PendingInputs[0].ID)
	if err != nil || in.Status != "completed" {
		t.Errorf("the url input: %+v, %v; want completed", in, err)
	}
	calls, _, _ := st.ListToolCalls(t.Context(), toolCallFilter(r.TurnID))
	if len(calls) != 1 || !strings.Contains(calls[0].Result, `\"action\":\"accept\"`) && !strings.Contains(calls[0].Result, `"action":"accept"`) {
		t.Errorf("the call: %+v; want the server answered accept", calls)
	}
}

// TestInputURLRequired: a call the server refuses until the user opens a
// url (-32042, server-everything's trigger-url-elicitation with errorPath)
// stops the turn awaiting_input with that url; accepted, the call is made
// again, and the server's own url question on that call is asked next.
func TestInputURLRequired(t *testing.T) {
	conn := everythingConn(t, mcpclient.Config{})
	model := func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "everything__trigger-url-elicitation",
			Arguments: `{"url":"https://example.com/after","message":"Now this one.","errorPath":true}`}}}
	}
	st := store.NewMemory()
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}}, model, nil, nil, nil, api.Deps{})
	alice := token(t, "alice")
	var r inputReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"go"}}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || r.PendingInputs[0].Mode != "url" || r.PendingInputs[0].URL != "https://modelcontextprotocol.io" {
		t.Fatalf("the prerequisite url: got %+v", r)
	}
	base := svc.url + "/api/alice/conversations/" + r.ConversationID + "/inputs/"
	first := r.PendingInputs[0].ID
	r = inputReply{}
	do(t, "POST", base+first, alice, `{"action":"accept"}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || r.PendingInputs[0].URL != "https://example.com/after" {
		t.Fatalf("after the prerequisite: got %+v, want the call made again and its own url asked", r)
	}
	r2 := inputReply{}
	if resp := do(t, "POST", base+r.PendingInputs[0].ID, alice, `{"action":"accept"}`, &r2); resp.StatusCode != 200 || r2.Status != "completed" ||
		len(r2.ToolCalls) != 1 || r2.ToolCalls[0].Status != "succeeded" {
		t.Fatalf("accepted: got %d %+v", resp.StatusCode, r2)
	}
}
