package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// everythingServer connects to server-everything over stdio.
func everythingServer(t *testing.T) *mcpclient.Conn {
	t.Helper()
	dir := nodetest.Module(t, "@modelcontextprotocol/server-everything")
	conn, err := mcpclient.Dial(t.Context(), mcpclient.Config{Name: "everything", Command: nodetest.Node(t),
		Args: []string{filepath.Join(dir, "dist", "index.js"), "stdio"}, Timeout: 30 * time.Second, InitTimeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type contentRef struct {
	Index    int    `json:"index"`
	Kind     string `json:"kind"`
	MIMEType string `json:"mime_type"`
	Size     int    `json:"size"`
	SHA256   string `json:"sha256"`
	URL      string `json:"url"`
}

// TestToolContentEndToEnd: with server-everything, the image a tool
// returns is stored and served to its owner (another user and another
// conversation find nothing; admins read it at theirs), listed in the chat
// reply and the stream (which also sends it as a file part), and shown to a
// model that sees images as an image_url part after the tool result; the
// model reads a linked resource with read_resource, and a blob of a text
// type reaches it as text. On both stores.
func TestToolContentEndToEnd(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			model := llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "c_img", Name: "everything__get-tiny-image", Arguments: `{}`}}},
				llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "c_links", Name: "everything__get-resource-links", Arguments: `{"count":2}`}}},
				llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "c_read", Name: "read_resource",
					Arguments: `{"server":"everything","uri":"demo://resource/dynamic/blob/1"}`}}},
				llmtest.Reply{Text: "A tiny image, and resource 1."},
				// The stream's turn.
				llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "c_img2", Name: "everything__get-tiny-image", Arguments: `{}`}}},
				llmtest.Reply{Text: "Again."},
			)
			st := open(t)
			svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(everythingServer(t))}}, model,
				&orchestrator.Options{Vision: orchestrator.Vision{Enabled: true}}, nil, []string{"root"}, api.Deps{Admin: st.(api.AdminStore)})
			alice, bob := token(t, "alice"), token(t, "bob")

			var reply struct {
				chatReply
				ToolCalls []struct {
					ID      string       `json:"id"`
					Tool    string       `json:"tool"`
					Result  string       `json:"result"`
					Status  string       `json:"status"`
					Content []contentRef `json:"content"`
				} `json:"tool_calls"`
			}
			if resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"show me"}}`, &reply); resp.StatusCode != 200 || len(reply.ToolCalls) != 3 {
				t.Fatalf("chat: %d %+v", resp.StatusCode, reply)
			}
			img := reply.ToolCalls[0]
			if img.Status != "succeeded" || len(img.Content) != 1 || img.Content[0].Kind != "image" || img.Content[0].MIMEType != "image/png" {
				t.Fatalf("get-tiny-image: %+v; want one PNG listed", img)
			}
			ref := img.Content[0]
			if want := "/api/alice/conversations/" + reply.ConversationID + "/tool-calls/" + img.ID + "/content/0"; ref.URL != want {
				t.Errorf("content url: got %q, want %q", ref.URL, want)
			}

			// The owner reads the bytes, as an image that runs nothing.
			resp := do(t, "GET", svc.url+ref.URL, alice, "", nil)
			png := readAll(t, resp)
			sum := sha256.Sum256(png)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) ||
				len(png) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
				t.Fatalf("GET content: %d %q, %d bytes; want the PNG of %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(png), ref.Size)
			}
			for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
				"Content-Disposition": `inline; filename=` + img.ID + `-0.png`} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("GET content: %s %q, want %q", h, got, want)
				}
			}
			// Nobody else finds it: bob at his own path, alice's path with
			// another conversation; admins at theirs.
			for _, tt := range []struct {
				url, tok string
				want     int
			}{
				{strings.Replace(ref.URL, "/api/alice/", "/api/bob/", 1), bob, 404},
				{ref.URL, bob, 403},
				{strings.Replace(ref.URL, reply.ConversationID, switchboard.NewID(), 1), alice, 404},
				{strings.Replace(ref.URL, "/content/0", "/content/1", 1), alice, 404},
				{strings.Replace(ref.URL, "/content/0", "/content/01", 1), alice, 400},
				{"/api/admin/tool-calls/" + img.ID + "/content/0", alice, 403},
			} {
				if resp := do(t, "GET", svc.url+tt.url, tt.tok, "", nil); resp.StatusCode != tt.want {
					t.Errorf("GET %s: got %d, want %d", tt.url, resp.StatusCode, tt.want)
				}
			}
			resp = do(t, "GET", svc.url+"/api/admin/tool-calls/"+img.ID+"/content/0", adminToken(t, "root"), "", nil)
			if got := readAll(t, resp); resp.StatusCode != 200 || !bytes.Equal(got, png) {
				t.Errorf("GET admin content: %d, %d bytes", resp.StatusCode, len(got))
			}
			var detail struct {
				ToolCall struct{ Content []contentRef } `json:"tool_call"`
			}
			do(t, "GET", svc.url+"/api/admin/tool-calls/"+img.ID, adminToken(t, "root"), "", &detail)
			if c := detail.ToolCall.Content; len(c) != 1 || c[0].URL != "/api/admin/tool-calls/"+img.ID+"/content/0" {
				t.Errorf("admin tool call: content %+v; want the admin URL", c)
			}

			// What the model saw: the image after the tool result, the
			// links with their hint, read_resource offered, the blob's text.
			reqs := svc.model.Requests()
			if len(reqs) != 4 {
				t.Fatalf("model requests: %d, want 4", len(reqs))
			}
			after := reqs[1].Messages
			last := after[len(after)-1]
			if tool := after[len(after)-2]; tool.Role != "tool" || !strings.Contains(tool.Content, "[image image/png, ") {
				t.Errorf("the tool message: %+v", tool)
			}
			wantURL := "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
			if last.Role != "user" || len(last.MultiContent) != 3 || last.MultiContent[2].Type != openai.ChatMessagePartTypeImageURL ||
				last.MultiContent[2].ImageURL.URL != wantURL {
				t.Errorf("after the tool result the model got %+v; want a user message with the PNG as an image_url part", last)
			}
			var offered bool
			for _, tool := range reqs[2].Tools {
				offered = offered || tool.Function.Name == "read_resource" && strings.Contains(string(mustJSON(t, tool.Function.Parameters)), `"enum":["everything"]`)
			}
			links := reqs[2].Messages[len(reqs[2].Messages)-1]
			if !offered || !strings.Contains(links.Content, `read it with read_resource(server="everything", uri="demo://resource/dynamic/blob/1")`) {
				t.Errorf("read_resource offered %v; the links: %q", offered, links.Content)
			}
			read := reqs[3].Messages[len(reqs[3].Messages)-1]
			if read.Role != "tool" || !strings.Contains(read.Content, "Resource 1: This is a base64 blob") {
				t.Errorf("read_resource's result for the model: %+v", read)
			}
			if c := reply.ToolCalls[2]; c.Tool != "read_resource" || c.Status != "succeeded" {
				t.Errorf("the read_resource call: %+v", c)
			}

			// The stream lists the content and sends the image as a file.
			ps := streamParts(t, svc.url+"/api/alice/chat/stream?conversation_id="+reply.ConversationID, alice, `{"message":{"content":"again"}}`)
			out := ps.find("tool-output-available")
			file := ps.find("file")
			if out == nil || file == nil {
				t.Fatalf("stream parts %v; want a tool output and a file", ps.types())
			}
			listed := out["output"].(map[string]any)["content"].([]any)
			if len(listed) != 1 || listed[0].(map[string]any)["mime_type"] != "image/png" ||
				!strings.HasSuffix(listed[0].(map[string]any)["url"].(string), "/content/0") {
				t.Errorf("tool output content: %v", listed)
			}
			if file["mediaType"] != "image/png" || file["url"] != wantURL {
				t.Errorf("file part: %v; want the PNG as a data URL", file)
			}
			// The second turn's model call replays the first turn's image
			// too, read back from the store.
			reqs = svc.model.Requests()
			var images int
			for _, m := range reqs[len(reqs)-1].Messages {
				for _, p := range m.MultiContent {
					if p.Type == openai.ChatMessagePartTypeImageURL && p.ImageURL.URL == wantURL {
						images++
					}
				}
			}
			if images != 2 {
				t.Errorf("the last model request carries %d images, want 2 (this turn's and the replayed one)", images)
			}
		})
	}
}

// TestContentServedInert: content a browser would run (SVG, HTML, a type
// that does not parse) is served as a download under a sandbox that runs
// nothing; retention leaves a listing whose bytes are gone (404
// content_pruned).
func TestContentServedInert(t *testing.T) {
	st := store.NewMemory()
	svc := newServiceOver(t, st, nil, llmtest.Sequence(), nil, nil, nil, api.Deps{})
	start := &switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice", Status: switchboard.TurnRunning, StartedAt: time.Now()},
		UserMessage: switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "x"}}
	if _, err := st.BeginTurn(t.Context(), start); err != nil {
		t.Fatal(err)
	}
	id := switchboard.NewID()
	kinds := []struct{ mime, body, served, disposition string }{
		{"image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, "image/svg+xml", "attachment"},
		{"text/html; charset=utf-8", `<script>alert(1)</script>`, "text/html; charset=utf-8", "attachment"},
		{"not a type", "??", "application/octet-stream", "attachment"},
		{"audio/wav", "RIFF", "audio/wav", "inline"},
	}
	var parts []switchboard.ContentPart
	for i, k := range kinds {
		sum := sha256.Sum256([]byte(k.body))
		parts = append(parts, switchboard.ContentPart{ToolCallID: id, Index: i, Kind: switchboard.ContentResource, MIMEType: k.mime,
			Size: len(k.body), SHA256: hex.EncodeToString(sum[:]), Data: []byte(k.body)})
	}
	call := switchboard.ToolCall{ID: id, CallID: "c1", Server: "s", Tool: "t", ExposedName: "s__t", Status: switchboard.CallSucceeded,
		Content: parts, StartedAt: time.Now().Add(-time.Hour), FinishedAt: time.Now()}
	if err := st.SaveTurn(t.Context(), &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: start.Turn.ID, Status: switchboard.TurnCompleted,
		FinishedAt: time.Now()}, ToolCalls: []switchboard.ToolCall{call}}); err != nil {
		t.Fatal(err)
	}
	alice := token(t, "alice")
	base := svc.url + "/api/alice/conversations/" + start.Conversation.ID + "/tool-calls/" + id + "/content/"
	for i, k := range kinds {
		resp := do(t, "GET", base+strconv.Itoa(i), alice, "", nil)
		body := readAll(t, resp)
		if resp.StatusCode != 200 || string(body) != k.body || resp.Header.Get("Content-Type") != k.served ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), k.disposition+";") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") != "default-src 'none'; sandbox" {
			t.Errorf("%s: %d %q, Content-Type %q, Content-Disposition %q, nosniff %q, CSP %q; want %q as %s under the sandbox",
				k.mime, resp.StatusCode, body, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"),
				resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Content-Security-Policy"), k.served, k.disposition)
		}
	}
	// A client that has the bytes gets 304 for their hash.
	req, _ := http.NewRequest("GET", base+"3", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("If-None-Match", `"`+parts[3].SHA256+`"`)
	if resp := doRequest(t, req, nil); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: got %d, want 304", resp.StatusCode)
	}

	if n, err := st.PruneToolCallPayloads(t.Context(), time.Now(), 10); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	var e chatReply
	if resp := do(t, "GET", base+"0", alice, "", &e); resp.StatusCode != 404 || e.Error.Code != "content_pruned" {
		t.Errorf("pruned content: got %d %+v, want 404 content_pruned", resp.StatusCode, e.Error)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
