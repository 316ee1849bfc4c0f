package api_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// inputReply is a chat reply with its pending inputs.
type inputReply struct {
	chatReply
	Status        string `json:"status"`
	PendingInputs []struct {
		ID              string          `json:"id"`
		ToolCallID      string          `json:"tool_call_id"`
		Server          string          `json:"server"`
		Mode            string          `json:"mode"`
		Message         string          `json:"message"`
		RequestedSchema json.RawMessage `json:"requested_schema"`
		URL             string          `json:"url"`
		Status          string          `json:"status"`
	} `json:"pending_inputs"`
}

// everythingConn connects to server-everything over stdio; it declares
// elicitation, so the server offers trigger-elicitation-request.
func everythingConn(t *testing.T, cfg mcpclient.Config) *mcpclient.Conn {
	t.Helper()
	dir := nodetest.Module(t, "@modelcontextprotocol/server-everything")
	cfg.Name, cfg.Command, cfg.Args = "everything", nodetest.Node(t), []string{filepath.Join(dir, "dist", "index.js"), "stdio"}
	if cfg.InitTimeout == 0 {
		cfg.InitTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// askingModel calls tool when the user's message says "ask", repeats the
// tool's result when it has one, and answers "plain" otherwise.
func askingModel(tool string) llmtest.Responder {
	return func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		switch {
		case last.Role == openai.ChatMessageRoleTool:
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		case strings.Contains(last.Content, "ask"):
			return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: tool, Arguments: `{}`}}}
		}
		return llmtest.Reply{Text: "plain"}
	}
}

// TestInputRoute: server-everything's trigger-elicitation-request over the
// JSON route, on both stores: the turn stops awaiting_input with the
// question; bob cannot answer alice's; content that does not fit the
// schema is refused (400) and nothing is sent; accepted, the call goes on
// and the reply is the turn's end; answered once; declined; and cancelled
// by a new message.
func TestInputRoute(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			conn := everythingConn(t, mcpclient.Config{})
			svc := newServiceOver(t, open(t), []tools.Source{{Server: tools.Shared(conn)}},
				askingModel("everything__trigger-elicitation-request"), nil, nil, nil, api.Deps{})
			alice, bob := token(t, "alice"), token(t, "bob")

			var r inputReply
			resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask: got %d %+v", resp.StatusCode, r)
			}
			in := r.PendingInputs[0]
			if in.Mode != "form" || in.Server != "everything" || !strings.Contains(in.Message, "Please provide") ||
				!strings.Contains(string(in.RequestedSchema), `"email"`) || len(r.ToolCalls) != 1 || r.ToolCalls[0].ID != in.ToolCallID {
				t.Fatalf("the pending input: %+v (calls %+v)", in, r.ToolCalls)
			}
			conv := r.ConversationID
			answer := svc.url + "/api/alice/conversations/" + conv + "/inputs/" + in.ID

			var e chatReply
			if resp := do(t, "POST", strings.Replace(answer, "/alice/", "/bob/", 1), bob, `{"action":"accept","content":{"name":"Bob"}}`, &e); resp.StatusCode != 404 {
				t.Errorf("bob answers alice's input: got %d %+v, want 404", resp.StatusCode, e.Error)
			}
			if resp := do(t, "POST", answer, alice, `{"action":"accept","content":{"name":"Alice","email":"not an email"}}`, &e); resp.StatusCode != 400 || e.Error.Code != "invalid_input" {
				t.Errorf("content that breaks the schema: got %d %+v, want 400 invalid_input", resp.StatusCode, e.Error)
			}
			if resp := do(t, "POST", answer, alice, `{"action":"accept","content":{"email":"alice@example.com"}}`, &e); resp.StatusCode != 400 || !strings.Contains(e.Error.Message, "name") {
				t.Errorf("content without the required name: got %d %+v, want 400 naming it", resp.StatusCode, e.Error)
			}
			if resp := do(t, "POST", answer, alice, `{"action":"maybe"}`, &e); resp.StatusCode != 400 {
				t.Errorf("an unknown action: got %d %+v, want 400", resp.StatusCode, e.Error)
			}
			r = inputReply{}
			resp = do(t, "POST", answer, alice, `{"action":"accept","content":{"name":"Alice","email":"alice@example.com","integer":7}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || !strings.Contains(r.Message.Content, "Name: Alice") ||
				!strings.Contains(r.Message.Content, "Email: alice@example.com") || len(r.PendingInputs) != 0 {
				t.Fatalf("accept: got %d %+v", resp.StatusCode, r)
			}
			if resp := do(t, "POST", answer, alice, `{"action":"decline"}`, &e); resp.StatusCode != 409 || e.Error.Code != "input_closed" {
				t.Errorf("answering twice: got %d %+v, want 409 input_closed", resp.StatusCode, e.Error)
			}

			// Declined.
			r = inputReply{}
			do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"ask again"}}`, &r)
			if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask again: got %+v", r)
			}
			declined := r.PendingInputs[0].ID
			r = inputReply{}
			resp = do(t, "POST", svc.url+"/api/alice/conversations/"+conv+"/inputs/"+declined, alice, `{"action":"decline"}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || !strings.Contains(r.Message.Content, "declined") {
				t.Fatalf("decline: got %d %+v", resp.StatusCode, r)
			}

			// Cancelled by a new message.
			r = inputReply{}
			do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"ask once more"}}`, &r)
			if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask once more: got %+v", r)
			}
			waiting, waitingTurn := r.PendingInputs[0].ID, r.TurnID
			r = inputReply{}
			resp = do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"never mind"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "plain" {
				t.Fatalf("a new message while a question waits: got %d %+v", resp.StatusCode, r)
			}
			if resp := do(t, "POST", svc.url+"/api/alice/conversations/"+conv+"/inputs/"+waiting, alice, `{"action":"accept","content":{"name":"Alice"}}`, &e); resp.StatusCode != 409 || e.Error.Code != "input_closed" {
				t.Errorf("answering the question the new message cancelled: got %d %+v, want 409", resp.StatusCode, e.Error)
			}
			turn, err := svc.store.GetTurn(t.Context(), "alice", waitingTurn)
			if err != nil || turn.Status != "cancelled" {
				t.Errorf("the turn that waited: %+v, %v; want cancelled", turn, err)
			}
		})
	}
}

// TestInputOverTheStream: over the UI message stream the question comes as
// a data-elicitation part with the input, and the stream finishes with the
// turn awaiting_input; the answer posted to the inputs route continues it.
func TestInputOverTheStream(t *testing.T) {
	conn := everythingConn(t, mcpclient.Config{})
	svc := newServiceOver(t, store.NewMemory(), []tools.Source{{Server: tools.Shared(conn)}},
		askingModel("everything__trigger-elicitation-request"), nil, nil, nil, api.Deps{})
	alice := token(t, "alice")
	parts := streamParts(t, svc.url+"/api/alice/chat/stream", alice, `{"message":{"content":"ask me"}}`)
	ask, finish := parts.find("data-elicitation"), parts.find("finish")
	if ask == nil || finish == nil {
		t.Fatalf("parts: %v", parts.types())
	}
	data := ask["data"].(map[string]any)
	meta := finish["messageMetadata"].(map[string]any)
	if data["mode"] != "form" || data["requested_schema"] == nil || ask["id"] != data["id"] || meta["status"] != "awaiting_input" || finish["finishReason"] != "tool-calls" {
		t.Fatalf("data-elicitation %v, finish %v", ask, finish)
	}
	var r inputReply
	url := svc.url + "/api/alice/conversations/" + meta["conversationId"].(string) + "/inputs/" + data["id"].(string)
	if resp := do(t, "POST", url, alice, `{"action":"accept","content":{"name":"Streamed Alice"}}`, &r); resp.StatusCode != 200 ||
		r.Status != "completed" || !strings.Contains(r.Message.Content, "Name: Streamed Alice") {
		t.Fatalf("accept: got %d %+v", resp.StatusCode, r)
	}
}
