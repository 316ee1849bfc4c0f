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

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestAgentAsToolApprovalSurvivesAKill: in a real service process on
// Postgres, lead asks writer (an agent used as a tool, on its own model
// server of llm.models) to add a task; writer's call needs approval, so
// alice's turn pauses; the process is killed (kill -9) and started again;
// bob cannot decide alice's call; alice's approval resumes writer inside
// the call, the task is added once, lead answers, and the ledger links the
// calls.
func TestAgentAsToolApprovalSurvivesAKill(t *testing.T) {
	url := storetest.PostgresURL(t)
	data := filepath.Join(t.TempDir(), "tasks.json")
	lead := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "Done: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "a1", Name: "ask_writer", Arguments: `{"input":"add a task: old"}`}}}
	})
	defer lead.Close()
	writer := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if last := req.Messages[len(req.Messages)-1]; last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "added it"}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "w1", Name: "tasks__add_task", Arguments: `{"title":"old"}`}}}
	})
	defer writer.Close()
	addr := freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "switchboard.yaml")
	cfg := fmt.Sprintf(`listen: %s
database_url: %q
auth: {jwt_secret: %q}
llm: {base_url: %q, api_key: k, model: lead-model, models: {w: {base_url: %q, api_key: k2, model: writer-model}}}
mcpServers:
  tasks: {command: %q, args: [--data, %q], inject: {user_id: user_id}}
agents:
  lead: {instructions: You lead., tools: [tasks__list_tasks], agents_as_tools: [writer]}
  writer: {description: Writes tasks down., model: w, instructions: You write., servers: [tasks], require_approval: true}
`, addr, url, testSecret, lead.URL, writer.URL, tasksBin, data)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := func(user string) string {
		s, err := auth.MintToken([]byte(testSecret), user, time.Hour, false, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice, bob := tok("alice"), tok("bob")
	bin := buildSwitchboard(t)

	first := startService(t, bin, cfgFile, addr)
	r, err := chatIn(first.base, alice, "", "note old")
	var paused struct {
		Status           string                      `json:"status"`
		PendingApprovals []struct{ ID, Tool string } `json:"pending_approvals"`
	}
	_ = json.Unmarshal([]byte(r.body), &paused)
	if err != nil || r.code != 200 || paused.Status != "awaiting_approval" || len(paused.PendingApprovals) != 1 || paused.PendingApprovals[0].Tool != "add_task" {
		t.Fatalf("note old: %v %d %s", err, r.code, r.body)
	}
	first.kill(t)

	second := startService(t, bin, cfgFile, addr)
	approve := func(user, token string) (int, string) {
		u := fmt.Sprintf("%s/api/%s/conversations/%s/tool-calls/%s/approval", second.base, user, r.ConversationID, paused.PendingApprovals[0].ID)
		req, _ := http.NewRequest("POST", u, strings.NewReader(`{"approve": true}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := approve("bob", bob); code != 404 {
		t.Errorf("bob approving alice's call: got %d %s, want 404", code, body)
	}
	if code, body := approve("alice", alice); code != 200 || !strings.Contains(body, `"Done: added it"`) || !strings.Contains(body, `"agent":"lead"`) {
		t.Fatalf("alice's approval: got %d %s", code, body)
	}
	if code, _ := approve("alice", alice); code != 409 {
		t.Errorf("approving twice: got %d, want 409", code)
	}

	pg, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	calls, _, err := pg.ListToolCalls(context.Background(), switchboard.ToolCallFilter{ConversationID: r.ConversationID})
	if err != nil || len(calls) != 2 {
		t.Fatalf("ledger: got %+v, %v; want two calls", calls, err)
	}
	inner, outer := calls[0], calls[1] // newest first
	if outer.Tool != "ask_writer" || outer.Status != switchboard.CallSucceeded || outer.Agent != "lead" || outer.Result != "added it" ||
		inner.Tool != "add_task" || inner.Status != switchboard.CallSucceeded || inner.Agent != "writer" || inner.ParentID != outer.ID {
		t.Errorf("ledger: got outer %+v, inner %+v", outer, inner)
	}
	raw, err := os.ReadFile(data)
	if err != nil || strings.Count(string(raw), `"old"`) != 1 {
		t.Errorf("tasks file: got %s, %v; want the task once", raw, err)
	}
	if n := len(writer.Requests()); n != 2 || writer.Requests()[0].Model != "writer-model" || lead.Requests()[0].Model != "lead-model" {
		t.Errorf("model requests: got %d to writer's server, models %q and %q", n, writer.Requests()[0].Model, lead.Requests()[0].Model)
	}
}
