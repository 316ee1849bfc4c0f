// Package orchestrator runs Switchboard's agent loop: one turn from a user's
// message to the model's final answer, calling the model, running the tools
// it asks for, feeding their results back, and storing every step.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// Model is the chat model the loop talks to. *llm.Client implements it.
type Model interface {
	// Ready returns an error when no model is configured.
	Ready() error
	// Complete sends one request; onText, when not nil, receives streamed text.
	Complete(ctx context.Context, req switchboard.ModelRequest, onText func(string)) (switchboard.ModelReply, error)
}

// TurnStore persists turns. Both store.Memory and store.Postgres implement it.
type TurnStore interface {
	// BeginTurn commits the turn's start and returns the history window.
	BeginTurn(ctx context.Context, start *switchboard.TurnStart) ([]switchboard.Message, error)
	// SaveTurn commits the turn's progress.
	SaveTurn(ctx context.Context, update *switchboard.TurnUpdate) error
}

// Catalogs gives the current tool catalog. *tools.Registry implements it.
type Catalogs interface {
	Current() *tools.Catalog
}

// Options tune the loop; nil means defaults.
type Options struct {
	// MaxSteps caps model calls per turn; 0 means DefaultMaxSteps.
	MaxSteps int
	// HistoryLimit caps the messages replayed to the model; 0 means
	// DefaultHistoryLimit.
	HistoryLimit int
	// SystemPrompt, when not empty, is sent first in every model request
	// (it is not stored).
	SystemPrompt string
	// SaveTimeout bounds the final store write of a turn whose request was
	// cancelled; 0 means 10s.
	SaveTimeout time.Duration
	Logger      *slog.Logger
}

// Defaults.
const (
	DefaultMaxSteps     = 10
	DefaultHistoryLimit = 50
)

// Orchestrator runs turns. It is safe for concurrent use.
type Orchestrator struct {
	model  Model
	tools  Catalogs
	store  TurnStore
	opts   Options
	logger *slog.Logger
	locks  keyedMutex
}

// New returns an orchestrator over model, tools and store.
func New(model Model, tools Catalogs, store TurnStore, opts *Options) *Orchestrator {
	o := &Orchestrator{model: model, tools: tools, store: store}
	if opts != nil {
		o.opts = *opts
	}
	if o.opts.MaxSteps <= 0 {
		o.opts.MaxSteps = DefaultMaxSteps
	}
	if o.opts.HistoryLimit <= 0 {
		o.opts.HistoryLimit = DefaultHistoryLimit
	}
	if o.opts.SaveTimeout <= 0 {
		o.opts.SaveTimeout = 10 * time.Second
	}
	o.logger = o.opts.Logger
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Request is one user message to answer.
type Request struct {
	UserID string
	// ConversationID continues a conversation; empty starts a new one.
	ConversationID string
	Content        string
	IdempotencyKey string
}

// Events receives a turn's progress as it happens, for streaming. All calls
// come from the goroutine running the turn, in order.
type Events interface {
	// TurnStarted tells the turn's ids, once stored.
	TurnStarted(turn switchboard.Turn)
	StepStarted(step int)
	TextDelta(delta string)
	// ToolStarted is called before a tool runs, ToolFinished after.
	ToolStarted(call switchboard.ToolCall)
	ToolFinished(call switchboard.ToolCall)
	StepFinished(step int)
}

// Result is the outcome of a turn.
type Result struct {
	Turn    switchboard.Turn
	Message switchboard.Message // the final assistant message
	// ToolCalls are the turn's calls, in the order the model asked for them.
	ToolCalls []switchboard.ToolCall
}

// Run answers one user message: it stores the message, loops between the
// model and the tools until a text answer or the step cap, stores every
// step, and returns the outcome. When ev is not nil the model is streamed
// and ev sees each step.
//
// Errors: llm_not_configured before anything is stored; ErrNotFound for a
// conversation that is not the user's; the model's errors (ErrUpstream,
// ErrUpstreamTimeout) after the turn was stored as failed; ctx's error after
// it was stored as cancelled; store errors as they come.
func (o *Orchestrator) Run(ctx context.Context, req Request, ev Events) (*Result, error) {
	if err := o.model.Ready(); err != nil {
		return nil, err
	}
	catalog := o.tools.Current()
	if req.ConversationID != "" {
		unlock := o.locks.lock(req.ConversationID)
		defer unlock()
	}
	t := &turn{o: o, catalog: catalog, ev: ev, wallStart: time.Now()}
	if err := t.begin(ctx, req); err != nil {
		return nil, err
	}
	return t.run(ctx)
}

// turn is the state of one running turn.
type turn struct {
	o       *Orchestrator
	catalog *tools.Catalog
	ev      Events

	rec      switchboard.Turn
	caller   tools.Caller
	history  []switchboard.Message
	calls    []switchboard.ToolCall // every call of the turn, in order
	unsaved  []switchboard.Message  // messages not yet committed
	finished []switchboard.ToolCall // finished calls not yet committed

	wallStart time.Time
	timing    switchboard.TurnTiming
}

func (t *turn) begin(ctx context.Context, req Request) error {
	start := &switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: req.ConversationID},
		Turn: switchboard.Turn{UserID: req.UserID, Status: switchboard.TurnRunning,
			IdempotencyKey: req.IdempotencyKey, StartedAt: t.wallStart},
		UserMessage:  switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: req.Content},
		HistoryLimit: t.o.opts.HistoryLimit,
	}
	s := time.Now()
	history, err := t.o.store.BeginTurn(ctx, start)
	t.timing.Store += time.Since(s)
	if errors.Is(err, switchboard.ErrNotFound) {
		return switchboard.Errorf(switchboard.ErrNotFound, "conversation_not_found", "conversation %q not found", req.ConversationID)
	}
	if err != nil {
		return fmt.Errorf("begin turn: %w", err)
	}
	t.rec = start.Turn
	t.caller = tools.Caller{UserID: req.UserID, ConversationID: start.Conversation.ID}
	t.history = trimHistory(history)
	if t.ev != nil {
		t.ev.TurnStarted(t.rec)
	}
	return nil
}

func (t *turn) run(ctx context.Context) (*Result, error) {
	for step := 1; ; step++ {
		if step > t.o.opts.MaxSteps {
			msg := fmt.Sprintf("I stopped after %d model calls without reaching an answer (the step limit of this service).", t.o.opts.MaxSteps)
			return t.end(ctx, switchboard.TurnMaxSteps, t.assistantText(msg), nil)
		}
		if t.ev != nil {
			t.ev.StepStarted(step)
		}
		reply, err := t.callModel(ctx)
		if err != nil {
			status := switchboard.TurnFailed
			if ctx.Err() != nil {
				status = switchboard.TurnCancelled
			}
			note := t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err))
			return t.end(ctx, status, note, err)
		}
		if len(reply.ToolCalls) == 0 {
			if t.ev != nil {
				t.ev.StepFinished(step)
			}
			return t.end(ctx, switchboard.TurnCompleted, t.assistantText(reply.Content), nil)
		}
		if err := t.runTools(ctx, step, reply); err != nil {
			return t.end(ctx, switchboard.TurnCancelled, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
		}
		if t.ev != nil {
			t.ev.StepFinished(step)
		}
	}
}

func (t *turn) callModel(ctx context.Context) (switchboard.ModelReply, error) {
	msgs := t.history
	if p := t.o.opts.SystemPrompt; p != "" {
		msgs = append([]switchboard.Message{{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: p}}, msgs...)
	}
	var onText func(string)
	if t.ev != nil {
		onText = t.ev.TextDelta
	}
	s := time.Now()
	reply, err := t.o.model.Complete(ctx, switchboard.ModelRequest{Messages: msgs, Tools: t.catalog.Definitions()}, onText)
	t.timing.LLM += time.Since(s)
	t.rec.Steps++
	t.rec.PromptTokens += reply.PromptTokens
	t.rec.CompletionTokens += reply.CompletionTokens
	return reply, err
}

// runTools records the step's calls as started (one commit, together with
// what the previous step left unsaved), runs them, and appends the model's
// request and the results to the history. It returns ctx's error when the
// turn was cancelled while tools ran.
func (t *turn) runTools(ctx context.Context, step int, reply switchboard.ModelReply) error {
	asked := t.message(switchboard.RoleAssistant, switchboard.MessageToolCall, reply.Content)
	asked.ToolCalls = reply.ToolCalls
	now := time.Now()
	batch := make([]switchboard.ToolCall, len(reply.ToolCalls))
	for i, rc := range reply.ToolCalls {
		c := t.catalog.Prepare(rc, t.caller)
		c.ID = switchboard.NewID()
		c.TurnID = t.rec.ID
		c.Step = step
		c.StartedAt = now
		if c.Finished() {
			c.FinishedAt = now
		}
		batch[i] = c
	}
	t.unsaved = append(t.unsaved, asked)
	if err := t.save(ctx, append(t.finished, batch...)); err != nil {
		return err
	}
	t.finished = t.finished[:0]

	s := time.Now()
	for i := range batch {
		c := &batch[i]
		if t.ev != nil {
			t.ev.ToolStarted(*c)
		}
		t.catalog.Run(ctx, c)
		if t.ev != nil {
			t.ev.ToolFinished(*c)
		}
		t.o.logger.LogAttrs(ctx, slog.LevelInfo, "tool call",
			slog.String("turn_id", t.rec.ID), slog.String("call_id", c.ID), slog.String("server", c.Server),
			slog.String("tool", c.Tool), slog.String("status", string(c.Status)), slog.Duration("duration", c.Duration))
	}
	t.timing.Tools += time.Since(s)

	t.history = append(t.history, asked)
	for _, c := range batch {
		res := t.message(switchboard.RoleTool, switchboard.MessageToolResult, c.Result)
		res.ToolCallID = c.CallID
		res.ToolName = c.ExposedName
		t.history = append(t.history, res)
		t.unsaved = append(t.unsaved, res)
	}
	t.finished = append(t.finished, batch...)
	t.calls = append(t.calls, batch...)
	return ctx.Err()
}

// save commits the turn's progress with the unsaved messages and the given
// ledger rows.
func (t *turn) save(ctx context.Context, calls []switchboard.ToolCall) error {
	s := time.Now()
	err := t.o.store.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: t.rec, Messages: t.unsaved, ToolCalls: calls})
	t.timing.Store += time.Since(s)
	if err != nil {
		return fmt.Errorf("save turn %s: %w", t.rec.ID, err)
	}
	t.unsaved = t.unsaved[:0]
	return nil
}

// end stores the turn's final state with its last message, even when ctx
// was cancelled, and returns the result, or cause when the turn failed.
func (t *turn) end(ctx context.Context, status switchboard.TurnStatus, last switchboard.Message, cause error) (*Result, error) {
	t.rec.Status = status
	t.rec.FinishedAt = time.Now()
	if cause != nil {
		t.rec.Error = errorNote(cause)
	}
	t.timing.Overhead = t.rec.FinishedAt.Sub(t.wallStart) - t.timing.LLM - t.timing.Tools - t.timing.Store
	t.rec.Timing = t.timing
	t.unsaved = append(t.unsaved, last)
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.o.opts.SaveTimeout)
	defer cancel()
	err := t.save(saveCtx, t.finished)
	t.rec.Timing.Store = t.timing.Store // the final write counts too, for the caller
	if err != nil {
		return nil, err
	}
	if cause != nil {
		return nil, cause
	}
	return &Result{Turn: t.rec, Message: last, ToolCalls: t.calls}, nil
}

func (t *turn) message(role switchboard.Role, typ switchboard.MessageType, content string) switchboard.Message {
	return switchboard.Message{ID: switchboard.NewID(), ConversationID: t.rec.ConversationID, TurnID: t.rec.ID,
		Role: role, Type: typ, Content: content, Timestamp: time.Now()}
}

func (t *turn) assistantText(content string) switchboard.Message {
	return t.message(switchboard.RoleAssistant, switchboard.MessageText, content)
}

// trimHistory drops messages from the front of the window until it starts
// with a user message, so that no tool result is replayed without the
// assistant message that asked for it (OpenAI rejects such a request).
func trimHistory(h []switchboard.Message) []switchboard.Message {
	for i, m := range h {
		if m.Role == switchboard.RoleUser {
			return h[i:]
		}
	}
	return h[:0]
}

// errorNote is what a failed turn records: the client-facing message when
// there is one, else the error.
func errorNote(err error) string {
	if errors.Is(err, context.Canceled) {
		return "the turn was cancelled"
	}
	if m := switchboard.ErrorMessage(err); m != "" {
		return m
	}
	return err.Error()
}

// keyedMutex serialises turns of one conversation within this process.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
