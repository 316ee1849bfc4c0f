package redact

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestScrubber(t *testing.T) {
	s := New("sk-live-abc123", `pa"ss\word`, "short", "", "token value/with+chars")
	tests := []struct{ in, want string }{
		{"key sk-live-abc123 here", "key [REDACTED] here"},
		{`{"msg":"pa\"ss\\word"}`, `{"msg":"[REDACTED]"}`},
		{"https://x.example/mcp?k=token+value%2Fwith%2Bchars", "https://x.example/mcp?k=[REDACTED]"},
		{"short stays", "short stays"},
		{"nothing", "nothing"},
	}
	for _, tt := range tests {
		if got := s.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var nilS *Scrubber
	if got := nilS.String("sk-live-abc123"); got != "sk-live-abc123" {
		t.Errorf("a nil Scrubber changed %q", got)
	}
	s.Set("another-secret")
	if got := s.String("sk-live-abc123 another-secret"); got != "sk-live-abc123 [REDACTED]" {
		t.Errorf("after Set: %q", got)
	}
}

func TestWriterUnderSlog(t *testing.T) {
	s := New("sk-live-abc123")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(s.Writer(&buf), nil))
	log.Error("model call failed", "err", `upstream said: {"authorization":"Bearer sk-live-abc123"}`)
	if strings.Contains(buf.String(), "abc123") || !strings.Contains(buf.String(), Mask) {
		t.Errorf("log line %q", buf.String())
	}
}

func TestSecretsOf(t *testing.T) {
	if got := URLSecrets("https://u:pw-secret@h.example/p?api_key=k-123456&x=1"); strings.Join(got, ",") != "pw-secret,k-123456,1" && strings.Join(got, ",") != "pw-secret,1,k-123456" {
		t.Errorf("URLSecrets = %v", got)
	}
	if got := HeaderSecrets("Bearer abcdef123"); len(got) != 2 || got[1] != "abcdef123" {
		t.Errorf("HeaderSecrets = %v", got)
	}
}
