package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestAdminQueryIsParsedStrictly: a pair that Go's URL.Query would drop
// (a ";", a malformed escape) is a 400 naming it, never a filter silently
// ignored; a since or until of the zero time is a bound like any other.
func TestAdminQueryIsParsedStrictly(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			now := time.Now().UTC().Truncate(time.Second)
			calls := seedLedger(t, st, ledgerFixture(now))
			admin := adminToken(t, "carol")

			for _, tt := range []struct{ query, message string }{
				{"user=alice;bob", `parameter "user" contains a ";"`},
				{"user=alice&tool=add;task", `parameter "tool" contains a ";"`},
				{"user=alice;", `parameter "user" contains a ";"`},
				{";user=alice", `contains a ";"`},
				{"user=%zz", `parameter "user" is not correctly escaped`},
				{"us%zzer=alice", `is not correctly escaped`},
			} {
				for _, route := range []string{"/tool-calls", "/tool-calls/stats"} {
					var r chatReply
					resp := do(t, "GET", svc.url+"/api/admin"+route+"?"+tt.query, admin, "", &r)
					if resp.StatusCode != 400 || r.Error.Code != "invalid_query" || !strings.Contains(r.Error.Message, tt.message) {
						t.Errorf("%s?%s: got %d %s %q, want 400 invalid_query with %q", route, tt.query, resp.StatusCode, r.Error.Code, r.Error.Message, tt.message)
					}
				}
			}
			// A semicolon written %3B is a character of the value.
			var page callList
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls?user=alice%3Bbob", admin, "", &page); resp.StatusCode != 200 || len(page.ToolCalls) != 0 {
				t.Errorf("user=alice%%3Bbob: got %d with %d calls, want 200 and none (no user is named so)", resp.StatusCode, len(page.ToolCalls))
			}

			// until=0001-01-01T00:00:00Z is before every call: nothing.
			zero := "0001-01-01T00:00:00Z"
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls?until="+zero, admin, "", &page); resp.StatusCode != 200 || len(page.ToolCalls) != 0 {
				t.Errorf("until=%s: got %d with %d calls, want 200 and none", zero, resp.StatusCode, len(page.ToolCalls))
			}
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls?since="+zero, admin, "", &page); resp.StatusCode != 200 || len(page.ToolCalls) != len(calls) {
				t.Errorf("since=%s: got %d with %d calls, want 200 and all %d", zero, resp.StatusCode, len(page.ToolCalls), len(calls))
			}
			var stats statsReply
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls/stats?until="+zero, admin, "", &stats); resp.StatusCode != 200 || len(stats.Stats) != 0 || stats.Until != zero {
				t.Errorf("stats?until=%s: got %d %+v, want 200, no stats, until %s", zero, resp.StatusCode, stats, zero)
			}
			// since=0001-01-01T00:00:00Z covers all time, not the last 24h.
			var all statsReply
			do(t, "GET", svc.url+"/api/admin/tool-calls/stats?"+url.Values{"since": {now.AddDate(-10, 0, 0).Format(time.RFC3339)}}.Encode(), admin, "", &all)
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls/stats?since="+zero, admin, "", &stats); resp.StatusCode != 200 || stats.Since != zero {
				t.Errorf("stats?since=%s: got %d since %s, want 200 since %s", zero, resp.StatusCode, stats.Since, zero)
			}
			if diff := cmp.Diff(all.Stats, stats.Stats); diff != "" || len(all.Stats) == 0 {
				t.Errorf("stats?since=%s, against the last ten years (-years +zero):\n%s", zero, diff)
			}
			var r chatReply
			if resp := do(t, "GET", svc.url+"/api/admin/tool-calls?since="+zero+"&until="+zero, admin, "", &r); resp.StatusCode != 400 || !strings.Contains(r.Error.Message, "must be before until") {
				t.Errorf("since=until=%s: got %d %+v, want 400", zero, resp.StatusCode, r.Error)
			}
		})
	}
}

// TestUserQueryIsParsedStrictly: the user routes' query parameters
// (conversation_id of chat, limit of the listing) are parsed strictly too.
func TestUserQueryIsParsedStrictly(t *testing.T) {
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), nil, nil, nil, tools.ApprovalPolicy{})
	tok := token(t, "alice")
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/api/alice/conversations?limit=5;x", ""},
		{"POST", "/api/alice/chat?conversation_id=" + switchboard.NewID() + ";x", `{"message":{"content":"hi"}}`},
		{"POST", "/api/alice/chat/stream?conversation_id=%zz", `{"message":{"content":"hi"}}`},
	} {
		var r chatReply
		resp := do(t, tt.method, svc.url+tt.path, tok, tt.body, &r)
		if resp.StatusCode != 400 || r.Error.Code != "invalid_query" {
			t.Errorf("%s %s: got %d %+v, want 400 invalid_query", tt.method, tt.path, resp.StatusCode, r.Error)
		}
	}
}
