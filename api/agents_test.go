package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// agentService is the service with three agents: triage (on its own
// scripted model server, hands off to tasks), tasks (on another, the
// tasks server's tools) and ops (admins only).
type agentService struct {
	*service
	triage, tasks *llmtest.Server
}

func newAgentService(t *testing.T, triage, tasks llmtest.Responder) *agentService {
	t.Helper()
	ts, ks := llmtest.NewServer(triage), llmtest.NewServer(tasks)
	t.Cleanup(ts.Close)
	t.Cleanup(ks.Close)
	client := func(s *llmtest.Server) *llm.Client {
		return llm.New(llm.Config{BaseURL: s.URL, APIKey: "k", MaxRetries: -1}, nil)
	}
	opts := &orchestrator.Options{DefaultAgent: "triage", Agents: []orchestrator.Agent{
		{Name: "triage", Description: "Routes you.", Model: client(ts), ModelName: "triage-model", Tools: []string{"tasks__list_tasks"}, Handoffs: []string{"tasks"}},
		{Name: "tasks", Description: "Keeps your tasks.", Model: client(ks), ModelName: "tasks-model", Servers: []string{"tasks"}},
		{Name: "ops", Description: "For admins.", Model: client(ks), Roles: []string{"admin"}},
	}}
	conn := tasksServer(t, "stdio")
	sources := []tools.Source{{Server: tools.Shared(conn), Policy: tools.Policy{Inject: map[string]string{"user_id": "user_id"}}}}
	st := store.NewMemory()
	svc := newServiceOver(t, st, sources, llmtest.Sequence(), opts, nil, []string{"carol"}, api.Deps{Admin: st})
	return &agentService{service: svc, triage: ts, tasks: ks}
}

type agentsReply struct {
	Agents []struct {
		Name, Description string
		Default           bool
	} `json:"agents"`
}

type agentChatReply struct {
	chatReply
	Agent    string `json:"agent"`
	Handoffs int    `json:"handoffs"`
}

// TestAgentsRoutes: GET agents lists each user's agents; the chat body,
// the query and the AI SDK body choose one, which the conversation keeps;
// an unknown agent is 400, a forbidden one 403; the stream sends a
// data-agent part as the turn starts and at each handoff.
func TestAgentsRoutes(t *testing.T) {
	svc := newAgentService(t,
		llmtest.Sequence(llmtest.Reply{ToolCalls: []llmtest.Call{{ID: "h", Name: "transfer_to_tasks", Arguments: `{}`}}}),
		llmtest.Sequence(llmtest.Reply{Text: "tasks answering"}, llmtest.Reply{Text: "tasks again"}, llmtest.Reply{Text: "after the handoff"}))
	alice, bob, carol := token(t, "alice"), token(t, "bob"), adminToken(t, "carol")

	list := func(user, tok string) string {
		var r agentsReply
		if resp := do(t, "GET", svc.url+"/api/"+user+"/agents", tok, "", &r); resp.StatusCode != 200 {
			t.Fatalf("GET agents of %s: %d", user, resp.StatusCode)
		}
		var out []string
		for _, a := range r.Agents {
			s := a.Name + ":" + a.Description
			if a.Default {
				s += " (default)"
			}
			out = append(out, s)
		}
		return strings.Join(out, ", ")
	}
	if got, want := list("bob", bob), "triage:Routes you. (default), tasks:Keeps your tasks."; got != want {
		t.Errorf("bob's agents: got %q, want %q", got, want)
	}
	if got := list("carol", carol); !strings.HasSuffix(got, ", ops:For admins.") {
		t.Errorf("carol's (an admin's) agents: got %q, want ops among them", got)
	}
	if resp := do(t, "GET", svc.url+"/api/alice/agents", bob, "", nil); resp.StatusCode != 403 {
		t.Errorf("bob reading alice's agents: got %d, want 403", resp.StatusCode)
	}

	var r agentChatReply
	if resp := do(t, "POST", svc.url+"/api/alice/chat?agent=tasks", alice, `{"message":{"content":"hi"}}`, &r); resp.StatusCode != 200 ||
		r.Agent != "tasks" || r.Message.Content != "tasks answering" {
		t.Fatalf("chat with ?agent=tasks: got %d %+v", resp.StatusCode, r)
	}
	conv := r.ConversationID
	var got struct {
		Conversation struct{ Agent string } `json:"conversation"`
	}
	do(t, "GET", svc.url+"/api/alice/conversations/"+conv, alice, "", &got)
	if got.Conversation.Agent != "tasks" {
		t.Errorf("alice's conversation: got agent %q, want tasks", got.Conversation.Agent)
	}
	if resp := do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"again"}}`, &r); resp.StatusCode != 200 ||
		r.Agent != "tasks" || r.Message.Content != "tasks again" {
		t.Errorf("the conversation's next message: got %d %+v, want tasks answering", resp.StatusCode, r)
	}

	var e chatReply
	if resp := do(t, "POST", svc.url+"/api/bob/chat", bob, `{"message":{"content":"hi"},"agent":"ops"}`, &e); resp.StatusCode != 403 || e.Error.Code != "agent_forbidden" {
		t.Errorf("bob choosing ops: got %d %+v, want 403 agent_forbidden", resp.StatusCode, e.Error)
	}
	if resp := do(t, "POST", svc.url+"/api/bob/chat", bob, `{"message":{"content":"hi"},"agent":"nobody"}`, &e); resp.StatusCode != 400 || e.Error.Code != "unknown_agent" ||
		!strings.Contains(e.Error.Message, `"nobody"`) {
		t.Errorf("an unknown agent: got %d %+v, want 400 unknown_agent naming it", resp.StatusCode, e.Error)
	}
	if resp := do(t, "POST", svc.url+"/api/bob/chat?agent=tasks", bob, `{"message":{"content":"hi"},"agent":"triage"}`, &e); resp.StatusCode != 400 || e.Error.Code != "conflicting_agent" {
		t.Errorf("query and body naming two agents: got %d %+v, want 400 conflicting_agent", resp.StatusCode, e.Error)
	}

	// Bob's AI SDK chat names triage, which hands off to tasks.
	body := `{"id":"bob-chat","trigger":"submit-message","agent":"triage","messages":[{"id":"m1","role":"user","parts":[{"type":"text","text":"add milk"}]}]}`
	ps := streamParts(t, svc.url+"/api/bob/chat/stream", bob, body)
	var agents []string
	for _, p := range ps {
		if p["type"] == "data-agent" {
			b, _ := json.Marshal(p)
			agents = append(agents, string(b))
		}
	}
	want := []string{`{"data":{"agent":"triage"},"id":"agent-0","type":"data-agent"}`,
		`{"data":{"agent":"tasks","from":"triage"},"id":"agent-1","type":"data-agent"}`}
	if diff := cmp.Diff(want, agents); diff != "" {
		t.Errorf("data-agent parts (-want +got):\n%s", diff)
	}
	finish := ps.find("finish")
	if md, _ := finish["messageMetadata"].(map[string]any); md["agent"] != "tasks" || !strings.Contains(ps.text(), "after the handoff") {
		t.Errorf("finish: got %v and text %q, want tasks's answer", finish, ps.text())
	}
	if n := len(svc.triage.Requests()); n != 1 || svc.triage.Requests()[0].Model != "triage-model" {
		t.Errorf("triage's model server: got %d requests, want 1 for triage-model", n)
	}
	if reqs := svc.tasks.Requests(); reqs[len(reqs)-1].Model != "tasks-model" {
		t.Errorf("tasks's model: got %q", reqs[len(reqs)-1].Model)
	}

	// Admins see the turns by agent: alice's two of tasks, bob's handed off.
	var stats struct {
		Stats []struct {
			Agent           string
			Turns, Handoffs int64
			PromptTokens    int64   `json:"prompt_tokens"`
			P50MS           float64 `json:"p50_ms"`
		} `json:"stats"`
	}
	if resp := do(t, "GET", svc.url+"/api/admin/agents/stats", bob, "", nil); resp.StatusCode != 403 {
		t.Errorf("bob reading agent stats: got %d, want 403", resp.StatusCode)
	}
	if resp := do(t, "GET", svc.url+"/api/admin/agents/stats", carol, "", &stats); resp.StatusCode != 200 {
		t.Fatalf("agent stats: got %d", resp.StatusCode)
	}
	var gotStats []string
	for _, s := range stats.Stats {
		gotStats = append(gotStats, fmt.Sprintf("%s turns=%d handoffs=%d latency=%v", s.Agent, s.Turns, s.Handoffs, s.P50MS > 0))
	}
	if diff := cmp.Diff([]string{"tasks turns=3 handoffs=1 latency=true"}, gotStats); diff != "" {
		t.Errorf("agent stats (-want +got):\n%s", diff)
	}
}

// TestBrowserAgents drives the chat page's agent choice in Chromium (see
// testdata/agents.mjs): two users, two scripted model servers.
func TestBrowserAgents(t *testing.T) {
	svc := newAgentService(t,
		func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
			return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "transfer_to_tasks", Arguments: `{}`}}}
		},
		func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
			for _, m := range req.Messages {
				if m.Role == openai.ChatMessageRoleTool {
					return llmtest.Reply{Text: "after the handoff"}
				}
			}
			return llmtest.Reply{Text: "tasks answering"}
		})
	var report struct {
		ConversationID string `json:"conversationId"`
	}
	nodetest.Browse(t, "api/testdata/agents.mjs", &report, "BASE="+svc.url, "BOB="+token(t, "bob"), "CAROL="+adminToken(t, "carol"))
	conv, err := svc.store.GetConversation(context.Background(), "bob", report.ConversationID)
	if err != nil || conv.Agent != "tasks" {
		t.Errorf("bob's handed-off conversation: got %+v, %v; want its agent tasks", conv, err)
	}
}

// TestAISDKChatReceivesAgentParts: the ai package's chat client, its body
// naming triage, keeps a data-agent part for the turn's first agent and
// one for the handoff, and its message's metadata names tasks.
func TestAISDKChatReceivesAgentParts(t *testing.T) {
	svc := newAgentService(t,
		llmtest.Sequence(llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "transfer_to_tasks", Arguments: `{}`}}}),
		llmtest.Sequence(llmtest.Reply{Text: "Tasks here."}))
	chat := runAIChatEnv(t, svc.url+"/api/bob/chat/stream", token(t, "bob"), "bob-ai", []string{`BODY={"agent":"triage"}`}, "add milk")
	if chat.Status != "ready" || chat.Error != nil || len(chat.Errors) > 0 || len(chat.Messages) != 2 {
		t.Fatalf("chat ended %s with %v %v and %d messages", chat.Status, chat.Error, chat.Errors, len(chat.Messages))
	}
	answer := chat.Messages[1]
	var agents, text []string
	for _, p := range answer.Parts {
		switch p.Type {
		case "data-agent":
			agents = append(agents, p.Data.From+">"+p.Data.Agent)
		case "text":
			text = append(text, p.Text)
		}
	}
	if diff := cmp.Diff([]string{">triage", "triage>tasks"}, agents); diff != "" {
		t.Errorf("the chat's data-agent parts (-want +got):\n%s", diff)
	}
	if answer.Metadata.Agent != "tasks" || strings.Join(text, "") != "Tasks here." {
		t.Errorf("answer: metadata agent %q, text %q; want tasks's", answer.Metadata.Agent, text)
	}
}
