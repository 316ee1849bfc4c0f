package orchestrator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
)

// agentRig is a rig whose agents run on two scripted model servers of
// their own: triage on one, tasks on the other.
type agentRig struct {
	*rig
	triage, tasks *llmtest.Server
}

// newAgentRig makes triage (the lab's big tool, a handoff to tasks) and
// tasks (the lab's write and fail tools), each on its model server; more
// are added by extra.
func newAgentRig(t *testing.T, st orchestrator.Store, triage, tasks llmtest.Responder, opts *orchestrator.Options, extra ...orchestrator.Agent) *agentRig {
	t.Helper()
	ts, ks := llmtest.NewServer(triage), llmtest.NewServer(tasks)
	t.Cleanup(ts.Close)
	t.Cleanup(ks.Close)
	if opts == nil {
		opts = &orchestrator.Options{}
	}
	opts.Agents = append([]orchestrator.Agent{
		{Name: "triage", Description: "Routes the user to the right agent.",
			Instructions: "You triage for {{user_id}} on {{date}}, as {{agent}}.",
			Model:        llm.New(llm.Config{BaseURL: ts.URL, APIKey: "k", Model: "unused", MaxRetries: -1}, nil), ModelName: "triage-model",
			Tools: []string{"lab__big"}, Handoffs: []string{"tasks"}},
		{Name: "tasks", Description: "Adds and lists the user's tasks.",
			Instructions: "You keep {{user_id}}'s tasks.",
			Model:        llm.New(llm.Config{BaseURL: ks.URL, APIKey: "k", Model: "unused", MaxRetries: -1}, nil), ModelName: "tasks-model",
			Tools: []string{"lab__write", "lab__f*"}, Handoffs: []string{"triage"}},
	}, extra...)
	opts.DefaultAgent = "triage"
	r := newRig(t, st, llmtest.Sequence(), opts)
	return &agentRig{rig: r, triage: ts, tasks: ks}
}

func systemOf(req openai.ChatCompletionRequest) string {
	if len(req.Messages) > 0 && req.Messages[0].Role == openai.ChatMessageRoleSystem {
		return req.Messages[0].Content
	}
	return ""
}

func toolNames(req openai.ChatCompletionRequest) []string {
	var out []string
	for _, tl := range req.Tools {
		out = append(out, tl.Function.Name)
	}
	return out
}

// TestTriageHandsOffToTasks: triage hands the turn to tasks, which
// answers in the same turn; each model request has its agent's system
// message, tools (and transfer tools) and model; the transcript and the
// ledger hold the handoff; the next turn starts with tasks; another user's
// conversation starts with the default agent.
func TestTriageHandsOffToTasks(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := newAgentRig(t, open(t),
				llmtest.Sequence(calls(call("h", "transfer_to_tasks", `{}`)), llmtest.Reply{Text: "Hello bob."}),
				llmtest.Sequence(calls(call("w", "lab__write", `{"x":"milk"}`)), llmtest.Reply{Text: "Added milk."}, llmtest.Reply{Text: "Still here."}),
				nil)
			day := time.Now().UTC().Format(time.DateOnly)
			ev := &agentRecorder{}
			res, err := r.o.Run(ctx, orchestrator.Request{UserID: "alice", Content: "add milk to my tasks"}, ev)
			if err != nil {
				t.Fatal(err)
			}
			if res.Message.Content != "Added milk." || res.Message.Agent != "tasks" || res.Turn.Agent != "tasks" || res.Turn.Handoffs != 1 {
				t.Errorf("result: got %q by %q, turn agent %q with %d handoffs; want tasks's answer, 1 handoff",
					res.Message.Content, res.Message.Agent, res.Turn.Agent, res.Turn.Handoffs)
			}
			tr, kr := r.triage.Requests(), r.tasks.Requests()
			if len(tr) != 1 || len(kr) != 2 {
				t.Fatalf("requests: got %d to triage's server and %d to tasks's, want 1 and 2", len(tr), len(kr))
			}
			later := time.Now().UTC().Format(time.DateOnly) // the turn may have crossed midnight
			if got := systemOf(tr[0]); got != "You triage for alice on "+day+", as triage." && got != "You triage for alice on "+later+", as triage." {
				t.Errorf("triage's system message: got %q, want its instructions filled in for alice on %s", got, day)
			}
			if diff := cmp.Diff([]string{"lab__big", "transfer_to_tasks"}, toolNames(tr[0])); diff != "" {
				t.Errorf("triage's tools (-want +got):\n%s", diff)
			}
			if d := tr[0].Tools[1].Function.Description; !strings.Contains(d, "Adds and lists the user's tasks.") {
				t.Errorf("transfer_to_tasks's description: got %q, want tasks's description in it", d)
			}
			for i, req := range kr {
				if got := systemOf(req); got != "You keep alice's tasks." {
					t.Errorf("tasks request %d: system message %q, want tasks's instructions", i, got)
				}
				if diff := cmp.Diff([]string{"lab__fail", "lab__write", "transfer_to_triage"}, toolNames(req)); diff != "" {
					t.Errorf("tasks request %d: tools (-want +got):\n%s", i, diff)
				}
			}
			if tr[0].Model != "triage-model" || kr[0].Model != "tasks-model" {
				t.Errorf("models: got %q and %q, want triage-model and tasks-model", tr[0].Model, kr[0].Model)
			}
			// Tasks reads the conversation with the transfer in it.
			if got := toolMessages(kr[0]); !slices.Equal(got, []string{`h={"assistant":"tasks"}`}) {
				t.Errorf("tasks's first request's tool results: got %q, want the transfer's", got)
			}
			if diff := cmp.Diff([]string{"agent triage>tasks"}, ev.agents); diff != "" {
				t.Errorf("agent events (-want +got):\n%s", diff)
			}

			msgs, err := r.store.ListMessages(ctx, "alice", res.Turn.ConversationID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				s := fmt.Sprintf("%s %s %s", m.Role, m.Type, m.Agent)
				if m.Handoff != nil {
					s += " " + m.Handoff.From + ">" + m.Handoff.To
				}
				got = append(got, strings.TrimSpace(s))
			}
			want := []string{"user text", "assistant tool_call triage", "tool tool_result", "assistant handoff tasks triage>tasks",
				"assistant tool_call tasks", "tool tool_result", "assistant text tasks"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("transcript (-want +got):\n%s", diff)
			}
			rows, _, err := r.store.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: res.Turn.ID})
			if err != nil {
				t.Fatal(err)
			}
			var ledger []string
			for _, c := range slices.Backward(rows) {
				ledger = append(ledger, fmt.Sprintf("%d %s %s/%s %s", c.Step, c.Agent, c.Server, c.Tool, c.Status))
			}
			if diff := cmp.Diff([]string{"1 triage switchboard/transfer_to_tasks succeeded", "2 tasks lab/write succeeded"}, ledger); diff != "" {
				t.Errorf("ledger (-want +got):\n%s", diff)
			}

			// The next turn starts with tasks.
			next, err := r.o.Run(ctx, orchestrator.Request{UserID: "alice", ConversationID: res.Turn.ConversationID, Content: "anything else?"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if next.Message.Content != "Still here." || next.Turn.Agent != "tasks" || len(r.triage.Requests()) != 1 {
				t.Errorf("next turn: got %q as %q with %d requests to triage; want tasks answering, triage not asked",
					next.Message.Content, next.Turn.Agent, len(r.triage.Requests()))
			}
			// Bob's conversation starts with the default agent.
			bob, err := r.o.Run(ctx, orchestrator.Request{UserID: "bob", Content: "hello"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bob.Message.Content != "Hello bob." || bob.Turn.Agent != "triage" {
				t.Errorf("bob's turn: got %q as %q, want triage's answer", bob.Message.Content, bob.Turn.Agent)
			}
			if got := systemOf(r.triage.Requests()[1]); !strings.HasPrefix(got, "You triage for bob on ") {
				t.Errorf("bob's system message: got %q, want his user id in it", got)
			}
		})
	}
}

type agentRecorder struct {
	recorder
	agents []string
}

func (r *agentRecorder) AgentChanged(from, to string) {
	r.agents = append(r.agents, "agent "+from+">"+to)
}

// TestChoosingAnAgent: a request names its agent, which the conversation
// then keeps; an unknown agent is invalid, one the user may not use
// forbidden, and the list of agents is the user's.
func TestChoosingAnAgent(t *testing.T) {
	ctx := context.Background()
	r := newAgentRig(t, store.NewMemory(),
		llmtest.Sequence(llmtest.Reply{Text: "triage here"}),
		llmtest.Sequence(llmtest.Reply{Text: "tasks here"}, llmtest.Reply{Text: "tasks again"}),
		nil, orchestrator.Agent{Name: "admin", Description: "For admins.", Roles: []string{"admin"}, Users: []string{"carol"}})
	res, err := r.o.Run(ctx, orchestrator.Request{UserID: "alice", Agent: "tasks", Content: "hi"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Message.Content != "tasks here" || res.Turn.Agent != "tasks" {
		t.Errorf("chosen tasks: got %q as %q", res.Message.Content, res.Turn.Agent)
	}
	again, err := r.o.Run(ctx, orchestrator.Request{UserID: "alice", ConversationID: res.Turn.ConversationID, Content: "again"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Message.Content != "tasks again" {
		t.Errorf("the conversation's next turn: got %q, want tasks answering", again.Message.Content)
	}
	_, err = r.o.Run(ctx, orchestrator.Request{UserID: "alice", Agent: "nobody", Content: "hi"}, nil)
	if !switchboard.IsCode(err, orchestrator.CodeUnknownAgent) || !strings.Contains(switchboard.ErrorMessage(err), `"nobody"`) {
		t.Errorf("unknown agent: got %v, want %s naming it", err, orchestrator.CodeUnknownAgent)
	}
	_, err = r.o.Run(ctx, orchestrator.Request{UserID: "bob", Agent: "admin", Content: "hi"}, nil)
	if !switchboard.IsCode(err, orchestrator.CodeAgentForbidden) {
		t.Errorf("bob choosing the admin agent: got %v, want %s", err, orchestrator.CodeAgentForbidden)
	}
	names := func(user string, roles ...string) []string {
		var out []string
		for _, a := range r.o.Agents(user, roles) {
			out = append(out, a.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"triage", "tasks"}, names("bob")); diff != "" {
		t.Errorf("bob's agents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"triage", "tasks", "admin"}, names("dave", "admin")); diff != "" {
		t.Errorf("an admin's agents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"triage", "tasks", "admin"}, names("carol")); diff != "" {
		t.Errorf("carol's agents (-want +got):\n%s", diff)
	}
	if n := len(r.triage.Requests()); n != 0 {
		t.Errorf("triage's server got %d requests, want none (refused requests store nothing)", n)
	}
}

// TestMaxHandoffs: agents that hand a turn back and forth end it as
// max_handoffs after the cap.
func TestMaxHandoffs(t *testing.T) {
	back := func(to string) llmtest.Responder {
		return func(int, *openai.ChatCompletionRequest) llmtest.Reply {
			return calls(call("", "transfer_to_"+to, `{}`))
		}
	}
	r := newAgentRig(t, store.NewMemory(), back("tasks"), back("triage"), &orchestrator.Options{MaxHandoffs: 3})
	res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "alice", Content: "go round"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Turn.Status != switchboard.TurnMaxHandoffs || res.Turn.Handoffs != 4 {
		t.Errorf("turn: got %s after %d handoffs, want max_handoffs after 4", res.Turn.Status, res.Turn.Handoffs)
	}
	if n := len(r.triage.Requests()) + len(r.tasks.Requests()); n != 4 {
		t.Errorf("model calls: got %d, want 4 (the fourth handoff ends the turn)", n)
	}
}

// TestAnAgentsToolsOnly: a tool of the catalog that the agent is not
// offered is an unknown tool to it, and does not run.
func TestAnAgentsToolsOnly(t *testing.T) {
	r := newAgentRig(t, store.NewMemory(),
		llmtest.Sequence(calls(call("w", "lab__write", `{"x":"sneaky"}`)), llmtest.Reply{Text: "ok"}),
		llmtest.Sequence(), nil)
	res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "alice", Content: "write"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ToolCalls) != 1 || res.ToolCalls[0].Status != switchboard.CallFailed || !strings.Contains(res.ToolCalls[0].Error, "unknown tool") {
		t.Errorf("triage calling tasks's tool: got %+v, want it failed as unknown", res.ToolCalls)
	}
	if len(r.lab.calls) != 0 {
		t.Errorf("the lab ran %q, want nothing run", r.lab.calls)
	}
}

// TestAnAgentsOwnProviderWithoutTheDefault: an agent on a provider of its
// own answers though the default model (the llm block) is not configured;
// without agents that is llm_not_configured, as before.
func TestAnAgentsOwnProviderWithoutTheDefault(t *testing.T) {
	_, client := scripted(t, llmtest.Sequence(llmtest.Reply{Text: "from my own provider"}))
	r := newRig(t, store.NewMemory(), llmtest.Sequence(), nil)
	unconfigured := llm.New(llm.Config{}, nil)
	o := orchestrator.New(unconfigured, r.reg, r.store, &orchestrator.Options{Agents: []orchestrator.Agent{{Name: "own", Model: client}}})
	res, err := o.Run(context.Background(), orchestrator.Request{UserID: "alice", Content: "hi"}, nil)
	if err != nil || res.Message.Content != "from my own provider" {
		t.Errorf("got %+v, %v; want the agent's provider to answer", res, err)
	}
	plain := orchestrator.New(unconfigured, r.reg, r.store, nil)
	if _, err := plain.Run(context.Background(), orchestrator.Request{UserID: "bob", Content: "hi"}, nil); !switchboard.IsCode(err, "llm_not_configured") {
		t.Errorf("without agents: got %v, want llm_not_configured", err)
	}
}
