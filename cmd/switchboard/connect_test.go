package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// connectService is a service with two servers that act as each user: the
// TypeScript SDK's OAuth demo as demo, and cmd/tasks-mcp as tasks, which
// takes a user secret. Its model greets whoever the message names with
// demo's greet, or adds a task for "add <title>"; then it says what the
// tool said.
type connectService struct {
	base   string
	demo   *oauthDemo
	stderr *syncBuffer
	jwt    func(user string) string
}

const connectJWTSecret = "connect-ui-test-secret-0123456789abcdef"

func connectModel(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
	last := req.Messages[len(req.Messages)-1]
	if last.Role == openai.ChatMessageRoleTool {
		return llmtest.Reply{Text: "tool said: " + last.Content}
	}
	if title, ok := strings.CutPrefix(last.Content, "add "); ok {
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: fmt.Sprintf(`{"title":%q}`, title)}}}
	}
	return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "demo__greet", Arguments: fmt.Sprintf(`{"name":%q}`, last.Content)}}}
}

// startConnectService starts the service and connects alice to both
// servers (the OAuth one through the real flow), so that their tools are
// in the catalog: nobody can list a server that acts as its users before
// one of them connected it.
func startConnectService(t *testing.T) *connectService {
	t.Helper()
	demo := startOAuthDemo(t)
	model := llmtest.NewServer(connectModel)
	t.Cleanup(model.Close)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
public_url: %s
secrets_key: "test:c3dpdGNoYm9hcmQtdGVzdC1rZXktMzItYnl0ZXMhISE="
database_url: %q
llm: {base_url: %q, api_key: k}
auth: {jwt_secret: %q, admin_users: [root]}
mcpServers:
  demo: {url: %q, auth: {type: oauth}}
  tasks:
    command: %q
    env: {TASKS_TOKEN: "${user.TASKS_TOKEN}"}
    inject: {user_id: user_id}
    auth: {type: user_secret, secrets: {TASKS_TOKEN: "a token for your task list"}}
`, port, base, storetest.PostgresURL(t), model.URL, connectJWTSecret, demo.mcpURL, tasksBin)
	s := &connectService{base: base, demo: demo, stderr: &syncBuffer{}}
	startWithSecret(t, cfg, &syncBuffer{}, s.stderr)
	jwts := map[string]string{}
	s.jwt = func(user string) string {
		if jwts[user] == "" {
			jwts[user], _ = auth.MintToken([]byte(connectJWTSecret), user, time.Hour, user == "root", "", "")
		}
		return jwts[user]
	}

	code, body := httpCall(t, "POST", base+"/api/alice/connections/demo", s.jwt("alice"), "")
	var r struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	if json.Unmarshal([]byte(body), &r); code != 200 || r.AuthorizationURL == "" {
		t.Fatalf("alice connects demo: %d %s\n%s", code, body, s.stderr)
	}
	if status, page := signInAsABrowser(t, r.AuthorizationURL, base+"/oauth/callback"); status != 200 || !strings.Contains(page, "Connected demo") {
		t.Fatalf("alice's callback: %d %s\n%s", status, page, s.stderr)
	}
	if code, body := httpCall(t, "POST", base+"/api/alice/connections/tasks", s.jwt("alice"), `{"secrets":{"TASKS_TOKEN":"alice-task-token"}}`); code != 200 {
		t.Fatalf("alice connects tasks: %d %s\n%s", code, body, s.stderr)
	}
	waitUntil(t, 30*time.Second, "demo's and tasks' tools in the catalog", func() bool {
		_, body := httpCall(t, "GET", base+"/api/carol/tools", s.jwt("carol"), "")
		return strings.Contains(body, "demo__greet") && strings.Contains(body, "tasks__add_task")
	})
	return s
}

// connectReport is what testdata/connect.mjs prints.
type connectReport struct {
	Told           []json.RawMessage `json:"told"`
	ConversationID string            `json:"conversationId"`
}

// TestConnectInTheWebChat drives the chat page in Chromium as a user who
// has connected nothing: a call of demo (OAuth) shows "Connect demo"; its
// button opens the sign-in in a window of its own, which goes through the
// demo's authorization server to the callback, tells the chat over the
// BroadcastChannel and closes; the card says demo is connected, and Retry
// answers with the tool's result. A call of tasks (user_secret) asks for
// its secret in a form, then Retry; the sidebar lists both connections,
// disconnects demo and connects it again; the admin console lists
// everyone's and revokes one. Screenshots land in test-results/screenshots
// at the module root.
func TestConnectInTheWebChat(t *testing.T) {
	s := startConnectService(t)

	before := len(s.demo.stdout())
	var report connectReport
	nodetest.Browse(t, "cmd/switchboard/testdata/connect.mjs", &report, "BASE="+s.base, "TOKEN="+s.jwt("carol"), "ADMIN_TOKEN="+s.jwt("root"),
		"AUTH_ORIGIN="+s.demo.authURL)

	// The callback told the chat over the channel, once, for demo.
	if len(report.Told) != 1 || string(report.Told[0]) != `{"type":"connection","ok":true,"server":"demo"}` {
		t.Errorf("the channel carried %s, want one message that demo connected", report.Told)
	}
	// Carol's calls reached demo with tokens of her own: her sessions (the
	// ones that started after alice's) carried none of those alice's did.
	log := s.demo.stdout()
	all, alices := sessionTokens(log), sessionTokens(log[:before])
	var carols, alicesTokens []string
	for id, toks := range all {
		if _, ok := alices[id]; ok {
			alicesTokens = append(alicesTokens, toks...)
		} else {
			carols = append(carols, toks...)
		}
	}
	if len(carols) == 0 || len(alicesTokens) == 0 {
		t.Errorf("the demo logged %d tokens of alice's sessions and %d of carol's, want some of each", len(alicesTokens), len(carols))
	}
	for _, tok := range carols {
		if slices.Contains(alicesTokens, tok) {
			t.Errorf("a session of carol's reached demo with alice's token")
		}
	}
	// The conversation holds the first answer, the retried message and its
	// answer, for both servers.
	code, body := httpCall(t, "GET", s.base+"/api/carol/conversations/"+report.ConversationID, s.jwt("carol"), "")
	var conv struct {
		Messages []struct{ Role, Type, Content string }
	}
	json.Unmarshal([]byte(body), &conv)
	var users, answers []string
	for _, m := range conv.Messages {
		switch {
		case m.Role == "user":
			users = append(users, m.Content)
		case m.Role == "assistant" && m.Type == "text" && m.Content != "":
			answers = append(answers, m.Content)
		}
	}
	if code != 200 || strings.Join(users, "|") != "carol|carol|add buy milk|add buy milk" || len(answers) != 4 ||
		!strings.Contains(answers[0], "connect demo") || !strings.Contains(answers[1], "Hello, carol!") ||
		!strings.Contains(answers[2], "connect tasks") || !strings.Contains(answers[3], "buy milk") {
		t.Errorf("carol's conversation: %d, asked %q, answered %q", code, users, answers)
	}
	// The sidebar disconnected demo and connected it again, the admin
	// revoked tasks.
	code, body = httpCall(t, "GET", s.base+"/api/carol/connections", s.jwt("carol"), "")
	var conns struct {
		Connections []struct {
			Server    string `json:"server"`
			Connected bool   `json:"connected"`
		} `json:"connections"`
	}
	json.Unmarshal([]byte(body), &conns)
	got := map[string]bool{}
	for _, c := range conns.Connections {
		got[c.Server] = c.Connected
	}
	if code != 200 || len(got) != 2 || !got["demo"] || got["tasks"] {
		t.Errorf("carol's connections at the end: %d %s", code, body)
	}
}

// aiConnectChat is the part of testdata/aisdk-chat.mjs's report these
// tests read.
type aiConnectChat struct {
	Status   string     `json:"status"`
	Error    *string    `json:"error"`
	Errors   []string   `json:"errors"`
	SignIns  []aiSignIn `json:"signIns"`
	Messages []struct {
		Role  string   `json:"role"`
		Parts []aiPart `json:"parts"`
	} `json:"messages"`
}

type aiSignIn struct {
	// Part is the data-connection-required part as the chat holds it.
	Part   aiPart `json:"part"`
	Status int    `json:"status"`
	URL    string `json:"url"`
	Page   string `json:"page"`
}

type aiPart struct {
	Type     string `json:"type"`
	ID       string `json:"id"`
	Text     string `json:"text"`
	ToolName string `json:"toolName"`
	State    string `json:"state"`
	Data     struct {
		Server           string `json:"server"`
		AuthorizationURL string `json:"authorizationUrl"`
	} `json:"data"`
	Output struct {
		Result string `json:"result"`
		Status string `json:"status"`
	} `json:"output"`
	ErrorText string `json:"errorText"`
}

// TestAISDKChatConnectionRequired: the AI SDK's own chat client (the
// AbstractChat that useChat wraps, over DefaultChatTransport) parses a
// stream with a data-connection-required part without error and keeps it
// in the answer's parts, with the server and the sign-in URL; signing in
// at that URL (as a browser would, following the redirects to the
// callback) and the chat's regenerate() then answer with the tool's
// result.
func TestAISDKChatConnectionRequired(t *testing.T) {
	nodetest.Module(t, "ai")
	s := startConnectService(t)
	script := filepath.Join(nodetest.Root(t), "api", "testdata", "aisdk-chat.mjs")
	cmd := exec.Command(nodetest.Node(t), script)
	cmd.Env = append(cmd.Environ(), "API="+s.base+"/api/dave/chat/stream", "TOKEN="+s.jwt("dave"), "CHAT_ID=chat-dave",
		`PROMPTS=["dave"]`, "SIGN_IN=yes", "REGENERATE=[null]")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var chat aiConnectChat
	if err := json.Unmarshal(out, &chat); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	if chat.Status != "ready" || chat.Error != nil || len(chat.Errors) > 0 {
		t.Fatalf("chat ended %s with error %v %v", chat.Status, chat.Error, chat.Errors)
	}
	if len(chat.SignIns) != 1 {
		t.Fatalf("the chat's first answer had %d data-connection-required parts, want 1: %s", len(chat.SignIns), out)
	}
	in := chat.SignIns[0]
	if in.Part.Type != "data-connection-required" || in.Part.ID != "connect-demo" || in.Part.Data.Server != "demo" ||
		!strings.HasPrefix(in.Part.Data.AuthorizationURL, s.demo.authURL+"/authorize?") {
		t.Errorf("the part as the chat holds it: got %+v", in.Part)
	}
	if in.Status != 200 || !strings.HasPrefix(in.URL, s.base+"/oauth/callback?") || !strings.Contains(in.Page, "Connected demo") {
		t.Errorf("signing in at the part's URL ended at %s: %d %s", in.URL, in.Status, in.Page)
	}
	// regenerate() replaced the answer: the call ran as dave.
	if len(chat.Messages) != 2 {
		t.Fatalf("messages after regenerate: got %d, want 2: %+v", len(chat.Messages), chat.Messages)
	}
	var tool, text string
	for _, p := range chat.Messages[1].Parts {
		switch p.Type {
		case "dynamic-tool":
			tool = p.ToolName + " " + p.State + " " + p.Output.Result
		case "text":
			text += p.Text
		case "data-connection-required":
			t.Errorf("the regenerated answer still asks to connect: %+v", p)
		}
	}
	if !strings.Contains(tool, "demo__greet output-available") || !strings.Contains(tool, "Hello, dave!") || !strings.Contains(text, "Hello, dave!") {
		t.Errorf("the regenerated answer: tool %q, text %q", tool, text)
	}
}
