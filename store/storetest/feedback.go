package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

// testFeedback: a user rates messages of their conversation, superseded
// ones included; a later rating replaces an earlier; the transcript and
// the admins' view carry it; the rating is all or none, and another user's
// conversation or message is not found.
func testFeedback(t *testing.T, s Store) {
	ctx := t.Context()
	first := newTurn(t, s, "alice", "", "one")
	conv := first.Conversation.ID
	answer := func(ts switchboard.TurnStart, text string) {
		t.Helper()
		turn := ts.Turn
		turn.Status, turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		save(t, s, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: text,
			Feedback: switchboard.FeedbackNegative}}}) // not the store's to take from a turn
	}
	answer(first, "answer one")
	second := newTurn(t, s, "alice", conv, "two")
	answer(second, "answer two")
	feedback := func(all bool) map[string]string {
		t.Helper()
		list := s.ListMessages
		if all {
			list = s.ListAllMessages
		}
		msgs, err := list(ctx, "alice", conv)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range msgs {
			out[m.Content] = m.Feedback
		}
		return out
	}
	if got := feedback(false); got["answer one"] != "" || got["answer two"] != "" {
		t.Fatalf("feedback before any: got %v, want none (a turn's messages carry none)", got)
	}
	msgs, err := s.ListMessages(ctx, "alice", conv)
	if err != nil {
		t.Fatal(err)
	}
	id := map[string]string{}
	for _, m := range msgs {
		id[m.Content] = m.ID
	}

	if err := s.SetFeedback(ctx, "alice", conv, []string{id["answer one"], strings.ToUpper(id["answer two"]), id["answer one"]}, switchboard.FeedbackPositive); err != nil {
		t.Fatalf("SetFeedback: got error %v, want none", err)
	}
	if err := s.SetFeedback(ctx, "alice", conv, []string{id["answer two"]}, switchboard.FeedbackNegative); err != nil {
		t.Fatalf("SetFeedback again: got error %v, want none", err)
	}
	if got := feedback(false); got["answer one"] != "positive" || got["answer two"] != "negative" || got["one"] != "" || got["two"] != "" {
		t.Errorf("feedback in the transcript: got %v, want answer one positive, answer two negative (replaced), no other", got)
	}

	// All or none: one id that is not a message of this conversation
	// (another conversation's, another user's, absent, malformed) rates
	// nothing.
	other := newTurn(t, s, "alice", "", "elsewhere")
	bobs := newTurn(t, s, "bob", "", "bob's")
	for _, tc := range []struct {
		what, user, conv string
		ids              []string
		kind             string
		want             error
	}{
		{"another conversation's message", "alice", conv, []string{id["one"], other.UserMessage.ID}, "negative", switchboard.ErrNotFound},
		{"an absent message", "alice", conv, []string{id["one"], switchboard.NewID()}, "negative", switchboard.ErrNotFound},
		{"a malformed id", "alice", conv, []string{id["one"], "msg_1"}, "negative", switchboard.ErrNotFound},
		{"another user's conversation", "bob", conv, []string{id["one"]}, "negative", switchboard.ErrNotFound},
		{"bob's message in alice's conversation", "alice", conv, []string{bobs.UserMessage.ID}, "negative", switchboard.ErrNotFound},
		{"an absent conversation", "alice", switchboard.NewID(), []string{id["one"]}, "negative", switchboard.ErrNotFound},
		{"an unknown kind", "alice", conv, []string{id["one"]}, "meh", switchboard.ErrInvalid},
		{"no ids", "alice", conv, nil, "negative", switchboard.ErrInvalid},
		{"too many ids", "alice", conv, slices.Repeat([]string{id["one"]}, store.MaxFeedbackMessages+1), "negative", switchboard.ErrInvalid},
	} {
		if err := s.SetFeedback(ctx, tc.user, tc.conv, tc.ids, tc.kind); !errors.Is(err, tc.want) {
			t.Errorf("SetFeedback with %s: got error %v, want %v", tc.what, err, tc.want)
		}
	}
	if got := feedback(false); got["one"] != "" || got["answer one"] != "positive" {
		t.Errorf("feedback after refused ratings: got %v, want them to have changed nothing", got)
	}

	// A superseded message keeps its rating, and can still be rated, for
	// admins to read.
	again := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "two"}, Regenerate: 2}
	begin(t, s, &again)
	answer(again, "answer two again")
	if err := s.SetFeedback(ctx, "alice", conv, []string{id["answer two"]}, switchboard.FeedbackPositive); err != nil {
		t.Fatalf("SetFeedback on a superseded message: got error %v, want none", err)
	}
	if got := feedback(true); got["answer two"] != "positive" || got["answer one"] != "positive" || got["answer two again"] != "" {
		t.Errorf("feedback with superseded messages: got %v, want answer two positive", got)
	}
	if got := feedback(false); len(got) != 4 || got["answer two again"] != "" {
		t.Errorf("transcript after the regenerate: got %v", got)
	}
}
