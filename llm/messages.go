package llm

import (
	"slices"
	"sync"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
)

// toOpenAIMessages replays a transcript in OpenAI's format: assistant
// messages that asked for tools carry their tool_calls, and each tool result
// is a tool message naming the call it answers. Error messages are our own
// notes and are not sent.
// The messages are appended to out.
func toOpenAIMessages(out []openai.ChatCompletionMessage, msgs []switchboard.Message) []openai.ChatCompletionMessage {
	out = slices.Grow(out, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.Type == switchboard.MessageError:
			continue
		case m.Role == switchboard.RoleTool || m.Type == switchboard.MessageToolResult:
			content := m.Content
			if content == "" {
				content = "(empty result)" // OpenAI rejects a tool message without content
			}
			out = append(out, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: m.ToolCallID, Content: content})
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
