package api

import (
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// The Vercel AI SDK's chat body, as useChat posts it: {id, messages,
// trigger, messageId}, with UIMessage parts. The chat route takes it
// besides the seed's body (chatRequest holds both; parseChat tells them
// apart), and answers it with the UI message stream (stream.go).

// uiMessage is a message of the AI SDK's chat (UIMessage), as its body
// carries them.
type uiMessage struct {
	ID    string   `json:"id"`
	Role  string   `json:"role"`
	Parts []uiPart `json:"parts"`
}

func (uiMessage) jsonName() (one, many string) {
	return "a UI message (an object with id, role and parts)", "UI messages"
}

// uiPart is a part of a UI message: its text, or a tool call's state.
type uiPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
	// A tool part the user approved or denied in the AI SDK
	// (addToolApprovalResponse) has state approval-responded.
	State    string `json:"state"`
	Approval *struct {
		ID       string `json:"id"`
		Approved *bool  `json:"approved"`
		Reason   string `json:"reason"`
	} `json:"approval"`
}

func (uiPart) jsonName() (one, many string) {
	return "a message part (an object with type, text, state and approval)", "message parts"
}

// approvalResponse is a decision the AI SDK sent for a call awaiting
// approval (its approval id is our ledger id).
type approvalResponse struct {
	callID  string
	approve bool
	reason  string
}

// approvalsOf returns the approval responses of an AI SDK assistant
// message: its tool parts that the user approved or denied
// (addToolApprovalResponse), in state approval-responded.
func approvalsOf(m uiMessage) []approvalResponse {
	var out []approvalResponse
	for _, p := range m.Parts {
		if p.State == "approval-responded" && p.Approval != nil && p.Approval.ID != "" && p.Approval.Approved != nil {
			out = append(out, approvalResponse{callID: p.Approval.ID, approve: *p.Approval.Approved, reason: p.Approval.Reason})
		}
	}
	return out
}

// parseUIChat reads the AI SDK's body into a chat request: its last user
// message is the one to answer, its id names the conversation (the
// client's own id), its trigger and messageId make a regenerate or an
// edit, and approval responses in its assistant messages are decisions.
// decisionsOnly reports a body that is all decisions (its last message is
// the assistant's with approval responses): it has no message to check.
func parseUIChat(req chatRequest) (in chatInput, decisionsOnly bool, err error) {
	last := len(req.Messages) - 1
	if last >= 0 && req.Messages[last].Role == "assistant" {
		in.approvals = approvalsOf(req.Messages[last])
		if len(in.approvals) > 0 && req.ID != "" {
			in.conversation, in.external = req.ID, true
			return in, true, nil
		}
	}
	if last < 0 || req.Messages[last].Role != "user" {
		return chatInput{}, false, switchboard.Errorf(switchboard.ErrInvalid, "missing_content", "the last of messages must be the user's message to answer, or the assistant's with approval responses")
	}
	in.content = userText(req.Messages[last])
	in.conversation, in.external = req.ID, req.ID != ""
	// The chat dropped what followed the user message it sends last:
	// to answer it again (regenerate), or in place of the one it
	// replaced (an edit: messageId names the last message).
	in.regenerate = req.Trigger == "regenerate-message"
	in.edit = !in.regenerate && req.MessageID != "" && req.MessageID == req.Messages[last].ID
	// The assistant message before the user messages at the body's
	// end: a chat that retries a refused message, or regenerates one,
	// sends them after it too.
	for i := last - 1; i >= 0; i-- {
		if req.Messages[i].Role == "assistant" {
			in.decidedBefore = approvalsOf(req.Messages[i])
			break
		}
	}
	if in.regenerate || in.edit {
		p := &in.position
		for _, m := range req.Messages[:last] {
			switch m.Role {
			case "user":
				p.Prior = append(p.Prior, userText(m))
				p.AfterAnchor = append(p.AfterAnchor, userText(m))
			case "assistant":
				p.Anchor, p.AfterAnchor = m.ID, nil
			}
		}
	}
	return in, false, nil
}

// userText is the text of a UI message: its text parts, joined.
func userText(m uiMessage) string {
	var text strings.Builder
	for _, p := range m.Parts {
		if p.Type == "text" {
			text.WriteString(p.Text)
		}
	}
	return text.String()
}
