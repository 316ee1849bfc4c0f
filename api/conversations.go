package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

type conversationDTO struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Title     string `json:"title"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	// Agent is the conversation's current agent, when agents are
	// configured.
	Agent string `json:"agent,omitempty"`
}

func toConversationDTO(c switchboard.Conversation) conversationDTO {
	return conversationDTO{ID: c.ID, UserID: c.UserID, Title: c.Title, Status: c.Status,
		CreatedAt: timestamp(c.CreatedAt), UpdatedAt: timestamp(c.UpdatedAt), Agent: c.Agent}
}

// ownConversation loads the caller's conversation in the path. Another
// user's conversation is absent, as for the store, so that a user never
// learns whether it exists.
func (h *Handler) ownConversation(c *gin.Context) (switchboard.Conversation, error) {
	id := c.Param("id")
	conv, err := h.Store.GetConversation(c.Request.Context(), identity(c).UserID, id)
	if errors.Is(err, switchboard.ErrNotFound) {
		return switchboard.Conversation{}, switchboard.Errorf(switchboard.ErrNotFound, "conversation_not_found", "conversation %q not found", id)
	}
	return conv, err
}

func (h *Handler) listConversations(c *gin.Context) {
	q, err := query(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_limit", "limit must be a number from 1 to 500"))
			return
		}
		limit = n
	}
	convs, err := h.Store.ListConversations(c.Request.Context(), identity(c).UserID, limit)
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := make([]conversationDTO, len(convs))
	for i, cv := range convs {
		out[i] = toConversationDTO(cv)
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "conversations": out})
}

func (h *Handler) getConversation(c *gin.Context) {
	conv, err := h.ownConversation(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	msgs, err := h.Store.ListMessages(c.Request.Context(), conv.UserID, conv.ID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := make([]messageDTO, len(msgs))
	for i, m := range msgs {
		out[i] = toMessageDTO(m)
	}
	reply := gin.H{"success": true, "conversation": toConversationDTO(conv), "messages": out}
	if il, ok := h.Store.(inputLister); ok {
		ins, err := il.ListInputs(c.Request.Context(), conv.UserID, conv.ID, true)
		if err != nil {
			h.writeError(c, err)
			return
		}
		pending := make([]inputDTO, len(ins))
		for i, in := range ins {
			pending[i] = toInputDTO(in)
		}
		reply["pending_inputs"] = pending
	}
	c.JSON(http.StatusOK, reply)
}

// inputLister is what a Store that keeps servers' questions also
// implements: the transcript lists those still waiting for the user.
type inputLister interface {
	ListInputs(ctx context.Context, userID, conversationID string, pendingOnly bool) ([]switchboard.Input, error)
}

func (h *Handler) patchConversation(c *gin.Context) {
	conv, err := h.ownConversation(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	var body struct {
		Title  *string `json:"title"`
		Status *string `json:"status"`
	}
	const example = `{"title": "...", "status": "active|archived"}`
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	if err != nil {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_json", "the body could not be read; it must be a JSON object such as %s of at most 64 KiB", example))
		return
	}
	if err := decodeJSON(raw, &body, "invalid_json", example); err != nil {
		h.writeError(c, err)
		return
	}
	if body.Title == nil && body.Status == nil {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "nothing_to_update", "give title and/or status"))
		return
	}
	if body.Title != nil {
		t := strings.TrimSpace(*body.Title)
		if len([]rune(t)) > 255 {
			h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_title", "title is longer than 255 characters"))
			return
		}
		conv.Title = t
	}
	if body.Status != nil {
		if *body.Status != "active" && *body.Status != "archived" {
			h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_status", `status must be "active" or "archived"`))
			return
		}
		conv.Status = *body.Status
	}
	conv, err = h.Store.UpdateConversation(c.Request.Context(), conv.UserID, conv)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "conversation": toConversationDTO(conv)})
}

func (h *Handler) deleteConversation(c *gin.Context) {
	conv, err := h.ownConversation(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if err := h.Store.DeleteConversation(c.Request.Context(), conv.UserID, conv.ID); err != nil {
		h.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// conversationToolCalls serves GET /api/{user_id}/conversations/{id}/tool-calls:
// the ledger rows of one of the user's conversations, oldest first, as the
// chat reply shows them (call_id joins them to the transcript's messages).
// Another user's conversation is absent (404), as everywhere.
func (h *Handler) conversationToolCalls(c *gin.Context) {
	conv, err := h.ownConversation(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if h.Admin == nil {
		h.unavailable(c, "the tool-call log")
		return
	}
	calls, err := h.conversationCalls(c, conv.ID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := make([]toolCallDTO, len(calls))
	for i, tc := range calls {
		out[i] = toToolCallDTO(tc)
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "conversation_id": conv.ID, "tool_calls": out})
}

type toolDTO struct {
	Name        string          `json:"name"`
	Server      string          `json:"server"`
	Tool        string          `json:"tool"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Annotations map[string]bool `json:"annotations,omitempty"`
	Icons       []iconDTO       `json:"icons,omitempty"`
}

// listAgents lists the agents the user may use: name, description and
// whether it is the default; none when no agents are configured.
func (h *Handler) listAgents(c *gin.Context) {
	out := []orchestrator.AgentInfo{}
	if h.Agents != nil {
		id := identity(c)
		out = h.Agents.Agents(id.UserID, id.Roles)
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "agents": out})
}

func (h *Handler) listTools(c *gin.Context) {
	infos := h.Tools.Tools()
	out := make([]toolDTO, len(infos))
	for i, t := range infos {
		out[i] = toolDTO{Name: t.Name, Server: t.Server, Tool: t.Tool, Description: t.Description,
			Parameters: t.Parameters, Annotations: annotations(t.Annotations), Icons: toIcons(t.Icons)}
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "tools": out})
}

// annotations renders the MCP hints a tool declared, under their MCP names.
func annotations(a switchboard.ToolAnnotations) map[string]bool {
	m := map[string]bool{}
	for name, v := range map[string]*bool{"readOnlyHint": a.ReadOnly, "destructiveHint": a.Destructive,
		"idempotentHint": a.Idempotent, "openWorldHint": a.OpenWorld} {
		if v != nil {
			m[name] = *v
		}
	}
	return m
}
