package api_test

import (
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
)

// TestEveryIDRouteHidesOtherUsers: every route that takes a conversation id
// answers 404 for another user's conversation, as for one that does not
// exist, and changes nothing.
func TestEveryIDRouteHidesOtherUsers(t *testing.T) {
	svc := newService(t, store.NewMemory(), nil, func(int, *openai.ChatCompletionRequest) llmtest.Reply { return llmtest.Reply{Text: "hi"} })
	alice, bob := token(t, "alice"), token(t, "bob")
	var r chatReply
	if resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"mine"}}`, &r); resp.StatusCode != 200 {
		t.Fatalf("setup: %d", resp.StatusCode)
	}
	for _, conv := range []string{r.ConversationID, "01a2116d-9a02-7a9d-8fbb-22a1db8fca1c", "not-an-id"} {
		base := svc.url + "/api/bob/conversations/" + conv
		for _, rt := range []struct{ method, url, body string }{
			{"GET", base, ""},
			{"PATCH", base, `{"title":"stolen"}`},
			{"DELETE", base, ""},
			{"GET", base + "/tool-calls", ""},
			{"POST", base + "/cancel", ""},
			{"POST", base + "/tool-calls/01a2116d-9a02-7efc-9cf4-d9ff3bb6fb0f/approval", `{"approve":true}`},
			{"POST", svc.url + "/api/bob/chat?conversation_id=" + conv, `{"message":{"content":"hijack"}}`},
			{"POST", svc.url + "/api/bob/chat/stream", `{"message":{"content":"hijack"},"conversation_id":"` + conv + `"}`},
		} {
			var e chatReply
			if resp := do(t, rt.method, rt.url, bob, rt.body, &e); resp.StatusCode != 404 {
				t.Errorf("%s %s: got %d %+v, want 404", rt.method, rt.url, resp.StatusCode, e.Error)
			}
		}
	}
	var conv struct {
		Conversation struct{ Title string } `json:"conversation"`
		Messages     []any                  `json:"messages"`
	}
	if resp := do(t, "GET", svc.url+"/api/alice/conversations/"+r.ConversationID, alice, "", &conv); resp.StatusCode != 200 ||
		conv.Conversation.Title == "stolen" || len(conv.Messages) != 2 {
		t.Errorf("alice's conversation after bob's attempts: %d %+v", resp.StatusCode, conv)
	}
}
