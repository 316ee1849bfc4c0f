package orchestrator

import "github.com/switchboard-dev/switchboard"

// replayable returns the part of a history window that can be replayed to
// the model: within maxTokens (approximately; 0 means no cap), starting at a
// user message so that no tool result comes without the request that asked
// for it, and with every tool request answered: OpenAI rejects a request
// with an orphaned tool message or an unanswered tool call.
func replayable(h []switchboard.Message, maxTokens int) []switchboard.Message {
	start := 0
	if maxTokens > 0 {
		budget := maxTokens * 4 // bytes
		for i := len(h) - 1; i >= 0; i-- {
			budget -= messageBytes(h[i])
			if budget < 0 {
				start = i + 1
				break
			}
		}
	}
	for start < len(h) && h[start].Role != switchboard.RoleUser {
		start++
	}
	if start == len(h) && len(h) > 0 && maxTokens > 0 {
		// Even the last user message is over the cap: keep from it anyway,
		// the model cannot answer without it.
		for start = len(h) - 1; start > 0 && h[start].Role != switchboard.RoleUser; start-- {
		}
	}
	return answered(h[start:])
}

func messageBytes(m switchboard.Message) int {
	n := len(m.Content) + 16
	for _, c := range m.ToolCalls {
		n += len(c.Name) + len(c.Arguments) + 16
	}
	return n
}

// unansweredResult stands in for the result of a call that never got one.
const unansweredResult = "error: this call has no result: it was not run (the turn was cancelled, or it awaited an approval that never came)"

// answered returns h with a stand-in result for every tool call that has
// none, placed with the other results of its request, and without tool
// results that answer no request in h.
func answered(h []switchboard.Message) []switchboard.Message {
	var out []switchboard.Message
	changed := false
	for i := 0; i < len(h); i++ {
		m := h[i]
		if m.Role == switchboard.RoleTool {
			changed = true // an orphan: its request is not just before it
			continue
		}
		out = append(out, m)
		if m.Role != switchboard.RoleAssistant || len(m.ToolCalls) == 0 {
			continue
		}
		got := map[string]bool{}
		for i+1 < len(h) && h[i+1].Role == switchboard.RoleTool {
			i++
			out = append(out, h[i])
			got[h[i].ToolCallID] = true
		}
		for _, c := range m.ToolCalls {
			if !got[c.ID] {
				changed = true
				out = append(out, switchboard.Message{ConversationID: m.ConversationID, TurnID: m.TurnID,
					Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: c.ID,
					ToolName: c.Name, Content: unansweredResult})
			}
		}
	}
	if !changed {
		return h
	}
	return out
}
