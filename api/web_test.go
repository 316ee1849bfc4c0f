package api_test

import (
	"bytes"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
	"github.com/switchboard-dev/switchboard/web"
)

func TestWebPages(t *testing.T) {
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), nil, nil, nil, tools.ApprovalPolicy{})
	tests := []struct {
		method, path string
		status       int
		contentType  string
		body         string // a substring
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/assets/chat.js"></script>`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/admin", 200, "text/html; charset=utf-8", `<script type="module" src="/assets/admin.js"></script>`},
		{"GET", "/assets/chat.js", 200, "text/javascript; charset=utf-8", "readStream"},
		{"GET", "/assets/protocol.js", 200, "text/javascript; charset=utf-8", "/* protocol:begin */"},
		{"GET", "/assets/common.js", 200, "text/javascript; charset=utf-8", "sessionStorage"},
		{"GET", "/assets/app.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/assets/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/assets/missing.js", 404, "application/json; charset=utf-8", "route_not_found"},
		{"GET", "/assets/index.html", 404, "application/json; charset=utf-8", "route_not_found"},
		{"GET", "/assets/../../go.mod", 404, "application/json; charset=utf-8", "route_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, svc.url+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.contentType || !strings.Contains(body.String(), tt.body) {
				t.Fatalf("got %d %q with %.200q, want %d %q with %q", resp.StatusCode, resp.Header.Get("Content-Type"), body.String(), tt.status, tt.contentType, tt.body)
			}
			if tt.status != 200 {
				return
			}
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
				strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy: got %q", csp)
			}
			for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
				"X-Frame-Options": "DENY", "Cache-Control": "no-cache"} {
				if got := h.Get(name); got != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
			}
			// Revalidation is cheap: the ETag answers 304.
			req, _ = http.NewRequest("GET", svc.url+tt.path, nil)
			req.Header.Set("If-None-Match", h.Get("ETag"))
			again, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			again.Body.Close()
			if h.Get("ETag") == "" || again.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with ETag %q: got %d, want 304", h.Get("ETag"), again.StatusCode)
			}
		})
	}
}

// TestWebFilesAreSelfContained checks what the CSP and "works offline"
// need of every embedded file: no inline script, style or handler, no
// third-party URL, and no HTML built from strings.
func TestWebFilesAreSelfContained(t *testing.T) {
	rules := []struct {
		what string
		re   *regexp.Regexp
		ext  string
	}{
		{"an inline script", regexp.MustCompile(`<script(?:\s[^>]*)?>[^<\s]`), ".html"},
		{"a script without src", regexp.MustCompile(`<script(?:(?:\s[^>]*)?\s)?(?:type="module")?>`), ".html"},
		{"a style attribute", regexp.MustCompile(`\sstyle=`), ".html"},
		{"an inline handler", regexp.MustCompile(`\son[a-z]+=`), ".html"},
		{"a <style> element", regexp.MustCompile(`<style`), ".html"},
		{"a URL of another origin", regexp.MustCompile(`(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`), ""},
		{"innerHTML", regexp.MustCompile(`\.(?:inner|outer)HTML\b|insertAdjacentHTML|document\.write`), ".js"},
		{"eval", regexp.MustCompile(`\beval\(|new Function\(`), ".js"},
		{"setAttribute('style')", regexp.MustCompile(`setAttribute\(\s*['"]style`), ".js"},
	}
	fsys := web.FS()
	var files int
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.ext != "" && !strings.HasSuffix(path, r.ext) {
				continue
			}
			if loc := r.re.FindIndex(b); loc != nil && !(strings.HasSuffix(path, ".svg") && strings.Contains(string(b[loc[0]:loc[1]]), "www.w3.org")) {
				t.Errorf("%s has %s: %q", path, r.what, b[loc[0]:loc[1]])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 6 {
		t.Errorf("the embedded UI has %d files, want the pages, scripts, styles and icon", files)
	}
}

// TestConversationToolCalls is the chat page's read of a conversation's
// ledger rows: the user's own only.
func TestConversationToolCalls(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			calls := seedLedger(t, st, []seedCall{
				{"alice", "tasks", "add_task", switchboard.CallSucceeded, time.Now().Add(-time.Minute), time.Millisecond},
				{"alice", "tasks", "delete_task", switchboard.CallAwaitingApproval, time.Now(), 0},
				{"bob", "tasks", "add_task", switchboard.CallSucceeded, time.Now(), time.Millisecond},
			})
			conv := calls[0].ConversationID
			var r struct {
				ToolCalls []struct {
					ID, CallID, Tool, Status string
				} `json:"tool_calls"`
				Error struct{ Code string }
			}
			resp := do(t, "GET", svc.url+"/api/alice/conversations/"+conv+"/tool-calls", token(t, "alice"), "", &r)
			if resp.StatusCode != 200 || len(r.ToolCalls) != 2 || r.ToolCalls[0].ID != calls[0].ID || r.ToolCalls[1].Status != "awaiting_approval" {
				t.Errorf("alice's calls: got %d %+v, want both, oldest first", resp.StatusCode, r)
			}
			for _, tt := range []struct {
				path, tok string
				status    int
			}{
				{"/api/bob/conversations/" + conv + "/tool-calls", token(t, "bob"), 404},
				{"/api/alice/conversations/" + conv + "/tool-calls", token(t, "bob"), 403},
				{"/api/alice/conversations/" + conv + "/tool-calls", "", 401},
				{"/api/alice/conversations/nope/tool-calls", token(t, "alice"), 404},
			} {
				if resp := do(t, "GET", svc.url+tt.path, tt.tok, "", &r); resp.StatusCode != tt.status {
					t.Errorf("GET %s: got %d %+v, want %d", tt.path, resp.StatusCode, r.Error, tt.status)
				}
			}
		})
	}
}
