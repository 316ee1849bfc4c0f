package llm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
)

// goOpenAIRequest is the request go-openai would send for the same call:
// the reference appendRequest is checked against.
func goOpenAIRequest(model string, msgs []switchboard.Message, defs []switchboard.ToolDefinition, stream bool) openai.ChatCompletionRequest {
	req := openai.ChatCompletionRequest{Model: model, Messages: make([]openai.ChatCompletionMessage, 0, len(msgs))}
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.Type == switchboard.MessageError:
			continue
		case m.Role == switchboard.RoleTool || m.Type == switchboard.MessageToolResult:
			content := m.Content
			if content == "" {
				content = "(empty result)"
			}
			req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: m.ToolCallID, Content: content})
		case m.Role == switchboard.RoleAssistant && len(m.ToolCalls) > 0:
			om := openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: m.Content}
			for _, tc := range m.ToolCalls {
				om.ToolCalls = append(om.ToolCalls, openai.ToolCall{ID: tc.ID, Type: openai.ToolTypeFunction,
					Function: openai.FunctionCall{Name: tc.Name, Arguments: tc.Arguments}})
			}
			req.Messages = append(req.Messages, om)
		default:
			req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: string(m.Role), Content: m.Content})
		}
	}
	for _, d := range defs {
		req.Tools = append(req.Tools, openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
			Name: d.Name, Description: d.Description, Parameters: d.Parameters}})
	}
	if stream {
		req.Stream = true
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	return req
}

var wireHistory = []switchboard.Message{
	{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: "Be brief."},
	{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "add \"milk\" & <eggs>\n\tto the list \u2028 \x01 \xff done ✓ 🥛"},
	{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, Content: "Adding.", ToolCalls: []switchboard.RequestedCall{
		{ID: "call_1", Name: "tasks__add_task", Arguments: `{"title":"milk"}`},
		{ID: "", Name: "tasks__list", Arguments: ""}}},
	{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "call_1", Content: `{"id":1}`},
	{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "", Content: ""},
	{Role: switchboard.RoleAssistant, Type: switchboard.MessageError, Content: "a note of ours"},
	{Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Content: ""},
	{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "thanks \\ \r"},
}

var wireTools = []switchboard.ToolDefinition{
	{Name: "tasks__add_task", Description: "Add a task", Parameters: json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"}}}`)},
	{Name: "tasks__list", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
}

// TestRequestEncoding checks that appendRequest sends what go-openai sent.
func TestRequestEncoding(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msgs   []switchboard.Message
		tools  []switchboard.ToolDefinition
		stream bool
	}{
		{"every kind of message, with tools", wireHistory, wireTools, false},
		{"streamed", wireHistory, wireTools, true},
		{"no tools", wireHistory[:2], nil, false},
		{"nothing", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := appendRequest(nil, "gpt-x", tc.msgs, tc.tools, tc.stream)
			ref, err := json.Marshal(goOpenAIRequest("gpt-x", tc.msgs, tc.tools, tc.stream))
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, got)
			}
			if err := json.Unmarshal(ref, &w); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("request differs from go-openai's (-go-openai +ours):\n%s", diff)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "ctl \x00\x1f\x7f", "bad \xff\xfe utf8 \xe2\x82", "sep \u2028 \u2029", "é ✓ 🥛"} {
		var want strings.Builder
		e := json.NewEncoder(&want)
		e.SetEscapeHTML(false)
		_ = e.Encode(s)
		if got := string(appendString(nil, s)); got != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("appendString(%q): got %s, want %s", s, got, want.String())
		}
	}
}

func TestStreamReader(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // contents of the chunks, then the error
	}{
		{"chunks then done", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n: comment\ndata:{\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n", []string{"a", "b", "EOF"}},
		{"cut off", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n", []string{"a", "EOF"}},
		{"error on a data line", "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n", []string{"error, overloaded"}},
		{"error over lines", "{\"error\":\n{\"message\":\"bad\"}}\n", []string{"error, bad"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &streamReader{r: bufio.NewReader(strings.NewReader(tc.body))}
			var got []string
			for {
				var c openai.ChatCompletionStreamResponse
				err := s.next(&c)
				if err == io.EOF {
					got = append(got, "EOF")
					break
				}
				if err != nil {
					got = append(got, err.Error())
					break
				}
				got = append(got, c.Choices[0].Delta.Content)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
		})
	}
}

// benchHistory is a full history window: 50 messages of turns that each
// called a tool.
func benchHistory() ([]switchboard.Message, []switchboard.ToolDefinition) {
	var h []switchboard.Message
	for i := 0; len(h) < 50; i++ {
		id := fmt.Sprintf("call_%d", i)
		h = append(h,
			switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "Add a task to buy milk and eggs, please."},
			switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
				ToolCalls: []switchboard.RequestedCall{{ID: id, Name: "tasks__add_task", Arguments: `{"title":"buy milk and eggs"}`}}},
			switchboard.Message{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: id,
				Content: `{"id":1,"user_id":"u","title":"buy milk and eggs","description":"","completed":false,"created_at":"2026-11-25T06:00:00Z"}`},
			switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Content: "Added \u201cbuy milk and eggs\u201d to your list."})
	}
	var defs []switchboard.ToolDefinition
	for i := range 10 {
		defs = append(defs, switchboard.ToolDefinition{Name: fmt.Sprintf("tasks__tool_%d", i), Description: "Create a new task for the user. Returns the created task.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"title":{"type":"string","description":"A short title."},"description":{"type":"string"}},"required":["title"]}`)})
	}
	return h, defs
}

// BenchmarkRequestEncoding measures turning the history window and the
// tool definitions into a request body: ours, and go-openai's (conversion
// to its types and json.Marshal) for comparison.
func BenchmarkRequestEncoding(b *testing.B) {
	h, defs := benchHistory()
	b.Run("switchboard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = appendRequest(make([]byte, 0, requestSize(h, defs)), "gpt-x", h, defs, false)
		}
	})
	b.Run("go-openai", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(goOpenAIRequest("gpt-x", h, defs, false))
		}
	})
}
