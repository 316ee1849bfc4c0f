package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestHistoryCacheAcrossInstances runs one conversation's turns on two
// stores with history caches, as two instances of the service on one
// database, with edits and regenerates among them and the window's size
// changing now and then: every turn's start must return the window a full
// read of the transcript gives.
func TestHistoryCacheAcrossInstances(t *testing.T) {
	url := storetest.PostgresURL(t)
	instances := []*store.Postgres{
		openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2}),
		openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2}),
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var conv string
	users := 0                               // user messages in the transcript
	var prev, prevCopy []switchboard.Message // the last window, as its caller left it
	for i := range 60 {
		p := instances[rnd.IntN(2)]
		limit := []int{7, 7, 7, 7, 4, 0}[rnd.IntN(6)] // 0: all
		ts := switchboard.TurnStart{
			Conversation: switchboard.Conversation{ID: conv},
			Turn:         switchboard.Turn{UserID: "alice"},
			UserMessage:  switchboard.Message{Content: fmt.Sprint("question ", i)},
			HistoryLimit: limit,
		}
		what := "new message"
		switch r := rnd.IntN(10); {
		case conv == "":
		case r == 0 && users > 1:
			ts.Edit = 1 + rnd.IntN(users)
			what = fmt.Sprint("edit of user message ", ts.Edit)
		case r == 1 && users > 1:
			ts.Regenerate = users
			ts.UserMessage.Content = lastUserMessage(t, p, conv)
			what = "regenerate"
		}
		history, err := p.BeginTurn(t.Context(), &ts)
		if err != nil {
			t.Fatalf("turn %d (%s): %v", i, what, err)
		}
		if diff := cmp.Diff(prevCopy, prev); diff != "" {
			t.Fatalf("turn %d (%s) changed the previous turn's window (-before +after):\n%s", i, what, diff)
		}
		conv = ts.Conversation.ID
		transcript, err := instances[0].ListMessages(t.Context(), "alice", conv)
		if err != nil {
			t.Fatal(err)
		}
		users = 0
		for _, m := range transcript {
			if m.Role == switchboard.RoleUser {
				users++
			}
		}
		want := transcript
		if limit > 0 {
			want = transcript[max(0, len(transcript)-limit):]
		}
		if diff := cmp.Diff(want, history); diff != "" {
			t.Fatalf("turn %d (%s): history differs from the transcript's last %d messages (-want +got):\n%s", i, what, limit, diff)
		}
		// The window's room is the caller's, as a turn's appends use it; the
		// cache shares the window's messages, and what is appended must not
		// be in the next turn's window.
		if room := cap(history) - len(history); room < 8 {
			t.Fatalf("turn %d: the window has room for %d messages, want 8", i, room)
		}
		for len(history) < cap(history) {
			history = append(history, switchboard.Message{Role: switchboard.RoleAssistant, Content: "appended by the caller"})
		}
		prev, prevCopy = history, slices.Clone(history)
		u := switchboard.TurnUpdate{Turn: ts.Turn}
		u.Turn.Status, u.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		if rnd.IntN(2) == 0 {
			id := fmt.Sprint("call_", i)
			u.Messages = append(u.Messages,
				switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
					ToolCalls: []switchboard.RequestedCall{{ID: id, Name: "tasks__list", Arguments: `{"n": 1}`}}},
				switchboard.Message{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: id, ToolName: "tasks__list", Content: "[]"})
		}
		u.Messages = append(u.Messages, switchboard.Message{Role: switchboard.RoleAssistant, Content: fmt.Sprint("answer ", i)})
		if err := p.SaveTurn(t.Context(), &u); err != nil {
			t.Fatalf("turn %d: save: %v", i, err)
		}
	}
}

func lastUserMessage(t *testing.T, p *store.Postgres, conv string) string {
	t.Helper()
	msgs, err := p.ListMessages(t.Context(), "alice", conv)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == switchboard.RoleUser {
			return msgs[i].Content
		}
	}
	t.Fatal("no user message")
	return ""
}

// TestHistoryCacheReadsOnlyNewMessages shows that a cached window is read
// from memory: messages changed behind the store's back (it never changes
// their content) keep their cached content on the instance that cached
// them, while an instance without the conversation cached, or without a
// cache, reads them as they are. And that a cached window is read whole
// again once its last message left the transcript: an edit, one made by
// SQL the store did not send (an instance of another version), or a commit
// that was lost, even one whose seq went to the next message.
func TestHistoryCacheReadsOnlyNewMessages(t *testing.T) {
	ctx := t.Context()
	url := storetest.PostgresURL(t)
	cached := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2})
	uncached := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2, HistoryCacheBytes: -1})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}

	var conv, lastTurn string
	turn := func(p *store.Postgres, content string, edit int) []string {
		t.Helper()
		ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: content}, HistoryLimit: 10, Edit: edit}
		history, err := p.BeginTurn(ctx, &ts)
		if err != nil {
			t.Fatal(err)
		}
		conv, lastTurn = ts.Conversation.ID, ts.Turn.ID
		u := switchboard.TurnUpdate{Turn: ts.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "re " + content}}}
		u.Turn.Status, u.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		if err := p.SaveTurn(ctx, &u); err != nil {
			t.Fatal(err)
		}
		contents := make([]string, len(history))
		for i, m := range history {
			contents[i] = m.Content
		}
		return contents
	}
	turn(cached, "one", 0)
	turn(cached, "two", 0) // cached: one, re one, two
	exec(`UPDATE messages SET content = upper(content) WHERE conversation_id = $1`, conv)
	for _, step := range []struct {
		name    string
		before  func()
		p       *store.Postgres
		content string
		edit    int
		want    []string
	}{
		{"cached", nil, cached, "three", 0, []string{"one", "re one", "two", "RE TWO", "three"}},
		{"uncached", nil, uncached, "four", 0, []string{"ONE", "RE ONE", "TWO", "RE TWO", "three", "re three", "four"}},
		{"cached, after another instance's turn", nil, cached, "five", 0,
			[]string{"one", "re one", "two", "RE TWO", "three", "re three", "four", "re four", "five"}},
		{"an edit (of five)", nil, cached, "six", 5,
			[]string{"ONE", "RE ONE", "TWO", "RE TWO", "three", "re three", "four", "re four", "six"}},
		{"cached, after an edit (of six) the store did not send", func() {
			exec(`UPDATE messages SET superseded_by = $2 WHERE conversation_id = $1 AND seq >= (SELECT seq FROM messages WHERE content = 'six')`, conv, lastTurn)
		}, cached, "seven", 0, []string{"ONE", "RE ONE", "TWO", "RE TWO", "three", "re three", "four", "re four", "seven"}},
		{"cached, after a lost commit (seven's)", func() {
			exec(`DELETE FROM messages WHERE conversation_id = $1 AND content IN ('seven', 're seven')`, conv)
		}, cached, "eight", 0, []string{"ONE", "RE ONE", "TWO", "RE TWO", "three", "re three", "four", "re four", "eight"}},
		// A lost commit can take the sequence's advance with it: the next
		// message gets the seq of the cached window's last.
		{"cached, after a lost commit (eight's) whose seq is given again", func() {
			var seq int64
			if err := conn.QueryRow(ctx, `SELECT seq FROM messages WHERE conversation_id = $1 AND content = 'eight'`, conv).Scan(&seq); err != nil {
				t.Fatal(err)
			}
			exec(`DELETE FROM messages WHERE conversation_id = $1 AND content IN ('eight', 're eight')`, conv)
			exec(fmt.Sprintf(`ALTER TABLE messages ALTER COLUMN seq RESTART WITH %d`, seq))
		}, cached, "nine", 0, []string{"ONE", "RE ONE", "TWO", "RE TWO", "three", "re three", "four", "re four", "nine"}},
		{"cached, the next turn", nil, cached, "ten", 0,
			[]string{"RE ONE", "TWO", "RE TWO", "three", "re three", "four", "re four", "nine", "re nine", "ten"}},
	} {
		if step.before != nil {
			step.before()
		}
		if diff := cmp.Diff(step.want, turn(step.p, step.content, step.edit)); diff != "" {
			t.Errorf("%s: history (-want +got):\n%s", step.name, diff)
		}
	}
}
