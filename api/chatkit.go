package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// ChatKit's self-hosted protocol, as openai/chatkit-python's ChatKitServer
// speaks it: one POST route taking {type, params, metadata}; six request
// types answer with a stream of server-sent events (chatkit_stream.go), the
// others with JSON. A thread is a conversation and its items are the
// transcript's typed messages (chatkit_items.go). It is an adapter: turns go
// through Chat (Run, Decide, Answer) as on the other chat routes, reads through
// Store and the ledger (Admin), and nothing here decides what a turn does.

// chatkitRequestSchema is chatkit-python 1.6.5's JSON Schema of a request
// (chatkit/types.py's ChatKitReq), which every request is validated
// against.
//
//go:embed chatkit-request.schema.json
var chatkitRequestSchema []byte

// chatkitRequests are the request types ChatKit's schema names, each with
// its schema (the variant of the union that the discriminator maps it to).
var chatkitRequests = sync.OnceValue(func() map[string]*jsonschema.Schema {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(chatkitRequestSchema))
	if err != nil {
		panic(fmt.Sprintf("chatkit request schema: %v", err))
	}
	const url = "chatkit-request.schema.json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		panic(fmt.Sprintf("chatkit request schema: %v", err))
	}
	mapping := doc.(map[string]any)["discriminator"].(map[string]any)["mapping"].(map[string]any)
	out := make(map[string]*jsonschema.Schema, len(mapping))
	for typ, ref := range mapping {
		out[typ] = c.MustCompile(url + ref.(string))
	}
	return out
})

// ChatKit's request types.
const (
	ckThreadsCreate           = "threads.create"
	ckThreadsAddUserMessage   = "threads.add_user_message"
	ckThreadsAddClientTool    = "threads.add_client_tool_output"
	ckThreadsRetryAfterItem   = "threads.retry_after_item"
	ckThreadsCustomAction     = "threads.custom_action"
	ckThreadsGetByID          = "threads.get_by_id"
	ckThreadsList             = "threads.list"
	ckThreadsUpdate           = "threads.update"
	ckThreadsDelete           = "threads.delete"
	ckItemsList               = "items.list"
	ckItemsFeedback           = "items.feedback"
	ckAttachmentsCreate       = "attachments.create"
	ckAttachmentsDelete       = "attachments.delete"
	ckInputTranscribe         = "input.transcribe"
	ckThreadsStructuredInput  = "threads.add_structured_input"
	ckThreadsSyncCustomAction = "threads.sync_custom_action"
)

// The actions of the widgets this adapter sends: an approval's buttons
// (posted back as threads.custom_action) and a connection's button (for
// the page to handle: it opens the sign-in URL). A question's are in
// chatkit_inputs.go.
const (
	ckActionApprove = "tool_call.approve"
	ckActionDeny    = "tool_call.deny"
	ckActionConnect = "connection.open"
)

// chatkitRequest is a request body; Params is decoded per type.
type chatkitRequest struct {
	Type   string          `json:"type"`
	Params json.RawMessage `json:"params"`
}

// chatkitParams holds the params of every request type this adapter
// serves; the schema has checked their types.
type chatkitParams struct {
	ThreadID string        `json:"thread_id"`
	ItemID   *string       `json:"item_id"`
	Input    *chatkitInput `json:"input"`
	Title    string        `json:"title"`
	Limit    *int          `json:"limit"`
	Order    string        `json:"order"`
	After    *string       `json:"after"`
	ItemIDs  []string      `json:"item_ids"`
	Kind     string        `json:"kind"`
	Action   *struct {
		Type    string         `json:"type"`
		Payload map[string]any `json:"payload"`
	} `json:"action"`
}

// chatkitInput is a user message as the composer sends it.
type chatkitInput struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Attachments []string `json:"attachments"`
	QuotedText  *string  `json:"quoted_text"`
}

const chatkitExample = `{"type": "threads.create", "params": {"input": {"content": [{"type": "input_text", "text": "..."}], "attachments": [], "inference_options": {}}}}`

// parseChatKit validates a request body against ChatKit's schema and
// decodes it. Errors wrap ErrInvalid with a message that says what is
// wrong.
func parseChatKit(body []byte) (string, chatkitParams, error) {
	var req chatkitRequest
	if err := decodeJSON(body, &req, "invalid_json", chatkitExample); err != nil {
		return "", chatkitParams{}, err
	}
	schema, ok := chatkitRequests()[req.Type]
	if !ok {
		known := make([]string, 0, len(chatkitRequests()))
		for typ := range chatkitRequests() {
			known = append(known, typ)
		}
		slices.Sort(known)
		if req.Type == "" {
			return "", chatkitParams{}, switchboard.Errorf(switchboard.ErrInvalid, "unknown_request_type",
				"the request has no type; ChatKit's types are %s", strings.Join(known, ", "))
		}
		return "", chatkitParams{}, switchboard.Errorf(switchboard.ErrInvalid, "unknown_request_type",
			"%q is not a ChatKit request type; they are %s", clip(req.Type), strings.Join(known, ", "))
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return "", chatkitParams{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_json", "the request body is not valid JSON")
	}
	if err := schema.Validate(doc); err != nil {
		return "", chatkitParams{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_request",
			"the body is not a valid ChatKit %s request: %s", req.Type, schemaProblem(err))
	}
	var p chatkitParams
	if len(req.Params) > 0 {
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return "", chatkitParams{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_request", "the params of %s could not be read", req.Type)
		}
	}
	return req.Type, p, nil
}

// schemaProblem says where a body fails the schema: the first few of the
// innermost failures.
func schemaProblem(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "it does not match the schema"
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			if !slices.Contains(leaves, e.Error()) {
				leaves = append(leaves, e.Error())
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > 3 {
		leaves = append(leaves[:3], "…")
	}
	return strings.Join(leaves, "; ")
}

// chatkitText is the text of a user message: its text and tag parts, after
// the text it quotes, if any. It returns an error wrapping ErrInvalid or
// ErrTooLarge, as the other chat routes do.
func chatkitText(in *chatkitInput, maxChars int) (string, error) {
	if len(in.Attachments) > 0 {
		return "", switchboard.Errorf(switchboard.ErrInvalid, "unsupported_attachments", "Switchboard does not take attachments yet: send text only")
	}
	var b strings.Builder
	if in.QuotedText != nil && strings.TrimSpace(*in.QuotedText) != "" {
		for line := range strings.Lines(strings.TrimSpace(*in.QuotedText)) {
			b.WriteString("> " + line)
		}
		b.WriteString("\n\n")
	}
	for _, part := range in.Content {
		b.WriteString(part.Text)
	}
	content := b.String()
	switch {
	case strings.TrimSpace(content) == "":
		return "", switchboard.Errorf(switchboard.ErrInvalid, "empty_content", "the message is empty")
	case !utf8.ValidString(content):
		return "", switchboard.Errorf(switchboard.ErrInvalid, "invalid_content", "the message is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(content); n > maxChars {
		return "", switchboard.Errorf(switchboard.ErrTooLarge, "message_too_long", "the message has %d characters; the limit is %d", n, maxChars)
	}
	return content, nil
}

// postChatKit serves POST /api/{user_id}/chatkit: every ChatKit request.
func (h *Handler) postChatKit(c *gin.Context) {
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	typ, p, err := parseChatKit(body)
	if err != nil {
		h.writeError(c, err)
		return
	}
	switch typ {
	case ckThreadsCreate, ckThreadsAddUserMessage, ckThreadsRetryAfterItem, ckThreadsCustomAction:
		release, ok := h.admitTurn(c)
		if !ok {
			return
		}
		defer release()
		h.chatkitTurn(c, typ, p)
	case ckThreadsAddClientTool:
		// Switchboard's tools run on the server: no turn waits for a
		// client tool's output.
		if _, err := h.chatkitThread(c, p.ThreadID); err != nil {
			h.writeError(c, err)
			return
		}
		h.writeError(c, switchboard.Errorf(switchboard.ErrConflict, "no_client_tool_call",
			"no client tool call awaits output in thread %s: Switchboard's tools run on the server", clip(p.ThreadID)))
	case ckThreadsGetByID:
		h.chatkitGetThread(c, p)
	case ckThreadsList:
		h.chatkitListThreads(c, p)
	case ckThreadsUpdate:
		h.chatkitUpdateThread(c, p)
	case ckThreadsDelete:
		conv, err := h.chatkitThread(c, p.ThreadID)
		if err == nil {
			err = h.Store.DeleteConversation(c.Request.Context(), conv.UserID, conv.ID)
		}
		if err != nil {
			h.writeError(c, h.threadNotFound(err, p.ThreadID))
			return
		}
		c.JSON(http.StatusOK, gin.H{})
	case ckItemsList:
		h.chatkitListItems(c, p)
	case ckItemsFeedback:
		h.chatkitFeedback(c, p)
	default: // attachments.*, input.transcribe, structured input, sync actions
		what := map[string]string{
			ckAttachmentsCreate: "attachments", ckAttachmentsDelete: "attachments", ckInputTranscribe: "dictation",
			ckThreadsStructuredInput: "structured input", ckThreadsSyncCustomAction: "synchronous actions",
		}[typ]
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "unsupported_request",
			"Switchboard does not support %s yet: %s is not served", what, typ))
	}
}

// chatkitThread loads the caller's thread. Another user's is absent, as
// everywhere.
func (h *Handler) chatkitThread(c *gin.Context, id string) (switchboard.Conversation, error) {
	conv, err := h.Store.GetConversation(c.Request.Context(), identity(c).UserID, id)
	return conv, h.threadNotFound(err, id)
}

// threadNotFound words a store's ErrNotFound about a thread.
func (h *Handler) threadNotFound(err error, id string) error {
	if errors.Is(err, switchboard.ErrNotFound) && switchboard.ErrorCode(err) == "" {
		return switchboard.Errorf(switchboard.ErrNotFound, "conversation_not_found", "thread %q not found", clip(id))
	}
	return err
}

// chatkitTurn runs the turn a streaming request asks for and streams it.
func (h *Handler) chatkitTurn(c *gin.Context, typ string, p chatkitParams) {
	ctx := c.Request.Context()
	userID := identity(c).UserID
	s := &chatkitStream{c: c, kind: typ, connect: func(server string) connectionRequiredDTO {
		return h.connectionRequired(ctx, userID, server)
	}}
	var run func() (*orchestrator.Result, error)
	switch typ {
	case ckThreadsCreate, ckThreadsAddUserMessage:
		content, err := chatkitText(p.Input, h.opts.MaxMessageChars)
		if err != nil {
			h.writeError(c, err)
			return
		}
		req := orchestrator.Request{UserID: userID, Content: content, RequestID: requestID(c)}
		if typ == ckThreadsAddUserMessage {
			req.ConversationID = p.ThreadID
		}
		s.userContent = content
		s.conversation = h.Store.GetConversation
		run = func() (*orchestrator.Result, error) { return h.Chat.Run(ctx, req, s) }
	case ckThreadsRetryAfterItem:
		req, err := h.chatkitRetry(c, p)
		if err != nil {
			h.writeError(c, err)
			return
		}
		run = func() (*orchestrator.Result, error) { return h.Chat.Run(ctx, req, s) }
	case ckThreadsCustomAction:
		if p.Action != nil && isInputAction(p.Action.Type) {
			h.chatkitAnswer(c, p)
			return
		}
		d, err := chatkitDecision(p)
		if err != nil {
			h.writeError(c, err)
			return
		}
		d.UserID, d.RequestID = userID, requestID(c)
		s.decided = d.CallID
		run = func() (*orchestrator.Result, error) { return h.Chat.Decide(ctx, d, s) }
	}
	res, err := run()
	if s.started {
		c.Set(ctxTurn, s.turn)
	} else {
		if err == nil {
			err = errors.New("turn ended without starting")
		}
		h.writeError(c, h.threadNotFound(err, p.ThreadID))
		return
	}
	if err != nil {
		if status, _ := describe(err); status >= 500 && !errors.Is(err, context.Canceled) {
			h.logger.Error("turn failed while streaming", "request_id", requestID(c), "turn_id", s.turn.ID, "err", err)
		}
	}
	s.finish(res, err)
}

// chatkitRetry is the request that answers a user message again
// (threads.retry_after_item): our regenerate, of the message the item is.
// The items after it leave the thread.
func (h *Handler) chatkitRetry(c *gin.Context, p chatkitParams) (orchestrator.Request, error) {
	conv, err := h.chatkitThread(c, p.ThreadID)
	if err != nil {
		return orchestrator.Request{}, err
	}
	items, err := h.threadItems(c, conv)
	if err != nil {
		return orchestrator.Request{}, err
	}
	var prior []string
	for _, it := range items {
		if it.id == *p.ItemID {
			if it.user == nil {
				return orchestrator.Request{}, switchboard.Errorf(switchboard.ErrInvalid, "not_a_user_message",
					"item %s is not a user message: only a user message is answered again", clip(*p.ItemID))
			}
			return orchestrator.Request{UserID: conv.UserID, ConversationID: conv.ID, Content: *it.user, Regenerate: true,
				Position: orchestrator.Position{Prior: prior}, RequestID: requestID(c)}, nil
		}
		if it.user != nil {
			prior = append(prior, *it.user)
		}
	}
	return orchestrator.Request{}, errItemNotFound(*p.ItemID)
}

func errItemNotFound(id string) error {
	return switchboard.Errorf(switchboard.ErrNotFound, "item_not_found", "item %q not found in this thread", clip(id))
}

// chatkitDecision is the decision a widget's action posts: an approval's
// Approve or Deny button, with the call's ledger id in its payload.
func chatkitDecision(p chatkitParams) (orchestrator.Decision, error) {
	a := p.Action
	if a.Type != ckActionApprove && a.Type != ckActionDeny {
		return orchestrator.Decision{}, switchboard.Errorf(switchboard.ErrInvalid, "unknown_action",
			"%q is not an action of Switchboard's widgets; they are %s", clip(a.Type),
			strings.Join([]string{ckActionApprove, ckActionDeny, ckActionInputSubmit, ckActionInputAccept, ckActionInputDecline, ckActionInputCancel}, ", "))
	}
	callID, _ := a.Payload["call_id"].(string)
	if callID == "" {
		return orchestrator.Decision{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_action",
			`the action's payload must name the call: {"call_id": "..."}`)
	}
	reason, _ := a.Payload["reason"].(string)
	return orchestrator.Decision{ConversationID: p.ThreadID, CallID: callID, Approve: a.Type == ckActionApprove, Reason: reason}, nil
}

func (h *Handler) chatkitGetThread(c *gin.Context, p chatkitParams) {
	conv, err := h.chatkitThread(c, p.ThreadID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	items, err := h.threadItems(c, conv)
	if err != nil {
		h.writeError(c, h.threadNotFound(err, p.ThreadID))
		return
	}
	// As chatkit-python: the first page, oldest first; the client pages
	// on with items.list.
	page, err := pageOf(items, func(it threadItem) string { return it.id }, nil, chatkitPageSize, "asc", false)
	if err != nil {
		h.writeError(c, err)
		return
	}
	t := toThread(conv)
	t.Items = itemsPage(page)
	c.JSON(http.StatusOK, t)
}

func (h *Handler) chatkitListThreads(c *gin.Context, p chatkitParams) {
	convs, err := h.Store.ListConversations(c.Request.Context(), identity(c).UserID, maxThreads)
	if err != nil {
		h.writeError(c, err)
		return
	}
	// Keyset on the id: ours are UUIDv7, in the order they were made (to
	// the millisecond), so a page never repeats or skips a thread however
	// the others change, even when the cursor's thread is deleted.
	slices.SortFunc(convs, func(a, b switchboard.Conversation) int { return strings.Compare(a.ID, b.ID) })
	page, err := pageOf(convs, func(cv switchboard.Conversation) string { return cv.ID }, p.After, limitOf(p.Limit), orderOf(p.Order), true)
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := chatkitPage[chatkitThreadDTO]{Data: make([]chatkitThreadDTO, len(page.data)), HasMore: page.hasMore, After: page.after}
	for i, cv := range page.data {
		out.Data[i] = toThread(cv)
	}
	c.JSON(http.StatusOK, out)
}

func (h *Handler) chatkitUpdateThread(c *gin.Context, p chatkitParams) {
	conv, err := h.chatkitThread(c, p.ThreadID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	title := strings.TrimSpace(p.Title)
	if utf8.RuneCountInString(title) > 255 {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_title", "title is longer than 255 characters"))
		return
	}
	conv.Title = title
	conv, err = h.Store.UpdateConversation(c.Request.Context(), conv.UserID, conv)
	if err != nil {
		h.writeError(c, h.threadNotFound(err, p.ThreadID))
		return
	}
	c.JSON(http.StatusOK, toThread(conv))
}

func (h *Handler) chatkitListItems(c *gin.Context, p chatkitParams) {
	conv, err := h.chatkitThread(c, p.ThreadID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	items, err := h.threadItems(c, conv)
	if err != nil {
		h.writeError(c, h.threadNotFound(err, p.ThreadID))
		return
	}
	page, err := pageOf(items, func(it threadItem) string { return it.id }, p.After, limitOf(p.Limit), orderOf(p.Order), false)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, itemsPage(page))
}

// chatkitFeedback stores the user's rating of items: of the messages they
// show (a workflow's, its step's request of tools).
func (h *Handler) chatkitFeedback(c *gin.Context, p chatkitParams) {
	conv, err := h.chatkitThread(c, p.ThreadID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	items, err := h.threadItems(c, conv)
	if err != nil {
		h.writeError(c, h.threadNotFound(err, p.ThreadID))
		return
	}
	var ids []string
	for _, want := range p.ItemIDs {
		i := slices.IndexFunc(items, func(it threadItem) bool { return it.id == want })
		if i < 0 || items[i].messageID == "" {
			h.writeError(c, errItemNotFound(want))
			return
		}
		ids = append(ids, items[i].messageID)
	}
	if len(ids) == 0 {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_feedback", "item_ids names no item"))
		return
	}
	if err := h.Store.SetFeedback(c.Request.Context(), conv.UserID, conv.ID, ids, p.Kind); err != nil {
		h.writeError(c, h.threadNotFound(err, p.ThreadID))
		return
	}
	c.JSON(http.StatusOK, gin.H{})
}
