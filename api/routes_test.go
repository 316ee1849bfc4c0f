package api

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/auth"
)

// TestReservedUserIDsCoverTheRouteTable: every literal the route table puts
// where /api/{user_id}/... has a user id is a reserved user id, so that no
// user's own routes are shadowed by another route.
func TestReservedUserIDsCoverTheRouteTable(t *testing.T) {
	h := NewHandler(Deps{}, nil)
	seen := map[string]bool{}
	for _, r := range h.engine.Routes() {
		rest, ok := strings.CutPrefix(r.Path, "/api/")
		if !ok {
			continue
		}
		seg, _, _ := strings.Cut(rest, "/")
		if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
			continue
		}
		seen[seg] = true
		if !slices.Contains(auth.ReservedUserIDs(), seg) {
			t.Errorf("route %s %s puts %q where a user id goes, and %q is not a reserved user id", r.Method, r.Path, seg, seg)
		}
	}
	if !seen["admin"] {
		t.Errorf("no /api/admin/... route found in the route table: %v", h.engine.Routes())
	}
}
