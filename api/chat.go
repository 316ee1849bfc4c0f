package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// chatRequest is a chat body: the seed's {"message": {"content": "..."}}
// (conversation_id in the body or the query), or the AI SDK's
// {"id", "messages": [UIMessage...], "trigger"}, whose id names the
// conversation and whose last user message is the one to answer (read by
// parseUIChat, aisdk.go).
type chatRequest struct {
	Message *struct {
		Content *string `json:"content"`
	} `json:"message"`
	ConversationID string `json:"conversation_id"`

	ID       string      `json:"id"`
	Messages []uiMessage `json:"messages"`
	Trigger  string      `json:"trigger"`
	// MessageID, with trigger submit-message, names the user message the
	// chat replaced (sendMessage({messageId})): an edit.
	MessageID string `json:"messageId"`

	// Agent, in either body, names the agent to answer as.
	Agent string `json:"agent"`
}

// chatExample is the chat body shown when a body is no object.
const chatExample = `{"message": {"content": "..."}}`

// chatInput is a decoded chat request.
type chatInput struct {
	content string
	// hash identifies the request, for Idempotency-Key.
	hash string
	// conversation is our conversation id (seed body) or the client's own
	// chat id (AI SDK body, external true).
	conversation string
	external     bool
	// approvals, for an AI SDK body whose last message is the assistant's
	// with approval responses: the decisions to apply instead of a message.
	approvals []approvalResponse
	// decidedBefore, for an AI SDK body whose user messages at its end
	// follow an assistant message with approval responses (the user
	// decided, then wrote instead of sending the decision): the decisions
	// to apply before the message, which would otherwise cancel those
	// calls.
	decidedBefore []approvalResponse
	// regenerate, for an AI SDK body with trigger regenerate-message: the
	// last user message of the body is to be answered again; edit, for one
	// whose messageId names it: it replaces the user message there, which
	// position names as the body shows it (the orchestrator finds which
	// message of the conversation that is).
	regenerate, edit bool
	position         orchestrator.Position
	// agent names the agent to answer as (the body's agent, or the agent
	// query parameter); empty for the conversation's current one.
	agent string
}

// decodeChat reads and validates a chat request. Errors wrap ErrInvalid or
// ErrTooLarge with a message that says what to fix.
func (h *Handler) decodeChat(c *gin.Context) (chatInput, error) {
	q, err := query(c)
	if err != nil {
		return chatInput{}, err
	}
	body, err := h.readBody(c)
	if err != nil {
		return chatInput{}, err
	}
	in, err := parseChat(body, q.Get("conversation_id"), h.opts.MaxMessageChars)
	if err != nil {
		return chatInput{}, err
	}
	if a := q.Get("agent"); a != "" {
		if in.agent != "" && in.agent != a {
			return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "conflicting_agent", "the agent differs between the query and the body")
		}
		in.agent = a
	}
	if len(in.agent) > 255 {
		return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, orchestrator.CodeUnknownAgent, "the agent name is longer than 255 characters")
	}
	sum := sha256.New()
	for _, s := range []string{c.FullPath(), q.Get("conversation_id"), q.Get("agent"), string(body)} {
		sum.Write([]byte(s))
		sum.Write([]byte{0})
	}
	in.hash = hex.EncodeToString(sum.Sum(nil))
	return in, nil
}

// readBody reads a request body within the size limit.
func (h *Handler) readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, switchboard.Errorf(switchboard.ErrTooLarge, "body_too_large", "the request body is larger than %d bytes", h.opts.MaxBodyBytes)
	}
	if err != nil {
		return nil, switchboard.Errorf(switchboard.ErrInvalid, "invalid_body", "the request body could not be read")
	}
	return body, nil
}

// parseChat validates a chat body; query is the conversation_id query
// parameter.
func parseChat(body []byte, query string, maxChars int) (in chatInput, err error) {
	var req chatRequest
	if err := decodeJSON(body, &req, "invalid_json", chatExample); err != nil {
		return chatInput{}, err
	}
	defer func() {
		if err == nil {
			in.agent = req.Agent
		}
	}()
	switch {
	case req.Message != nil:
		if req.Message.Content == nil {
			return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "missing_content", `the body must be {"message": {"content": "..."}}`)
		}
		in.content = *req.Message.Content
		in.conversation = req.ConversationID
	case req.Messages != nil:
		var decisionsOnly bool
		if in, decisionsOnly, err = parseUIChat(req); err != nil || decisionsOnly {
			return in, err
		}
	default:
		return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "missing_content", `the body must be {"message": {"content": "..."}}, or the AI SDK's {"id", "messages"}`)
	}
	if strings.TrimSpace(in.content) == "" {
		return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "empty_content", "the message is empty")
	}
	if !utf8.ValidString(in.content) {
		return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_content", "the message is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(in.content); n > maxChars {
		return chatInput{}, switchboard.Errorf(switchboard.ErrTooLarge, "message_too_long", "the message has %d characters; the limit is %d", n, maxChars)
	}
	if query != "" {
		if in.conversation != "" && in.conversation != query {
			return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "conflicting_conversation_id", "the conversation id differs between the query and the body")
		}
		in.conversation, in.external = query, false
	}
	if len(in.conversation) > 255 {
		return chatInput{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_conversation_id", "the conversation id is longer than 255 characters")
	}
	return in, nil
}

// wantsStream reports whether the client asked for the UI message stream.
func wantsStream(c *gin.Context) bool {
	return strings.Contains(c.GetHeader("Accept"), "text/event-stream")
}

func (h *Handler) postChat(c *gin.Context) { h.chat(c, wantsStream(c)) }

func (h *Handler) postChatStream(c *gin.Context) { h.chat(c, true) }

func (h *Handler) chat(c *gin.Context, stream bool) {
	in, err := h.decodeChat(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	userID := identity(c).UserID
	key := c.GetHeader("Idempotency-Key")
	if len(key) > 255 {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_idempotency_key", "the Idempotency-Key header is longer than 255 characters"))
		return
	}
	req := orchestrator.Request{UserID: userID, Content: in.content, Agent: in.agent, Roles: identity(c).Roles,
		IdempotencyKey: key, RequestHash: in.hash, RequestID: requestID(c)}
	for _, a := range in.decidedBefore {
		req.Decisions = append(req.Decisions, orchestrator.Decision{CallID: a.callID, Approve: a.approve, Reason: a.reason})
	}
	if in.external {
		req.ExternalConversationID = in.conversation
	} else {
		req.ConversationID = in.conversation
	}
	if len(in.approvals) > 0 {
		h.applyApprovals(c, stream, in, req)
		return
	}
	req.Regenerate, req.Edit, req.Position = in.regenerate, in.edit, in.position
	ctx := c.Request.Context()
	h.respond(c, stream, func(ev orchestrator.Events) (*orchestrator.Result, error) {
		return h.Chat.Run(ctx, req, ev)
	})
}

// applyApprovals applies the decisions of an AI SDK body (the user approved
// or denied calls in the chat) and answers with the rest of the turn. All
// but the last decision are applied first; a call decided already (a retry)
// is skipped.
func (h *Handler) applyApprovals(c *gin.Context, stream bool, in chatInput, req orchestrator.Request) {
	ctx := c.Request.Context()
	decision := func(a approvalResponse) orchestrator.Decision {
		return orchestrator.Decision{UserID: req.UserID, ConversationID: req.ConversationID,
			ExternalConversationID: req.ExternalConversationID, CallID: a.callID, Roles: req.Roles,
			Approve: a.approve, Reason: a.reason, RequestID: req.RequestID}
	}
	for _, a := range in.approvals[:len(in.approvals)-1] {
		if _, err := h.Chat.Decide(ctx, decision(a), nil); err != nil && !decidedAlready(err) {
			h.writeError(c, err)
			return
		}
	}
	last := decision(in.approvals[len(in.approvals)-1])
	h.respond(c, stream, func(ev orchestrator.Events) (*orchestrator.Result, error) {
		return h.Chat.Decide(ctx, last, ev)
	})
}

// decidedAlready reports whether err says that the call was decided before:
// a retried body of approvals skips the ones it applied already.
func decidedAlready(err error) bool {
	return switchboard.IsCode(err, switchboard.CodeAlreadyDecided) || switchboard.IsCode(err, switchboard.CodeNotAwaitingApproval)
}

// respond runs a turn and answers with JSON or the UI message stream.
func (h *Handler) respond(c *gin.Context, stream bool, run func(orchestrator.Events) (*orchestrator.Result, error)) {
	if !stream {
		res, err := run(nil)
		if res != nil {
			c.Set(ctxTurn, res.Turn)
		}
		if err != nil {
			h.writeError(c, err)
			return
		}
		if res.Replayed {
			c.Header("Idempotent-Replayed", "true")
		} else {
			c.Header("Server-Timing", serverTiming(res.Turn.Timing))
		}
		resp := toChatResponse(res)
		resp.ConnectionsRequired = h.connectionsRequired(c.Request.Context(), identity(c).UserID, res.ToolCalls)
		c.JSON(http.StatusOK, resp)
		return
	}
	s := &uiStream{c: c, connect: func(server string) connectionRequiredDTO {
		return h.connectionRequired(c.Request.Context(), identity(c).UserID, server)
	}}
	res, err := run(s)
	if s.started {
		c.Set(ctxTurn, s.turn)
	}
	if !s.started {
		if err == nil {
			err = errors.New("turn ended without starting")
		}
		h.writeError(c, err)
		return
	}
	if err != nil {
		if status, _ := describe(err); status >= 500 && !errors.Is(err, context.Canceled) {
			h.logger.Error("turn failed while streaming", "request_id", requestID(c), "turn_id", s.turn.ID, "err", err)
		}
	}
	s.finish(res, err)
}

// postCancel cancels the running turn of a conversation. The reply's
// status is "cancelling" when the instance running the turn was told to
// stop it, or the turn's status ("failed") when no live instance held it
// and it was failed at once.
func (h *Handler) postCancel(c *gin.Context) {
	turn, err := h.Chat.Cancel(c.Request.Context(), identity(c).UserID, c.Param("id"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	status := "cancelling"
	if turn.Status != switchboard.TurnRunning {
		status = string(turn.Status)
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "conversation_id": turn.ConversationID, "turn_id": turn.ID, "status": status})
}

// postApproval approves or denies a tool call awaiting approval and
// continues its turn, answering like chat (JSON or stream).
func (h *Handler) postApproval(c *gin.Context) {
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	var in struct {
		Approve *bool  `json:"approve"`
		Reason  string `json:"reason"`
	}
	const example = `{"approve": true|false, "reason": "optional"}`
	if err := decodeJSON(body, &in, "invalid_approval", example); err != nil {
		h.writeError(c, err)
		return
	}
	if in.Approve == nil {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_approval", "the body must be %s", example))
		return
	}
	d := orchestrator.Decision{UserID: identity(c).UserID, ConversationID: c.Param("id"), CallID: c.Param("call_id"),
		Approve: *in.Approve, Reason: in.Reason, RequestID: requestID(c), Roles: identity(c).Roles}
	ctx := c.Request.Context()
	h.respond(c, wantsStream(c), func(ev orchestrator.Events) (*orchestrator.Result, error) {
		return h.Chat.Decide(ctx, d, ev)
	})
}

// postInput answers a question a server asked the user: {action: accept |
// decline | cancel, content}, content validated against the question's
// requested schema (400 invalid_input, and nothing is sent, when it does
// not fit). The reply is the turn's next stop, as the chat route's.
func (h *Handler) postInput(c *gin.Context) {
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	var in struct {
		Action  string          `json:"action"`
		Content json.RawMessage `json:"content"`
	}
	const example = `{"action": "accept"|"decline"|"cancel", "content": {...}}`
	if err := decodeJSON(body, &in, "invalid_input", example); err != nil {
		h.writeError(c, err)
		return
	}
	a := orchestrator.InputAnswer{UserID: identity(c).UserID, ConversationID: c.Param("id"), InputID: c.Param("input_id"),
		Action: in.Action, Content: in.Content}
	ctx := c.Request.Context()
	h.respond(c, false, func(orchestrator.Events) (*orchestrator.Result, error) {
		return h.Chat.Answer(ctx, a)
	})
}

// serverTiming renders a turn's time split as a Server-Timing header.
func serverTiming(t switchboard.TurnTiming) string {
	return "model;dur=" + fmtMS(t.LLM) + ", tools;dur=" + fmtMS(t.Tools) + ", store;dur=" + fmtMS(t.Store) + ", overhead;dur=" + fmtMS(t.Overhead)
}

func fmtMS(d time.Duration) string {
	b, _ := json.Marshal(ms(d))
	return string(b)
}
