package storetest

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// testRegenerate answers a user message again: the messages after it leave
// the transcript and the history; turns and ledger rows stay.
func testRegenerate(t *testing.T, s Store) {
	ctx := t.Context()
	transcript := func(conv string) []string {
		t.Helper()
		msgs, err := s.ListMessages(ctx, "alice", conv)
		if err != nil {
			t.Fatalf("ListMessages: got error %v, want none", err)
		}
		return messageContents(msgs)
	}
	answer := func(ts switchboard.TurnStart, text string, calls ...switchboard.ToolCall) {
		t.Helper()
		turn := ts.Turn
		turn.Status, turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		save(t, s, &switchboard.TurnUpdate{Turn: turn, ToolCalls: calls,
			Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: text}}})
	}
	first := newTurn(t, s, "alice", "", "one")
	conv := first.Conversation.ID
	answer(first, "answer one", switchboard.ToolCall{Server: "tasks", Tool: "add_task", Status: switchboard.CallSucceeded, StartedAt: t0})
	second := newTurn(t, s, "alice", conv, "two")
	answer(second, "answer two")
	regenerate := func(n int, content string) (switchboard.TurnStart, []switchboard.Message, error) {
		ts := switchboard.TurnStart{
			Conversation: switchboard.Conversation{ID: conv},
			Turn:         switchboard.Turn{UserID: "alice"},
			UserMessage:  switchboard.Message{Content: content},
			Regenerate:   n,
		}
		history, err := s.BeginTurn(ctx, &ts)
		return ts, history, err
	}

	for _, tc := range []struct {
		n       int
		content string
		code    string
	}{
		{3, "three", "nothing_to_regenerate"},
		{2, "changed", "regenerate_mismatch"},
		{1, "two?", "regenerate_mismatch"},
	} {
		_, _, err := regenerate(tc.n, tc.content)
		if !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != tc.code {
			t.Errorf("regenerate %d %q: got error %v, want a conflict %s", tc.n, tc.content, err, tc.code)
		}
	}
	if got, want := transcript(conv), []string{"one", "answer one", "two", "answer two"}; !slices.Equal(got, want) {
		t.Errorf("transcript after refused regenerates: got %q, want %q", got, want)
	}
	if turns, err := s.ListTurns(ctx, "alice", conv); err != nil || len(turns) != 2 {
		t.Errorf("turns after refused regenerates: got %d, %v, want 2: nothing stored", len(turns), err)
	}

	// A client that counts one user message more (one we refused) names
	// the last one.
	again, history, err := regenerate(3, "two")
	if err != nil {
		t.Fatalf("regenerate the last answer: got error %v, want none", err)
	}
	if got := messageContents(history); !slices.Equal(got, []string{"one", "answer one", "two"}) {
		t.Errorf("history of the regenerating turn: got %q, want it to end with the message answered again", got)
	}
	answer(again, "answer two, again")
	if got, want := transcript(conv), []string{"one", "answer one", "two", "answer two, again"}; !slices.Equal(got, want) {
		t.Errorf("transcript after regenerating: got %q, want %q", got, want)
	}

	again, history, err = regenerate(1, "one")
	if err != nil {
		t.Fatalf("regenerate the first answer: got error %v, want none", err)
	}
	if got := messageContents(history); !slices.Equal(got, []string{"one"}) {
		t.Errorf("history when answering the first message again: got %q, want [one]", got)
	}
	answer(again, "answer one, again")
	if got, want := transcript(conv), []string{"one", "answer one, again"}; !slices.Equal(got, want) {
		t.Errorf("transcript after regenerating the first answer: got %q, want %q", got, want)
	}
	turns, err := s.ListTurns(ctx, "alice", conv)
	if err != nil || len(turns) != 4 {
		t.Errorf("turns: got %d, %v, want all 4 kept", len(turns), err)
	}
	all, err := s.ListAllMessages(ctx, "alice", conv)
	if err != nil {
		t.Fatalf("ListAllMessages: got error %v, want none", err)
	}
	var marked []string
	for _, m := range all {
		by := "-"
		if m.SupersededBy != "" {
			by = "turn " + strconv.Itoa(slices.IndexFunc(turns, func(tr switchboard.Turn) bool { return tr.ID == m.SupersededBy })+1)
		}
		marked = append(marked, m.Content+" ("+by+")")
	}
	want := []string{"one (-)", "answer one (turn 4)", "two (turn 4)", "answer two (turn 3)", "answer two, again (turn 4)", "answer one, again (-)"}
	if !slices.Equal(marked, want) {
		t.Errorf("every message, in order, with the turn that superseded it: got %q, want %q", marked, want)
	}
	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{ConversationID: conv})
	if err != nil || len(calls) != 1 {
		t.Errorf("ledger rows of the superseded answer: got %d, %v, want 1 kept", len(calls), err)
	}

	if _, _, err := regenerate(1, "one"); err != nil {
		t.Fatalf("regenerate once more: got error %v, want none", err)
	}
	if _, _, err := regenerate(1, "one"); switchboard.ErrorCode(err) != "turn_running" {
		t.Errorf("regenerate while the last regenerating turn runs: got error %v, want turn_running", err)
	}
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "one"}, Regenerate: 1}
	_, err = s.BeginTurn(ctx, &ts)
	wantErr(t, "regenerate in a new conversation", err, switchboard.ErrNotFound)
	if err := s.DeleteConversation(ctx, "alice", conv); err != nil {
		t.Errorf("delete a conversation with superseded messages: got error %v, want none", err)
	}
}

// testRegenerateLast: when the n-th user message is not the one resent but
// the last is, the last is answered again.
func testRegenerateLast(t *testing.T, s Store) {
	ctx := t.Context()
	first := newTurn(t, s, "alice", "", "one")
	first.Turn.Status, first.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "a1"}}})
	second := newTurn(t, s, "alice", first.Conversation.ID, "two")
	second.Turn.Status, second.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: second.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "a2"}}})
	again := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: first.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "two"}, Regenerate: 1}
	history, err := s.BeginTurn(ctx, &again)
	if err != nil {
		t.Fatalf("regenerate: got error %v, want none", err)
	}
	if got := messageContents(history); !slices.Equal(got, []string{"one", "a1", "two"}) {
		t.Errorf("history: got %q, want it to end with the last user message", got)
	}
}

// testEdit replaces a user message: it and what follows leave the
// transcript (kept), the edit is stored after them.
func testEdit(t *testing.T, s Store) {
	ctx := t.Context()
	first := newTurn(t, s, "alice", "", "one")
	conv := first.Conversation.ID
	first.Turn.Status, first.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "a1"}}})
	second := newTurn(t, s, "alice", conv, "two")
	second.Turn.Status = switchboard.TurnAwaitingApproval
	waiting := switchboard.TurnUpdate{Turn: second.Turn,
		ToolCalls: []switchboard.ToolCall{{Server: "fs", Tool: "rm", Status: switchboard.CallAwaitingApproval, StartedAt: t0}},
		Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
			ToolCalls: []switchboard.RequestedCall{{ID: "c1", Name: "fs__rm", Arguments: "{}"}}}}}
	save(t, s, &waiting)
	call := waiting.ToolCalls[0]
	edit := func(n int, content string) []switchboard.Message {
		t.Helper()
		ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: content}, Edit: n}
		history, err := s.BeginTurn(ctx, &ts)
		if err != nil {
			t.Fatalf("edit %d: got error %v, want none", n, err)
		}
		ts.Turn.Status, ts.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		save(t, s, &switchboard.TurnUpdate{Turn: ts.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "re " + content}}})
		return history
	}
	if got := messageContents(edit(2, "two, edited")); !slices.Equal(got, []string{"one", "a1", "two, edited"}) {
		t.Errorf("history of the edit: got %q", got)
	}
	if msgs, _ := s.ListMessages(ctx, "alice", conv); !slices.Equal(messageContents(msgs), []string{"one", "a1", "two, edited", "re two, edited"}) {
		t.Errorf("transcript after the edit: got %q", messageContents(msgs))
	}
	if got, err := s.GetToolCall(ctx, "alice", call.ID); err != nil || got.Status != switchboard.CallCancelled {
		t.Errorf("the call that awaited approval in the edited part: got %s, %v, want cancelled", got.Status, err)
	}
	// Past the last user message: a new message.
	if got := messageContents(edit(5, "three")); !slices.Equal(got, []string{"one", "a1", "two, edited", "re two, edited", "three"}) {
		t.Errorf("history of an edit of a message never stored: got %q", got)
	}
	all, err := s.ListAllMessages(ctx, "alice", conv)
	if err != nil || len(all) != 8 {
		t.Errorf("every message: got %d, %v, want 8 (2 superseded)", len(all), err)
	}

	// Another user's conversation: not found, and nothing of it touched.
	bobs := newTurn(t, s, "bob", "", "bob's")
	bobs.Turn.Status = switchboard.TurnAwaitingApproval
	bobWaits := switchboard.TurnUpdate{Turn: bobs.Turn,
		ToolCalls: []switchboard.ToolCall{{Server: "fs", Tool: "rm", Status: switchboard.CallAwaitingApproval, StartedAt: t0}}}
	save(t, s, &bobWaits)
	alices := newTurn(t, s, "alice", "", "alice's")
	for _, ts := range []switchboard.TurnStart{
		{Conversation: switchboard.Conversation{ID: bobs.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: "mine now"}, Edit: 1},
		{Conversation: switchboard.Conversation{ID: bobs.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: "bob's"}, Regenerate: 1},
		// With the id of a turn of hers that exists.
		{Conversation: switchboard.Conversation{ID: bobs.Conversation.ID}, Turn: switchboard.Turn{ID: alices.Turn.ID, UserID: "alice"},
			UserMessage: switchboard.Message{Content: "mine now"}, Edit: 1},
	} {
		_, err := s.BeginTurn(ctx, &ts)
		wantErr(t, "an edit or regenerate in another user's conversation", err, switchboard.ErrNotFound)
	}
	if msgs, err := s.ListMessages(ctx, "bob", bobs.Conversation.ID); err != nil || !slices.Equal(messageContents(msgs), []string{"bob's"}) {
		t.Errorf("bob's transcript after alice's edit: got %q, %v, want it untouched", messageContents(msgs), err)
	}
	if got, err := s.GetToolCall(ctx, "bob", bobWaits.ToolCalls[0].ID); err != nil || got.Status != switchboard.CallAwaitingApproval {
		t.Errorf("bob's call awaiting approval after alice's edit: got %s, %v, want still waiting", got.Status, err)
	}
	if msgs, err := s.ListMessages(ctx, "alice", alices.Conversation.ID); err != nil || !slices.Equal(messageContents(msgs), []string{"alice's"}) {
		t.Errorf("alice's own conversation after her refused edit: got %q, %v, want it untouched", messageContents(msgs), err)
	}
}

// testRegenerateCancelsWaitingApprovals: a call awaiting approval in an
// answer that a regenerate replaces is cancelled, with its turn: approving
// it later must not continue a replaced answer.
func testRegenerateCancelsWaitingApprovals(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "delete everything")
	turn := ts.Turn
	turn.Status = switchboard.TurnAwaitingApproval
	call := switchboard.ToolCall{Server: "files", Tool: "delete_all", Status: switchboard.CallAwaitingApproval, StartedAt: t0}
	u := switchboard.TurnUpdate{Turn: turn, ToolCalls: []switchboard.ToolCall{call},
		Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
			ToolCalls: []switchboard.RequestedCall{{ID: "call_1", Name: "files__delete_all", Arguments: "{}"}}}}}
	save(t, s, &u)
	again := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "delete everything"}, Regenerate: 1}
	if _, err := s.BeginTurn(ctx, &again); err != nil {
		t.Fatalf("regenerate: got error %v, want none", err)
	}
	got, err := s.GetToolCall(ctx, "alice", u.ToolCalls[0].ID)
	if err != nil || got.Status != switchboard.CallCancelled || got.Error == "" || got.FinishedAt.IsZero() {
		t.Errorf("the call that awaited approval: got %s %q finished %v, %v; want cancelled, with a reason", got.Status, got.Error, got.FinishedAt, err)
	}
	old, err := s.GetTurn(ctx, "alice", ts.Turn.ID)
	if err != nil || old.Status != switchboard.TurnCancelled {
		t.Errorf("the turn that awaited approval: got %s, %v, want cancelled", old.Status, err)
	}
	if _, err := s.DecideToolCall(ctx, "alice", u.ToolCalls[0].ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("approving the cancelled call: got %v, want already_decided", err)
	}
}

func messageContents(msgs []switchboard.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Content)
	}
	return out
}
