package api_test

import (
	"regexp"
	"testing"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
)

// goSyntax matches what a Go type looks like in a message: struct
// literals, package-qualified names, pointers, slices of a named type.
var goSyntax = regexp.MustCompile(`struct ?\{|\bapi\.|\bmain\.|\*string|\*bool|json:|\[\][a-z]|\bint\b|\bfloat64\b`)

// TestDecodeErrorsSpeakJSON sends every body field of the wrong JSON type
// that the routes read: each answer says what is expected in JSON's terms
// (never a Go type) and names the field.
func TestDecodeErrorsSpeakJSON(t *testing.T) {
	svc := newService(t, store.NewMemory(), nil, llmtest.Sequence(llmtest.Reply{Text: "hi"}))
	alice := token(t, "alice")
	var first chatReply
	if resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"hello"}}`, &first); resp.StatusCode != 200 {
		t.Fatalf("first chat: %d %+v", resp.StatusCode, first.Error)
	}
	chat, stream := svc.url+"/api/alice/chat", svc.url+"/api/alice/chat/stream"
	conv := svc.url + "/api/alice/conversations/" + first.ConversationID
	approval := conv + "/tool-calls/" + first.ConversationID + "/approval"
	const (
		part      = "a message part (an object with type, text, state and approval)"
		uiMessage = "a UI message (an object with id, role and parts)"
	)
	tests := []struct {
		name, method, url, body, code, message string
	}{
		{"body an array", "POST", chat, `[]`, "invalid_json", `the request body must be a JSON object such as {"message": {"content": "..."}}, not an array`},
		{"body a string", "POST", stream, `"hi"`, "invalid_json", `the request body must be a JSON object such as {"message": {"content": "..."}}, not a string`},
		{"body empty", "POST", chat, ``, "invalid_json", `the request body is empty: send a JSON object such as {"message": {"content": "..."}}`},
		{"body cut short", "POST", chat, `{"message":`, "invalid_json", `the request body is not valid JSON: it ends before the JSON does`},
		{"body not JSON", "POST", chat, `{"message" 1}`, "invalid_json", `the request body is not valid JSON: syntax error at byte 12`},
		{"message a number", "POST", chat, `{"message":5}`, "invalid_json", `message must be an object with a string field content, not a number`},
		{"message a string", "POST", stream, `{"message":"hi"}`, "invalid_json", `message must be an object with a string field content, not a string`},
		{"message.content a number", "POST", chat, `{"message":{"content":5}}`, "invalid_json", `message.content must be a string, not a number`},
		{"message.content an object", "POST", chat, `{"message":{"content":{}}}`, "invalid_json", `message.content must be a string, not an object`},
		{"conversation_id a number", "POST", chat, `{"message":{"content":"x"},"conversation_id":7}`, "invalid_json", `conversation_id must be a string, not a number`},
		{"id a number", "POST", stream, `{"id":1,"messages":[]}`, "invalid_json", `id must be a string, not a number`},
		{"trigger true", "POST", stream, `{"trigger":true,"messages":[]}`, "invalid_json", `trigger must be a string, not true or false`},
		{"messageId an array", "POST", stream, `{"messageId":[],"messages":[]}`, "invalid_json", `messageId must be a string, not an array`},
		{"messages an object", "POST", stream, `{"messages":{}}`, "invalid_json", `messages must be an array of UI messages, not an object`},
		{"messages a string", "POST", chat, `{"messages":"hi"}`, "invalid_json", `messages must be an array of UI messages, not a string`},
		{"a message a number", "POST", stream, `{"messages":[5]}`, "invalid_json", `each item of messages must be ` + uiMessage + `, not a number`},
		{"a message's id a number", "POST", stream, `{"messages":[{"id":5}]}`, "invalid_json", `messages[].id must be a string, not a number`},
		{"a message's role an object", "POST", stream, `{"messages":[{"role":{}}]}`, "invalid_json", `messages[].role must be a string, not an object`},
		{"parts an object", "POST", stream, `{"messages":[{"role":"user","parts":{}}]}`, "invalid_json", `messages[].parts must be an array of message parts, not an object`},
		{"a part a string", "POST", stream, `{"messages":[{"role":"user","parts":["hi"]}]}`, "invalid_json", `each item of messages[].parts must be ` + part + `, not a string`},
		{"a part's type a number", "POST", stream, `{"messages":[{"parts":[{"type":1}]}]}`, "invalid_json", `messages[].parts[].type must be a string, not a number`},
		{"a part's text a number", "POST", stream, `{"messages":[{"parts":[{"type":"text","text":1}]}]}`, "invalid_json", `messages[].parts[].text must be a string, not a number`},
		{"a part's state an array", "POST", stream, `{"messages":[{"parts":[{"state":[]}]}]}`, "invalid_json", `messages[].parts[].state must be a string, not an array`},
		{"approval a string", "POST", stream, `{"messages":[{"parts":[{"approval":"yes"}]}]}`, "invalid_json", `messages[].parts[].approval must be an object with fields id, approved and reason, not a string`},
		{"approval.id a number", "POST", stream, `{"messages":[{"parts":[{"approval":{"id":1}}]}]}`, "invalid_json", `messages[].parts[].approval.id must be a string, not a number`},
		{"approval.approved a string", "POST", stream, `{"messages":[{"parts":[{"approval":{"approved":"yes"}}]}]}`, "invalid_json", `messages[].parts[].approval.approved must be true or false, not a string`},
		{"approval.reason a number", "POST", stream, `{"messages":[{"parts":[{"approval":{"reason":0}}]}]}`, "invalid_json", `messages[].parts[].approval.reason must be a string, not a number`},
		{"approve a string", "POST", approval, `{"approve":"yes"}`, "invalid_approval", `approve must be true or false, not a string`},
		{"approve a number", "POST", approval, `{"approve":1}`, "invalid_approval", `approve must be true or false, not a number`},
		{"reason an object", "POST", approval, `{"approve":true,"reason":{}}`, "invalid_approval", `reason must be a string, not an object`},
		{"approval body an array", "POST", approval, `[true]`, "invalid_approval", `the request body must be a JSON object such as {"approve": true|false, "reason": "optional"}, not an array`},
		{"title a number", "PATCH", conv, `{"title":5}`, "invalid_json", `title must be a string, not a number`},
		{"status true", "PATCH", conv, `{"status":true}`, "invalid_json", `status must be a string, not true or false`},
		{"patch body a number", "PATCH", conv, `5`, "invalid_json", `the request body must be a JSON object such as {"title": "...", "status": "active|archived"}, not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r chatReply
			resp := do(t, tt.method, tt.url, alice, tt.body, &r)
			if resp.StatusCode != 400 || r.Error.Code != tt.code || r.Error.Message != tt.message {
				t.Errorf("%s\ngot  %d %s %q\nwant 400 %s %q", tt.body, resp.StatusCode, r.Error.Code, r.Error.Message, tt.code, tt.message)
			}
			if goSyntax.MatchString(r.Error.Message) {
				t.Errorf("%s: the message shows a Go type: %q", tt.body, r.Error.Message)
			}
		})
	}
}
