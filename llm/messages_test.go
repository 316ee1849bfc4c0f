package llm

import (
	"encoding/base64"
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

// TestToolImages: the images of a step's results whose bytes are given
// follow its tool messages as one user message with image_url parts; an
// image without bytes (the orchestrator left it out) is only its
// placeholder in the tool's text.
func TestToolImages(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nfake")
	shot := switchboard.ContentPart{ToolCallID: "ledger-1", Index: 0, Kind: switchboard.ContentImage, MIMEType: "image/png", Size: len(png), Data: png}
	unsent := switchboard.ContentPart{ToolCallID: "ledger-2", Index: 0, Kind: switchboard.ContentImage, MIMEType: "image/png", Size: 9}
	msgs := []switchboard.Message{
		{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "look"},
		{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, ToolCalls: []switchboard.RequestedCall{
			{ID: "c1", Name: "browser__shot"}, {ID: "c2", Name: "browser__shot"}}},
		{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "c1", ToolName: "browser__shot",
			Content: "[image image/png, 12 bytes]", Attachments: []switchboard.ContentPart{shot}},
		{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "c2", ToolName: "browser__shot",
			Content: "[image image/png, 9 bytes]", Attachments: []switchboard.ContentPart{unsent}},
		{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, ToolCalls: []switchboard.RequestedCall{{ID: "c3", Name: "browser__shot"}}},
		{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "c3", Content: "[image image/png, 9 bytes]",
			Attachments: []switchboard.ContentPart{unsent}},
		{Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Content: "done"},
	}
	out := toOpenAIMessages(nil, msgs)
	var roles []string
	for _, m := range out {
		roles = append(roles, m.Role)
	}
	if want := fmt.Sprint([]string{"user", "assistant", "tool", "tool", "user", "assistant", "tool", "assistant"}); fmt.Sprint(roles) != want {
		t.Fatalf("roles: got %v, want %s", roles, want)
	}
	images := out[4]
	if images.Content != "" || len(images.MultiContent) != 3 {
		t.Fatalf("the image message: %+v", images)
	}
	if p := images.MultiContent[1]; p.Type != openai.ChatMessagePartTypeText || p.Text != "Image 1 of the result of tool call c1 (browser__shot):" {
		t.Errorf("label: %+v", p)
	}
	if p := images.MultiContent[2]; p.Type != openai.ChatMessagePartTypeImageURL || p.ImageURL == nil ||
		p.ImageURL.URL != "data:image/png;base64,"+base64.StdEncoding.EncodeToString(png) {
		t.Errorf("image: %+v", p)
	}
}
