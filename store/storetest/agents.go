package storetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

// testAgents: a conversation remembers its current agent (set by a turn
// that names one, or by a handoff), turns keep their agent and handoffs,
// calls the agent that asked for them and the call they ran inside, and
// messages their agent, their handoff and their structured answer; one
// user's agents do not leak into another's conversation.
func testAgents(t *testing.T, s Store) {
	ctx := t.Context()
	first := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice", Agent: "triage"},
		UserMessage: switchboard.Message{Content: "add a task"}}
	begin(t, s, &first)
	if first.Conversation.Agent != "triage" || first.Turn.Agent != "triage" {
		t.Fatalf("a new conversation's turn naming triage: got conversation agent %q, turn agent %q, want triage",
			first.Conversation.Agent, first.Turn.Agent)
	}
	bob := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "bob", Agent: "billing"}, UserMessage: switchboard.Message{Content: "hi"}}
	begin(t, s, &bob)

	convID, turn := first.Conversation.ID, first.Turn
	parent, child := switchboard.NewID(), switchboard.NewID()
	now := time.Now()
	asked := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, Agent: "triage",
		ToolCalls: []switchboard.RequestedCall{{ID: "c1", Name: "transfer_to_tasks", Arguments: "{}"}}}
	result := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleTool, Type: switchboard.MessageToolResult,
		ToolCallID: "c1", ToolName: "transfer_to_tasks", Content: `{"assistant":"tasks"}`}
	handoff := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageHandoff, Agent: "tasks",
		Content: "triage handed off to tasks", Handoff: &switchboard.Handoff{From: "triage", To: "tasks"}}
	answer := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Agent: "tasks",
		Content: `{"done": true}`, Structured: json.RawMessage(`{"done": true, "n": 1}`)}
	calls := []switchboard.ToolCall{
		{ID: parent, CallID: "c2", Step: 2, Agent: "tasks", Server: "switchboard", Tool: "ask_planner", ExposedName: "ask_planner",
			Arguments: json.RawMessage(`{"input":"plan"}`), Status: switchboard.CallSucceeded, StartedAt: now, FinishedAt: now},
		{ID: child, CallID: "c3", Step: 1, Agent: "planner", ParentID: parent, Server: "tasks", Tool: "add", ExposedName: "tasks__add",
			Arguments: json.RawMessage(`{}`), Status: switchboard.CallSucceeded, StartedAt: now, FinishedAt: now},
	}
	turn.Agent, turn.Handoffs, turn.Steps = "tasks", 1, 2
	save(t, s, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{asked, result, handoff}, ToolCalls: calls,
		ConversationAgent: "tasks"})
	turn.Status, turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{answer}})

	conv, err := s.GetConversation(ctx, "alice", convID)
	if err != nil {
		t.Fatal(err)
	}
	if conv.Agent != "tasks" {
		t.Errorf("conversation after a handoff to tasks: got agent %q, want tasks", conv.Agent)
	}
	got, err := s.GetTurn(ctx, "alice", turn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Agent != "tasks" || got.Handoffs != 1 {
		t.Errorf("turn: got agent %q with %d handoffs, want tasks with 1", got.Agent, got.Handoffs)
	}
	msgs, err := s.ListMessages(ctx, "alice", convID)
	if err != nil {
		t.Fatal(err)
	}
	type kept struct {
		Type       switchboard.MessageType
		Agent      string
		Handoff    *switchboard.Handoff
		Structured json.RawMessage
	}
	var gotKept []kept
	for _, m := range msgs {
		gotKept = append(gotKept, kept{m.Type, m.Agent, m.Handoff, m.Structured})
		if m.Type == switchboard.MessageText && m.Agent != "" && strings.ContainsAny(string(m.Structured), " \n") {
			t.Errorf("structured answer: got %s, want it compacted, as both stores keep JSON", m.Structured)
		}
	}
	wantKept := []kept{{Type: switchboard.MessageText}, {switchboard.MessageToolCall, "triage", nil, nil},
		{Type: switchboard.MessageToolResult}, {switchboard.MessageHandoff, "tasks", &switchboard.Handoff{From: "triage", To: "tasks"}, nil},
		{switchboard.MessageText, "tasks", nil, json.RawMessage(`{"done":true,"n":1}`)}}
	if diff := cmp.Diff(wantKept, gotKept, jsonEqual); diff != "" {
		t.Errorf("transcript's agents, handoff and structured answer (-want +got):\n%s", diff)
	}
	c, err := s.GetToolCall(ctx, "alice", child)
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent != "planner" || c.ParentID != parent {
		t.Errorf("sub-agent's call: got agent %q, parent %q, want planner, %s", c.Agent, c.ParentID, parent)
	}
	list, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: turn.ID})
	if err != nil {
		t.Fatal(err)
	}
	parents := map[string]string{}
	for _, c := range list {
		parents[c.ID] = c.Agent + "/" + c.ParentID
	}
	if diff := cmp.Diff(map[string]string{parent: "tasks/", child: "planner/" + parent}, parents); diff != "" {
		t.Errorf("listed calls' agent/parent (-want +got):\n%s", diff)
	}

	// A turn that names no agent leaves the current one; one that names
	// another makes it current.
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: convID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "and another"}}
	begin(t, s, &next)
	if next.Conversation.Agent != "tasks" {
		t.Errorf("a turn naming no agent: got conversation agent %q, want tasks kept", next.Conversation.Agent)
	}
	endRunning(t, s, "alice", convID)
	other := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: convID}, Turn: switchboard.Turn{UserID: "alice", Agent: "triage"},
		UserMessage: switchboard.Message{Content: "back to triage"}}
	begin(t, s, &other)
	if other.Conversation.Agent != "triage" || other.Turn.Agent != "triage" {
		t.Errorf("a turn naming triage: got conversation agent %q, turn agent %q, want triage", other.Conversation.Agent, other.Turn.Agent)
	}
	bobs, err := s.GetConversation(ctx, "bob", bob.Conversation.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bobs.Agent != "billing" {
		t.Errorf("bob's conversation: got agent %q, want billing (alice's turns must not touch it)", bobs.Agent)
	}
	if _, err := s.GetConversation(ctx, "bob", convID); err == nil {
		t.Errorf("bob reads alice's conversation: got no error, want not found")
	}
}

// testAgentStats: every user's turns of a time range, by the agent each
// ended as, with their handoffs, tokens and wall time.
func testAgentStats(t *testing.T, s Store) {
	turn := func(user, agent string, started time.Time, took time.Duration, handoffs, prompt, completion int) {
		ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: user, Agent: agent, StartedAt: started},
			UserMessage: switchboard.Message{Content: "hi"}}
		begin(t, s, &ts)
		tr := ts.Turn
		tr.Handoffs, tr.PromptTokens, tr.CompletionTokens = handoffs, prompt, completion
		if took > 0 {
			tr.Status, tr.FinishedAt = switchboard.TurnCompleted, started.Add(took)
		}
		save(t, s, &switchboard.TurnUpdate{Turn: tr})
	}
	turn("alice", "tasks", t0, time.Second, 1, 10, 5)
	turn("bob", "tasks", t0.Add(time.Minute), 3*time.Second, 0, 20, 10)
	turn("bob", "triage", t0.Add(2*time.Minute), 0, 0, 1, 1) // still running: no wall time
	turn("alice", "", t0.Add(3*time.Minute), 2*time.Second, 0, 4, 2)
	turn("alice", "tasks", t0.Add(-time.Hour), time.Second, 5, 100, 100) // before the range
	got, err := s.AgentStats(t.Context(), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []switchboard.AgentStats{
		{Agent: "", Turns: 1, PromptTokens: 4, CompletionTokens: 2, P50: 2 * time.Second, P95: 2 * time.Second},
		{Agent: "tasks", Turns: 2, Handoffs: 1, PromptTokens: 30, CompletionTokens: 15, P50: 2 * time.Second, P95: 2900 * time.Millisecond},
		{Agent: "triage", Turns: 1, PromptTokens: 1, CompletionTokens: 1},
	}
	approx := cmp.Comparer(func(a, b time.Duration) bool { d := a - b; return d < time.Millisecond && d > -time.Millisecond })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("agent stats (-want +got):\n%s", diff)
	}
	if none, err := s.AgentStats(t.Context(), t0.Add(2*time.Hour), t0.Add(3*time.Hour)); err != nil || len(none) != 0 {
		t.Errorf("an empty range: got %v, %v", none, err)
	}
}
