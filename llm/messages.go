package llm

import (
	"encoding/base64"
	"fmt"
	"slices"
	"sync"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
)

// toOpenAIMessages replays a transcript in OpenAI's format: assistant
// messages that asked for tools carry their tool_calls, and each tool result
// is a tool message naming the call it answers. Error and handoff messages
// are our own notes and are not sent.
// The messages are appended to out.
func toOpenAIMessages(out []openai.ChatCompletionMessage, msgs []switchboard.Message) []openai.ChatCompletionMessage {
	out = slices.Grow(out, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.Type == switchboard.MessageError || m.Type == switchboard.MessageHandoff:
			continue
		case m.Role == switchboard.RoleTool || m.Type == switchboard.MessageToolResult:
			content := m.Content
			if content == "" {
				content = "(empty result)" // OpenAI rejects a tool message without content
			}
			out = append(out, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: m.ToolCallID, Content: content})
			if i+1 == len(msgs) || !isToolResult(&msgs[i+1]) {
				out = appendImages(out, msgs, i)
			}
		case m.Role == switchboard.RoleAssistant && len(m.ToolCalls) > 0:
			om := openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: m.Content}
			om.ToolCalls = make([]openai.ToolCall, len(m.ToolCalls))
			for j, tc := range m.ToolCalls {
				om.ToolCalls[j] = openai.ToolCall{ID: tc.ID, Type: openai.ToolTypeFunction,
					Function: openai.FunctionCall{Name: tc.Name, Arguments: tc.Arguments}}
			}
			out = append(out, om)
		default:
			out = append(out, openai.ChatCompletionMessage{Role: string(m.Role), Content: m.Content})
		}
	}
	return out
}

func isToolResult(m *switchboard.Message) bool {
	return m.Type != switchboard.MessageError && (m.Role == switchboard.RoleTool || m.Type == switchboard.MessageToolResult)
}

// appendImages appends, after the run of tool results that ends at
// msgs[last], a user message with the images of their attachments that
// carry bytes (the orchestrator chose them): Chat Completions tool messages
// carry text only. Each image is labelled with the call it came from.
func appendImages(out []openai.ChatCompletionMessage, msgs []switchboard.Message, last int) []openai.ChatCompletionMessage {
	first := last
	for first > 0 && isToolResult(&msgs[first-1]) {
		first--
	}
	var parts []openai.ChatMessagePart
	for i := first; i <= last; i++ {
		for _, p := range msgs[i].Attachments {
			if p.Kind != switchboard.ContentImage || p.Data == nil {
				continue
			}
			parts = append(parts,
				openai.ChatMessagePart{Type: openai.ChatMessagePartTypeText,
					Text: fmt.Sprintf("Image %d of the result of tool call %s (%s):", p.Index+1, msgs[i].ToolCallID, msgs[i].ToolName)},
				openai.ChatMessagePart{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{
					URL: "data:" + p.MIMEType + ";base64," + base64.StdEncoding.EncodeToString(p.Data), Detail: openai.ImageURLDetailAuto}})
		}
	}
	if parts == nil {
		return out
	}
	head := openai.ChatMessagePart{Type: openai.ChatMessagePartTypeText, Text: "The tool results above returned these images."}
	return append(out, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, MultiContent: append([]openai.ChatMessagePart{head}, parts...)})
}

func toOpenAITools(defs []switchboard.ToolDefinition) []openai.Tool {
	if len(defs) == 0 {
		return nil
	}
	out := make([]openai.Tool, len(defs))
	for i, d := range defs {
		out[i] = openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
			Name: d.Name, Description: d.Description, Parameters: d.Parameters}}
	}
	return out
}

// messageSlices are the request messages of model calls, reused from call
// to call: a turn replays its whole history window twice or more, and
// go-openai has encoded the messages by the time a call returns.
var messageSlices = sync.Pool{New: func() any { return new([]openai.ChatCompletionMessage) }}

// maxPooledMessages bounds the slices kept for reuse.
const maxPooledMessages = 1024
