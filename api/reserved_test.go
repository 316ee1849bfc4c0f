package api_test

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestReservedUserIDs: the user id admin, which the route table uses for
// /api/admin/..., cannot sign in: every route answers 403 reserved_user_id
// with a message that says why, whether or not the token holds the admin
// role; a user named otherwise is served as before.
func TestReservedUserIDs(t *testing.T) {
	st := store.NewMemory()
	svc := newAdminService(t, asAdminStore(t, st), nil, nil, llmtest.Sequence(llmtest.Reply{Text: "hi"}), tools.ApprovalPolicy{})
	id := switchboard.NewID()
	routes := []struct{ method, path, body string }{
		{"POST", "/api/admin/chat", `{"message":{"content":"hi"}}`},
		{"POST", "/api/admin/chat/stream", `{"message":{"content":"hi"}}`},
		{"GET", "/api/admin/conversations", ""},
		{"GET", "/api/admin/conversations/" + id, ""},
		{"PATCH", "/api/admin/conversations/" + id, `{"title":"x"}`},
		{"DELETE", "/api/admin/conversations/" + id, ""},
		{"GET", "/api/admin/conversations/" + id + "/tool-calls", ""},
		{"POST", "/api/admin/conversations/" + id + "/cancel", ""},
		{"GET", "/api/admin/tools", ""},
		{"GET", "/api/admin/tool-calls", ""},
		{"GET", "/api/admin/servers", ""},
	}
	// Tokens as an identity provider signs them (MintToken refuses).
	tokens := map[string]string{
		"user":       signClaims(t, jwt.MapClaims{"sub": "admin"}),
		"admin role": signClaims(t, jwt.MapClaims{"sub": "admin", "role": "admin"}),
		"seed claim": signClaims(t, jwt.MapClaims{"user_id": "admin"}),
	}
	for name, tok := range tokens {
		for _, r := range routes {
			var reply chatReply
			resp := do(t, r.method, svc.url+r.path, tok, r.body, &reply)
			if resp.StatusCode != 403 || reply.Error.Code != "reserved_user_id" || !strings.Contains(reply.Error.Message, `"admin" is reserved`) {
				t.Errorf("%s token for user admin, %s %s: got %d %+v, want 403 reserved_user_id", name, r.method, r.path, resp.StatusCode, reply.Error)
			}
		}
	}
	if n := len(svc.model.Requests()); n != 0 {
		t.Errorf("the model was called %d times for user admin", n)
	}
	// Reserved means exactly the literal: Admin and admin2 are users.
	for _, user := range []string{"Admin", "admin2"} {
		var reply chatReply
		if resp := do(t, "GET", svc.url+"/api/"+user+"/conversations", token(t, user), "", &reply); resp.StatusCode != 200 {
			t.Errorf("user %s: got %d %+v, want 200", user, resp.StatusCode, reply.Error)
		}
	}
}
