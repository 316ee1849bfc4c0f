// Package redact hides configured secrets in text that leaves the process:
// log lines, error replies, admin replies and trace spans, whichever
// library wrote the text.
//
// A Scrubber knows the secrets of the running configuration (API keys,
// header and environment values of MCP servers, URL passwords and query
// values, the database password) and replaces each, wherever it appears,
// with "[REDACTED]": as written, and as JSON and URL encoding write it.
// Set replaces the secrets on a reload.
package redact

import (
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Mask replaces a secret.
const Mask = "[REDACTED]"

// minLen is the length below which a value is not treated as a secret: "1"
// or "on" would mask half the log. Every credential is longer.
const minLen = 6

// Scrubber replaces known secrets in text. The zero value and nil hide
// nothing. Its methods are safe for concurrent use.
type Scrubber struct {
	r atomic.Pointer[strings.Replacer]

	mu      sync.Mutex
	secrets []string
}

// New returns a Scrubber of secrets (see Set).
func New(secrets ...string) *Scrubber {
	s := &Scrubber{}
	s.Set(secrets...)
	return s
}

// Set makes secrets the ones to hide: empty and short values are ignored,
// and each is also hidden in its JSON-escaped and URL-encoded forms.
func (s *Scrubber) Set(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = slices.Clone(secrets)
	s.build()
}

// Add hides secrets too, beside those hidden already.
func (s *Scrubber) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, secrets...)
	s.build()
}

// build makes the replacer of s.secrets; the caller holds s.mu.
func (s *Scrubber) build() {
	secrets := s.secrets
	var all []string
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) >= minLen && !seen[v] {
			seen[v] = true
			all = append(all, v)
		}
	}
	for _, v := range secrets {
		add(v)
		b, _ := json.Marshal(v)
		add(string(b[1 : len(b)-1]))
		add(url.QueryEscape(v))
		add(url.PathEscape(v))
	}
	if len(all) == 0 {
		s.r.Store(nil)
		return
	}
	// Longest first: a secret that contains another is hidden whole.
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, Mask)
	}
	s.r.Store(strings.NewReplacer(pairs...))
}

// String returns x with every secret hidden.
func (s *Scrubber) String(x string) string {
	if s == nil {
		return x
	}
	r := s.r.Load()
	if r == nil {
		return x
	}
	return r.Replace(x)
}

// Writer returns a writer that hides secrets in each Write before passing
// it on to w. slog's handlers write one record per Write, so a secret is
// never split across two.
func (s *Scrubber) Writer(w io.Writer) io.Writer { return &writer{s: s, w: w} }

type writer struct {
	s *Scrubber
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	r := w.s.r.Load()
	if r == nil {
		return w.w.Write(p)
	}
	if _, err := io.WriteString(w.w, r.Replace(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// URLSecrets returns the parts of a URL that may be secrets: its password
// and its query values.
func URLSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok {
		out = append(out, p)
	}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	return out
}

// HeaderSecrets returns a header value as a secret, and its credentials
// alone when it names a scheme ("Bearer abc" -> "abc"), which errors and
// logs may show without the scheme.
func HeaderSecrets(v string) []string {
	out := []string{v}
	if scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " "); ok && scheme != "" {
		out = append(out, strings.TrimSpace(cred))
	}
	return out
}
