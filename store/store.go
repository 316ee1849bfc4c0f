// Package store persists Switchboard's conversations, turns and tool-call
// ledger, and users' sealed credentials for MCP servers, in memory or in
// Postgres.
//
// [Memory] and [Postgres] implement the same contract, [Store], with the
// same validation and the same errors: a method that fails returns an error
// that wraps one of the root package's sentinels (switchboard.ErrNotFound,
// ErrInvalid, ErrConflict, ErrUnavailable) or, for Postgres, an unexpected
// database error. The contract is documented once, on [Store], and tested by
// package storetest against both. Reads of a user's records take the user:
// another user's are not found.
//
// Conventions both stores share:
//   - Times are stored in UTC with microsecond precision (Postgres's); the
//     stores truncate the times they are given and fill the stored values back
//     into the records passed by pointer.
//   - Durations are kept to the nanosecond (up to a few days).
//   - Ids are UUIDs; an id that is not one is never found.
//   - Text is stored as valid UTF-8 without NUL bytes: both are replaced by
//     U+FFFD, because Postgres rejects them and a tool's output must not make
//     the ledger fail.
//   - JSON (a call's arguments and structured result) is compacted; Postgres
//     also reorders object keys, so JSON round-trips as an equal value, not as
//     the same bytes.
package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard"
)

// Page sizes of the listing methods.
const (
	// DefaultPageSize is the number of rows a listing returns when its limit
	// is 0.
	DefaultPageSize = 50
	// MaxPageSize caps the limit of a listing.
	MaxPageSize = 500
	// MaxFeedbackMessages caps the messages one SetFeedback rates.
	MaxFeedbackMessages = 100
)

// Groupings of ToolCallStats.
const (
	// GroupByTool aggregates per (server, tool).
	GroupByTool = "tool"
	// GroupByServer aggregates per server.
	GroupByServer = "server"
)

// Lengths of the text columns that have one, in characters.
const (
	maxNameLen   = 255 // user ids, titles, idempotency keys, server and tool names
	maxStatusLen = 50  // conversations.status
	titleLen     = 60  // a title derived from the first message
)

// ctxErr returns the error of a done context. A deadline that expired wraps
// switchboard.ErrUnavailable as well: the store did not answer in time.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", switchboard.ErrUnavailable, err)
	}
	return err
}

// errIdempotencyKey is the conflict of a turn whose idempotency key the user
// has used before.
func errIdempotencyKey() error {
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeIdempotencyKeyReused,
		"a turn with this idempotency key exists")
}

func invalid(code, format string, args ...any) error {
	return switchboard.Errorf(switchboard.ErrInvalid, code, format, args...)
}

// now returns the current time as the stores keep it.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// stamp returns t as the stores keep it; the zero time stays zero.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func stampOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return stamp(t)
}

// clean returns s as valid UTF-8 without NUL bytes.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

// cleanJSON validates and compacts raw. Escapes are decoded and the value
// re-encoded when they could hide a NUL or an unpaired surrogate, which
// Postgres's jsonb rejects.
func cleanJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("not valid JSON")
	}
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(cleanValue(v)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func cleanValue(v any) any {
	switch v := v.(type) {
	case string:
		return clean(v)
	case []any:
		for i := range v {
			v[i] = cleanValue(v[i])
		}
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[clean(k)] = cleanValue(x)
		}
		return m
	}
	return v
}

func cloneJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	return slices.Clone(raw)
}

func tooLong(s string, n int) bool { return len(s) > n && utf8.RuneCountInString(s) > n }

// titleFrom derives a conversation title from its first message: the first
// titleLen characters, cut at a word boundary when one is near.
func titleFrom(content string) string {
	if len(content) > 64*titleLen {
		content = clean(content[:64*titleLen])
	}
	s := strings.Join(strings.Fields(content), " ")
	if utf8.RuneCountInString(s) <= titleLen {
		return s
	}
	cut, n := s, 0
	for i := range s {
		if n == titleLen {
			cut = s[:i]
			break
		}
		n++
	}
	if i := strings.LastIndexByte(cut, ' '); i >= titleLen/2 {
		cut = cut[:i]
	}
	return cut + "…"
}

// newID returns id in the canonical lower-case form, or a new id if it is
// empty.
func newID(id, what string) (string, error) {
	if id == "" {
		return switchboard.NewID(), nil
	}
	if !switchboard.ValidID(id) {
		return "", invalid("invalid_id", "%s id %q is not a UUID", what, id)
	}
	return strings.ToLower(id), nil
}

// lookupID returns id in canonical form and whether it can exist at all.
func lookupID(id string) (string, bool) {
	if !switchboard.ValidID(id) {
		return "", false
	}
	return strings.ToLower(id), true
}

// prepareFeedback validates a SetFeedback: it returns the canonical ids
// of the conversation and of the messages, without repeats. A malformed id
// names nothing (ErrNotFound).
func prepareFeedback(conversationID string, messageIDs []string, kind string) (string, []string, error) {
	if kind != switchboard.FeedbackPositive && kind != switchboard.FeedbackNegative {
		return "", nil, invalid("invalid_feedback", "feedback must be %q or %q", switchboard.FeedbackPositive, switchboard.FeedbackNegative)
	}
	if len(messageIDs) == 0 || len(messageIDs) > MaxFeedbackMessages {
		return "", nil, invalid("invalid_feedback", "feedback rates 1 to %d messages, not %d", MaxFeedbackMessages, len(messageIDs))
	}
	key, ok := lookupID(conversationID)
	if !ok {
		return "", nil, fmt.Errorf("rate messages of conversation %q: %w", conversationID, switchboard.ErrNotFound)
	}
	ids := make([]string, 0, len(messageIDs))
	for _, id := range messageIDs {
		k, ok := lookupID(id)
		if !ok {
			return "", nil, fmt.Errorf("rate message %q: %w", id, switchboard.ErrNotFound)
		}
		if !slices.Contains(ids, k) {
			ids = append(ids, k)
		}
	}
	return key, ids, nil
}

func validRole(r switchboard.Role) bool {
	switch r {
	case switchboard.RoleUser, switchboard.RoleAssistant, switchboard.RoleTool, switchboard.RoleSystem:
		return true
	}
	return false
}

func validTurnStatus(s switchboard.TurnStatus) bool {
	switch s {
	case switchboard.TurnRunning, switchboard.TurnCompleted, switchboard.TurnFailed,
		switchboard.TurnMaxSteps, switchboard.TurnCancelled, switchboard.TurnAwaitingApproval,
		switchboard.TurnMaxHandoffs, switchboard.TurnGuardrailTripped:
		return true
	}
	return false
}

// LeaseDuration is how long a running turn holds its conversation without
// a write or a RenewTurn; past it the turn counts as abandoned.
const LeaseDuration = 60 * time.Second

// errTurnRunning is the answer when a conversation already has a running
// turn (a turn whose lease has not run out).
func errTurnRunning() error {
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeTurnRunning, "another turn of this conversation is running")
}

// interruptedNote is the error of a running turn that no live instance
// held any more (see orphaned), failed by whoever found it.
const interruptedNote = "interrupted: the instance running it stopped before it ended"

// callInterruptedNote is the error of a call that ran when the instance
// running its turn stopped.
const callInterruptedNote = "interrupted: the instance running its turn stopped while the call ran; whether the tool finished is unknown"

// notRunNote is the error of a call of an interrupted turn that awaited an
// approval: it can no longer run.
const notRunNote = "not run: the instance running its turn stopped"

// errContentPruned is the error of a read of binary content that
// retention removed.
var errContentPruned = switchboard.Errorf(switchboard.ErrNotFound, "content_pruned", "the content was removed by retention")

// askingCancelledNote is the error of a turn awaiting input that a cancel
// closed, and of its calls and questions.
const askingCancelledNote = "cancelled while it awaited the user's answer"

// supersededNote is the error of a turn, and of its calls, that awaited an
// approval when a regenerate answered its question again.
const supersededNote = "superseded: the question was answered again"

// wentOnNote is the error of a turn awaiting an approval, and of its
// waiting calls, that the next turn of the conversation cancelled: the user
// went on without deciding, and the calls can no longer run.
const wentOnNote = "cancelled: the conversation went on without a decision"

// wentOnInputNote is the error of a turn awaiting input, and of its
// asking calls and questions, that the next turn of the conversation
// cancelled: the user went on without answering.
const wentOnInputNote = "cancelled: the conversation went on without an answer"

// errNoRunningTurn is RequestCancel's answer when the conversation has no
// running turn of the user.
func errNoRunningTurn(conversationID string) error {
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeNoRunningTurn, "no turn is running in conversation %s", conversationID)
}

// errNothingToRegenerate is BeginTurn's answer when the conversation has
// fewer user messages than the one to answer again.
func errNothingToRegenerate(n int) error {
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeNothingToRegenerate,
		"the conversation has no user message %d to answer again", n)
}

// errRegenerateMismatch is BeginTurn's answer when the message to answer
// again is not the one the client shows: the conversation changed.
func errRegenerateMismatch() error {
	return switchboard.Errorf(switchboard.ErrConflict, "regenerate_mismatch",
		"the message to answer again differs from the conversation's: it changed since the client loaded it")
}

// errExternalIDTaken is BeginTurn's answer when the user already has a
// conversation with the client's id: two first messages of one chat raced.
func errExternalIDTaken() error {
	return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeConversationExists, "a conversation with this id exists already")
}

// errAlreadyDecided is DecideToolCall's answer for a call that does not
// await approval.
func errAlreadyDecided(id string) error {
	return fmt.Errorf("decide tool call %s: %w", id,
		switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeAlreadyDecided, "tool call %s does not await approval (it was decided already)", id))
}

// prepareTurnStart validates s and fills in what the store generates. It
// reports whether the conversation is to be created; for one to continue it
// returns an error wrapping ErrNotFound if its id is malformed.
func prepareTurnStart(s *switchboard.TurnStart, now time.Time) (create bool, err error) {
	if s == nil {
		return false, invalid("invalid_turn", "no turn to begin")
	}
	t, c, m := &s.Turn, &s.Conversation, &s.UserMessage
	if t.UserID == "" {
		return false, invalid("invalid_turn", "the turn has no user id")
	}
	t.UserID = clean(t.UserID)
	if tooLong(t.UserID, maxNameLen) {
		return false, invalid("invalid_turn", "the user id is longer than %d characters", maxNameLen)
	}
	if s.HistoryLimit < 0 {
		return false, invalid("invalid_turn", "the history limit %d is negative", s.HistoryLimit)
	}
	t.IdempotencyKey = clean(t.IdempotencyKey)
	if tooLong(t.IdempotencyKey, maxNameLen) {
		return false, invalid("invalid_idempotency_key", "the idempotency key is longer than %d characters", maxNameLen)
	}
	if s.Regenerate < 0 {
		return false, invalid("invalid_turn", "the message to regenerate, %d, is negative", s.Regenerate)
	}
	if c.ID == "" && s.Regenerate > 0 {
		return false, fmt.Errorf("regenerate in a new conversation: %w", switchboard.ErrNotFound)
	}
	if s.Edit < 0 || s.Edit > 0 && s.Regenerate > 0 {
		return false, invalid("invalid_turn", "the message to edit, %d, is negative or comes with a regenerate", s.Edit)
	}
	if c.ID == "" {
		s.Edit = 0 // nothing to edit in a new conversation: the message is new
	}
	if c.ID == "" {
		create = true
		c.ID = switchboard.NewID()
		c.UserID = t.UserID
		c.Status = switchboard.ConversationActive
		c.CreatedAt, c.UpdatedAt = now, now
		if c.Title == "" {
			c.Title = titleFrom(clean(m.Content))
		}
		c.Title = clean(c.Title)
		if tooLong(c.Title, maxNameLen) {
			return false, invalid("invalid_title", "the title is longer than %d characters", maxNameLen)
		}
		c.ExternalID = clean(c.ExternalID)
		if tooLong(c.ExternalID, maxNameLen) {
			return false, invalid("invalid_conversation_id", "the conversation id is longer than %d characters", maxNameLen)
		}
	} else {
		id, ok := lookupID(c.ID)
		if !ok {
			return false, fmt.Errorf("load conversation %q: %w", c.ID, switchboard.ErrNotFound)
		}
		c.ID = id
	}
	if t.ID, err = newID(t.ID, "turn"); err != nil {
		return false, err
	}
	t.ConversationID = c.ID
	t.Status = switchboard.TurnRunning
	t.Agent = clean(t.Agent)
	if tooLong(t.Agent, maxNameLen) {
		return false, invalid("invalid_turn", "the agent name is longer than %d characters", maxNameLen)
	}
	t.Error = clean(t.Error)
	t.StartedAt = stampOr(t.StartedAt, now)
	t.FinishedAt = stamp(t.FinishedAt)
	if m.Role == "" {
		m.Role = switchboard.RoleUser
	}
	if err := prepareMessage(m, c.ID, t.ID, now); err != nil {
		return false, err
	}
	return create, nil
}

// prepareTurnUpdate validates u and fills in what the store generates. It
// returns an error wrapping ErrNotFound if the turn's id is malformed.
func prepareTurnUpdate(u *switchboard.TurnUpdate, now time.Time) error {
	if u == nil {
		return invalid("invalid_turn", "no turn to save")
	}
	t := &u.Turn
	id, ok := lookupID(t.ID)
	if !ok {
		return fmt.Errorf("load turn %q: %w", t.ID, switchboard.ErrNotFound)
	}
	t.ID = id
	if !validTurnStatus(t.Status) {
		return invalid("invalid_turn", "unknown turn status %q", t.Status)
	}
	t.Error = clean(t.Error)
	t.FinishedAt = stamp(t.FinishedAt)
	t.Agent, u.ConversationAgent = clean(t.Agent), clean(u.ConversationAgent)
	if tooLong(t.Agent, maxNameLen) || tooLong(u.ConversationAgent, maxNameLen) || t.Handoffs < 0 {
		return invalid("invalid_turn", "the agent name is longer than %d characters, or the handoffs negative", maxNameLen)
	}
	for i := range u.Messages {
		// The conversation is the turn's; the stores set it.
		if err := prepareMessage(&u.Messages[i], "", t.ID, now); err != nil {
			return err
		}
	}
	for i := range u.ToolCalls {
		if err := prepareToolCall(&u.ToolCalls[i], t.ID, now); err != nil {
			return err
		}
	}
	return nil
}

func prepareMessage(m *switchboard.Message, conversationID, turnID string, now time.Time) error {
	var err error
	m.Feedback = "" // given later, with SetFeedback
	if m.ID, err = newID(m.ID, "message"); err != nil {
		return err
	}
	m.ConversationID, m.TurnID = conversationID, turnID
	if !validRole(m.Role) {
		return invalid("invalid_message", "unknown message role %q", m.Role)
	}
	if m.Type == "" {
		m.Type = switchboard.MessageText
	}
	if !m.Type.Valid() {
		return invalid("invalid_message", "unknown message type %q", m.Type)
	}
	m.Timestamp = stampOr(m.Timestamp, now)
	m.Content = clean(m.Content)
	m.ToolCallID = clean(m.ToolCallID)
	m.ToolName = clean(m.ToolName)
	m.Agent = clean(m.Agent)
	if m.Structured, err = cleanJSON(m.Structured); err != nil {
		return invalid("invalid_message", "message %s: structured answer: %v", m.ID, err)
	}
	if m.Handoff != nil {
		m.Handoff = &switchboard.Handoff{From: clean(m.Handoff.From), To: clean(m.Handoff.To)}
	}
	if len(m.ToolCalls) == 0 {
		m.ToolCalls = nil
	} else {
		calls := make([]switchboard.RequestedCall, len(m.ToolCalls))
		for i, c := range m.ToolCalls {
			calls[i] = switchboard.RequestedCall{ID: clean(c.ID), Name: clean(c.Name), Arguments: clean(c.Arguments)}
		}
		m.ToolCalls = calls
	}
	return nil
}

func prepareToolCall(c *switchboard.ToolCall, turnID string, now time.Time) error {
	var err error
	if c.ID, err = newID(c.ID, "tool call"); err != nil {
		return err
	}
	c.TurnID = turnID
	if !c.Status.Valid() {
		return invalid("invalid_tool_call", "unknown tool call status %q", c.Status)
	}
	c.CallID = clean(c.CallID)
	c.Server = clean(c.Server)
	c.Tool = clean(c.Tool)
	c.ExposedName = clean(c.ExposedName)
	c.SessionScope, c.SessionKey = clean(c.SessionScope), clean(c.SessionKey)
	c.Agent = clean(c.Agent)
	if c.ParentID != "" {
		parent, ok := lookupID(c.ParentID)
		if !ok {
			return invalid("invalid_tool_call", "tool call %s: parent %q is not an id", c.ID, c.ParentID)
		}
		c.ParentID = parent
	}
	for _, s := range []string{c.Server, c.Tool, c.ExposedName, c.Agent} {
		if tooLong(s, maxNameLen) {
			return invalid("invalid_tool_call", "a server or tool name is longer than %d characters", maxNameLen)
		}
	}
	if c.Arguments, err = cleanJSON(c.Arguments); err != nil {
		return invalid("invalid_tool_call", "tool call %s: arguments: %v", c.ID, err)
	}
	if c.StructuredResult, err = cleanJSON(c.StructuredResult); err != nil {
		return invalid("invalid_tool_call", "tool call %s: structured result: %v", c.ID, err)
	}
	c.Result = clean(c.Result)
	c.ErrorClass = clean(c.ErrorClass)
	c.Error = clean(c.Error)
	c.StartedAt = stampOr(c.StartedAt, now)
	c.FinishedAt = stamp(c.FinishedAt)
	return nil
}

// prepareConversationUpdate validates the fields UpdateConversation writes.
func prepareConversationUpdate(c *switchboard.Conversation) error {
	c.Title = clean(c.Title)
	if tooLong(c.Title, maxNameLen) {
		return invalid("invalid_title", "the title is longer than %d characters", maxNameLen)
	}
	c.Status = clean(c.Status)
	if tooLong(c.Status, maxStatusLen) {
		return invalid("invalid_status", "the status is longer than %d characters", maxStatusLen)
	}
	return nil
}

// pageSize returns the number of rows a listing with the given limit returns.
func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageSize
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// ledgerQuery is a validated ToolCallFilter.
type ledgerQuery struct {
	f switchboard.ToolCallFilter
	// afterTime and afterID are the keyset position of the cursor, if any.
	afterTime time.Time
	afterID   string
	limit     int
}

func prepareFilter(f switchboard.ToolCallFilter) (ledgerQuery, error) {
	q := ledgerQuery{f: f, limit: pageSize(f.Limit)}
	for _, id := range []*string{&q.f.ConversationID, &q.f.TurnID} {
		if *id == "" {
			continue
		}
		v, ok := lookupID(*id)
		if !ok {
			return q, invalid("invalid_filter", "%q is not a UUID", *id)
		}
		*id = v
	}
	if q.f.Status != "" && !q.f.Status.Valid() {
		return q, invalid("invalid_filter", "unknown tool call status %q", q.f.Status)
	}
	q.f.Since, q.f.Until = stamp(q.f.Since), stamp(q.f.Until)
	if q.f.After != "" {
		var err error
		if q.afterTime, q.afterID, err = decodeCursor(q.f.After); err != nil {
			return q, err
		}
	}
	return q, nil
}

// matches reports whether c passes the filter, cursor excluded.
func (q *ledgerQuery) matches(c *switchboard.ToolCall) bool {
	f := &q.f
	return (f.UserID == "" || c.UserID == f.UserID) &&
		(f.ConversationID == "" || c.ConversationID == f.ConversationID) &&
		(f.TurnID == "" || c.TurnID == f.TurnID) &&
		(f.Server == "" || c.Server == f.Server) &&
		(f.Tool == "" || c.Tool == f.Tool) &&
		(f.Status == "" || c.Status == f.Status) &&
		(f.Since.IsZero() || !c.StartedAt.Before(f.Since)) &&
		(f.Until.IsZero() || c.StartedAt.Before(f.Until))
}

// encodeCursor returns the opaque cursor of the page that follows the row
// (t, id) in the order started_at DESC, id DESC.
func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + "," + id))
}

func decodeCursor(s string) (time.Time, string, error) {
	bad := invalid("invalid_cursor", "the page cursor is malformed")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", bad
	}
	us, id, ok := strings.Cut(string(b), ",")
	if !ok {
		return time.Time{}, "", bad
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || !switchboard.ValidID(id) {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(n).UTC(), strings.ToLower(id), nil
}

// millis and fromMillis convert durations to the double-precision
// milliseconds Postgres stores, and back.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMillis(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}

// percentile interpolates like Postgres's percentile_cont over sorted
// milliseconds, with the same floating-point operations so that both stores
// report the same durations.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p * float64(len(sorted)-1)
	lo, hi := math.Floor(pos), math.Ceil(pos)
	a, b := sorted[int(lo)], sorted[int(hi)]
	// The explicit conversion forbids a fused multiply-add, which Postgres
	// does not use.
	return a + float64((b-a)*(pos-lo))
}

func checkGroupBy(groupBy string) error {
	if groupBy != GroupByTool && groupBy != GroupByServer {
		return invalid("invalid_group_by", "cannot group tool calls by %q: use %q or %q", groupBy, GroupByTool, GroupByServer)
	}
	return nil
}

// errorRate is the share of failures among finished calls.
func errorRate(failed, finished int64) float64 {
	if finished == 0 {
		return 0
	}
	return float64(failed) / float64(finished)
}

// prepareMCPSession validates a kept session and stamps it.
func prepareMCPSession(s *switchboard.MCPSession) error {
	s.Server, s.UserID = clean(s.Server), clean(s.UserID)
	if s.Server == "" || s.UserID == "" || s.SessionID == "" {
		return invalid("invalid_mcp_session", "an mcp session needs a server, a user and a session id")
	}
	if tooLong(s.Server, maxNameLen) || tooLong(s.UserID, maxNameLen) {
		return invalid("invalid_mcp_session", "a server name or user id is longer than %d characters", maxNameLen)
	}
	s.SessionID, s.ProtocolVersion = clean(s.SessionID), clean(s.ProtocolVersion)
	s.UpdatedAt = now()
	return nil
}

// Lengths of the columns of per-user credentials.
const (
	maxKindLen   = 50   // credentials.kind
	maxIssuerLen = 2000 // oauth_clients.issuer, in bytes: it is in a btree key
)

// prepareCredential validates a credential and stamps it; the store keeps
// its own copies of its slices.
func prepareCredential(c *switchboard.Credential, now time.Time) error {
	c.UserID, c.Server, c.Kind, c.KeyID = clean(c.UserID), clean(c.Server), clean(c.Kind), clean(c.KeyID)
	switch {
	case c.UserID == "" || c.Server == "":
		return invalid("invalid_credential", "a credential needs a user and a server")
	case c.Kind == "":
		return invalid("invalid_credential", "the credential of %s for %s has no kind", c.UserID, c.Server)
	case c.KeyID == "" || len(c.Sealed) == 0:
		return invalid("invalid_credential", "the credential of %s for %s needs a sealed value and the id of its key", c.UserID, c.Server)
	case tooLong(c.UserID, maxNameLen) || tooLong(c.Server, maxNameLen) || tooLong(c.KeyID, maxNameLen):
		return invalid("invalid_credential", "a user id, server name or key id is longer than %d characters", maxNameLen)
	case tooLong(c.Kind, maxKindLen):
		return invalid("invalid_credential", "the kind is longer than %d characters", maxKindLen)
	}
	c.Sealed = slices.Clone(c.Sealed)
	c.Scopes = cleanScopes(c.Scopes)
	c.ExpiresAt, c.LastUsedAt = stamp(c.ExpiresAt), stamp(c.LastUsedAt)
	c.CreatedAt, c.UpdatedAt = stampOr(c.CreatedAt, now), stampOr(c.UpdatedAt, now)
	return nil
}

// cleanScopes returns a copy of scopes with clean text; none is nil, as
// both stores return it.
func cleanScopes(scopes []string) []string {
	if len(scopes) == 0 {
		return nil
	}
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = clean(s)
	}
	return out
}

// prepareOAuthState validates a connect flow's state and stamps it.
func prepareOAuthState(s *switchboard.OAuthState, now time.Time) error {
	s.ID, s.UserID, s.Server, s.KeyID = clean(s.ID), clean(s.UserID), clean(s.Server), clean(s.KeyID)
	switch {
	case s.ID == "" || s.UserID == "" || s.Server == "":
		return invalid("invalid_oauth_state", "an oauth state needs an id, a user and a server")
	case s.KeyID == "" || len(s.Sealed) == 0:
		return invalid("invalid_oauth_state", "the oauth state of %s for %s needs a sealed value and the id of its key", s.UserID, s.Server)
	case s.ExpiresAt.IsZero():
		return invalid("invalid_oauth_state", "the oauth state of %s for %s has no expiry", s.UserID, s.Server)
	case tooLong(s.ID, maxNameLen) || tooLong(s.UserID, maxNameLen) || tooLong(s.Server, maxNameLen) || tooLong(s.KeyID, maxNameLen):
		return invalid("invalid_oauth_state", "an id, user id, server name or key id is longer than %d characters", maxNameLen)
	}
	s.Sealed = slices.Clone(s.Sealed)
	s.CreatedAt, s.ExpiresAt = stampOr(s.CreatedAt, now), stamp(s.ExpiresAt)
	return nil
}

// prepareOAuthClient validates a registered client and stamps it.
func prepareOAuthClient(c *switchboard.OAuthClient, now time.Time) error {
	c.Server, c.Issuer, c.ClientID, c.KeyID = clean(c.Server), clean(c.Issuer), clean(c.ClientID), clean(c.KeyID)
	switch {
	case c.Server == "" || c.Issuer == "" || c.ClientID == "":
		return invalid("invalid_oauth_client", "an oauth client needs a server, an issuer and a client id")
	case c.KeyID == "" || len(c.Sealed) == 0:
		return invalid("invalid_oauth_client", "the oauth client of %s at %s needs a sealed value and the id of its key", c.Server, c.Issuer)
	case tooLong(c.Server, maxNameLen) || tooLong(c.KeyID, maxNameLen):
		return invalid("invalid_oauth_client", "a server name or key id is longer than %d characters", maxNameLen)
	case len(c.Issuer) > maxIssuerLen:
		return invalid("invalid_oauth_client", "the issuer is longer than %d bytes", maxIssuerLen)
	}
	c.Sealed = slices.Clone(c.Sealed)
	c.CreatedAt = stampOr(c.CreatedAt, now)
	return nil
}
