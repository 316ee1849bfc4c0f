package api

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// The admin tool-call routes read the ledger: a page of calls (newest
// first, keyset-paginated), one call in full, and stats over a time window.

// Query parameters of the admin tool-call routes.
var (
	filterParams = []string{"user", "conversation", "turn", "server", "tool", "status", "since", "until"}
	listParams   = append(slices.Clone(filterParams), "after", "limit")
	statsParams  = append(slices.Clone(filterParams), "group_by")
)

// Stats cover the last DefaultStatsWindow unless since says otherwise.
const DefaultStatsWindow = 24 * time.Hour

// Page sizes of GET /api/admin/tool-calls.
const (
	defaultCallsPage = 50
	maxCallsPage     = 500
)

// maxFilterLen bounds a filter's text, as the ledger bounds user, server
// and tool names.
const maxFilterLen = 255

// callStatuses lists the ledger's statuses, for error messages.
var callStatuses = []switchboard.ToolCallStatus{
	switchboard.CallRunning, switchboard.CallSucceeded, switchboard.CallFailed, switchboard.CallTimedOut,
	switchboard.CallCancelled, switchboard.CallDenied, switchboard.CallAwaitingApproval,
}

func badFilter(format string, args ...any) error {
	return switchboard.Errorf(switchboard.ErrInvalid, "invalid_filter", format, args...)
}

// adminFilter is a ToolCallFilter as the query gave it. The store reads a
// zero Since or Until as no bound: whether they were given is kept apart,
// so that the zero time (0001-01-01T00:00:00Z) is a bound like any other.
type adminFilter struct {
	switchboard.ToolCallFilter
	hasSince, hasUntil bool
}

// selectsNothing reports whether the window is empty whatever the ledger
// holds: until (exclusive) is at or before the zero time, which the store
// would take for no bound.
func (f adminFilter) selectsNothing() bool {
	return f.hasUntil && !f.Until.After(time.Time{})
}

// parseFilter reads a ToolCallFilter from query parameters, of which only
// allowed ones may appear, each once. Errors wrap ErrInvalid with a message
// that names the parameter and says what it takes.
func parseFilter(q url.Values, allowed []string) (adminFilter, error) {
	var af adminFilter
	f := &af.ToolCallFilter
	names := slices.Sorted(maps.Keys(q))
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			return af, badFilter("unknown parameter %q: this route takes %s", clip(name), strings.Join(allowed, ", "))
		}
		if n := len(q[name]); n > 1 {
			return af, badFilter("parameter %q is given %d times; give it once", name, n)
		}
	}
	text := func(name string) (string, error) {
		v := strings.TrimSpace(q.Get(name))
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxFilterLen {
			return "", badFilter("%s must be valid text of at most %d characters", name, maxFilterLen)
		}
		return v, nil
	}
	var err error
	for _, p := range []struct {
		name string
		dst  *string
	}{{"user", &f.UserID}, {"server", &f.Server}, {"tool", &f.Tool}} {
		if *p.dst, err = text(p.name); err != nil {
			return af, err
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"conversation", &f.ConversationID}, {"turn", &f.TurnID}} {
		v := strings.TrimSpace(q.Get(p.name))
		if v != "" && !switchboard.ValidID(v) {
			return af, badFilter("%s must be a %s id (a UUID such as 0196b3e2-7c1a-7d45-9a3e-2f1c5b7d9e01), got %q", p.name, p.name, clip(v))
		}
		*p.dst = strings.ToLower(v)
	}
	if s := strings.TrimSpace(q.Get("status")); s != "" {
		f.Status = switchboard.ToolCallStatus(s)
		if !f.Status.Valid() {
			names := make([]string, len(callStatuses))
			for i, st := range callStatuses {
				names[i] = string(st)
			}
			return af, badFilter("status must be one of %s, got %q", strings.Join(names, ", "), clip(s))
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
		has  *bool
	}{{"since", &f.Since, &af.hasSince}, {"until", &f.Until, &af.hasUntil}} {
		v := strings.TrimSpace(q.Get(p.name))
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return af, badFilter("%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", p.name, clip(v))
		}
		*p.dst, *p.has = t.UTC(), true
	}
	if af.hasSince && af.hasUntil && !f.Since.Before(f.Until) {
		return af, badFilter("since (%s) must be before until (%s)", timestamp(f.Since), timestamp(f.Until))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxCallsPage {
			return af, switchboard.Errorf(switchboard.ErrInvalid, "invalid_limit", "limit must be a whole number from 1 to %d, got %q", maxCallsPage, clip(v))
		}
		f.Limit = n
	}
	f.After = q.Get("after")
	return af, nil
}

// clip shortens a client's value quoted back in an error message.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= 64 {
		return s
	}
	return string([]rune(s)[:64]) + "…"
}

// adminToolCallDTO is a ledger row as admins list it: everything but the
// result, which can be large (GET /api/admin/tool-calls/{id} has it).
type adminToolCallDTO struct {
	ID             string          `json:"id"`
	CallID         string          `json:"call_id"`
	UserID         string          `json:"user_id"`
	ConversationID string          `json:"conversation_id"`
	TurnID         string          `json:"turn_id"`
	Step           int             `json:"step"`
	Server         string          `json:"server"`
	Tool           string          `json:"tool"`
	ExposedName    string          `json:"exposed_name"`
	Arguments      json.RawMessage `json:"arguments"`
	Status         string          `json:"status"`
	ErrorClass     string          `json:"error_class"`
	Error          string          `json:"error"`
	DurationMS     float64         `json:"duration_ms"`
	ResultSize     int             `json:"result_size"`
	Truncated      bool            `json:"truncated"`
	StartedAt      string          `json:"started_at"`
	// FinishedAt is null while the call runs or awaits approval.
	FinishedAt *string `json:"finished_at"`
	// The server session the call ran on: its scope (shared, user,
	// conversation), key (the user or conversation id) and the generation
	// of its connection, which changes when the session restarts.
	SessionScope      string `json:"session_scope,omitempty"`
	SessionKey        string `json:"session_key,omitempty"`
	SessionGeneration int64  `json:"session_generation,omitempty"`
	// The MCP task the call ran as (a tool that can only be called as
	// one): the server's id for it and the last status the call saw.
	TaskID     string `json:"task_id,omitempty"`
	TaskStatus string `json:"task_status,omitempty"`
	// Content lists the result's binary parts (images, audio, blobs), each
	// with the admin URL of its bytes.
	Content []contentDTO `json:"content,omitempty"`
	// Agent is the agent whose step asked for the call; ParentID the call
	// of an agent used as a tool it ran inside.
	Agent    string `json:"agent,omitempty"`
	ParentID string `json:"parent_id,omitempty"`
}

// adminToolCallDetailDTO is a ledger row with its result: a preview of at
// most previewBytes, the whole at /api/admin/tool-calls/{id}/result.
type adminToolCallDetailDTO struct {
	adminToolCallDTO
	Result string `json:"result"`
	// StructuredResult is the tool's structured content, null when none
	// (or when over previewBytes: see ResultTruncated).
	StructuredResult json.RawMessage `json:"structured_result"`
	ResultTruncated  bool            `json:"result_truncated"`
	// Samplings are the server's sampling requests made during the call,
	// each a ledger row of its own.
	Samplings []samplingDTO `json:"samplings,omitempty"`
}

// samplingDTO is a server's sampling request during a call.
type samplingDTO struct {
	ID               string  `json:"id"`
	Kind             string  `json:"kind"`
	Model            string  `json:"model"`
	Status           string  `json:"status"`
	Error            string  `json:"error,omitempty"`
	MaxTokens        int     `json:"max_tokens"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	DurationMS       float64 `json:"duration_ms"`
	StartedAt        string  `json:"started_at"`
}

// samplingLister is what an AdminStore that keeps sampling rows also
// implements.
type samplingLister interface {
	ListSamplings(ctx context.Context, toolCallID string) ([]switchboard.Sampling, error)
}

func toAdminToolCall(c switchboard.ToolCall) adminToolCallDTO {
	args := c.Arguments
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	return adminToolCallDTO{ID: c.ID, CallID: c.CallID, UserID: c.UserID, ConversationID: c.ConversationID,
		TurnID: c.TurnID, Step: c.Step, Server: c.Server, Tool: c.Tool, ExposedName: c.ExposedName,
		Arguments: args, Status: string(c.Status), ErrorClass: c.ErrorClass, Error: c.Error,
		DurationMS: ms(c.Duration), ResultSize: c.ResultSize, Truncated: c.Truncated,
		StartedAt: timestamp(c.StartedAt), FinishedAt: nullTimestamp(c.FinishedAt),
		SessionScope: c.SessionScope, SessionKey: c.SessionKey, SessionGeneration: c.SessionGeneration,
		TaskID: c.TaskID, TaskStatus: c.TaskStatus, Agent: c.Agent, ParentID: c.ParentID,
		Content: contentDTOs(c, func(i int) string { return adminContentURL(c.ID, i) })}
}

func isNotFound(err error) bool { return errors.Is(err, switchboard.ErrNotFound) }

func nullTimestamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := timestamp(t)
	return &s
}

// listToolCalls serves GET /api/admin/tool-calls: one page of the ledger,
// newest first. next_cursor, when not null, is the after parameter of the
// next (older) page; calls stored meanwhile never shift the pages.
func (h *Handler) listToolCalls(c *gin.Context) {
	if h.Admin == nil {
		h.unavailable(c, "the tool-call log")
		return
	}
	q, err := query(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	f, err := parseFilter(q, listParams)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if f.Limit == 0 {
		f.Limit = defaultCallsPage
	}
	var (
		calls []switchboard.ToolCall
		next  string
	)
	if !f.selectsNothing() {
		calls, next, err = h.Admin.ListToolCalls(c.Request.Context(), f.ToolCallFilter)
		if err != nil {
			h.writeError(c, err)
			return
		}
	}
	out := make([]adminToolCallDTO, len(calls))
	for i, tc := range calls {
		out[i] = toAdminToolCall(tc)
	}
	var cursor *string
	if next != "" {
		cursor = &next
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "tool_calls": out, "next_cursor": cursor})
}

// adminToolCall reads the ledger row of the route's {id}, or answers the
// error and reports false.
func (h *Handler) adminToolCall(c *gin.Context) (switchboard.ToolCall, bool) {
	if h.Admin == nil {
		h.unavailable(c, "the tool-call log")
		return switchboard.ToolCall{}, false
	}
	id := c.Param("id")
	tc, err := h.Admin.AdminToolCall(c.Request.Context(), id)
	if err != nil {
		if isNotFound(err) {
			err = switchboard.Errorf(switchboard.ErrNotFound, switchboard.CodeToolCallNotFound, "tool call %q not found", clip(id))
		}
		h.writeError(c, err)
		return switchboard.ToolCall{}, false
	}
	return tc, true
}

// getToolCall serves GET /api/admin/tool-calls/{id}: one call with its
// arguments and a preview of its result.
func (h *Handler) getToolCall(c *gin.Context) {
	tc, ok := h.adminToolCall(c)
	if !ok {
		return
	}
	p := previewOf(tc)
	d := adminToolCallDetailDTO{adminToolCallDTO: toAdminToolCall(tc), Result: p.Result, StructuredResult: p.Structured, ResultTruncated: p.Truncated}
	if sl, ok := h.Admin.(samplingLister); ok {
		rows, err := sl.ListSamplings(c.Request.Context(), tc.ID)
		if err != nil {
			h.writeError(c, err)
			return
		}
		for _, s := range rows {
			d.Samplings = append(d.Samplings, samplingDTO{ID: s.ID, Kind: s.Kind, Model: s.Model, Status: string(s.Status), Error: s.Error,
				MaxTokens: s.MaxTokens, PromptTokens: s.PromptTokens, CompletionTokens: s.CompletionTokens, DurationMS: ms(s.Duration), StartedAt: timestamp(s.StartedAt)})
		}
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "tool_call": d})
}

// toolCallStatsDTO aggregates the calls of one tool (or server).
type toolCallStatsDTO struct {
	Server string `json:"server"`
	// Tool is set when grouped by tool.
	Tool  string `json:"tool,omitempty"`
	Count int64  `json:"count"`
	// Errors, ErrorRate and the latencies consider finished calls only; an
	// error is any final status but succeeded.
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
}

// toolCallStats serves GET /api/admin/tool-calls/stats: count, error rate
// and latency percentiles per tool (group_by=tool, the default) or server,
// over [since, until): by default the last 24 hours.
func (h *Handler) toolCallStats(c *gin.Context) {
	if h.Admin == nil {
		h.unavailable(c, "the tool-call log")
		return
	}
	q, err := query(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	f, err := parseFilter(q, statsParams)
	if err != nil {
		h.writeError(c, err)
		return
	}
	groupBy := q.Get("group_by")
	switch groupBy {
	case "":
		groupBy = "tool"
	case "tool", "server":
	default:
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_group_by", `group_by must be "tool" or "server", got %q`, clip(groupBy)))
		return
	}
	if !f.hasUntil {
		f.Until = time.Now().UTC()
	}
	if !f.hasSince {
		f.Since = f.Until.Add(-DefaultStatsWindow)
	}
	var stats []switchboard.ToolCallStats
	if !f.selectsNothing() {
		stats, err = h.Admin.ToolCallStats(c.Request.Context(), f.ToolCallFilter, groupBy)
		if err != nil {
			h.writeError(c, err)
			return
		}
	}
	out := make([]toolCallStatsDTO, len(stats))
	for i, s := range stats {
		d := toolCallStatsDTO{Server: s.Server, Count: s.Count, Errors: s.Errors, ErrorRate: s.ErrorRate,
			P50MS: ms(s.P50), P95MS: ms(s.P95)}
		if groupBy == "tool" {
			d.Tool = s.Group
		}
		out[i] = d
	}
	c.JSON(http.StatusOK, gin.H{"success": true, "group_by": groupBy, "since": timestamp(f.Since),
		"until": timestamp(f.Until), "stats": out})
}
