package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// adminStore is a store as the admin routes and the tests that seed the
// ledger use it.
type adminStore interface {
	testStore
	api.AdminStore
}

func asAdminStore(t *testing.T, st testStore) adminStore {
	t.Helper()
	a, ok := st.(adminStore)
	if !ok {
		t.Fatalf("%T does not implement api.AdminStore", st)
	}
	return a
}

// adminService is a running API with the admin routes wired: the store,
// and servers reported by servers (may be nil).
type adminService struct {
	url   string
	model *llmtest.Server
	store adminStore
}

// rootAdmin is an admin by configuration (auth.admin_users), whatever the
// token says.
const rootAdmin = "root"

func newAdminService(t *testing.T, st adminStore, conn *mcpclient.Conn, servers api.ServerAdmin, respond llmtest.Responder, approval tools.ApprovalPolicy) *adminService {
	t.Helper()
	if respond == nil {
		respond = llmtest.Sequence()
	}
	svc := newServiceWithDeps(t, st, conn, respond, nil, nil, []string{rootAdmin}, api.Deps{Admin: st, Servers: servers}, approval)
	return &adminService{url: svc.url, model: svc.model, store: st}
}

// adminToken is a token with the admin role claim.
func adminToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.MintToken(secret, user, time.Hour, true, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signClaims signs arbitrary claims with the test secret.
func signClaims(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// seedCall is a ledger row to store for a test.
type seedCall struct {
	user, server, tool string
	status             switchboard.ToolCallStatus
	at                 time.Time
	duration           time.Duration
}

// seedLedger stores each call in its own turn (of its user's first
// conversation) and returns the rows as stored, in the given order.
func seedLedger(t *testing.T, st adminStore, calls []seedCall) []switchboard.ToolCall {
	t.Helper()
	ctx := context.Background()
	convs := map[string]string{}
	var out []switchboard.ToolCall
	for i, sc := range calls {
		ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: convs[sc.user]},
			Turn: switchboard.Turn{UserID: sc.user}, UserMessage: switchboard.Message{Content: fmt.Sprintf("message %d", i)}}
		if _, err := st.BeginTurn(ctx, &ts); err != nil {
			t.Fatalf("BeginTurn: %v", err)
		}
		convs[sc.user] = ts.Conversation.ID
		tc := switchboard.ToolCall{CallID: fmt.Sprintf("call_%d", i), Server: sc.server, Tool: sc.tool,
			ExposedName: sc.server + "__" + sc.tool, Arguments: json.RawMessage(fmt.Sprintf(`{"n":%d,"user_id":%q}`, i, sc.user)),
			Result: fmt.Sprintf("result of call %d", i), Status: sc.status, Duration: sc.duration, StartedAt: sc.at,
			ResultSize: 16, StructuredResult: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if tc.Finished() {
			tc.FinishedAt = sc.at.Add(sc.duration)
		}
		if sc.status == switchboard.CallFailed {
			tc.ErrorClass, tc.Error = switchboard.ErrorClassTool, "the tool failed"
		}
		u := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted, FinishedAt: sc.at.Add(time.Second)},
			ToolCalls: []switchboard.ToolCall{tc}}
		if err := st.SaveTurn(ctx, &u); err != nil {
			t.Fatalf("SaveTurn: %v", err)
		}
		out = append(out, u.ToolCalls[0])
	}
	return out
}

// callList is the reply of GET /api/admin/tool-calls.
type callList struct {
	Success    bool            `json:"success"`
	ToolCalls  []adminCallJSON `json:"tool_calls"`
	NextCursor *string         `json:"next_cursor"`
	Error      struct{ Code, Message string }
}

type adminCallJSON struct {
	ID               string          `json:"id"`
	CallID           string          `json:"call_id"`
	UserID           string          `json:"user_id"`
	ConversationID   string          `json:"conversation_id"`
	TurnID           string          `json:"turn_id"`
	Step             int             `json:"step"`
	Server           string          `json:"server"`
	Tool             string          `json:"tool"`
	ExposedName      string          `json:"exposed_name"`
	Arguments        json.RawMessage `json:"arguments"`
	Status           string          `json:"status"`
	ErrorClass       string          `json:"error_class"`
	Error            string          `json:"error"`
	DurationMS       float64         `json:"duration_ms"`
	ResultSize       int             `json:"result_size"`
	Truncated        bool            `json:"truncated"`
	StartedAt        string          `json:"started_at"`
	FinishedAt       *string         `json:"finished_at"`
	Result           *string         `json:"result"`
	StructuredResult json.RawMessage `json:"structured_result"`
}

func listIDs(calls []adminCallJSON) []string {
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
	}
	return ids
}

// newestIDs returns the ids of the calls that pass keep, newest first, as
// the listing orders them.
func newestIDs(calls []switchboard.ToolCall, keep func(switchboard.ToolCall) bool) []string {
	var kept []switchboard.ToolCall
	for _, c := range calls {
		if keep(c) {
			kept = append(kept, c)
		}
	}
	slices.SortFunc(kept, func(a, b switchboard.ToolCall) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	ids := []string{}
	for _, c := range kept {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestAdminRoutesAreForAdminsOnly(t *testing.T) {
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), nil, fakeServers{}, nil, tools.ApprovalPolicy{})
	id := switchboard.NewID()
	routes := []struct{ method, path string }{
		{"GET", "/api/admin/tool-calls"},
		{"GET", "/api/admin/tool-calls/stats"},
		{"GET", "/api/admin/tool-calls/" + id},
		{"GET", "/api/admin/conversations/" + id},
		{"GET", "/api/admin/servers"},
		{"POST", "/api/admin/servers/reload"},
	}
	callers := []struct {
		name   string
		tok    string
		status int
		code   string
	}{
		{"no token", "", 401, "missing_token"},
		{"a user", token(t, "alice"), 403, "admin_only"},
		{"a user whose roles lack admin", signClaims(t, jwt.MapClaims{"sub": "alice", "roles": []string{"editor"}, "role": "user"}), 403, "admin_only"},
		{"a user named admin", signClaims(t, jwt.MapClaims{"sub": "admin"}), 403, "reserved_user_id"},
		{"role: admin", adminToken(t, "carol"), 0, ""},
		{"roles: [admin]", signClaims(t, jwt.MapClaims{"sub": "dave", "roles": []string{"reader", "admin"}}), 0, ""},
		{"roles: \"admin\"", signClaims(t, jwt.MapClaims{"user_id": "erin", "roles": "admin"}), 0, ""},
		{"admin by configuration", token(t, rootAdmin), 0, ""},
	}
	for _, r := range routes {
		for _, c := range callers {
			t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
				var reply chatReply
				resp := do(t, r.method, svc.url+r.path, c.tok, "", &reply)
				if c.status != 0 {
					if resp.StatusCode != c.status || reply.Error.Code != c.code || reply.Error.Message == "" {
						t.Errorf("got %d %+v, want %d %s", resp.StatusCode, reply.Error, c.status, c.code)
					}
					return
				}
				if resp.StatusCode == 401 || resp.StatusCode == 403 {
					t.Errorf("an admin got %d %+v", resp.StatusCode, reply.Error)
				}
			})
		}
	}
}

// fakeServers reports one server and counts reloads.
type fakeServers struct{ reloads *int }

func (f fakeServers) Servers() []switchboard.ServerStatus {
	return []switchboard.ServerStatus{{Name: "tasks", Transport: "stdio", State: switchboard.ServerReady,
		Tools: []string{"tasks__add_task"}, StderrTail: []string{"tasks-mcp: serving on stdio"}}}
}

func (f fakeServers) Reload(context.Context) error {
	if f.reloads != nil {
		*f.reloads++
	}
	return nil
}

// ledgerFixture is a varied ledger: two users, three servers, every final
// status, spread over two days before now.
func ledgerFixture(now time.Time) []seedCall {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	h := func(n int) time.Time { return now.Add(-time.Duration(n) * time.Hour) }
	return []seedCall{
		{"alice", "tasks", "add_task", switchboard.CallSucceeded, h(40), ms(10)},
		{"alice", "tasks", "list_tasks", switchboard.CallSucceeded, h(30), ms(20)},
		{"bob", "tasks", "add_task", switchboard.CallFailed, h(20), ms(30)},
		{"alice", "files", "read_file", switchboard.CallTimedOut, h(10), ms(40)},
		{"bob", "files", "read_file", switchboard.CallSucceeded, h(5), ms(50)},
		{"alice", "web", "search", switchboard.CallDenied, h(4), 0},
		{"bob", "tasks", "add_task", switchboard.CallSucceeded, h(3), ms(60)},
		{"alice", "tasks", "delete_task", switchboard.CallAwaitingApproval, h(2), 0},
		{"bob", "web", "read_file", switchboard.CallRunning, h(1), 0},
	}
}

func TestAdminToolCallFilters(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			now := time.Now().UTC().Truncate(time.Second)
			calls := seedLedger(t, st, ledgerFixture(now))
			alice := calls[0].ConversationID
			rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
			tests := []struct {
				name  string
				query url.Values
				keep  func(switchboard.ToolCall) bool
			}{
				{"none", url.Values{}, func(switchboard.ToolCall) bool { return true }},
				{"user", url.Values{"user": {"bob"}}, func(c switchboard.ToolCall) bool { return c.UserID == "bob" }},
				{"conversation", url.Values{"conversation": {strings.ToUpper(alice)}}, func(c switchboard.ToolCall) bool { return c.ConversationID == alice }},
				{"turn", url.Values{"turn": {calls[3].TurnID}}, func(c switchboard.ToolCall) bool { return c.TurnID == calls[3].TurnID }},
				{"server", url.Values{"server": {"files"}}, func(c switchboard.ToolCall) bool { return c.Server == "files" }},
				{"tool", url.Values{"tool": {"read_file"}}, func(c switchboard.ToolCall) bool { return c.Tool == "read_file" }},
				{"server and tool", url.Values{"server": {"tasks"}, "tool": {"add_task"}}, func(c switchboard.ToolCall) bool { return c.Server == "tasks" && c.Tool == "add_task" }},
				{"status", url.Values{"status": {"succeeded"}}, func(c switchboard.ToolCall) bool { return c.Status == switchboard.CallSucceeded }},
				{"status awaiting_approval", url.Values{"status": {"awaiting_approval"}}, func(c switchboard.ToolCall) bool { return c.Status == switchboard.CallAwaitingApproval }},
				{"since", url.Values{"since": {rfc(now.Add(-5 * time.Hour))}}, func(c switchboard.ToolCall) bool { return !c.StartedAt.Before(now.Add(-5 * time.Hour)) }},
				{"until", url.Values{"until": {rfc(now.Add(-5 * time.Hour))}}, func(c switchboard.ToolCall) bool { return c.StartedAt.Before(now.Add(-5 * time.Hour)) }},
				{"since and until, with an offset", url.Values{"since": {now.Add(-30 * time.Hour).In(time.FixedZone("", 2*3600)).Format(time.RFC3339)}, "until": {rfc(now.Add(-4 * time.Hour))}},
					func(c switchboard.ToolCall) bool {
						return !c.StartedAt.Before(now.Add(-30*time.Hour)) && c.StartedAt.Before(now.Add(-4*time.Hour))
					}},
				{"user, server and status", url.Values{"user": {"alice"}, "server": {"tasks"}, "status": {"succeeded"}},
					func(c switchboard.ToolCall) bool {
						return c.UserID == "alice" && c.Server == "tasks" && c.Status == switchboard.CallSucceeded
					}},
				{"nothing matches", url.Values{"user": {"nobody"}}, func(switchboard.ToolCall) bool { return false }},
			}
			admin := adminToken(t, "carol")
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var r callList
					resp := do(t, "GET", svc.url+"/api/admin/tool-calls?"+tt.query.Encode(), admin, "", &r)
					if resp.StatusCode != 200 || !r.Success || r.NextCursor != nil {
						t.Fatalf("got %d %+v, want 200 and one page", resp.StatusCode, r)
					}
					if diff := cmp.Diff(newestIDs(calls, tt.keep), listIDs(r.ToolCalls)); diff != "" {
						t.Errorf("ids (-want +got):\n%s", diff)
					}
				})
			}

			// One row in full: every field, snake_case, RFC 3339, milliseconds.
			var r callList
			do(t, "GET", svc.url+"/api/admin/tool-calls?status=failed", admin, "", &r)
			if len(r.ToolCalls) != 1 {
				t.Fatalf("failed calls: got %d", len(r.ToolCalls))
			}
			got, c := r.ToolCalls[0], calls[2]
			finished := c.FinishedAt.Format(time.RFC3339Nano)
			want := adminCallJSON{ID: c.ID, CallID: "call_2", UserID: "bob", ConversationID: c.ConversationID, TurnID: c.TurnID,
				Server: "tasks", Tool: "add_task", ExposedName: "tasks__add_task", Arguments: json.RawMessage(`{"n":2,"user_id":"bob"}`),
				Status: "failed", ErrorClass: "tool_error", Error: "the tool failed", DurationMS: 30, ResultSize: 16,
				StartedAt: c.StartedAt.Format(time.RFC3339Nano), FinishedAt: &finished}
			if diff := cmp.Diff(want, got, jsonEqual); diff != "" {
				t.Errorf("a listed call (-want +got):\n%s", diff)
			}
			do(t, "GET", svc.url+"/api/admin/tool-calls?status=running", admin, "", &r)
			if len(r.ToolCalls) != 1 || r.ToolCalls[0].FinishedAt != nil {
				t.Errorf("a running call: got %+v, want finished_at null", r.ToolCalls)
			}
		})
	}
}

// sameJSON compares JSON by value: Postgres reorders object keys.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return cmp.Equal(va, vb)
}

var jsonEqual = cmp.Comparer(sameJSON)

func TestAdminBadFilters(t *testing.T) {
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), nil, nil, nil, tools.ApprovalPolicy{})
	admin := adminToken(t, "carol")
	tests := []struct {
		path, code, message string
	}{
		{"/tool-calls?tool_name=x", "invalid_filter", `unknown parameter "tool_name"`},
		{"/tool-calls?tool=a&tool=b", "invalid_filter", `parameter "tool" is given 2 times`},
		{"/tool-calls?status=ok", "invalid_filter", `status must be one of running, succeeded, failed, timed_out, cancelled, denied, awaiting_approval, got "ok"`},
		{"/tool-calls?since=yesterday", "invalid_filter", `since must be an RFC 3339 time`},
		{"/tool-calls?until=2026-01-02", "invalid_filter", `until must be an RFC 3339 time`},
		{"/tool-calls?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "invalid_filter", "since (2026-01-02T00:00:00Z) must be before until (2026-01-01T00:00:00Z)"},
		{"/tool-calls?conversation=42", "invalid_filter", `conversation must be a conversation id (a UUID`},
		{"/tool-calls?turn=nope", "invalid_filter", `turn must be a turn id`},
		{"/tool-calls?user=" + strings.Repeat("u", 256), "invalid_filter", "user must be valid text of at most 255 characters"},
		{"/tool-calls?limit=0", "invalid_limit", "limit must be a whole number from 1 to 500"},
		{"/tool-calls?limit=501", "invalid_limit", "limit must be a whole number from 1 to 500"},
		{"/tool-calls?limit=ten", "invalid_limit", `got "ten"`},
		{"/tool-calls?after=garbage!", "invalid_cursor", "the page cursor is malformed"},
		{"/tool-calls/stats?group_by=user", "invalid_group_by", `group_by must be "tool" or "server", got "user"`},
		{"/tool-calls/stats?limit=5", "invalid_filter", `unknown parameter "limit": this route takes user, conversation, turn, server, tool, status, since, until, group_by`},
		{"/tool-calls/stats?since=2026-13-01T00:00:00Z", "invalid_filter", "since must be an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var r chatReply
			resp := do(t, "GET", svc.url+"/api/admin"+tt.path, admin, "", &r)
			if resp.StatusCode != 400 || r.Error.Code != tt.code || !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("got %d %s %q, want 400 %s with %q", resp.StatusCode, r.Error.Code, r.Error.Message, tt.code, tt.message)
			}
		})
	}
	for _, path := range []string{"/tool-calls/" + switchboard.NewID(), "/tool-calls/not-an-id", "/conversations/" + switchboard.NewID(), "/conversations/nope"} {
		var r chatReply
		resp := do(t, "GET", svc.url+"/api/admin"+path, admin, "", &r)
		if resp.StatusCode != 404 || !strings.HasSuffix(r.Error.Code, "_not_found") {
			t.Errorf("%s: got %d %+v, want 404", path, resp.StatusCode, r.Error)
		}
	}
}

// TestAdminPaginationWhileInserting pages through the ledger while calls
// are stored between pages, newer and older than the pages read: no row
// is repeated or skipped, newer rows wait for a new listing.
func TestAdminPaginationWhileInserting(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			admin := adminToken(t, "carol")
			base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
			var fixture []seedCall
			for i := range 23 {
				// Pairs of calls start at the same time: the id breaks the tie.
				fixture = append(fixture, seedCall{"alice", "tasks", "add_task", switchboard.CallSucceeded, base.Add(time.Duration(i/2) * time.Second), time.Millisecond})
			}
			calls := seedLedger(t, st, fixture)
			want := newestIDs(calls, func(switchboard.ToolCall) bool { return true })

			var got []string
			query := url.Values{"user": {"alice"}, "limit": {"5"}}
			for page := 0; ; page++ {
				if page > 10 {
					t.Fatal("pagination does not end")
				}
				var r callList
				if resp := do(t, "GET", svc.url+"/api/admin/tool-calls?"+query.Encode(), admin, "", &r); resp.StatusCode != 200 {
					t.Fatalf("page %d: got %d %+v", page, resp.StatusCode, r.Error)
				}
				got = append(got, listIDs(r.ToolCalls)...)
				// Between pages: a newer call (not on later pages), and one
				// older than every page (on the last page).
				newer := seedLedger(t, st, []seedCall{
					{"alice", "tasks", "add_task", switchboard.CallRunning, time.Now().UTC(), 0},
					{"alice", "tasks", "add_task", switchboard.CallSucceeded, base.Add(-time.Duration(page+1) * time.Minute), time.Millisecond},
				})
				want = append(want, newer[1].ID)
				if r.NextCursor == nil {
					break
				}
				if len(r.ToolCalls) != 5 {
					t.Errorf("page %d: got %d rows with a next cursor, want 5", page, len(r.ToolCalls))
				}
				query.Set("after", *r.NextCursor)
			}
			// The last page's own "older" row came after it was read.
			want = want[:len(want)-1]
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdminToolCallDetail(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			calls := seedLedger(t, st, ledgerFixture(time.Now().UTC()))
			var r struct {
				Success  bool          `json:"success"`
				ToolCall adminCallJSON `json:"tool_call"`
			}
			c := calls[4]
			resp := do(t, "GET", svc.url+"/api/admin/tool-calls/"+strings.ToUpper(c.ID), adminToken(t, "carol"), "", &r)
			if resp.StatusCode != 200 || !r.Success {
				t.Fatalf("got %d %+v", resp.StatusCode, r)
			}
			got := r.ToolCall
			if got.ID != c.ID || got.Result == nil || *got.Result != "result of call 4" || got.UserID != "bob" ||
				!sameJSON(got.Arguments, json.RawMessage(`{"n":4,"user_id":"bob"}`)) ||
				!sameJSON(got.StructuredResult, json.RawMessage(`{"n":4}`)) || got.DurationMS != 50 || got.Status != "succeeded" {
				t.Errorf("detail: got %+v", got)
			}
		})
	}
}

type statsReply struct {
	Success bool   `json:"success"`
	GroupBy string `json:"group_by"`
	Since   string `json:"since"`
	Until   string `json:"until"`
	Stats   []struct {
		Server    string  `json:"server"`
		Tool      string  `json:"tool"`
		Count     int64   `json:"count"`
		Errors    int64   `json:"errors"`
		ErrorRate float64 `json:"error_rate"`
		P50MS     float64 `json:"p50_ms"`
		P95MS     float64 `json:"p95_ms"`
	} `json:"stats"`
}

func TestAdminStats(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, nil, nil, nil, tools.ApprovalPolicy{})
			now := time.Now().UTC().Truncate(time.Second)
			seedLedger(t, st, ledgerFixture(now))
			admin := adminToken(t, "carol")
			type row struct {
				Server, Tool  string
				Count, Errors int64
				ErrorRate     float64
				P50, P95      float64
			}
			get := func(query string) (statsReply, []row) {
				t.Helper()
				var r statsReply
				if resp := do(t, "GET", svc.url+"/api/admin/tool-calls/stats?"+query, admin, "", &r); resp.StatusCode != 200 || !r.Success {
					t.Fatalf("stats?%s: got %d %+v", query, resp.StatusCode, r)
				}
				var rows []row
				for _, s := range r.Stats {
					rows = append(rows, row{s.Server, s.Tool, s.Count, s.Errors, s.ErrorRate, s.P50MS, s.P95MS})
				}
				return r, rows
			}

			// By default: the last 24 hours, by tool.
			r, rows := get("")
			since, err1 := time.Parse(time.RFC3339Nano, r.Since)
			until, err2 := time.Parse(time.RFC3339Nano, r.Until)
			if err1 != nil || err2 != nil || until.Sub(since) != 24*time.Hour || time.Since(until) > time.Minute || r.GroupBy != "tool" {
				t.Errorf("default window: got group_by %q, %s to %s", r.GroupBy, r.Since, r.Until)
			}
			want := []row{
				{"files", "read_file", 2, 1, 0.5, 45, 49.5},
				{"tasks", "add_task", 2, 1, 0.5, 45, 58.5},
				{"tasks", "delete_task", 1, 0, 0, 0, 0},
				{"web", "read_file", 1, 0, 0, 0, 0},
				{"web", "search", 1, 1, 1, 0, 0},
			}
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("stats of the last 24 hours by tool (-want +got):\n%s", diff)
			}

			_, rows = get(url.Values{"group_by": {"server"}, "since": {now.Add(-48 * time.Hour).Format(time.RFC3339)}}.Encode())
			want = []row{
				{"files", "", 2, 1, 0.5, 45, 49.5},
				{"tasks", "", 5, 1, 0.25, 25, 55.5},
				{"web", "", 2, 1, 1, 0, 0},
			}
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("stats of two days by server (-want +got):\n%s", diff)
			}

			_, rows = get(url.Values{"user": {"alice"}, "since": {now.Add(-48 * time.Hour).Format(time.RFC3339)},
				"until": {now.Add(-6 * time.Hour).Format(time.RFC3339)}}.Encode())
			want = []row{
				{"files", "read_file", 1, 1, 1, 40, 40},
				{"tasks", "add_task", 1, 0, 0, 10, 10},
				{"tasks", "list_tasks", 1, 0, 0, 20, 20},
			}
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("alice's stats in a window (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdminConversation(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			st := asAdminStore(t, open(t))
			svc := newAdminService(t, st, tasksServer(t, "stdio"), nil, script, tools.ApprovalPolicy{})
			var chat chatReply
			if resp := do(t, "POST", svc.url+"/api/alice/chat", token(t, "alice"), `{"message":{"content":"Add a task to buy milk"}}`, &chat); resp.StatusCode != 200 {
				t.Fatalf("chat: got %d %+v", resp.StatusCode, chat)
			}
			do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+chat.ConversationID, token(t, "alice"), `{"message":{"content":"thanks"}}`, &chat)

			var r struct {
				Success      bool `json:"success"`
				Conversation struct {
					ID, UserID, Title string
				} `json:"conversation"`
				Turns []struct {
					ID         string   `json:"id"`
					Status     string   `json:"status"`
					Steps      int      `json:"steps"`
					StartedAt  string   `json:"started_at"`
					FinishedAt *string  `json:"finished_at"`
					DurationMS *float64 `json:"duration_ms"`
					Timing     struct {
						LLMMS      float64 `json:"llm_ms"`
						ToolsMS    float64 `json:"tools_ms"`
						StoreMS    float64 `json:"store_ms"`
						OverheadMS float64 `json:"overhead_ms"`
					} `json:"timing"`
					ToolCalls []adminCallJSON `json:"tool_calls"`
				} `json:"turns"`
				Messages []struct {
					Role, Type string
					TurnID     string `json:"turn_id"`
				} `json:"messages"`
			}
			// Bob, an admin, reads alice's conversation.
			resp := do(t, "GET", svc.url+"/api/admin/conversations/"+chat.ConversationID, adminToken(t, "bob"), "", &r)
			if resp.StatusCode != 200 || !r.Success || r.Conversation.ID != chat.ConversationID {
				t.Fatalf("got %d %+v", resp.StatusCode, r)
			}
			var turns []string
			for _, tn := range r.Turns {
				var tools []string
				for _, c := range tn.ToolCalls {
					tools = append(tools, c.Tool+":"+c.Status)
					if c.TurnID != tn.ID || c.UserID != "alice" {
						t.Errorf("call %+v listed under turn %s", c, tn.ID)
					}
				}
				turns = append(turns, fmt.Sprintf("%s steps=%d tools=%v", tn.Status, tn.Steps, tools))
				if tn.FinishedAt == nil || tn.DurationMS == nil || *tn.DurationMS <= 0 || tn.Timing.LLMMS <= 0 {
					t.Errorf("turn %s: got finished_at %v, duration_ms %v, timing %+v; want them set", tn.ID, tn.FinishedAt != nil, tn.DurationMS != nil, tn.Timing)
				}
			}
			want := []string{"completed steps=3 tools=[add_task:succeeded list_tasks:succeeded]", "completed steps=1 tools=[]"}
			if diff := cmp.Diff(want, turns); diff != "" {
				t.Errorf("turns (-want +got):\n%s", diff)
			}
			if len(r.Turns) == 2 && r.Turns[0].Timing.ToolsMS <= 0 {
				t.Errorf("first turn: tools took %v ms, want more than 0", r.Turns[0].Timing.ToolsMS)
			}
			var msgs []string
			for _, m := range r.Messages {
				msgs = append(msgs, m.Role+"/"+m.Type)
				if len(r.Turns) == 2 && m.TurnID != r.Turns[0].ID && m.TurnID != r.Turns[1].ID {
					t.Errorf("message of turn %q: no such turn", m.TurnID)
				}
			}
			wantMsgs := []string{"user/text", "assistant/tool_call", "tool/tool_result", "assistant/tool_call", "tool/tool_result", "assistant/text", "user/text", "assistant/text"}
			if diff := cmp.Diff(wantMsgs, msgs); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdminServers(t *testing.T) {
	reloads := 0
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), nil, fakeServers{reloads: &reloads}, nil, tools.ApprovalPolicy{})
	var r struct {
		Servers []struct {
			Name, State string
			StderrTail  []string `json:"stderr_tail"`
		} `json:"servers"`
	}
	resp := do(t, "POST", svc.url+"/api/admin/servers/reload", adminToken(t, "carol"), "", &r)
	if resp.StatusCode != 200 || reloads != 1 || len(r.Servers) != 1 || r.Servers[0].State != "ready" || len(r.Servers[0].StderrTail) != 1 {
		t.Errorf("reload: got %d, %d reloads, %+v", resp.StatusCode, reloads, r)
	}
}

// protocolServers reports a modern server that connected and a legacy one
// that never did.
type protocolServers struct{}

func (protocolServers) Servers() []switchboard.ServerStatus {
	return []switchboard.ServerStatus{
		{Name: "modern", Transport: "http", State: switchboard.ServerReady, Protocol: switchboard.ServerProtocol{
			Era: "modern", Version: "2026-07-28", ServerName: "modernmcp", ServerVersion: "1.2.3",
			Capabilities: json.RawMessage(`{"tools":{"listChanged":true}}`)}},
		{Name: "down", Transport: "stdio", State: switchboard.ServerDegraded},
	}
}

func (protocolServers) Reload(context.Context) error { return nil }

func TestAdminServersProtocol(t *testing.T) {
	// Each server's negotiated protocol version and era, and its own name,
	// version and capabilities; nothing for one that never connected.
	svc := newAdminService(t, asAdminStore(t, store.NewMemory()), nil, protocolServers{}, nil, tools.ApprovalPolicy{})
	var r struct {
		Servers []struct {
			Name     string
			Protocol *struct {
				Era           string          `json:"era"`
				Version       string          `json:"version"`
				ServerName    string          `json:"server_name"`
				ServerVersion string          `json:"server_version"`
				Capabilities  json.RawMessage `json:"capabilities"`
			} `json:"protocol"`
		} `json:"servers"`
	}
	if resp := do(t, "GET", svc.url+"/api/admin/servers", adminToken(t, "carol"), "", &r); resp.StatusCode != 200 || len(r.Servers) != 2 {
		t.Fatalf("servers: %d %+v", resp.StatusCode, r)
	}
	p := r.Servers[0].Protocol
	if p == nil || p.Era != "modern" || p.Version != "2026-07-28" || p.ServerName != "modernmcp" || p.ServerVersion != "1.2.3" ||
		string(p.Capabilities) != `{"tools":{"listChanged":true}}` {
		t.Errorf("modern's protocol: %+v, want modern 2026-07-28 of modernmcp 1.2.3 with its capabilities", p)
	}
	if r.Servers[1].Protocol != nil {
		t.Errorf("down's protocol: %+v, want none", r.Servers[1].Protocol)
	}
}
