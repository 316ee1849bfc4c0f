package api

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard"
)

// FuzzParseChat: any body gets a decoded request or a client error, never a
// panic, and a decoded request is always usable.
func FuzzParseChat(f *testing.F) {
	for _, s := range []string{
		`{"message":{"content":"hi"}}`,
		`{"message":{"content":"hi"},"conversation_id":"01a2116d-9a02-7a9d-8fbb-22a1db8fca1c"}`,
		`{"id":"chat-1","messages":[{"role":"user","parts":[{"type":"text","text":"hello"}]}],"trigger":"submit-message"}`,
		`{"message":{}}`, `{"messages":[]}`, `[]`, `null`, `{"message":{"content":5}}`, "\xff",
	} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"message":{"content":"x"}}`), "conv-1")
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		in, err := parseChat(body, query, 100)
		if err != nil {
			if !errors.Is(err, switchboard.ErrInvalid) && !errors.Is(err, switchboard.ErrTooLarge) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			if switchboard.ErrorMessage(err) == "" || switchboard.ErrorCode(err) == "" {
				t.Fatalf("error without a message or code: %v", err)
			}
			if msg := switchboard.ErrorMessage(err); strings.Contains(msg, "struct") || strings.Contains(msg, "api.") || strings.Contains(msg, "*") {
				t.Fatalf("error message shows a Go type: %q", msg)
			}
			return
		}
		if strings.TrimSpace(in.content) == "" || !utf8.ValidString(in.content) || utf8.RuneCountInString(in.content) > 100 {
			t.Fatalf("accepted an unusable message %q", in.content)
		}
		if len(in.conversation) > 255 {
			t.Fatalf("accepted a conversation id of %d bytes", len(in.conversation))
		}
	})
}

// FuzzParseQuery: the strict parser agrees with url.ParseQuery on every
// query that parser takes whole, and fails (invalid_query) on every one of
// which it would drop a pair.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "a=1", "a=1&b=2", "a=1;b=2", "a=%zz", "%zz=1", "a", "a=&=b", "&&a=1&", "a=%3B", "a=1&a=2", "a+b=c+d", ";"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseQuery(raw)
		want, wantErr := url.ParseQuery(raw)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("parseQuery(%q): error %v, url.ParseQuery: error %v", raw, err, wantErr)
		}
		if err != nil {
			if !errors.Is(err, switchboard.ErrInvalid) || switchboard.ErrorCode(err) != "invalid_query" {
				t.Fatalf("parseQuery(%q): error of an unexpected kind: %v", raw, err)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseQuery(%q) = %v, url.ParseQuery = %v", raw, got, want)
		}
	})
}
