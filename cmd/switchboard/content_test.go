package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

const contentJWTSecret = "content-test-secret-0123456789abcdef-0123"

// TestScreenshotsEndToEnd runs the service on Postgres with @playwright/mcp
// (Debian's Chromium) and llm.vision: alice's model navigates to a page
// this test serves and takes a screenshot. The PNG is stored and served to
// alice (bob finds nothing), sent to the model as an image_url part of
// exactly those bytes, sent in the UI message stream as a file part that the
// AI SDK's own chat client keeps, and shown in the web chat's tool card and
// the admin console (screenshots in test-results/screenshots).
func TestScreenshotsEndToEnd(t *testing.T) {
	nodetest.Module(t, "ai")
	chromium, node, root := nodetest.Chromium(t), nodetest.Node(t), nodetest.Root(t)
	cli := filepath.Join(nodetest.Module(t, "@playwright/mcp"), "cli.js")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>Switchboard</title><body style="background:#2a6fdb;color:#fff">`+
			`<h1 style="font:64px sans-serif">Screenshot me</h1></body>`)
	}))
	defer page.Close()
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "nav", Name: "browser__browser_navigate", Arguments: fmt.Sprintf(`{"url":%q}`, page.URL)}}},
		llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "shot", Name: "browser__browser_take_screenshot", Arguments: `{"type":"png"}`}}},
		llmtest.Reply{Text: "Here is the page."},
		// The AI SDK chat's turn: alice's browser still shows the page.
		llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "shot2", Name: "browser__browser_take_screenshot", Arguments: `{"type":"png"}`}}},
		llmtest.Reply{Text: "Again."},
	))
	defer model.Close()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	stderr := &syncBuffer{}
	startWithSecret(t, fmt.Sprintf(`
listen: 127.0.0.1:%d
database_url: %q
llm: {base_url: %q, api_key: k, vision: true}
auth: {jwt_secret: %q, admin_users: [root]}
mcp_startup_wait: 60s
mcpServers:
  browser:
    command: %q
    args: [%q, --headless, --isolated, --no-sandbox, --executable-path, %q]
    dir: %q
    timeout: 60s
    init_timeout: 60s
`, port, storetest.PostgresURL(t), model.URL, contentJWTSecret, node, cli, chromium, t.TempDir()), &syncBuffer{}, stderr)
	jwt := func(user string) string {
		tok, err := auth.MintToken([]byte(contentJWTSecret), user, time.Hour, user == "root", "", "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	code, body := httpCall(t, "POST", base+"/api/alice/chat", jwt("alice"), `{"message":{"content":"show me the page"}}`)
	var reply struct {
		ConversationID string `json:"conversation_id"`
		ToolCalls      []struct {
			ID, Tool, Status, Result string
			Content                  []struct {
				Kind     string `json:"kind"`
				MIMEType string `json:"mime_type"`
				Size     int    `json:"size"`
				URL      string `json:"url"`
			} `json:"content"`
		} `json:"tool_calls"`
	}
	if err := json.Unmarshal([]byte(body), &reply); err != nil || code != 200 || len(reply.ToolCalls) != 2 {
		t.Fatalf("chat: %d %s\n%s", code, body, stderr)
	}
	shot := reply.ToolCalls[1]
	if shot.Status != "succeeded" || len(shot.Content) != 1 || shot.Content[0].Kind != "image" || shot.Content[0].MIMEType != "image/png" {
		t.Fatalf("the screenshot call: %+v; want one PNG", shot)
	}
	pngBytes := get(t, base+shot.Content[0].URL, jwt("alice"), 200)
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil || img.Bounds().Dx() < 100 || len(pngBytes) != shot.Content[0].Size {
		t.Fatalf("the stored screenshot: %d bytes, %v; want the PNG of %d bytes", len(pngBytes), err, shot.Content[0].Size)
	}
	// Bob finds nothing, at his path or alice's.
	get(t, base+strings.Replace(shot.Content[0].URL, "/api/alice/", "/api/bob/", 1), jwt("bob"), 404)
	get(t, base+shot.Content[0].URL, jwt("bob"), 403)

	// The model got the screenshot after the tool result, bytes and all.
	reqs := model.Requests()
	if len(reqs) != 3 {
		t.Fatalf("model requests: %d, want 3", len(reqs))
	}
	last := reqs[2].Messages[len(reqs[2].Messages)-1]
	wantURL := "data:image/png;base64," + base64.StdEncoding.EncodeToString(pngBytes)
	if last.Role != "user" || len(last.MultiContent) != 3 || last.MultiContent[2].Type != openai.ChatMessagePartTypeImageURL ||
		last.MultiContent[2].ImageURL.URL != wantURL {
		t.Errorf("after the screenshot the model got %s %.200v; want a user message with the PNG as an image_url part", last.Role, last.MultiContent)
	}

	// The AI SDK's chat client keeps the screenshot as a file part.
	cmd := exec.Command(node, filepath.Join(root, "api", "testdata", "aisdk-chat.mjs"))
	cmd.Env = append(cmd.Environ(), "API="+base+"/api/alice/chat/stream", "TOKEN="+jwt("alice"), "CHAT_ID=chat-shots", `PROMPTS=["again"]`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aisdk-chat.mjs: %v\n%s", err, out)
	}
	var chat struct {
		Status   string   `json:"status"`
		Errors   []string `json:"errors"`
		Messages []struct {
			Role  string `json:"role"`
			Parts []struct {
				Type      string `json:"type"`
				MediaType string `json:"mediaType"`
				URL       string `json:"url"`
				Output    struct {
					Content []struct {
						URL string `json:"url"`
					} `json:"content"`
				} `json:"output"`
			} `json:"parts"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(out, &chat); err != nil || chat.Status != "ready" || len(chat.Errors) > 0 || len(chat.Messages) != 2 {
		t.Fatalf("the AI SDK chat: %v %s", err, out)
	}
	var fileURL, contentURL string
	for _, p := range chat.Messages[1].Parts {
		switch {
		case p.Type == "file" && p.MediaType == "image/png":
			fileURL = p.URL
		case p.Type == "dynamic-tool" && len(p.Output.Content) == 1:
			contentURL = p.Output.Content[0].URL
		}
	}
	second := get(t, base+contentURL, jwt("alice"), 200)
	if fileURL != "data:image/png;base64,"+base64.StdEncoding.EncodeToString(second) {
		t.Errorf("the chat's file part: %.80s; want the second screenshot (%d bytes) as a data URL", fileURL, len(second))
	}

	// The web chat and the admin console show it.
	var report struct{ Chat, Admin struct{ Width, Height int } }
	nodetest.Browse(t, "cmd/switchboard/testdata/content.mjs", &report, "BASE="+base, "TOKEN="+jwt("alice"), "ADMIN_TOKEN="+jwt("root"),
		"CONVERSATION="+reply.ConversationID, "CALL="+shot.ID)
	b := img.Bounds()
	if report.Chat.Width != b.Dx() || report.Chat.Height != b.Dy() || report.Admin != report.Chat {
		t.Errorf("the pages decoded %+v (chat) and %+v (admin); want the screenshot's %dx%d", report.Chat, report.Admin, b.Dx(), b.Dy())
	}
}

// get reads url with the token and wants status.
func get(t *testing.T, url, token string, status int) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s; want %d", url, resp.StatusCode, b.Bytes(), status)
	}
	return b.Bytes()
}
