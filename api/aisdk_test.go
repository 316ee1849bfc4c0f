package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
)

// aiChat is what testdata/aisdk-chat.mjs prints: the AI SDK chat's state.
type aiChat struct {
	Status   string   `json:"status"`
	Error    *string  `json:"error"`
	Errors   []string `json:"errors"`
	Messages []struct {
		ID       string `json:"id"`
		Role     string `json:"role"`
		Metadata struct {
			ConversationID string `json:"conversationId"`
			TurnID         string `json:"turnId"`
			Status         string `json:"status"`
			Agent          string `json:"agent"`
		} `json:"metadata"`
		Parts []struct {
			Type       string          `json:"type"`
			Text       string          `json:"text"`
			ToolName   string          `json:"toolName"`
			ToolCallID string          `json:"toolCallId"`
			State      string          `json:"state"`
			Input      json.RawMessage `json:"input"`
			Output     struct {
				Result     string  `json:"result"`
				Status     string  `json:"status"`
				DurationMS float64 `json:"duration_ms"`
				Server     string  `json:"server"`
				Tool       string  `json:"tool"`
			} `json:"output"`
			ErrorText string `json:"errorText"`
			Data      struct {
				ID         string  `json:"id"`
				Status     string  `json:"status"`
				DurationMS float64 `json:"duration_ms"`
				// Of a data-agent part.
				Agent string `json:"agent"`
				From  string `json:"from"`
			} `json:"data"`
		} `json:"parts"`
	} `json:"messages"`
}

// runAIChat sends prompts with the AI SDK's chat client and returns its state.
func runAIChat(t *testing.T, api, token, chatID string, prompts ...string) aiChat {
	t.Helper()
	return runAIChatEnv(t, api, token, chatID, nil, prompts...)
}

// runAIChatEnv is runAIChat with more environment for the script.
func runAIChatEnv(t *testing.T, api, token, chatID string, env []string, prompts ...string) aiChat {
	t.Helper()
	nodetest.Module(t, "ai")
	script := nodetest.Root(t) + "/api/testdata/aisdk-chat.mjs"
	p, _ := json.Marshal(prompts)
	cmd := exec.Command(nodetest.Node(t), script)
	cmd.Env = append(append(cmd.Environ(), "API="+api, "TOKEN="+token, "CHAT_ID="+chatID, "PROMPTS="+string(p)), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var chat aiChat
	if err := json.Unmarshal(out, &chat); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	return chat
}

func TestAISDKChatClient(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, tasksServer(t, "stdio"), llmtest.Sequence(
		llmtest.Reply{Text: "Adding it. ", ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"buy milk"}`}}},
		llmtest.Reply{Text: "Added buy milk to your list."},
		llmtest.Reply{Text: "You have one task."},
	))
	chat := runAIChat(t, svc.url+"/api/alice/chat/stream", token(t, "alice"), "chat-123", "Add a task to buy milk", "How many tasks?")
	if chat.Status != "ready" || chat.Error != nil || len(chat.Errors) > 0 {
		t.Fatalf("chat ended %s with error %v %v", chat.Status, chat.Error, chat.Errors)
	}
	if len(chat.Messages) != 4 {
		t.Fatalf("messages: got %d, want 4: %+v", len(chat.Messages), chat.Messages)
	}
	first, second := chat.Messages[1], chat.Messages[3]
	conv := first.Metadata.ConversationID
	if first.Role != "assistant" || !switchboard.ValidID(conv) || second.Metadata.ConversationID != conv || first.ID != first.Metadata.TurnID {
		t.Errorf("assistant messages: got %+v and %+v, want one conversation across both", first.Metadata, second.Metadata)
	}
	var text strings.Builder
	var tool, data int
	for _, p := range first.Parts {
		switch p.Type {
		case "text":
			text.WriteString(p.Text)
		case "dynamic-tool":
			tool++
			if p.ToolName != "tasks__add_task" || p.State != "output-available" || !switchboard.ValidID(p.ToolCallID) ||
				p.Output.Status != "succeeded" || p.Output.DurationMS <= 0 || p.Output.Server != "tasks" || !strings.Contains(p.Output.Result, "buy milk") {
				t.Errorf("tool part: got %+v", p)
			}
			row, err := st.GetToolCall(context.Background(), "alice", p.ToolCallID)
			if err != nil || row.Tool != "add_task" {
				t.Errorf("the tool part's id is not the ledger's: %v %+v", err, row)
			}
		case "data-tool-call":
			data++
			if p.Data.Status != "succeeded" || p.Data.DurationMS <= 0 {
				t.Errorf("data part: got %+v", p)
			}
		}
	}
	if tool != 1 || data != 1 || text.String() != "Adding it. Added buy milk to your list." {
		t.Errorf("first answer: %d tool parts, %d data parts, text %q", tool, data, text.String())
	}
	if got := second.Parts[len(second.Parts)-1]; got.Type != "text" || got.Text != "You have one task." {
		t.Errorf("second answer's last part: got %+v", got)
	}
	convs, err := st.ListConversations(context.Background(), "alice", 10)
	if err != nil || len(convs) != 1 || convs[0].ID != conv || convs[0].ExternalID != "chat-123" {
		t.Errorf("stored conversations: got %+v, %v; want one, named chat-123 by the client", convs, err)
	}
}

func TestAISDKChatSeesErrors(t *testing.T) {
	svc := newService(t, store.NewMemory(), nil, llmtest.Sequence(llmtest.Reply{Status: 400, Text: "context length exceeded"}))
	chat := runAIChat(t, svc.url+"/api/alice/chat/stream", token(t, "alice"), "chat-err", "hello")
	if chat.Status != "error" || chat.Error == nil || !strings.Contains(*chat.Error, "context length exceeded") {
		t.Fatalf("got status %s error %v, want the model's failure shown", chat.Status, chat.Error)
	}
}

// The plain chat route streams too when asked to, with the seed's body.
func TestChatRouteStreamsOnAccept(t *testing.T) {
	svc := newService(t, store.NewMemory(), nil, llmtest.Sequence(llmtest.Reply{Text: "Hello there."}))
	req, _ := http.NewRequest("POST", svc.url+"/api/alice/chat", strings.NewReader(`{"message":{"content":"hi"}}`))
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("x-vercel-ai-ui-message-stream") != "v1" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("headers: got %v", resp.Header)
	}
	var types []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			types = append(types, "[DONE]")
			continue
		}
		var p struct{ Type string }
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("part %q: %v", line, err)
		}
		types = append(types, p.Type)
	}
	want := "start start-step text-start text-delta text-delta text-end finish-step finish [DONE]"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("parts: got %s, want %s", got, want)
	}
	// The time split comes once the turn has ended, as a trailer.
	if got := resp.Trailer.Get("Server-Timing"); !strings.HasPrefix(got, "model;dur=") || !strings.Contains(got, ", overhead;dur=") {
		t.Errorf("Server-Timing trailer: got %q, want the turn's split", got)
	}
}

// TestAISDKApprovals: a call that needs approval shows in the AI SDK chat as
// an approval request; answering it with addToolApprovalResponse (the chat
// sends the answer by itself) runs or denies the call and the turn goes on.
func TestAISDKApprovals(t *testing.T) {
	for _, approve := range []string{"yes", "no"} {
		t.Run("approve="+approve, func(t *testing.T) {
			st := store.NewMemory()
			svc := newApprovingService(t, st, tasksServer(t, "stdio"), llmtest.Sequence(
				llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
				llmtest.Reply{Text: "Done with that."},
			))
			chat := runAIChatEnv(t, svc.url+"/api/alice/chat/stream", token(t, "alice"), "chat-appr-"+approve, []string{"APPROVE=" + approve}, "delete task 1")
			if chat.Status != "ready" || chat.Error != nil || len(chat.Errors) > 0 {
				t.Fatalf("chat ended %s with error %v %v", chat.Status, chat.Error, chat.Errors)
			}
			last := chat.Messages[len(chat.Messages)-1]
			var states, text []string
			for _, p := range last.Parts {
				if p.Type == "dynamic-tool" {
					states = append(states, p.State)
				}
				if p.Type == "text" {
					text = append(text, p.Text)
				}
			}
			wantState := map[string]string{"yes": "output-error", "no": "output-denied"}[approve] // task 1 does not exist: a tool error
			if len(states) != 1 || states[0] != wantState || strings.Join(text, "") != "Done with that." {
				t.Errorf("the assistant message: tool states %v, text %q; want [%s] and the answer", states, text, wantState)
			}
			calls, _, _ := st.ListToolCalls(context.Background(), switchboard.ToolCallFilter{Tool: "delete_task"})
			wantStatus := map[string]switchboard.ToolCallStatus{"yes": switchboard.CallFailed, "no": switchboard.CallDenied}[approve]
			if len(calls) != 1 || calls[0].Status != wantStatus {
				t.Errorf("ledger: %+v, want one call %s", calls, wantStatus)
			}
		})
	}
}

// TestAISDKRegenerate regenerates answers with the AI SDK chat's own
// regenerate(): the last answer, then an earlier one. The model is asked
// again without the answers dropped, and the stored transcript is the
// chat's.
func TestAISDKRegenerate(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, nil, llmtest.Sequence(
		llmtest.Reply{Text: "answer one"},
		llmtest.Reply{Text: "answer two"},
		llmtest.Reply{Text: "answer two, again"},
		llmtest.Reply{Text: "answer one, again"},
	))
	// The last answer, then the first assistant message (index 1 of four).
	chat := runAIChatEnv(t, svc.url+"/api/alice/chat/stream", token(t, "alice"), "chat-regen",
		[]string{`REGENERATE=[null, 1]`}, "one", "two")
	if chat.Status != "ready" || chat.Error != nil || len(chat.Errors) > 0 {
		t.Fatalf("chat ended %s with error %v %v", chat.Status, chat.Error, chat.Errors)
	}
	shown := chat.texts()
	if want := []string{"user: one", "assistant: answer one, again"}; !slices.Equal(shown, want) {
		t.Errorf("the chat shows %q, want %q", shown, want)
	}

	var asked [][]string
	for _, r := range svc.model.Requests() {
		var msgs []string
		for _, m := range r.Messages {
			msgs = append(msgs, m.Role+": "+m.Content)
		}
		asked = append(asked, msgs)
	}
	want := [][]string{
		{"user: one"},
		{"user: one", "assistant: answer one", "user: two"},
		{"user: one", "assistant: answer one", "user: two"},
		{"user: one"},
	}
	if diff := cmp.Diff(want, asked); diff != "" {
		t.Errorf("the model's requests (-want +got):\n%s", diff)
	}

	conv := chat.Messages[1].Metadata.ConversationID
	checkStoredAsShown(t, st, conv, shown)
	if turns, err := st.ListTurns(context.Background(), "alice", conv); err != nil || len(turns) != 4 {
		t.Errorf("turns: got %d, %v, want all 4 kept", len(turns), err)
	}
}

// TestRegenerateErrors: regenerating a message that differs from the
// conversation's is refused with nothing stored; a regenerate of a message
// we never stored (useChat's retry after a refused send), in a chat we know
// or not, answers it as a new message.
func TestRegenerateErrors(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, nil, llmtest.Sequence(llmtest.Reply{Text: "answer one"}, llmtest.Reply{Text: "answer two"}))
	url, tok := svc.url+"/api/alice/chat/stream", token(t, "alice")
	post := func(body string) (int, string) {
		t.Helper()
		return postChat(t, url, tok, json.RawMessage(body))
	}
	regenerate := func(chatID string, users ...string) string {
		var msgs []string
		for _, u := range users {
			msgs = append(msgs, `{"role":"user","parts":[{"type":"text","text":"`+u+`"}]}`)
		}
		return `{"id":"` + chatID + `","trigger":"regenerate-message","messages":[` + strings.Join(msgs, `,{"role":"assistant","parts":[]},`) + `]}`
	}
	// A chat whose first message was refused, retried with regenerate():
	// answered as a new message, in a new conversation.
	if status, code := post(regenerate("chat-1", "one")); status != http.StatusOK {
		t.Fatalf("regenerate in a chat we never saw: got %d %s, want 200", status, code)
	}
	if status, code := post(regenerate("chat-1", "edited")); status != http.StatusConflict || code != "regenerate_mismatch" {
		t.Errorf("regenerate of an edited message: got %d %s, want 409 regenerate_mismatch", status, code)
	}
	conv, err := st.ConversationByExternalID(context.Background(), "alice", "chat-1")
	if err != nil {
		t.Fatal(err)
	}
	transcript := func() []string { return contents(t, st, conv.ID) }
	if got := transcript(); !slices.Equal(got, []string{"one", "answer one"}) {
		t.Errorf("transcript after a refused regenerate: got %q, want the first turn's", got)
	}
	if status, code := post(regenerate("chat-1", "one", "two")); status != http.StatusOK {
		t.Errorf("regenerate of a message never stored: got %d %s, want 200", status, code)
	}
	if got := transcript(); !slices.Equal(got, []string{"one", "answer one", "two", "answer two"}) {
		t.Errorf("transcript after regenerating a message never stored: got %q, want it answered as a new one", got)
	}
}

// TestAISDKEdit edits an earlier user message with the AI SDK chat's own
// sendMessage({text, messageId}): the model is asked without what followed
// it, and the stored transcript is the chat's.
func TestAISDKEdit(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, nil, llmtest.Sequence(
		llmtest.Reply{Text: "answer one"},
		llmtest.Reply{Text: "answer two"},
		llmtest.Reply{Text: "answer to the edit"},
	))
	chat := runAIChatEnv(t, svc.url+"/api/alice/chat/stream", token(t, "alice"), "chat-edit",
		[]string{`EDIT=[[0, "one, edited"]]`}, "one", "two")
	if chat.Status != "ready" || chat.Error != nil || len(chat.Errors) > 0 {
		t.Fatalf("chat ended %s with error %v %v", chat.Status, chat.Error, chat.Errors)
	}
	shown := chat.texts()
	if want := []string{"user: one, edited", "assistant: answer to the edit"}; !slices.Equal(shown, want) {
		t.Errorf("the chat shows %q, want %q", shown, want)
	}
	reqs := svc.model.Requests()
	if len(reqs) != 3 {
		t.Fatalf("model requests: got %d, want 3", len(reqs))
	}
	var asked []string
	for _, m := range reqs[2].Messages {
		asked = append(asked, m.Role+": "+m.Content)
	}
	if want := []string{"user: one, edited"}; !slices.Equal(asked, want) {
		t.Errorf("the model was asked %q, want %q", asked, want)
	}
	checkStoredAsShown(t, st, chat.Messages[1].Metadata.ConversationID, shown)
}

// texts returns the text parts the chat shows, as "role: text".
func (c aiChat) texts() []string {
	var out []string
	for _, m := range c.Messages {
		for _, p := range m.Parts {
			if p.Type == "text" {
				out = append(out, m.Role+": "+p.Text)
			}
		}
	}
	return out
}

// checkStoredAsShown checks that a conversation's stored transcript is what
// the chat shows.
func checkStoredAsShown(t *testing.T, st *store.Memory, conv string, shown []string) {
	t.Helper()
	msgs, err := st.ListMessages(context.Background(), "alice", conv)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, m := range msgs {
		stored = append(stored, string(m.Role)+": "+m.Content)
	}
	if !slices.Equal(stored, shown) {
		t.Errorf("stored transcript %q, want the chat's %q", stored, shown)
	}
}

// TestEditAndRegenerateWithARefusedMessage: a chat keeps a message we
// refused, so it counts one user message more than we stored; an edit or a
// regenerate must still name the right message.
func TestEditAndRegenerateWithARefusedMessage(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, nil, llmtest.Sequence(
		llmtest.Reply{Text: "a1"}, llmtest.Reply{Text: "a3"}, llmtest.Reply{Text: "a4"},
		llmtest.Reply{Text: "re three, edited"}, llmtest.Reply{Text: "re three, edited, again"},
	))
	url, tok := svc.url+"/api/alice/chat/stream", token(t, "alice")
	post := func(body map[string]any) int {
		t.Helper()
		code, _ := postChat(t, url, tok, body)
		return code
	}
	// "one" is answered; "   " is refused (400) and stays in the chat;
	// "three" and "four" are answered.
	chat := []map[string]any{uiUser("u1", "one")}
	if code := post(map[string]any{"id": "c", "messages": chat}); code != 200 {
		t.Fatalf("one: %d", code)
	}
	chat = append(chat, uiAnswer(""), uiUser("u2", "   "))
	if code := post(map[string]any{"id": "c", "messages": chat}); code != http.StatusBadRequest {
		t.Fatalf("the empty message: got %d, want 400", code)
	}
	chat = append(chat, uiUser("u3", "three"))
	if code := post(map[string]any{"id": "c", "messages": chat}); code != 200 {
		t.Fatalf("three: %d", code)
	}
	chat = append(chat, uiAnswer(""), uiUser("u4", "four"))
	if code := post(map[string]any{"id": "c", "messages": chat}); code != 200 {
		t.Fatalf("four: %d", code)
	}
	conv, err := st.ConversationByExternalID(context.Background(), "alice", "c")
	if err != nil {
		t.Fatal(err)
	}
	transcript := func() []string { return contents(t, st, conv.ID) }
	// Edit "three": the chat holds one, (refused), three-edited.
	edited := append(append([]map[string]any{}, chat[:3]...), uiUser("u3", "three, edited"))
	if code := post(map[string]any{"id": "c", "messages": edited, "trigger": "submit-message", "messageId": "u3"}); code != 200 {
		t.Fatalf("edit: %d", code)
	}
	if got, want := transcript(), []string{"one", "a1", "three, edited", "re three, edited"}; !slices.Equal(got, want) {
		t.Errorf("after editing three: got %q, want %q", got, want)
	}
	// Regenerate it: the chat holds one, (refused), three-edited.
	if code := post(map[string]any{"id": "c", "messages": edited, "trigger": "regenerate-message"}); code != 200 {
		t.Fatalf("regenerate: %d", code)
	}
	if got, want := transcript(), []string{"one", "a1", "three, edited", "re three, edited, again"}; !slices.Equal(got, want) {
		t.Errorf("after regenerating: got %q, want %q", got, want)
	}
}

// TestEditAnchorsOnTheChatsLastAnswer: the chat lacks a message of the
// conversation (sent from another client); the edit is placed after the
// chat's last answer before it (its id is our turn id), not by matching
// every earlier text.
func TestEditAnchorsOnTheChatsLastAnswer(t *testing.T) {
	st := store.NewMemory()
	svc := newService(t, st, nil, llmtest.Sequence(
		llmtest.Reply{Text: "a1"}, llmtest.Reply{Text: "a-elsewhere"}, llmtest.Reply{Text: "a2"}, llmtest.Reply{Text: "a3"},
		llmtest.Reply{Text: "re edit"},
	))
	tok := token(t, "alice")
	post := func(path string, body any) {
		t.Helper()
		if code, _ := postChat(t, svc.url+path, tok, body); code != 200 {
			t.Fatalf("%v: %d", body, code)
		}
	}
	user, answer := uiUser, uiAnswer
	turns := func(conv string) []switchboard.Turn {
		t.Helper()
		ts, err := st.ListTurns(context.Background(), "alice", conv)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	chat := []map[string]any{user("u1", "one")}
	post("/api/alice/chat/stream", map[string]any{"id": "c", "messages": chat})
	conv, err := st.ConversationByExternalID(context.Background(), "alice", "c")
	if err != nil {
		t.Fatal(err)
	}
	post("/api/alice/chat", map[string]any{"message": map[string]string{"content": "elsewhere"}, "conversation_id": conv.ID})
	chat = append(chat, answer(turns(conv.ID)[0].ID), user("u2", "two"))
	post("/api/alice/chat/stream", map[string]any{"id": "c", "messages": chat})
	chat = append(chat, answer(turns(conv.ID)[2].ID), user("u3", "three"))
	post("/api/alice/chat/stream", map[string]any{"id": "c", "messages": chat})

	edited := append(append([]map[string]any{}, chat[:4]...), user("u3", "three, edited"))
	post("/api/alice/chat/stream", map[string]any{"id": "c", "messages": edited, "trigger": "submit-message", "messageId": "u3"})
	got := contents(t, st, conv.ID)
	if want := []string{"one", "a1", "elsewhere", "a-elsewhere", "two", "a2", "three, edited", "re edit"}; !slices.Equal(got, want) {
		t.Errorf("after the edit: got %q, want %q", got, want)
	}
}

// postChat posts body (JSON, or raw JSON as a json.RawMessage) as alice's
// token holder and reads the whole reply — hanging up cancels a streamed
// turn — returning the status and the error code, if any.
func postChat(t *testing.T, url, tok string, body any) (int, string) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(raw)))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(reply, &e)
	return resp.StatusCode, e.Error.Code
}

// uiUser and uiAnswer are UI messages as a chat sends them back.
func uiUser(id, text string) map[string]any {
	return map[string]any{"id": id, "role": "user", "parts": []map[string]string{{"type": "text", "text": text}}}
}

func uiAnswer(id string) map[string]any {
	return map[string]any{"id": id, "role": "assistant", "parts": []any{}}
}

// contents returns the texts of a conversation's stored transcript.
func contents(t *testing.T, st *store.Memory, conv string) []string {
	t.Helper()
	msgs, err := st.ListMessages(context.Background(), "alice", conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Content)
	}
	return out
}
