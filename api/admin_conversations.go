package api

import (
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// adminTurnDTO is one turn as admins inspect it: status, usage, its time
// split and the tool calls it made (oldest first).
type adminTurnDTO struct {
	ID               string `json:"id"`
	Status           string `json:"status"`
	Steps            int    `json:"steps"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
	Error            string `json:"error"`
	StartedAt        string `json:"started_at"`
	// FinishedAt and DurationMS (wall time) are null while the turn runs
	// or awaits approval.
	FinishedAt *string            `json:"finished_at"`
	DurationMS *float64           `json:"duration_ms"`
	Timing     turnTimingDTO      `json:"timing"`
	ToolCalls  []adminToolCallDTO `json:"tool_calls"`
	// Agent is the agent the turn ended as, Handoffs how often it changed.
	Agent    string `json:"agent,omitempty"`
	Handoffs int    `json:"handoffs,omitempty"`
}

// turnTimingDTO splits a turn's time: model calls, tool calls, storage and
// the rest. A turn resumed after an approval adds up every request's time.
type turnTimingDTO struct {
	LLMMS      float64 `json:"llm_ms"`
	ToolsMS    float64 `json:"tools_ms"`
	StoreMS    float64 `json:"store_ms"`
	OverheadMS float64 `json:"overhead_ms"`
}

func toAdminTurn(t switchboard.Turn) adminTurnDTO {
	d := adminTurnDTO{ID: t.ID, Status: string(t.Status), Steps: t.Steps, PromptTokens: t.PromptTokens,
		CompletionTokens: t.CompletionTokens, Error: t.Error, StartedAt: timestamp(t.StartedAt),
		FinishedAt: nullTimestamp(t.FinishedAt), ToolCalls: []adminToolCallDTO{}, Agent: t.Agent, Handoffs: t.Handoffs,
		Timing: turnTimingDTO{LLMMS: ms(t.Timing.LLM), ToolsMS: ms(t.Timing.Tools), StoreMS: ms(t.Timing.Store),
			OverheadMS: ms(t.Timing.Overhead)}}
	if !t.FinishedAt.IsZero() {
		wall := ms(t.FinishedAt.Sub(t.StartedAt))
		d.DurationMS = &wall
	}
	return d
}

// adminConversation serves GET /api/admin/conversations/{id}: any user's
// conversation with its typed transcript and its turns, each with its
// timing and tool calls. Messages name their turn (turn_id).
func (h *Handler) adminConversation(c *gin.Context) {
	if h.Admin == nil {
		h.unavailable(c, "the tool-call log")
		return
	}
	ctx := c.Request.Context()
	id := c.Param("id")
	notFound := switchboard.Errorf(switchboard.ErrNotFound, "conversation_not_found", "conversation %q not found", clip(id))
	conv, err := h.Admin.AdminConversation(ctx, id)
	if err != nil {
		if isNotFound(err) {
			err = notFound
		}
		h.writeError(c, err)
		return
	}
	msgs, err := h.Admin.ListAllMessages(ctx, conv.UserID, conv.ID)
	if err == nil {
		var turns []switchboard.Turn
		turns, err = h.Admin.ListTurns(ctx, conv.UserID, conv.ID)
		if err == nil {
			var calls []switchboard.ToolCall
			calls, err = h.conversationCalls(c, conv.ID)
			if err == nil {
				c.JSON(http.StatusOK, gin.H{"success": true, "conversation": toConversationDTO(conv),
					"turns": adminTurns(turns, calls), "messages": messageDTOs(msgs)})
				return
			}
		}
	}
	if isNotFound(err) { // deleted meanwhile
		err = notFound
	}
	h.writeError(c, err)
}

// conversationCalls returns every ledger row of a conversation, oldest
// first.
func (h *Handler) conversationCalls(c *gin.Context, conversationID string) ([]switchboard.ToolCall, error) {
	var all []switchboard.ToolCall
	f := switchboard.ToolCallFilter{ConversationID: conversationID, Limit: maxCallsPage}
	for {
		page, next, err := h.Admin.ListToolCalls(c.Request.Context(), f)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		f.After = next
	}
	slices.Reverse(all)
	return all, nil
}

// adminTurns renders turns with their calls attached.
func adminTurns(turns []switchboard.Turn, calls []switchboard.ToolCall) []adminTurnDTO {
	out := make([]adminTurnDTO, len(turns))
	index := make(map[string]int, len(turns))
	for i, t := range turns {
		out[i] = toAdminTurn(t)
		index[t.ID] = i
	}
	for _, tc := range calls {
		if i, ok := index[tc.TurnID]; ok {
			out[i].ToolCalls = append(out[i].ToolCalls, toAdminToolCall(tc))
		}
	}
	return out
}

func messageDTOs(msgs []switchboard.Message) []messageDTO {
	out := make([]messageDTO, len(msgs))
	for i, m := range msgs {
		out[i] = toMessageDTO(m)
	}
	return out
}
