package api_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// sdkExample starts one of the TypeScript SDK's example servers
// (dist/esm/examples/server/name.js) on a free port and returns its MCP
// URL once it listens; it is killed when the test ends.
func sdkExample(t *testing.T, name string, env ...string) string {
	t.Helper()
	dir := nodetest.Module(t, "@modelcontextprotocol/sdk")
	addr := freeAddr(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	cmd := exec.Command(nodetest.Node(t), filepath.Join(dir, "dist", "esm", "examples", "server", name+".js"))
	cmd.Env = append(append(os.Environ(), "PORT="+port), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), port) {
				once = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not listen on %s", name, port)
	}
	return fmt.Sprintf("http://127.0.0.1:%s/mcp", port)
}

// TestInputFormExample: the TypeScript SDK's elicitationFormExample over
// streamable HTTP, end to end. Its elicitInput is not tied to the call's
// request, so its questions come on the standalone GET stream: register_user
// is answered, and create_event asks twice in one call (each answer's reply
// is the next question, then the end).
func TestInputFormExample(t *testing.T) {
	url := sdkExample(t, "elicitationFormExample")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "forms", URL: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	model := func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		switch {
		case last.Role == openai.ChatMessageRoleTool:
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		case strings.Contains(last.Content, "register"):
			return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "forms__register_user", Arguments: `{}`}}}
		case strings.Contains(last.Content, "event"):
			return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "forms__create_event", Arguments: `{}`}}}
		}
		return llmtest.Reply{Text: "plain"}
	}
	svc := newServiceOver(t, store.NewMemory(), []tools.Source{{Server: tools.Shared(conn)}}, model, nil, nil, nil, api.Deps{})
	alice := token(t, "alice")

	var r inputReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"register me"}}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || !strings.Contains(r.PendingInputs[0].Message, "registration") {
		t.Fatalf("register: got %+v", r)
	}
	conv := r.ConversationID
	answer := func(id, body string) inputReply {
		t.Helper()
		var out inputReply
		if resp := do(t, "POST", svc.url+"/api/alice/conversations/"+conv+"/inputs/"+id, alice, body, &out); resp.StatusCode != 200 {
			t.Fatalf("answer %s: got %d %+v", body, resp.StatusCode, out.Error)
		}
		return out
	}
	var e chatReply
	if resp := do(t, "POST", svc.url+"/api/alice/conversations/"+conv+"/inputs/"+r.PendingInputs[0].ID, alice,
		`{"action":"accept","content":{"username":"al","email":"alice@example.com","password":"longenough"}}`, &e); resp.StatusCode != 400 {
		t.Errorf("a username under minLength 3: got %d, want 400", resp.StatusCode)
	}
	r = answer(r.PendingInputs[0].ID, `{"action":"accept","content":{"username":"alice","email":"alice@example.com","password":"longenough","newsletter":true,"role":"designer","interests":["ai"]}}`)
	if r.Status != "completed" || !strings.Contains(r.Message.Content, "Registration successful") || !strings.Contains(r.Message.Content, "Newsletter: Yes") {
		t.Fatalf("register answered: got %+v", r)
	}

	r = inputReply{}
	do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"create an event"}}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || !strings.Contains(r.PendingInputs[0].Message, "Step 1") {
		t.Fatalf("create_event: got %+v", r)
	}
	r = answer(r.PendingInputs[0].ID, `{"action":"accept","content":{"title":"Launch"}}`)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || !strings.Contains(r.PendingInputs[0].Message, "Step 2") {
		t.Fatalf("step 1 answered: got %+v, want step 2 asked", r)
	}
	r = answer(r.PendingInputs[0].ID, `{"action":"accept","content":{"date":"2026-12-24","startTime":"10:00","duration":60}}`)
	if r.Status != "completed" || !strings.Contains(r.Message.Content, "Event created successfully") || !strings.Contains(r.Message.Content, "Launch") {
		t.Fatalf("step 2 answered: got %+v", r)
	}
}
