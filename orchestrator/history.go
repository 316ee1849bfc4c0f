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
const unansweredResult = "error: this call has no result: it was not run (the turn was cancelled, or it awaited an approval that never came), or the service stopped while it ran"

// answered returns h with a stand-in result for every tool call that has
// none, placed with the other results of its request, and without tool
// results that answer no request in h. A window that needs neither (the
// usual case) is returned as it is, without allocating.
func answered(h []switchboard.Message) []switchboard.Message {
	if isAnswered(h) {
		return h
	}
	out := make([]switchboard.Message, 0, len(h)+4)
	for i := 0; i < len(h); i++ {
		m := h[i]
		if m.Role == switchboard.RoleTool {
			continue // an orphan: its request is not just before it
		}
		out = append(out, m)
		if m.Role != switchboard.RoleAssistant || len(m.ToolCalls) == 0 {
			continue
		}
		results := i + 1
		for i+1 < len(h) && h[i+1].Role == switchboard.RoleTool {
			i++
			out = append(out, h[i])
		}
		for _, c := range m.ToolCalls {
			if !hasResult(h[results:i+1], c.ID) {
				out = append(out, switchboard.Message{ConversationID: m.ConversationID, TurnID: m.TurnID,
					Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: c.ID,
					ToolName: c.Name, Content: unansweredResult})
			}
		}
	}
	return out
}

// isAnswered reports whether answered has nothing to change in h: every
// tool message follows its request, and every call has its result.
func isAnswered(h []switchboard.Message) bool {
	for i := 0; i < len(h); i++ {
		m := &h[i]
		if m.Role == switchboard.RoleTool {
			return false // an orphan
		}
		if m.Role != switchboard.RoleAssistant || len(m.ToolCalls) == 0 {
			continue
		}
		results := i + 1
		for i+1 < len(h) && h[i+1].Role == switchboard.RoleTool {
			i++
		}
		for _, c := range m.ToolCalls {
			if !hasResult(h[results:i+1], c.ID) {
				return false
			}
		}
	}
	return true
}

// hasResult reports whether one of results answers the call id. A step
// asks for a handful of calls: a scan beats a map.
func hasResult(results []switchboard.Message, id string) bool {
	for i := range results {
		if results[i].ToolCallID == id {
			return true
		}
	}
	return false
}
