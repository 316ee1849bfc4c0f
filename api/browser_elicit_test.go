package api_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestBrowserElicitation answers server-everything's
// trigger-elicitation-request through the web chat's form in Chromium
// (api/testdata/elicit.mjs), then declines a second question; the store
// has both answers.
func TestBrowserElicitation(t *testing.T) {
	st := store.NewMemory()
	conn := everythingConn(t, mcpclient.Config{})
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}},
		askingModel("everything__trigger-elicitation-request"), nil, nil, nil, api.Deps{Admin: st})
	var report struct {
		ConversationID string `json:"conversationId"`
	}
	nodetest.Browse(t, "api/testdata/elicit.mjs", &report, "BASE="+svc.url, "TOKEN="+token(t, "alice"))
	ins, err := st.ListInputs(t.Context(), "alice", report.ConversationID, false)
	if err != nil || len(ins) != 2 {
		t.Fatalf("inputs after the browser session: %+v, %v", ins, err)
	}
	if ins[0].Status != switchboard.InputAnswered || ins[0].Action != "accept" || ins[1].Action != "decline" {
		t.Errorf("inputs: %+v; want the first accepted, the second declined", ins)
	}
}
