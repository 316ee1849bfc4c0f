package orchestrator_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// windowStore keeps each history window BeginTurn returned, with a deep
// copy of its messages as they were returned.
type windowStore struct {
	orchestrator.Store
	mu      sync.Mutex
	windows [][]switchboard.Message
	copies  [][]switchboard.Message
}

func (s *windowStore) BeginTurn(ctx context.Context, start *switchboard.TurnStart) ([]switchboard.Message, error) {
	h, err := s.Store.BeginTurn(ctx, start)
	if err == nil {
		s.mu.Lock()
		s.windows = append(s.windows, h)
		s.copies = append(s.copies, deepMessages(h))
		s.mu.Unlock()
	}
	return h, err
}

// deepMessages copies msgs and everything their fields refer to.
func deepMessages(msgs []switchboard.Message) []switchboard.Message {
	out := make([]switchboard.Message, len(msgs))
	for i, m := range msgs {
		m.ToolCalls = slices.Clone(m.ToolCalls)
		m.Attachments = slices.Clone(m.Attachments)
		for j := range m.Attachments {
			m.Attachments[j].Data = slices.Clone(m.Attachments[j].Data)
		}
		m.Structured = json.RawMessage(slices.Clone([]byte(m.Structured)))
		if m.Handoff != nil {
			h := *m.Handoff
			m.Handoff = &h
		}
		out[i] = m
	}
	return out
}

// TestTurnsLeaveTheirWindowAsGiven runs turns of two users with tool
// calls, images (Vision fills their bytes in), a truncated result and
// answers, on both stores, and checks that no turn modified a message of
// the history window its start returned: the Postgres store shares those
// messages with the windows of later turns (Store.BeginTurn's contract).
func TestTurnsLeaveTheirWindowAsGiven(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := &windowStore{Store: open(t)}
			turn := llmtest.Sequence(
				calls(call("i1", "lab__images", `{"sizes":[10,20]}`), call("b1", "lab__big", `{"n":30000}`)),
				calls(call("w1", "lab__write", `{"x":"note"}`)),
				llmtest.Reply{Text: "done"},
			)
			r := newRig(t, st, func(n int, req *openai.ChatCompletionRequest) llmtest.Reply { return turn(n%3, req) },
				&orchestrator.Options{Vision: orchestrator.Vision{Enabled: true, MaxImagesPerStep: 2, MaxImageBytes: 25, MaxRequestBytes: 40}})
			conversations := map[string]string{}
			for range 3 {
				for _, user := range []string{"alice", "bob"} {
					res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: user, ConversationID: conversations[user], Content: "look " + user}, nil)
					if err != nil {
						t.Fatal(err)
					}
					conversations[user] = res.Turn.ConversationID
				}
			}
			if len(st.windows) != 6 {
				t.Fatalf("%d windows, want 6", len(st.windows))
			}
			for i := range st.windows {
				if diff := cmp.Diff(st.copies[i], st.windows[i]); diff != "" {
					t.Errorf("turn %d changed the window its start returned (-returned +after the turns):\n%s", i, diff)
				}
			}
		})
	}
}
