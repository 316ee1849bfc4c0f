package orchestrator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// TestAgentAsToolPausesForApprovalAcrossARestart: lead asks writer (an
// agent used as a tool) to write; writer's write needs approval, so the
// whole turn pauses; a new orchestrator over the same store (a restart)
// takes the approval, writer goes on inside the call, lead answers; the
// ledger links writer's call to lead's.
func TestAgentAsToolPausesForApprovalAcrossARestart(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			lead, leadClient := scripted(t, llmtest.Sequence(calls(call("a", "ask_writer", `{"input":"write milk"}`)), llmtest.Reply{Text: "Done: wrote milk."}))
			writer, writerClient := scripted(t, llmtest.Sequence(calls(call("w", "lab__write", `{"x":"milk"}`)), llmtest.Reply{Text: "wrote milk"}))
			opts := func() *orchestrator.Options {
				return &orchestrator.Options{Agents: []orchestrator.Agent{
					{Name: "lead", Model: leadClient, Instructions: "You lead.", Tools: []string{"lab__big"}, AgentsAsTools: []string{"writer"}},
					{Name: "writer", Description: "Writes things down.", Model: writerClient, Instructions: "You write.", Tools: []string{"lab__write"}, RequireApproval: true},
				}}
			}
			r := newRig(t, st, llmtest.Sequence(), opts())
			res, err := r.o.Run(ctx, orchestrator.Request{UserID: "alice", Content: "note milk"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Turn.Status != switchboard.TurnAwaitingApproval || len(res.Pending) != 1 || res.Pending[0].Tool != "write" || res.Pending[0].Agent != "writer" {
				t.Fatalf("got %s, pending %+v; want the writer's write awaiting approval", res.Turn.Status, res.Pending)
			}
			child := res.Pending[0]
			if child.ParentID == "" || len(r.lab.calls) != 0 {
				t.Fatalf("child %+v, writes %v: want it linked to its parent, nothing written", child, r.lab.calls)
			}
			if diff := cmp.Diff([]string{"lab__big", "ask_writer"}, toolNames(lead.Requests()[0])); diff != "" {
				t.Errorf("lead's tools (-want +got):\n%s", diff)
			}
			wreq := writer.Requests()[0]
			if len(wreq.Messages) != 2 || systemOf(wreq) != "You write." || wreq.Messages[1].Content != "write milk" {
				t.Errorf("writer's request: got %+v, want its instructions and the input alone", wreq.Messages)
			}
			if diff := cmp.Diff([]string{"lab__write"}, toolNames(wreq)); diff != "" {
				t.Errorf("writer's tools (-want +got):\n%s", diff)
			}
			if _, err := r.o.Decide(ctx, orchestrator.Decision{UserID: "alice", ConversationID: res.Turn.ConversationID, CallID: child.ParentID, Approve: true}, nil); !errors.Is(err, switchboard.ErrConflict) {
				t.Errorf("deciding the agent's call itself: got %v, want a conflict", err)
			}

			restarted := orchestrator.New(llm.New(llm.Config{BaseURL: r.model.URL, APIKey: "k"}, nil), r.reg, st, opts())
			if _, err := restarted.Decide(ctx, orchestrator.Decision{UserID: "bob", ConversationID: res.Turn.ConversationID, CallID: child.ID, Approve: true}, nil); !errors.Is(err, switchboard.ErrNotFound) {
				t.Errorf("bob approving alice's call: got %v, want not found", err)
			}
			done, err := restarted.Decide(ctx, orchestrator.Decision{UserID: "alice", ConversationID: res.Turn.ConversationID, CallID: child.ID, Approve: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if done.Turn.Status != switchboard.TurnCompleted || done.Message.Content != "Done: wrote milk." || done.Turn.ID != res.Turn.ID {
				t.Errorf("after approval: got %s %q", done.Turn.Status, done.Message.Content)
			}
			if diff := cmp.Diff([]string{"milk"}, r.lab.calls); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if got := toolMessages(writer.Requests()[1]); len(got) != 1 || got[0] != "w=wrote milk" {
				t.Errorf("writer's second request's results: got %q", got)
			}
			if got := toolMessages(lead.Requests()[1]); len(got) != 1 || got[0] != "a=wrote milk" {
				t.Errorf("lead's second request's results: got %q, want the writer's answer", got)
			}
			parent, err := st.GetToolCall(ctx, "alice", child.ParentID)
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := st.GetToolCall(ctx, "alice", child.ID)
			if parent.Tool != "ask_writer" || parent.Status != switchboard.CallSucceeded || parent.Result != "wrote milk" || parent.Agent != "lead" ||
				stored.Status != switchboard.CallSucceeded || stored.ParentID != parent.ID || stored.Agent != "writer" {
				t.Errorf("ledger: parent %+v, child %+v", parent, stored)
			}
		})
	}
}

// TestCancelReachesAnAgentUsedAsATool: cancelling the turn while the
// agent's tool runs cancels that call in the server, and both calls end
// cancelled.
func TestCancelReachesAnAgentUsedAsATool(t *testing.T) {
	st := stores()["memory"](t)
	_, leadClient := scripted(t, llmtest.Sequence(calls(call("a", "ask_sleeper", `{"input":"sleep"}`)), llmtest.Reply{Text: "never"}))
	_, sleeperClient := scripted(t, llmtest.Sequence(calls(call("s", "lab__sleep", `{"ms":60000}`)), llmtest.Reply{Text: "never"}))
	r := newRig(t, st, llmtest.Sequence(), &orchestrator.Options{Agents: []orchestrator.Agent{
		{Name: "lead", Model: leadClient, AgentsAsTools: []string{"sleeper"}},
		{Name: "sleeper", Model: sleeperClient, Tools: []string{"lab__sleep"}},
	}})
	ev := &recorder{}
	errc := make(chan error, 1)
	go func() {
		_, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "alice", Content: "sleep"}, ev)
		errc <- err
	}()
	<-r.lab.sleeping
	ev.mu.Lock()
	conv := ev.turn.ConversationID
	ev.mu.Unlock()
	if _, err := r.o.Cancel(context.Background(), "alice", conv); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-r.lab.cancelled:
		if name != "sleep" {
			t.Errorf("cancelled in the server: got %q", name)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sleeper's call was not cancelled in the server")
	}
	if err := <-errc; !switchboard.IsCode(err, switchboard.CodeTurnCancelled) {
		t.Errorf("run: got %v, want turn_cancelled", err)
	}
	rows, _, _ := st.ListToolCalls(context.Background(), switchboard.ToolCallFilter{ConversationID: conv})
	var got []string
	for _, c := range rows {
		got = append(got, c.Tool+" "+string(c.Status)+" parent="+boolStr(c.ParentID != ""))
	}
	if diff := cmp.Diff([]string{"sleep cancelled parent=yes", "ask_sleeper cancelled parent=no"}, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
