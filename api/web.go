package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// The web UI is package web's files, served as they are: the chat page at
// /, the admin console at /admin, and what they load under /assets/ (routes
// lists them). The pages hold no data and no secrets (they call the API with
// the token the user gives them), so they need no authentication.

// contentSecurityPolicy allows only this origin's own scripts, styles and
// connections: no inline script, no eval, no third party, no framing.
// Images and audio may come from blob: URLs: the tool results' bytes, read
// with the bearer token.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src blob:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// webFile is one file of the UI, ready to serve.
type webFile struct {
	name        string
	body        []byte
	etag        string
	contentType string
	csp         string // its own Content-Security-Policy, if not contentSecurityPolicy
}

// site is the UI's files by name.
type site map[string]webFile

func newSite(fsys fs.FS) site {
	s := site{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		f := webFile{name: p, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		if p == "admin.html" {
			// The admin console shows the icons MCP servers declare, some
			// at their own https: URLs: images over https: too (admin.js
			// shows https: and data: PNG, JPEG, GIF and WebP ones only; an
			// image runs no script, and Referrer-Policy keeps the page's
			// URL to itself).
			f.csp = strings.Replace(contentSecurityPolicy, "img-src ", "img-src https: ", 1)
		}
		s[p] = f
		return nil
	})
	if err != nil {
		panic("api: read the embedded web UI: " + err.Error()) // embedded: cannot happen
	}
	return s
}

// webHeaders are the security headers of every UI response.
func webHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	// Revalidate every time (the ETag makes it cheap): a new binary's UI
	// is never mixed with an old one's cached scripts.
	hd.Set("Cache-Control", "no-cache")
}

func (h *Handler) webPage(s site, name string) gin.HandlerFunc {
	f, ok := s[name]
	if !ok {
		panic("api: the web UI has no " + name)
	}
	return func(c *gin.Context) { serveWebFile(c, f) }
}

func (h *Handler) webAsset(s site) gin.HandlerFunc {
	return func(c *gin.Context) {
		name := strings.TrimPrefix(path.Clean(c.Param("file")), "/")
		f, ok := s[name]
		if !ok || strings.HasSuffix(name, ".html") {
			h.writeError(c, switchboard.Errorf(switchboard.ErrNotFound, "route_not_found", "no asset %q", clip(name)))
			return
		}
		serveWebFile(c, f)
	}
}

// serveWebFile answers with f, or 304 when the client has it (If-None-Match).
func serveWebFile(c *gin.Context, f webFile) {
	w := c.Writer
	webHeaders(w)
	if f.csp != "" {
		w.Header().Set("Content-Security-Policy", f.csp)
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, c.Request, f.name, time.Time{}, bytes.NewReader(f.body))
}
