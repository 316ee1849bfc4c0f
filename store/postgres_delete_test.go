package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestDeleteConversationLeavesNoMessages deletes conversations of two users
// while turns run in them, and checks that nothing of a deleted
// conversation stays: messages have no key to their conversation
// (migration 00056), DeleteConversation deletes them after it locked the
// conversation. A turn that loses the race ends with not found; the other
// user's conversations keep everything.
func TestDeleteConversationLeavesNoMessages(t *testing.T) {
	url := storetest.PostgresURL(t)
	p, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := t.Context()
	const rounds = 12
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	kept := make([]string, 0, rounds)
	for i := range rounds {
		doomed, _ := fillTurn(t, p, "alice", "", 0)
		keep, _ := fillTurn(t, p, "bob", "", 0)
		kept = append(kept, keep)
		wg.Add(2)
		go func() { // turns in alice's conversation until it is gone
			defer wg.Done()
			for {
				err := runTurn(ctx, p, "alice", doomed)
				if errors.Is(err, switchboard.ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * time.Millisecond)
			if err := p.DeleteConversation(ctx, "alice", doomed); err != nil {
				errs <- fmt.Errorf("DeleteConversation: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, table := range []string{"messages", "turns", "tool_calls"} {
		var orphans, alice int
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT FROM conversations c WHERE c.id = x.conversation_id)),
    count(*) FILTER (WHERE x.user_id = 'alice') FROM `+table+` x`).Scan(&orphans, &alice)
		if table == "messages" { // messages have no user_id column
			err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT FROM conversations c WHERE c.id = x.conversation_id)),
    count(*) FILTER (WHERE x.conversation_id NOT IN (SELECT id FROM conversations WHERE user_id = 'bob')) FROM messages x`).Scan(&orphans, &alice)
		}
		if err != nil {
			t.Fatal(err)
		}
		if orphans != 0 || alice != 0 {
			t.Errorf("%s: %d rows of deleted conversations, %d of alice's; want none", table, orphans, alice)
		}
	}
	for _, id := range kept {
		msgs, err := p.ListMessages(ctx, "bob", id)
		if err != nil || len(msgs) != 4 {
			t.Errorf("bob's conversation %s: %d messages, %v; want 4", id, len(msgs), err)
		}
	}
}

// runTurn runs one turn of fillTurn's shape in conversation, returning the
// first error instead of failing the test (it may lose a race to a delete).
func runTurn(ctx context.Context, s turnWriter, user, conversation string) error {
	ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conversation},
		Turn: switchboard.Turn{UserID: user}, UserMessage: switchboard.Message{Content: "again"}, HistoryLimit: 50}
	if _, err := s.BeginTurn(ctx, &ts); err != nil {
		return err
	}
	turn := switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 1}
	call := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "call_1", Server: "echo", Tool: "echo", ExposedName: "echo",
		Arguments: []byte(`{"text":"hello"}`), Status: switchboard.CallRunning, StartedAt: time.Now()}
	request := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
		ToolCalls: []switchboard.RequestedCall{{ID: "call_1", Name: "echo", Arguments: `{"text":"hello"}`}}, Timestamp: time.Now()}
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{request},
		ToolCalls: []switchboard.ToolCall{call}}); err != nil {
		return err
	}
	call.Status, call.Result, call.FinishedAt = switchboard.CallSucceeded, "hello", time.Now()
	result := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleTool, Type: switchboard.MessageToolResult,
		Content: "hello", ToolCallID: "call_1", ToolName: "echo", Timestamp: time.Now()}
	turn.Status, turn.Steps, turn.FinishedAt = switchboard.TurnCompleted, 2, time.Now()
	return s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{result},
		ToolCalls: []switchboard.ToolCall{call}})
}
