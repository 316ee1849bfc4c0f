package llm

import (
	"encoding/json"
	"fmt"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
)

// benchHistory is a full history window (50 messages of turns that each
// called a tool) and a catalog of 10 tools.
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

// BenchmarkRequest measures what a model call does before it reaches the
// network: convert the history window and the tool definitions to
// go-openai's types ("convert"), and that plus go-openai's encoding of
// the request body ("convert+encode").
func BenchmarkRequest(b *testing.B) {
	h, defs := benchHistory()
	convert := func() openai.ChatCompletionRequest {
		msgs := messageSlices.Get().(*[]openai.ChatCompletionMessage)
		*msgs = toOpenAIMessages((*msgs)[:0], h)
		req := openai.ChatCompletionRequest{Model: "m", Messages: *msgs, Tools: toOpenAITools(defs)}
		clear(*msgs)
		messageSlices.Put(msgs)
		return req
	}
	b.Run("convert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = convert()
		}
	})
	b.Run("convert+encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			msgs := messageSlices.Get().(*[]openai.ChatCompletionMessage)
			*msgs = toOpenAIMessages((*msgs)[:0], h)
			if _, err := json.Marshal(openai.ChatCompletionRequest{Model: "m", Messages: *msgs, Tools: toOpenAITools(defs)}); err != nil {
				b.Fatal(err)
			}
			clear(*msgs)
			messageSlices.Put(msgs)
		}
	})
}
