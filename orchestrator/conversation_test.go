package orchestrator_test

import (
	"context"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

func answer(int, *openai.ChatCompletionRequest) llmtest.Reply { return llmtest.Reply{Text: "ok"} }

// racingLookups is a store whose first n lookups of a conversation by a
// client's id answer once all n have been made, so that n first messages
// of one chat all find it absent and race to create it.
type racingLookups struct {
	orchestrator.Store
	mu     sync.Mutex
	n      int
	looked chan struct{}
}

func (s *racingLookups) ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error) {
	c, err := s.Store.ConversationByExternalID(ctx, userID, externalID)
	s.mu.Lock()
	wait := s.n > 0
	if wait {
		if s.n--; s.n == 0 {
			close(s.looked)
		}
	}
	s.mu.Unlock()
	if wait {
		<-s.looked
	}
	return c, err
}

// TestFirstMessagesOfOneChatRace: two first messages of one new chat (the
// AI SDK's id) that both find it absent end in one conversation: the one
// that loses the race to create it joins the winner's.
func TestFirstMessagesOfOneChatRace(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := &racingLookups{Store: open(t), n: 2, looked: make(chan struct{})}
			r := newRig(t, st, answer, nil)
			var wg sync.WaitGroup
			results := make([]*orchestrator.Result, 2)
			errs := make([]error, 2)
			for i := range 2 {
				wg.Go(func() {
					results[i], errs[i] = r.o.Run(context.Background(), orchestrator.Request{UserID: "u",
						ExternalConversationID: "chat-1", Content: "hello"}, nil)
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("message %d: got error %v, want none", i, err)
				}
			}
			if a, b := results[0].Turn.ConversationID, results[1].Turn.ConversationID; a != b {
				t.Errorf("conversations: got %s and %s, want one", a, b)
			}
			conv, err := st.ConversationByExternalID(context.Background(), "u", "chat-1")
			if err != nil || conv.ID != results[0].Turn.ConversationID {
				t.Fatalf("the chat's conversation: got %+v, %v, want %s", conv, err, results[0].Turn.ConversationID)
			}
			if msgs, err := st.ListMessages(context.Background(), "u", conv.ID); err != nil || len(msgs) != 4 {
				t.Errorf("transcript: got %d messages, %v, want both questions and answers", len(msgs), err)
			}
		})
	}
}

// TestClientNamedConversations: a client's own id names the user's
// conversation of that id (or of our id, when it is one of the user's),
// and else a new one; it never names another user's, nor does our id.
func TestClientNamedConversations(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, open(t), answer, nil)
			ctx := context.Background()
			run := func(req orchestrator.Request) string {
				t.Helper()
				req.Content = "hi"
				res, err := r.o.Run(ctx, req, nil)
				if err != nil {
					t.Fatalf("%+v: got error %v, want none", req, err)
				}
				return res.Turn.ConversationID
			}
			first := run(orchestrator.Request{UserID: "alice", ExternalConversationID: "chat-1"})
			if again := run(orchestrator.Request{UserID: "alice", ExternalConversationID: "chat-1"}); again != first {
				t.Errorf("alice's chat-1 again: got conversation %s, want %s", again, first)
			}
			if ours := run(orchestrator.Request{UserID: "alice", ExternalConversationID: first}); ours != first {
				t.Errorf("alice's conversation named by our id as the chat's: got %s, want %s", ours, first)
			}
			for _, ext := range []string{"chat-1", first} {
				if bobs := run(orchestrator.Request{UserID: "bob", ExternalConversationID: ext}); bobs == first {
					t.Errorf("bob's chat %q: got alice's conversation, want one of his own", ext)
				}
			}
			_, err := r.o.Run(ctx, orchestrator.Request{UserID: "bob", ConversationID: first, Content: "hijack"}, nil)
			if switchboard.ErrorCode(err) != "conversation_not_found" {
				t.Errorf("bob's message in alice's conversation: got %v, want conversation_not_found", err)
			}
			for _, d := range []orchestrator.Decision{
				{UserID: "alice", ExternalConversationID: "never-seen", CallID: switchboard.NewID(), Approve: true},
				{UserID: "bob", ConversationID: first, CallID: switchboard.NewID(), Approve: true},
			} {
				if _, err := r.o.Decide(ctx, d, nil); switchboard.ErrorCode(err) != "conversation_not_found" {
					t.Errorf("decision %+v: got %v, want conversation_not_found", d, err)
				}
			}
		})
	}
}
