package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// urlInputs is what a reply says of the questions waiting in a turn.
type urlInputs struct {
	ConversationID string `json:"conversation_id"`
	Status         string `json:"status"`
	Message        struct{ Content string }
	PendingInputs  []struct {
		ID   string `json:"id"`
		Mode string `json:"mode"`
		URL  string `json:"url"`
	} `json:"pending_inputs"`
}

// TestURLElicitationExample: the TypeScript SDK's elicitationUrlExample,
// end to end, for two users. Its MCP endpoint is behind the SDK's demo
// authorization server, so alice and bob each connect (OAuth, in a browser
// of their own that keeps the demo's sign-in cookie). Its payment-confirm
// refuses every call until the user has opened a link
// (URLElicitationRequiredError, -32042): the question reaches the user
// whose call it is, with the link of their own MCP session; alice opens it
// and confirms on the server's page, the server's completion notice
// continues the call by itself, and the call is made again, which this
// demo refuses again with a new link: the next stop. Declined, the model
// gets the server's error. Bob cannot answer alice's question.
func TestURLElicitationExample(t *testing.T) {
	demo := startOAuthExample(t, "elicitationUrlExample")
	model := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "pay__payment-confirm", Arguments: `{"cartId":"cart-7"}`}}}
	})
	defer model.Close()
	dbURL := storetest.PostgresURL(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	const jwtSecret = "url-elicitation-test-secret-0123456789"
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
public_url: %s
secrets_key: %q
database_url: %q
llm: {base_url: %q, api_key: k}
auth: {jwt_secret: %q}
mcpServers:
  pay: {url: %q, auth: {type: oauth}}
`, port, base, "test:"+"c3dpdGNoYm9hcmQtdGVzdC1rZXktMzItYnl0ZXMhISE=", dbURL, model.URL, jwtSecret, demo.mcpURL)
	var stdout, stderr syncBuffer
	startWithSecret(t, cfg, &stdout, &stderr)
	jwt := func(user string) string {
		tok, err := auth.MintToken([]byte(jwtSecret), user, time.Hour, false, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(method, path, user, body string, out any) int {
		t.Helper()
		code, b := httpCall(t, method, base+path, jwt(user), body)
		if out != nil {
			if err := json.Unmarshal([]byte(b), out); err != nil {
				t.Fatalf("%s %s: %d %s", method, path, code, b)
			}
		}
		return code
	}

	// Each user signs in to the demo in a browser of their own.
	browsers := map[string]*http.Client{}
	for _, user := range []string{"alice", "bob"} {
		jar, _ := cookiejar.New(nil)
		browsers[user] = &http.Client{Jar: jar, Timeout: 30 * time.Second}
		var r struct {
			AuthorizationURL string `json:"authorization_url"`
		}
		if code := call("POST", "/api/"+user+"/connections/pay", user, "", &r); code != 200 || r.AuthorizationURL == "" {
			t.Fatalf("%s connects: %d %+v\n%s", user, code, r, stderr.String())
		}
		resp, err := browsers[user].Get(r.AuthorizationURL)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), "Connected pay") {
			t.Fatalf("%s's sign-in: %d %s\n%s", user, resp.StatusCode, page, stderr.String())
		}
	}
	waitUntil(t, 30*time.Second, "the demo's tools in alice's catalog", func() bool {
		_, body := httpCall(t, "GET", base+"/api/alice/tools", jwt("alice"), "")
		return strings.Contains(body, "pay__payment-confirm")
	})

	asked := map[string]urlInputs{}
	for _, user := range []string{"alice", "bob"} {
		var r urlInputs
		code := call("POST", "/api/"+user+"/chat", user, `{"message":{"content":"pay for my cart"}}`, &r)
		if code != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || r.PendingInputs[0].Mode != "url" ||
			!strings.Contains(r.PendingInputs[0].URL, "/confirm-payment?session=") {
			t.Fatalf("%s pays: %d %+v\n%s", user, code, r, stderr.String())
		}
		asked[user] = r
	}
	a, b := asked["alice"], asked["bob"]
	session := func(link string) string { u, _ := url.Parse(link); return u.Query().Get("session") }
	if session(a.PendingInputs[0].URL) == session(b.PendingInputs[0].URL) {
		t.Errorf("alice's and bob's links name one MCP session: %s", a.PendingInputs[0].URL)
	}
	if code := call("POST", "/api/bob/conversations/"+b.ConversationID+"/inputs/"+a.PendingInputs[0].ID, "bob", `{"action":"accept"}`, nil); code != 404 {
		t.Errorf("bob answers alice's question: %d, want 404", code)
	}

	// Alice opens her link and confirms on the server's page.
	link := a.PendingInputs[0].URL
	resp, err := browsers["alice"].Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Confirm Payment") {
		t.Fatalf("alice's confirmation page: %d %s", resp.StatusCode, page)
	}
	q, _ := url.Parse(link)
	form := url.Values{"session": {q.Query().Get("session")}, "elicitation": {q.Query().Get("elicitation")},
		"cartId": {q.Query().Get("cartId")}, "action": {"confirm"}}
	resp, err = browsers["alice"].PostForm(q.Scheme+"://"+q.Host+"/confirm-payment", form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Payment Confirmed") {
		t.Fatalf("alice confirms: %d %s", resp.StatusCode, page)
	}

	// The completion notice continues the call, which the demo refuses
	// again with a new link.
	var next urlInputs
	waitUntil(t, 30*time.Second, "alice's next question after the completion notice", func() bool {
		next = urlInputs{}
		call("GET", "/api/alice/conversations/"+a.ConversationID, "alice", "", &next)
		return len(next.PendingInputs) == 1 && next.PendingInputs[0].ID != a.PendingInputs[0].ID
	})
	if got := session(next.PendingInputs[0].URL); got != session(link) {
		t.Errorf("the call made again: link of session %s, want alice's %s", got, session(link))
	}
	var done urlInputs
	if code := call("POST", "/api/alice/conversations/"+a.ConversationID+"/inputs/"+next.PendingInputs[0].ID, "alice", `{"action":"decline"}`, &done); code != 200 ||
		done.Status != "completed" || !strings.Contains(done.Message.Content, "tool said: error") {
		t.Errorf("alice declines the second link: %d %+v, want the turn completed with the server's error", code, done)
	}
	// Bob's question still waits for him, untouched by alice's.
	var bobs urlInputs
	call("GET", "/api/bob/conversations/"+b.ConversationID, "bob", "", &bobs)
	if len(bobs.PendingInputs) != 1 || bobs.PendingInputs[0].ID != b.PendingInputs[0].ID {
		t.Errorf("bob's question after alice's answers: %+v, want his first, pending", bobs.PendingInputs)
	}
}
