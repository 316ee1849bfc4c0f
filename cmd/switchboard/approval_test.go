package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestApprovalSurvivesARestartOfTheService: the service stops while a call
// awaits approval; started again, it runs the approved call once.
func TestApprovalSurvivesARestartOfTheService(t *testing.T) {
	url := storetest.PostgresURL(t)
	data := filepath.Join(t.TempDir(), "tasks.json")
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"old"}`}}},
		llmtest.Reply{Text: "Added."},
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
		llmtest.Reply{Text: "Deleted."},
	))
	defer model.Close()
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
database_url: %q
llm: {base_url: %q}
mcpServers:
  tasks: {command: %q, args: [--data, %q], inject: {user_id: user_id}, require_approval: destructive}
`, url, model.URL, tasksBin, data)

	first := startServe(t, cfg, nil)
	if code, body, err := chat(first.base, first.token, "add old"); code != 200 || err != nil {
		t.Fatalf("add: %d %s %v", code, body, err)
	}
	code, body, err := chat(first.base, first.token, "delete it")
	var r struct {
		ConversationID   string                      `json:"conversation_id"`
		Status           string                      `json:"status"`
		PendingApprovals []struct{ ID, Tool string } `json:"pending_approvals"`
	}
	_ = json.Unmarshal([]byte(body), &r)
	if code != 200 || err != nil || r.Status != "awaiting_approval" || len(r.PendingApprovals) != 1 {
		t.Fatalf("delete: %d %s %v", code, body, err)
	}
	first.shutdown(t, 30*time.Second)

	second := startServe(t, cfg, nil)
	approval := fmt.Sprintf("%s/api/dev/conversations/%s/tool-calls/%s/approval", second.base, r.ConversationID, r.PendingApprovals[0].ID)
	for i, want := range []int{200, 409} { // approving twice runs the call once
		req, _ := http.NewRequest("POST", approval, strings.NewReader(`{"approve": true}`))
		req.Header.Set("Authorization", "Bearer "+second.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || i == 0 && !strings.Contains(string(b), `"Deleted."`) {
			t.Fatalf("approval %d: got %d %s, want %d", i+1, resp.StatusCode, b, want)
		}
	}
	second.shutdown(t, 30*time.Second)

	pg, err := store.OpenPostgres(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	calls, _, err := pg.ListToolCalls(context.Background(), switchboard.ToolCallFilter{Tool: "delete_task"})
	if err != nil || len(calls) != 1 || calls[0].Status != switchboard.CallSucceeded {
		t.Fatalf("delete_task in the ledger: got %+v, %v; want one call, succeeded", calls, err)
	}
	raw, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), `"old"`) {
		t.Errorf("the task is still there: %s", raw)
	}
	if n := len(model.Requests()); n != 4 {
		t.Errorf("model requests: got %d, want 4", n)
	}
}
