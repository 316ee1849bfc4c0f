package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
	"github.com/switchboard-dev/switchboard/tools"
)

// tasksBin is cmd/tasks-mcp, built once for all tests.
var tasksBin string

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	dir, err := os.MkdirTemp("", "switchboard-api-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tasksBin = filepath.Join(dir, "tasks-mcp")
	out, err := exec.Command("go", "build", "-o", tasksBin, "../cmd/tasks-mcp").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build tasks-mcp: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// testStore is what the end-to-end tests need of a store.
type testStore interface {
	orchestrator.Store
	api.Store
	ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error)
	ListSamplings(ctx context.Context, toolCallID string) ([]switchboard.Sampling, error)
	GetInput(ctx context.Context, userID, id string) (switchboard.Input, error)
}

func stores(t *testing.T) map[string]func(t *testing.T) testStore {
	return map[string]func(t *testing.T) testStore{
		"memory": func(t *testing.T) testStore { return store.NewMemory() },
		"postgres": func(t *testing.T) testStore {
			url := storetest.PostgresURL(t)
			pg, err := store.OpenPostgres(context.Background(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pg.Close)
			return pg
		},
	}
}

// tasksServer connects to cmd/tasks-mcp over stdio or, started with --http,
// over streamable HTTP.
func tasksServer(t *testing.T, transport string) *mcpclient.Conn {
	t.Helper()
	cfg := mcpclient.Config{Name: "tasks", Command: tasksBin}
	if transport == "http" {
		addr := freeAddr(t)
		cmd := exec.Command(tasksBin, "--http", addr)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitListening(t, addr)
		cfg = mcpclient.Config{Name: "tasks", URL: "http://" + addr + "/mcp"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// service is a running Switchboard API over real parts.
type service struct {
	url   string
	model *llmtest.Server
	store testStore
	orch  *orchestrator.Orchestrator
}

func newService(t *testing.T, st testStore, conn *mcpclient.Conn, respond llmtest.Responder) *service {
	t.Helper()
	return newServiceWith(t, st, conn, respond, nil)
}

func newServiceWith(t *testing.T, st testStore, conn *mcpclient.Conn, respond llmtest.Responder, opts *orchestrator.Options) *service {
	t.Helper()
	return newServiceFull(t, st, conn, respond, opts, nil)
}

func newServiceFull(t *testing.T, st testStore, conn *mcpclient.Conn, respond llmtest.Responder, opts *orchestrator.Options, apiOpts *api.Options) *service {
	t.Helper()
	return newServiceWithDeps(t, st, conn, respond, opts, apiOpts, nil, api.Deps{}, tools.ApprovalPolicy{})
}

// newApprovingService is newServiceWith a tasks server whose destructive
// tools wait for approval.
func newApprovingService(t *testing.T, st testStore, conn *mcpclient.Conn, respond llmtest.Responder) *service {
	t.Helper()
	return newServiceWithDeps(t, st, conn, respond, nil, nil, nil, api.Deps{}, tools.ApprovalPolicy{All: tools.ApprovalDestructive})
}

// newServiceWithDeps builds the service; admins are admins by
// configuration, and deps adds collaborators (Admin, Servers) to the ones
// built here.
func newServiceWithDeps(t *testing.T, st testStore, conn *mcpclient.Conn, respond llmtest.Responder, opts *orchestrator.Options,
	apiOpts *api.Options, admins []string, deps api.Deps, approval tools.ApprovalPolicy) *service {
	t.Helper()
	var sources []tools.Source
	if conn != nil {
		sources = append(sources, tools.Source{Server: tools.Shared(conn), Policy: tools.Policy{Inject: map[string]string{"user_id": "user_id"}, RequireApproval: approval}})
	}
	return newServiceOver(t, st, sources, respond, opts, apiOpts, admins, deps)
}

// newServiceOver builds the service over the servers of sources.
func newServiceOver(t *testing.T, st testStore, sources []tools.Source, respond llmtest.Responder, opts *orchestrator.Options,
	apiOpts *api.Options, admins []string, deps api.Deps) *service {
	t.Helper()
	model := llmtest.NewServer(respond)
	t.Cleanup(model.Close)
	catalog, err := tools.NewCatalog(sources)
	if err != nil {
		t.Fatal(err)
	}
	registry := tools.NewRegistry(catalog)
	orch := orchestrator.New(llm.New(llm.Config{BaseURL: model.URL, APIKey: "sk-test", Model: "scripted"}, nil), registry, st, opts)
	authn, err := auth.New(context.Background(), auth.Config{Secret: secret, AdminUsers: admins})
	if err != nil {
		t.Fatal(err)
	}
	deps.Chat, deps.Store, deps.Tools, deps.Auth = orch, st, registry, authn
	if deps.Agents == nil {
		deps.Agents = orch
	}
	srv := httptest.NewServer(api.NewHandler(deps, apiOpts))
	t.Cleanup(srv.Close)
	return &service{url: srv.URL, model: model, store: st, orch: orch}
}

func token(t *testing.T, user string) string {
	tok, err := auth.MintToken(secret, user, time.Hour, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request and decodes the JSON reply into out (when not nil).
func do(t *testing.T, method, url, tok, body string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	return doRequest(t, req, out)
}

// doRequest sends req and decodes the JSON reply into out (when not nil).
func doRequest(t *testing.T, req *http.Request, out any) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: reply is not JSON: %v\n%s", req.Method, req.URL, err, raw)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp
}

type chatReply struct {
	Success bool `json:"success"`
	Message struct {
		ID, Content, Role, Timestamp, Type string
	} `json:"message"`
	ConversationID string `json:"conversation_id"`
	TurnID         string `json:"turn_id"`
	ToolCalls      []struct {
		ID         string          `json:"id"`
		Server     string          `json:"server"`
		Tool       string          `json:"tool"`
		Arguments  json.RawMessage `json:"arguments"`
		Result     string          `json:"result"`
		Status     string          `json:"status"`
		Error      string          `json:"error"`
		DurationMS float64         `json:"duration_ms"`
	} `json:"tool_calls"`
	Error struct{ Code, Message string } `json:"error"`
}

// script: add a task, list tasks, answer; then answer the next turn.
var script = llmtest.Sequence(
	llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "call_add", Name: "tasks__add_task", Arguments: `{"title":"buy milk"}`}}},
	llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "call_list", Name: "tasks__list_tasks", Arguments: `{}`}}},
	llmtest.Reply{Text: "You have one task: buy milk."},
	llmtest.Reply{Text: "You're welcome."},
)

func TestChatEndToEnd(t *testing.T) {
	for storeName, open := range stores(t) {
		for _, transport := range []string{"stdio", "http"} {
			t.Run(storeName+"/"+transport, func(t *testing.T) {
				svc := newService(t, open(t), tasksServer(t, transport), script)
				tok := token(t, "alice")

				var r chatReply
				resp := do(t, "POST", svc.url+"/api/alice/chat", tok, `{"message": {"content": "Add a task to buy milk"}}`, &r)
				if resp.StatusCode != 200 || !r.Success {
					t.Fatalf("chat: got %d %+v", resp.StatusCode, r)
				}
				t.Logf("turn with two %s tool calls: Server-Timing: %s", transport, resp.Header.Get("Server-Timing"))
				if r.Message.Role != "assistant" || r.Message.Type != "text" || r.Message.Content != "You have one task: buy milk." || r.Message.ID == "" || r.ConversationID == "" {
					t.Errorf("message: got %+v", r)
				}
				if _, err := time.Parse(time.RFC3339Nano, r.Message.Timestamp); err != nil {
					t.Errorf("timestamp %q: %v", r.Message.Timestamp, err)
				}
				if len(r.ToolCalls) != 2 {
					t.Fatalf("tool_calls: got %d, want 2: %+v", len(r.ToolCalls), r.ToolCalls)
				}
				for i, want := range []string{"add_task", "list_tasks"} {
					tc := r.ToolCalls[i]
					if tc.Server != "tasks" || tc.Tool != want || tc.Status != "succeeded" || tc.DurationMS <= 0 || !strings.Contains(tc.Result, "buy milk") {
						t.Errorf("tool_calls[%d]: got %+v", i, tc)
					}
					var args map[string]any
					if err := json.Unmarshal(tc.Arguments, &args); err != nil || args["user_id"] != "alice" {
						t.Errorf("tool_calls[%d].arguments: got %s, want user_id alice injected", i, tc.Arguments)
					}
				}

				// The ledger holds both calls, finished, with arguments, results and durations.
				calls, _, err := svc.store.ListToolCalls(context.Background(), switchboard.ToolCallFilter{ConversationID: r.ConversationID})
				if err != nil {
					t.Fatal(err)
				}
				if len(calls) != 2 {
					t.Fatalf("ledger: got %d rows, want 2", len(calls))
				}
				for _, c := range calls {
					if c.Status != switchboard.CallSucceeded || c.Duration <= 0 || c.FinishedAt.IsZero() || !strings.Contains(c.Result, "buy milk") ||
						!strings.Contains(string(c.Arguments), `"user_id":"alice"`) || c.UserID != "alice" || c.TurnID != r.TurnID {
						t.Errorf("ledger row: got %+v", c)
					}
				}

				// The next turn replays the whole transcript, tool messages included.
				var r2 chatReply
				resp = do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+r.ConversationID, tok, `{"message": {"content": "thanks"}}`, &r2)
				if resp.StatusCode != 200 || r2.ConversationID != r.ConversationID || r2.Message.Content != "You're welcome." {
					t.Fatalf("second turn: got %d %+v", resp.StatusCode, r2)
				}
				reqs := svc.model.Requests()
				if len(reqs) != 4 {
					t.Fatalf("model requests: got %d, want 4", len(reqs))
				}
				type msg struct{ Role, Content, ToolCallID, Calls string }
				var got []msg
				for _, m := range reqs[3].Messages {
					var calls []string
					for _, c := range m.ToolCalls {
						calls = append(calls, c.ID+":"+c.Function.Name+":"+c.Function.Arguments)
					}
					content := m.Content
					if m.Role == openai.ChatMessageRoleTool {
						content = "" // the tool's own wording is checked above
					}
					got = append(got, msg{m.Role, content, m.ToolCallID, strings.Join(calls, ",")})
				}
				want := []msg{
					{"user", "Add a task to buy milk", "", ""},
					{"assistant", "", "", `call_add:tasks__add_task:{"title":"buy milk"}`},
					{"tool", "", "call_add", ""},
					{"assistant", "", "", "call_list:tasks__list_tasks:{}"},
					{"tool", "", "call_list", ""},
					{"assistant", "You have one task: buy milk.", "", ""},
					{"user", "thanks", "", ""},
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("transcript replayed to the model (-want +got):\n%s", diff)
				}
				if !strings.Contains(reqs[3].Messages[4].Content, "buy milk") {
					t.Errorf("list_tasks result replayed: got %q", reqs[3].Messages[4].Content)
				}
				if len(reqs[0].Tools) == 0 || strings.Contains(fmt.Sprint(reqs[0].Tools), "user_id") {
					t.Errorf("tools offered to the model: got %+v (want the task tools, without user_id)", reqs[0].Tools)
				}

				// The transcript is typed.
				var conv struct {
					Messages []struct{ Role, Type, ToolCallID string } `json:"messages"`
				}
				do(t, "GET", svc.url+"/api/alice/conversations/"+r.ConversationID, tok, "", &conv)
				var types []string
				for _, m := range conv.Messages {
					types = append(types, m.Role+"/"+m.Type)
				}
				wantTypes := []string{"user/text", "assistant/tool_call", "tool/tool_result", "assistant/tool_call", "tool/tool_result", "assistant/text", "user/text", "assistant/text"}
				if diff := cmp.Diff(wantTypes, types); diff != "" {
					t.Errorf("stored transcript (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestChatErrors(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newService(t, open(t), nil, func(int, *openai.ChatCompletionRequest) llmtest.Reply { return llmtest.Reply{Text: "hi"} })
			alice, bob := token(t, "alice"), token(t, "bob")
			var first chatReply
			if resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"hello"}}`, &first); resp.StatusCode != 200 {
				t.Fatalf("setup chat: got %d", resp.StatusCode)
			}
			expired, _ := auth.MintToken(secret, "alice", -time.Hour, false, "", "")
			forged, _ := auth.MintToken([]byte("another-secret-that-is-long-enough-000"), "alice", time.Hour, false, "", "")
			chat := svc.url + "/api/alice/chat"
			tests := []struct {
				name, method, url, tok, body string
				status                       int
				code                         string
			}{
				{"no token", "POST", chat, "", `{"message":{"content":"x"}}`, 401, "missing_token"},
				{"malformed token", "POST", chat, "not-a-jwt", `{"message":{"content":"x"}}`, 401, "invalid_token"},
				{"wrongly signed", "POST", chat, forged, `{"message":{"content":"x"}}`, 401, "invalid_token"},
				{"expired", "POST", chat, expired, `{"message":{"content":"x"}}`, 401, "token_expired"},
				{"another user in the path", "POST", chat, bob, `{"message":{"content":"x"}}`, 403, "wrong_user"},
				{"another user's conversation", "POST", svc.url + "/api/bob/chat?conversation_id=" + first.ConversationID, bob, `{"message":{"content":"x"}}`, 404, "conversation_not_found"},
				{"another user's transcript", "GET", svc.url + "/api/bob/conversations/" + first.ConversationID, bob, "", 404, "conversation_not_found"},
				{"another user's delete", "DELETE", svc.url + "/api/bob/conversations/" + first.ConversationID, bob, "", 404, "conversation_not_found"},
				{"absent conversation", "POST", chat + "?conversation_id=00000000-0000-7000-8000-000000000000", alice, `{"message":{"content":"x"}}`, 404, "conversation_not_found"},
				{"malformed conversation id", "POST", chat + "?conversation_id=nope", alice, `{"message":{"content":"x"}}`, 404, "conversation_not_found"},
				{"no message.content", "POST", chat, alice, `{"message":{}}`, 400, "missing_content"},
				{"no message", "POST", chat, alice, `{"content":"x"}`, 400, "missing_content"},
				{"empty content", "POST", chat, alice, `{"message":{"content":"  "}}`, 400, "empty_content"},
				{"content not a string", "POST", chat, alice, `{"message":{"content":5}}`, 400, "invalid_json"},
				{"not JSON", "POST", chat, alice, `hello`, 400, "invalid_json"},
				{"too long", "POST", chat, alice, `{"message":{"content":"` + strings.Repeat("a", 32001) + `"}}`, 413, "message_too_long"},
				{"body too large", "POST", chat, alice, `{"message":{"content":"` + strings.Repeat("a", 2<<20) + `"}}`, 413, "body_too_large"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var r chatReply
					resp := do(t, tt.method, tt.url, tt.tok, tt.body, &r)
					if resp.StatusCode != tt.status || r.Success || r.Error.Code != tt.code || r.Error.Message == "" {
						t.Errorf("got %d %+v, want %d %s", resp.StatusCode, r.Error, tt.status, tt.code)
					}
				})
			}
			// Nothing above reached the model or the store.
			if n := len(svc.model.Requests()); n != 1 {
				t.Errorf("model requests: got %d, want only the setup's 1", n)
			}
			convs, err := svc.store.ListConversations(context.Background(), "alice", 10)
			if err != nil || len(convs) != 1 {
				t.Errorf("alice's conversations: got %d (%v), want 1", len(convs), err)
			}
		})
	}
}

func TestChatWithoutModel(t *testing.T) {
	st := store.NewMemory()
	registry := tools.NewRegistry(nil)
	orch := orchestrator.New(llm.New(llm.Config{}, nil), registry, st, nil)
	authn, _ := auth.New(context.Background(), auth.Config{Secret: secret})
	srv := httptest.NewServer(api.NewHandler(api.Deps{Chat: orch, Store: st, Tools: registry, Auth: authn}, nil))
	defer srv.Close()
	var r chatReply
	resp := do(t, "POST", srv.URL+"/api/alice/chat", token(t, "alice"), `{"message":{"content":"hi"}}`, &r)
	if resp.StatusCode != 503 || r.Error.Code != "llm_not_configured" || !strings.Contains(r.Error.Message, "OPENAI_API_KEY") {
		t.Fatalf("got %d %+v, want 503 llm_not_configured with a hint", resp.StatusCode, r.Error)
	}
	if resp := do(t, "GET", srv.URL+"/api/alice/conversations", token(t, "alice"), "", nil); resp.StatusCode != 200 {
		t.Errorf("conversations without a model: got %d, want 200", resp.StatusCode)
	}
}
