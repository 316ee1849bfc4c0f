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

// TestDeleteConversationLeavesNothing deletes conversations of two users
// while turns run in them, and checks that nothing of a deleted
// conversation stays: messages have no key to their conversation, turns
// none to theirs and ledger rows none to their turn (migrations 00056,
// 00058), DeleteConversation deletes them after it locked the
// conversation. A turn that loses the race ends with not found; the other
// user's conversations keep everything.
func TestDeleteConversationLeavesNothing(t *testing.T) {
	url := storetest.PostgresURL(t)
	p := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 8})
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
				_, _, err := storeTurn(ctx, p, "alice", doomed, 0)
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
	// What stays of deleted conversations, and of alice's (all hers went):
	// messages name no user, so theirs are those outside bob's conversations.
	for table, of := range map[string]string{
		"turns":      "x.user_id = 'alice'",
		"tool_calls": "x.user_id = 'alice'",
		"messages":   "x.conversation_id NOT IN (SELECT id FROM conversations WHERE user_id = 'bob')",
	} {
		var orphans, alice int
		if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT FROM conversations c WHERE c.id = x.conversation_id)),
    count(*) FILTER (WHERE `+of+`) FROM `+table+` x`).Scan(&orphans, &alice); err != nil {
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
