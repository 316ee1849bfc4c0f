package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

// addCalls stores calls in a new turn of user and returns them as stored.
func addCalls(t *testing.T, s Store, user string, calls []switchboard.ToolCall) []switchboard.ToolCall {
	t.Helper()
	ts := newTurn(t, s, user, "", "use tools")
	u := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted}, ToolCalls: calls}
	save(t, s, &u)
	return u.ToolCalls
}

// newest sorts calls as listings return them.
func newest(calls []switchboard.ToolCall) []switchboard.ToolCall {
	calls = slices.Clone(calls)
	slices.SortFunc(calls, func(a, b switchboard.ToolCall) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return calls
}

func testPagination(t *testing.T, s Store) {
	ctx := t.Context()
	var calls []switchboard.ToolCall
	for i := range 25 {
		// Three calls share each start time: the id breaks ties.
		calls = append(calls, switchboard.ToolCall{
			Server: "s", Tool: "t", Status: switchboard.CallSucceeded, StartedAt: t0.Add(time.Duration(i/3) * time.Second),
		})
	}
	existing := newest(addCalls(t, s, "alice", calls))

	var got []switchboard.ToolCall
	f := switchboard.ToolCallFilter{UserID: "alice", Limit: 10}
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := s.ListToolCalls(ctx, f)
		if err != nil {
			t.Fatalf("ListToolCalls page %d: got error %v, want none", page, err)
		}
		got = append(got, rows...)
		if page == 0 {
			// Rows stored between pages: newer ones are not on later pages,
			// an older one is.
			var more []switchboard.ToolCall
			for i := range 5 {
				more = append(more, switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallRunning,
					StartedAt: t0.Add(time.Hour + time.Duration(i))})
			}
			more = append(more, switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallRunning, StartedAt: t0.Add(-time.Hour)})
			more = addCalls(t, s, "alice", more)
			existing = append(existing, more[len(more)-1])
		}
		if next == "" {
			if len(rows) == 0 && page > 0 {
				t.Errorf("page %d: got an empty last page, want the previous page to end the listing", page)
			}
			break
		}
		if len(rows) != 10 {
			t.Errorf("page %d: got %d rows and a next cursor, want 10", page, len(rows))
		}
		f.After = next
	}
	if diff := cmp.Diff(callIDs(existing), callIDs(got)); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	for _, cursor := range []string{"garbage!", "bm9wZQ", "MTIzLG5vdC1hLXV1aWQ"} {
		_, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{After: cursor})
		wantErr(t, fmt.Sprintf("ListToolCalls after %q", cursor), err, switchboard.ErrInvalid)
	}
}

func testPageSize(t *testing.T, s Store) {
	calls := make([]switchboard.ToolCall, store.MaxPageSize+1)
	for i := range calls {
		calls[i] = switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallSucceeded, StartedAt: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	calls = newest(addCalls(t, s, "alice", calls))
	tests := []struct {
		name     string
		limit    int
		want     int
		wantNext bool
	}{
		{"default", 0, store.DefaultPageSize, true},
		{"small", 3, 3, true},
		{"capped", 10000, store.MaxPageSize, true},
		{"negative", -1, store.DefaultPageSize, true},
	}
	for _, tt := range tests {
		rows, next, err := s.ListToolCalls(t.Context(), switchboard.ToolCallFilter{Limit: tt.limit})
		if err != nil {
			t.Fatalf("ListToolCalls limit %d: got error %v, want none", tt.limit, err)
		}
		if len(rows) != tt.want || (next != "") != tt.wantNext {
			t.Errorf("%s page: got %d rows, next %q, want %d rows and a next cursor: %v", tt.name, len(rows), next, tt.want, tt.wantNext)
		}
		if tt.limit == 10000 {
			last, next, err := s.ListToolCalls(t.Context(), switchboard.ToolCallFilter{Limit: tt.limit, After: next})
			if err != nil || len(last) != 1 || next != "" || last[0].ID != calls[len(calls)-1].ID {
				t.Errorf("last page: got %d rows, next %q, %v, want the oldest row alone", len(last), next, err)
			}
		}
	}
}

func testFilters(t *testing.T, s Store) {
	ctx := t.Context()
	type spec struct {
		server, tool string
		status       switchboard.ToolCallStatus
	}
	mk := func(specs []spec, offset int) []switchboard.ToolCall {
		var calls []switchboard.ToolCall
		for i, sp := range specs {
			calls = append(calls, switchboard.ToolCall{Server: sp.server, Tool: sp.tool, Status: sp.status,
				StartedAt: t0.Add(time.Duration(offset+i) * time.Minute)})
		}
		return calls
	}
	alice := addCalls(t, s, "alice", mk([]spec{
		{"files", "read", switchboard.CallSucceeded},
		{"files", "write", switchboard.CallFailed},
		{"web", "search", switchboard.CallSucceeded},
		{"web", "read", switchboard.CallTimedOut},
	}, 0))
	alice2 := addCalls(t, s, "alice", mk([]spec{
		{"files", "read", switchboard.CallRunning},
		{"web", "search", switchboard.CallDenied},
	}, 4))
	bob := addCalls(t, s, "bob", mk([]spec{
		{"files", "read", switchboard.CallSucceeded},
		{"files", "write", switchboard.CallSucceeded},
	}, 6))
	all := slices.Concat(alice, alice2, bob)

	tests := []struct {
		name string
		f    switchboard.ToolCallFilter
		want func(c switchboard.ToolCall) bool
	}{
		{"none", switchboard.ToolCallFilter{}, func(c switchboard.ToolCall) bool { return true }},
		{"user", switchboard.ToolCallFilter{UserID: "bob"}, func(c switchboard.ToolCall) bool { return c.UserID == "bob" }},
		{"conversation", switchboard.ToolCallFilter{ConversationID: strings.ToUpper(alice2[0].ConversationID)},
			func(c switchboard.ToolCall) bool { return c.ConversationID == alice2[0].ConversationID }},
		{"turn", switchboard.ToolCallFilter{TurnID: alice[0].TurnID}, func(c switchboard.ToolCall) bool { return c.TurnID == alice[0].TurnID }},
		{"server", switchboard.ToolCallFilter{Server: "web"}, func(c switchboard.ToolCall) bool { return c.Server == "web" }},
		{"tool", switchboard.ToolCallFilter{Tool: "read"}, func(c switchboard.ToolCall) bool { return c.Tool == "read" }},
		{"server and tool", switchboard.ToolCallFilter{Server: "files", Tool: "read"},
			func(c switchboard.ToolCall) bool { return c.Server == "files" && c.Tool == "read" }},
		{"status", switchboard.ToolCallFilter{Status: switchboard.CallSucceeded},
			func(c switchboard.ToolCall) bool { return c.Status == switchboard.CallSucceeded }},
		{"since", switchboard.ToolCallFilter{Since: t0.Add(3 * time.Minute)},
			func(c switchboard.ToolCall) bool { return !c.StartedAt.Before(t0.Add(3 * time.Minute)) }},
		{"until", switchboard.ToolCallFilter{Until: t0.Add(3 * time.Minute)},
			func(c switchboard.ToolCall) bool { return c.StartedAt.Before(t0.Add(3 * time.Minute)) }},
		{"time range", switchboard.ToolCallFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(6 * time.Minute)},
			func(c switchboard.ToolCall) bool {
				return !c.StartedAt.Before(t0.Add(2*time.Minute)) && c.StartedAt.Before(t0.Add(6*time.Minute))
			}},
		{"user, server and status", switchboard.ToolCallFilter{UserID: "alice", Server: "files", Status: switchboard.CallRunning},
			func(c switchboard.ToolCall) bool {
				return c.UserID == "alice" && c.Server == "files" && c.Status == switchboard.CallRunning
			}},
		{"nothing matches", switchboard.ToolCallFilter{UserID: "carol"}, func(c switchboard.ToolCall) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := []switchboard.ToolCall{}
			for _, c := range all {
				if tt.want(c) {
					want = append(want, c)
				}
			}
			got, next, err := s.ListToolCalls(ctx, tt.f)
			if err != nil {
				t.Fatalf("ListToolCalls: got error %v, want none", err)
			}
			if next != "" || got == nil {
				t.Errorf("got next %q and list %v, want one non-nil page", next, got)
			}
			if diff := cmp.Diff(newest(want), got, jsonEqual); diff != "" {
				t.Errorf("ListToolCalls(%+v) (-want +got):\n%s", tt.f, diff)
			}
		})
	}
	for _, f := range []switchboard.ToolCallFilter{
		{Status: "weird"},
		{ConversationID: "not-a-uuid"},
		{TurnID: "not-a-uuid"},
	} {
		_, _, err := s.ListToolCalls(ctx, f)
		wantErr(t, fmt.Sprintf("ListToolCalls(%+v)", f), err, switchboard.ErrInvalid)
		_, err = s.ToolCallStats(ctx, f, store.GroupByTool)
		wantErr(t, fmt.Sprintf("ToolCallStats(%+v)", f), err, switchboard.ErrInvalid)
	}
}

func testStats(t *testing.T, s Store) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	call := func(server, tool string, status switchboard.ToolCallStatus, d time.Duration) switchboard.ToolCall {
		return switchboard.ToolCall{Server: server, Tool: tool, Status: status, Duration: d}
	}
	addCalls(t, s, "alice", []switchboard.ToolCall{
		call("files", "read", switchboard.CallSucceeded, ms(30)),
		call("files", "read", switchboard.CallSucceeded, ms(10)),
		call("files", "read", switchboard.CallFailed, ms(50)),
		call("files", "read", switchboard.CallSucceeded, ms(40)),
		call("files", "read", switchboard.CallSucceeded, ms(20)),
		call("files", "read", switchboard.CallRunning, 0),
		call("files", "write", switchboard.CallTimedOut, ms(7)),
		call("web", "search", switchboard.CallSucceeded, ms(300)),
		call("Web", "search", switchboard.CallSucceeded, ms(1)),
	})
	addCalls(t, s, "bob", []switchboard.ToolCall{
		call("web", "search", switchboard.CallSucceeded, ms(100)),
		call("web", "fetch", switchboard.CallRunning, 0),
		// Not run yet: counted, but neither an error nor a latency.
		call("web", "fetch", switchboard.CallAwaitingApproval, 0),
	})
	tests := []struct {
		name    string
		f       switchboard.ToolCallFilter
		groupBy string
		want    []switchboard.ToolCallStats
	}{
		{"by tool", switchboard.ToolCallFilter{}, store.GroupByTool, []switchboard.ToolCallStats{
			// Byte order: "Web" sorts before "files".
			{Group: "search", Server: "Web", Count: 1, P50: ms(1), P95: ms(1)},
			{Group: "read", Server: "files", Count: 6, Errors: 1, ErrorRate: 0.2, P50: ms(30), P95: ms(48)},
			{Group: "write", Server: "files", Count: 1, Errors: 1, ErrorRate: 1, P50: ms(7), P95: ms(7)},
			{Group: "fetch", Server: "web", Count: 2},
			{Group: "search", Server: "web", Count: 2, P50: ms(200), P95: ms(290)},
		}},
		{"by server", switchboard.ToolCallFilter{}, store.GroupByServer, []switchboard.ToolCallStats{
			{Group: "Web", Server: "Web", Count: 1, P50: ms(1), P95: ms(1)},
			{Group: "files", Server: "files", Count: 7, Errors: 2, ErrorRate: 2.0 / 6, P50: ms(25), P95: ms(47.5)},
			{Group: "web", Server: "web", Count: 4, P50: ms(200), P95: ms(290)},
		}},
		{"filtered", switchboard.ToolCallFilter{UserID: "alice", Status: switchboard.CallSucceeded, After: "ignored", Limit: 1},
			store.GroupByServer, []switchboard.ToolCallStats{
				{Group: "Web", Server: "Web", Count: 1, P50: ms(1), P95: ms(1)},
				{Group: "files", Server: "files", Count: 4, P50: ms(25), P95: ms(38.5)},
				{Group: "web", Server: "web", Count: 1, P50: ms(300), P95: ms(300)},
			}},
		{"nothing matches", switchboard.ToolCallFilter{UserID: "carol"}, store.GroupByTool, []switchboard.ToolCallStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ToolCallStats(t.Context(), tt.f, tt.groupBy)
			if err != nil {
				t.Fatalf("ToolCallStats: got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("ToolCallStats(%+v, %q) (-want +got):\n%s", tt.f, tt.groupBy, diff)
			}
			if got == nil {
				t.Errorf("ToolCallStats: got nil, want a non-nil list")
			}
		})
	}
	_, err := s.ToolCallStats(t.Context(), switchboard.ToolCallFilter{}, "user")
	wantErr(t, `ToolCallStats grouped by "user"`, err, switchboard.ErrInvalid)
}

// testPrune: retention removes old payloads in batches, oldest first, and
// keeps the rows' metadata.
func testPrune(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Now()
	call := func(age time.Duration) switchboard.ToolCall {
		return switchboard.ToolCall{ID: switchboard.NewID(), Server: "s", Tool: "t", Arguments: json.RawMessage(`{"q":"secret"}`),
			Result: "payload", StructuredResult: json.RawMessage(`{"r":1}`), Status: switchboard.CallSucceeded,
			Duration: 5 * time.Millisecond, ResultSize: 7, StartedAt: now.Add(-age), FinishedAt: now.Add(-age)}
	}
	calls := addCalls(t, s, "alice", []switchboard.ToolCall{call(100 * 24 * time.Hour), call(95 * 24 * time.Hour), call(10 * 24 * time.Hour)})
	cutoff := now.Add(-90 * 24 * time.Hour)
	for i, want := range []int{1, 1, 0} {
		n, err := s.PruneToolCallPayloads(ctx, cutoff, 1)
		if err != nil || n != want {
			t.Fatalf("batch %d: pruned %d, %v; want %d", i+1, n, err, want)
		}
	}
	for i, c := range calls {
		got, err := s.GetToolCall(ctx, "alice", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		old := i < 2
		if got.PayloadPruned != old || old && (got.Arguments != nil || got.Result != "" || got.StructuredResult != nil) ||
			!old && got.Result != "payload" {
			t.Errorf("call %d (old %v): got %+v", i, old, got)
		}
		if got.Status != switchboard.CallSucceeded || got.Duration != 5*time.Millisecond || got.ResultSize != 7 {
			t.Errorf("call %d lost its metadata: %+v", i, got)
		}
	}
	if _, err := s.PruneToolCallPayloads(ctx, cutoff, 0); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("batch 0: got %v, want ErrInvalid", err)
	}
}

// testPruneLeavesRunningCalls: retention leaves the arguments of a call
// that has not ended (running, or awaiting an approval), however old, and
// prunes it once it ended; alice's and bob's calls alike.
func testPruneLeavesRunningCalls(t *testing.T, s Store) {
	ctx := t.Context()
	old := time.Now().Add(-100 * 24 * time.Hour)
	cutoff := old.Add(24 * time.Hour)
	type turnCalls struct {
		turn switchboard.Turn
		open []switchboard.ToolCall
	}
	users := map[string]turnCalls{}
	for _, user := range []string{"alice", "bob"} {
		ts := newTurn(t, s, user, "", "use tools")
		turn := ts.Turn
		turn.Steps = 1
		calls := []switchboard.ToolCall{
			{ID: switchboard.NewID(), Server: "s", Tool: "t", Arguments: json.RawMessage(`{"q":"running"}`), Status: switchboard.CallRunning, StartedAt: old},
			{ID: switchboard.NewID(), Server: "s", Tool: "t", Arguments: json.RawMessage(`{"q":"awaiting"}`), Status: switchboard.CallAwaitingApproval, StartedAt: old},
			{ID: switchboard.NewID(), Server: "s", Tool: "t", Arguments: json.RawMessage(`{"q":"ended"}`), Result: "payload", Status: switchboard.CallSucceeded,
				StartedAt: old, FinishedAt: old.Add(time.Second)},
		}
		save(t, s, &switchboard.TurnUpdate{Turn: turn, ToolCalls: calls})
		users[user] = turnCalls{turn, calls[:2]}
	}
	if n, err := s.PruneToolCallPayloads(ctx, cutoff, 10); err != nil || n != 2 {
		t.Fatalf("prune with two users' running, awaiting and ended calls: pruned %d, %v; want the 2 ended", n, err)
	}
	for user, tc := range users {
		for _, c := range tc.open {
			got, err := s.GetToolCall(ctx, user, c.ID)
			if err != nil || got.PayloadPruned || string(got.Arguments) != string(c.Arguments) {
				t.Errorf("%s's %s call after the prune: %+v, %v; want its arguments kept", user, c.Status, got, err)
			}
		}
	}
	// Alice's running call ends: pruned at the next run; bob's still runs.
	alice := users["alice"]
	done := alice.open[0]
	done.Status, done.Result, done.FinishedAt = switchboard.CallSucceeded, "late", time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: alice.turn, ToolCalls: []switchboard.ToolCall{done}})
	if n, err := s.PruneToolCallPayloads(ctx, cutoff, 10); err != nil || n != 1 {
		t.Fatalf("prune after alice's call ended: pruned %d, %v; want 1", n, err)
	}
	if got, err := s.GetToolCall(ctx, "alice", done.ID); err != nil || !got.PayloadPruned || got.Arguments != nil || got.Result != "" {
		t.Errorf("alice's ended call: %+v, %v; want pruned", got, err)
	}
	if got, err := s.GetToolCall(ctx, "bob", users["bob"].open[0].ID); err != nil || got.PayloadPruned || got.Arguments == nil {
		t.Errorf("bob's running call: %+v, %v; want its arguments kept", got, err)
	}
}
