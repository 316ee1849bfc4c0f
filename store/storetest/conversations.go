package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

func testConversations(t *testing.T, s Store) {
	ctx := t.Context()
	var convs []switchboard.Conversation
	for i := range 4 {
		ts := newTurn(t, s, "alice", "", fmt.Sprint("conversation ", i))
		convs = append(convs, ts.Conversation)
	}
	newTurn(t, s, "bob", "", "not alice's")
	// Continuing the oldest makes it the most recent.
	touched := newTurn(t, s, "alice", convs[0].ID, "back to the first")
	convs[0] = touched.Conversation
	want := []switchboard.Conversation{convs[0], convs[3], convs[2], convs[1]}
	slices.SortStableFunc(want, func(a, b switchboard.Conversation) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	for _, limit := range []int{0, 2} {
		got, err := s.ListConversations(ctx, "alice", limit)
		if err != nil {
			t.Fatalf("ListConversations: got error %v, want none", err)
		}
		w := want
		if limit > 0 {
			w = want[:limit]
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("ListConversations limit %d (-want +got):\n%s", limit, diff)
		}
	}
	got, err := s.ListConversations(ctx, "nobody", 0)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("conversations of a user without any: got %#v, %v, want an empty list", got, err)
	}

	c := convs[1]
	updated, err := s.UpdateConversation(ctx, "alice", switchboard.Conversation{ID: c.ID, Title: "Renamed", Status: "archived", UserID: "mallory"})
	if err != nil {
		t.Fatalf("UpdateConversation: got error %v, want none", err)
	}
	if updated.Title != "Renamed" || updated.Status != "archived" || updated.UserID != "alice" ||
		!updated.CreatedAt.Equal(c.CreatedAt) || updated.UpdatedAt.Before(c.UpdatedAt) {
		t.Errorf("updated conversation: got %+v, want renamed, archived, alice's, created %v", updated, c.CreatedAt)
	}
	kept, err := s.UpdateConversation(ctx, "alice", switchboard.Conversation{ID: c.ID, Title: ""})
	if err != nil || kept.Status != "archived" || kept.Title != "" {
		t.Errorf("update without status: got %+v, %v, want the status kept and the title cleared", kept, err)
	}
	stored, err := s.GetConversation(ctx, "alice", c.ID)
	if err != nil {
		t.Fatalf("GetConversation: got error %v, want none", err)
	}
	if diff := cmp.Diff(kept, stored); diff != "" {
		t.Errorf("stored conversation differs from the update's result (-want +got):\n%s", diff)
	}
}

func testDeleteCascades(t *testing.T, s Store) {
	ctx := t.Context()
	doomed := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice", IdempotencyKey: "k"},
		UserMessage: switchboard.Message{Content: "forget me"},
	}
	begin(t, s, &doomed)
	u := switchboard.TurnUpdate{
		Turn:      switchboard.Turn{ID: doomed.Turn.ID, Status: switchboard.TurnCompleted},
		Messages:  []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "ok"}},
		ToolCalls: []switchboard.ToolCall{{Server: "s", Tool: "t", Status: switchboard.CallSucceeded}},
	}
	save(t, s, &u)
	kept := addCalls(t, s, "alice", []switchboard.ToolCall{{Server: "s", Tool: "t", Status: switchboard.CallSucceeded}})

	if err := s.DeleteConversation(ctx, "alice", doomed.Conversation.ID); err != nil {
		t.Fatalf("DeleteConversation: got error %v, want none", err)
	}
	_, err := s.GetConversation(ctx, "alice", doomed.Conversation.ID)
	wantErr(t, "GetConversation after delete", err, switchboard.ErrNotFound)
	_, err = s.ListMessages(ctx, "alice", doomed.Conversation.ID)
	wantErr(t, "ListMessages after delete", err, switchboard.ErrNotFound)
	_, err = s.GetTurn(ctx, "alice", doomed.Turn.ID)
	wantErr(t, "GetTurn after delete", err, switchboard.ErrNotFound)
	_, err = s.TurnByIdempotencyKey(ctx, "alice", "k")
	wantErr(t, "TurnByIdempotencyKey after delete", err, switchboard.ErrNotFound)
	_, err = s.GetToolCall(ctx, "alice", u.ToolCalls[0].ID)
	wantErr(t, "GetToolCall after delete", err, switchboard.ErrNotFound)
	err = s.DeleteConversation(ctx, "alice", doomed.Conversation.ID)
	wantErr(t, "DeleteConversation twice", err, switchboard.ErrNotFound)

	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{UserID: "alice"})
	if err != nil {
		t.Fatalf("ListToolCalls: got error %v, want none", err)
	}
	if diff := cmp.Diff(callIDs(kept), callIDs(calls)); diff != "" {
		t.Errorf("tool calls left (-want +got):\n%s", diff)
	}
	// The key is free again.
	again := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice", IdempotencyKey: "k"},
		UserMessage: switchboard.Message{Content: "remember me"},
	}
	begin(t, s, &again)
}

// testExternalID: a client's own conversation id is kept per user.
func testExternalID(t *testing.T, s Store) {
	ctx := context.Background()
	begin := func(user, ext string) (switchboard.TurnStart, error) {
		ts := switchboard.TurnStart{
			Conversation: switchboard.Conversation{ExternalID: ext},
			Turn:         switchboard.Turn{UserID: user},
			UserMessage:  switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "hi"},
		}
		_, err := s.BeginTurn(ctx, &ts)
		return ts, err
	}
	a, err := begin("alice", "chat-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ConversationByExternalID(ctx, "alice", "chat-1")
	if err != nil || got.ID != a.Conversation.ID || got.ExternalID != "chat-1" {
		t.Fatalf("by external id: got %+v, %v; want %s", got, err, a.Conversation.ID)
	}
	if _, err := s.ConversationByExternalID(ctx, "bob", "chat-1"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("another user's external id: got %v, want ErrNotFound", err)
	}
	if _, err := begin("alice", "chat-1"); !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != "conversation_exists" {
		t.Errorf("creating chat-1 twice: got %v, want ErrConflict", err)
	}
	b, err := begin("bob", "chat-1") // the same client id, another user: another conversation
	if err != nil || b.Conversation.ID == a.Conversation.ID {
		t.Errorf("bob's chat-1: got %+v, %v", b.Conversation, err)
	}
	if c, err := s.GetConversation(ctx, "alice", a.Conversation.ID); err != nil || c.ExternalID != "chat-1" {
		t.Errorf("GetConversation: got %+v, %v, want external id chat-1", c, err)
	}
}

// testOtherUsersFindNothing: every method that takes a user finds nothing
// of another user's, as for an id that does not exist, and changes
// nothing; admins' reads find it.
func testOtherUsersFindNothing(t *testing.T, s Store) {
	ctx := t.Context()
	waits := switchboard.TurnStart{
		Conversation: switchboard.Conversation{ExternalID: "chat-a"},
		Turn:         switchboard.Turn{UserID: "alice", IdempotencyKey: "k"},
		UserMessage:  switchboard.Message{Content: "delete everything"},
	}
	begin(t, s, &waits)
	conv := waits.Conversation
	turn := waits.Turn
	turn.Status = switchboard.TurnAwaitingApproval
	u := switchboard.TurnUpdate{Turn: turn, ToolCalls: []switchboard.ToolCall{
		{CallID: "c1", Server: "files", Tool: "delete", Status: switchboard.CallAwaitingApproval, StartedAt: t0}}}
	save(t, s, &u)
	call := u.ToolCalls[0]
	running := newTurn(t, s, "alice", "", "still running")

	notFound := func(what string, err error) {
		t.Helper()
		wantErr(t, "bob's "+what+" of alice's", err, switchboard.ErrNotFound)
	}
	_, err := s.GetConversation(ctx, "bob", conv.ID)
	notFound("GetConversation", err)
	_, err = s.ConversationByExternalID(ctx, "bob", "chat-a")
	notFound("ConversationByExternalID", err)
	_, err = s.UpdateConversation(ctx, "bob", switchboard.Conversation{ID: conv.ID, Title: "stolen", Status: "archived"})
	notFound("UpdateConversation", err)
	notFound("DeleteConversation", s.DeleteConversation(ctx, "bob", conv.ID))
	_, err = s.ListMessages(ctx, "bob", conv.ID)
	notFound("ListMessages", err)
	_, err = s.ListAllMessages(ctx, "bob", conv.ID)
	notFound("ListAllMessages", err)
	_, err = s.ListTurns(ctx, "bob", conv.ID)
	notFound("ListTurns", err)
	_, err = s.GetTurn(ctx, "bob", turn.ID)
	notFound("GetTurn", err)
	_, err = s.TurnByIdempotencyKey(ctx, "bob", "k")
	notFound("TurnByIdempotencyKey", err)
	_, err = s.GetToolCall(ctx, "bob", call.ID)
	notFound("GetToolCall", err)
	_, err = s.DecideToolCall(ctx, "bob", call.ID, true)
	notFound("DecideToolCall", err)
	intrude := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv.ID}, Turn: switchboard.Turn{UserID: "bob"},
		UserMessage: switchboard.Message{Content: "go on"}}
	_, err = s.BeginTurn(ctx, &intrude)
	notFound("BeginTurn", err)
	if _, _, err := s.RequestCancel(ctx, "bob", running.Conversation.ID); switchboard.ErrorCode(err) != "no_running_turn" {
		t.Errorf("bob's RequestCancel in alice's conversation: got %v, want no_running_turn", err)
	}

	got, err := s.GetConversation(ctx, "alice", conv.ID)
	if err != nil || got.Title != conv.Title || got.Status != conv.Status {
		t.Errorf("alice's conversation after bob's attempts: got %+v, %v, want it unchanged: %+v", got, err, conv)
	}
	if msgs, err := s.ListMessages(ctx, "alice", conv.ID); err != nil || len(msgs) != 1 {
		t.Errorf("alice's transcript after bob's attempts: got %d messages, %v, want 1", len(msgs), err)
	}
	if c, err := s.GetToolCall(ctx, "alice", call.ID); err != nil || c.Status != switchboard.CallAwaitingApproval {
		t.Errorf("alice's call after bob's attempts: got %s, %v, want still awaiting approval", c.Status, err)
	}
	if tr, err := s.GetTurn(ctx, "alice", turn.ID); err != nil || tr.Status != switchboard.TurnAwaitingApproval {
		t.Errorf("alice's turn after bob's attempts: got %s, %v, want still awaiting approval", tr.Status, err)
	}
	if requested, err := s.RenewTurn(ctx, running.Turn.ID); err != nil || requested {
		t.Errorf("alice's running turn after bob's cancel: got cancel requested %v, %v, want none", requested, err)
	}

	if c, err := s.AdminConversation(ctx, conv.ID); err != nil || c.UserID != "alice" {
		t.Errorf("AdminConversation: got %+v, %v, want alice's conversation", c, err)
	}
	if c, err := s.AdminToolCall(ctx, call.ID); err != nil || c.UserID != "alice" {
		t.Errorf("AdminToolCall: got %+v, %v, want alice's call", c, err)
	}
	for _, id := range []string{switchboard.NewID(), "not-an-id"} {
		_, err := s.AdminConversation(ctx, id)
		wantErr(t, fmt.Sprintf("AdminConversation(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.AdminToolCall(ctx, id)
		wantErr(t, fmt.Sprintf("AdminToolCall(%q)", id), err, switchboard.ErrNotFound)
	}
}
