package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// agentStatsDTO is one agent's turns in GET /api/admin/agents/stats.
type agentStatsDTO struct {
	Agent            string  `json:"agent"`
	Turns            int64   `json:"turns"`
	Handoffs         int64   `json:"handoffs"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	P50MS            float64 `json:"p50_ms"`
	P95MS            float64 `json:"p95_ms"`
}

// agentStats aggregates every user's turns of a window (since, until: the
// last DefaultStatsWindow by default) by the agent each ended as: turns,
// handoffs, tokens, and the latency of those that ended.
func (h *Handler) agentStats(c *gin.Context) {
	if h.Admin == nil {
		h.unavailable(c, "the turns")
		return
	}
	q, err := query(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	f, err := parseFilter(q, []string{"since", "until"})
	if err != nil {
		h.writeError(c, err)
		return
	}
	if !f.hasUntil {
		f.Until = time.Now().UTC()
	}
	if !f.hasSince {
		f.Since = f.Until.Add(-DefaultStatsWindow)
	}
	var stats []switchboard.AgentStats
	if f.Since.Before(f.Until) {
		if stats, err = h.Admin.AgentStats(c.Request.Context(), f.Since, f.Until); err != nil {
			h.writeError(c, err)
			return
		}
	}
	out := make([]agentStatsDTO, len(stats))
	for i, s := range stats {
		out[i] = agentStatsDTO{Agent: s.Agent, Turns: s.Turns, Handoffs: s.Handoffs, PromptTokens: s.PromptTokens,
			CompletionTokens: s.CompletionTokens, P50MS: ms(s.P50), P95MS: ms(s.P95)}
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "since": timestamp(f.Since), "until": timestamp(f.Until), "stats": out})
}
