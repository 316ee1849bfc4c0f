package api_test

import (
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestModernInputRoute: a modern server's question (an input_required
// result with an elicitation) pauses alice's turn as awaiting_input, as a
// legacy server's request does; bob cannot answer it; alice's answer is the
// call sent again with inputResponses and the requestState echoed, on both
// stores.
func TestModernInputRoute(t *testing.T) {
	conn := modernConn(t, mcptest.StartModernHTTP(t))
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			svc := newServiceOver(t, open(t), []tools.Source{{Server: tools.Shared(conn)}},
				askingModel("modern__ask"), nil, nil, nil, api.Deps{})
			alice, bob := token(t, "alice"), token(t, "bob")

			var r inputReply
			resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask: got %d %+v", resp.StatusCode, r)
			}
			in := r.PendingInputs[0]
			if in.Mode != "form" || in.Server != "modern" || in.Message != "Your name?" || !strings.Contains(string(in.RequestedSchema), `"name"`) {
				t.Fatalf("the pending input: %+v", in)
			}
			answer := svc.url + "/api/alice/conversations/" + r.ConversationID + "/inputs/" + in.ID
			var e chatReply
			if resp := do(t, "POST", strings.Replace(answer, "/alice/", "/bob/", 1), bob, `{"action":"accept","content":{"name":"Bob"}}`, &e); resp.StatusCode != 404 {
				t.Errorf("bob answers alice's input: got %d, want 404", resp.StatusCode)
			}
			r = inputReply{}
			resp = do(t, "POST", answer, alice, `{"action":"accept","content":{"name":"Ada"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || !strings.Contains(r.Message.Content, "accept: Ada (state asked-once)") {
				t.Fatalf("accept: got %d %+v", resp.StatusCode, r)
			}
		})
	}
}
