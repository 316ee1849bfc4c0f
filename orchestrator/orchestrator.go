// Package orchestrator runs Switchboard's agent loop: one turn from a user's
// message to the model's final answer, calling the model, running the tools
// it asks for (in parallel where that is safe, after a person's approval
// where that is required), feeding their results back, and storing every
// step.
package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// Model is the chat model the loop talks to. *llm.Client implements it.
type Model interface {
	// Ready returns an error when no model is configured.
	Ready() error
	// Complete sends one request; onText, when not nil, receives streamed text.
	// It modifies none of req.Messages (a store may share them with the
	// history windows of later turns: see TurnStore.BeginTurn).
	Complete(ctx context.Context, req switchboard.ModelRequest, onText func(string)) (switchboard.ModelReply, error)
}

// TurnStore persists turns. store.Memory and store.Postgres implement it.
type TurnStore interface {
	// BeginTurn commits the turn's start and returns the history window:
	// the slice is the turn's to append to, its messages are not to be
	// modified (store.Store.BeginTurn).
	BeginTurn(ctx context.Context, start *switchboard.TurnStart) ([]switchboard.Message, error)
	// SaveTurn commits the turn's progress.
	SaveTurn(ctx context.Context, update *switchboard.TurnUpdate) error
	// GetToolCall reads a ledger row of the user's (for read_tool_result
	// and approvals).
	GetToolCall(ctx context.Context, userID, id string) (switchboard.ToolCall, error)
	// GetToolCallContent reads the bytes of a binary part of a call of the
	// user's (the images a model that sees images is shown again).
	GetToolCallContent(ctx context.Context, userID, id string, index int) (switchboard.ContentPart, error)
	// RenewTurn extends the lease under which a running turn holds its
	// conversation, and reports whether its cancellation was requested
	// through the store (by another instance).
	RenewTurn(ctx context.Context, id string) (cancelRequested bool, err error)
	// RequestCancel asks, through the store, that the running turn of the
	// user's conversation be cancelled by whichever instance runs it; one
	// that no live instance holds, it fails at once and returns.
	RequestCancel(ctx context.Context, userID, conversationID string) (turnID string, interrupted *switchboard.Interrupted, err error)
	// RecoverTurns fails the turns that earlier boots of this instance
	// left running, and returns them.
	RecoverTurns(ctx context.Context) ([]switchboard.Interrupted, error)
}

// ResumeStore is what continuing a turn after an approval reads.
// store.Memory and store.Postgres implement it.
type ResumeStore interface {
	GetTurn(ctx context.Context, userID, id string) (switchboard.Turn, error)
	ListMessages(ctx context.Context, userID, conversationID string) ([]switchboard.Message, error)
	ListTurns(ctx context.Context, userID, conversationID string) ([]switchboard.Turn, error)
	DecideToolCall(ctx context.Context, userID, id string, approve bool) (switchboard.ToolCall, error)
	ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error)
	TurnByIdempotencyKey(ctx context.Context, userID, key string) (switchboard.Turn, error)
}

// ConversationStore is what finding the conversation a request names
// reads (see target). store.Memory and store.Postgres implement it.
type ConversationStore interface {
	GetConversation(ctx context.Context, userID, id string) (switchboard.Conversation, error)
	ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error)
}

// Store is everything the orchestrator stores and reads.
type Store interface {
	TurnStore
	ResumeStore
	ConversationStore
	InputStore
	SamplingStore
}

// Catalogs gives the current tool catalog. *tools.Registry implements it.
type Catalogs interface {
	Current() *tools.Catalog
}

// Locker serialises the turns of one conversation. The default serialises
// them within this process; a store-backed locker serialises them across
// instances.
type Locker interface {
	// Lock blocks until the key is free or ctx ends, and returns the
	// function that frees it.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// Observer is told what turns do, for metrics. *metrics.Metrics
// implements it.
type Observer interface {
	TurnEnded(t switchboard.Turn)
	ToolCallEnded(c switchboard.ToolCall)
	ModelUsage(prompt, completion int)
}

// Options tune the loop; nil means defaults.
type Options struct {
	// MaxSteps caps model calls per turn; 0 means DefaultMaxSteps.
	MaxSteps int
	// HistoryLimit caps the messages replayed to the model; 0 means
	// DefaultHistoryLimit.
	HistoryLimit int
	// HistoryTokens caps the approximate tokens (4 bytes each) of the
	// replayed messages; 0 means no cap beyond HistoryLimit.
	HistoryTokens int
	// SystemPrompt, when not empty, is sent first in every model request
	// (it is not stored).
	SystemPrompt string
	// SaveTimeout bounds the final store write of a turn whose request was
	// cancelled; 0 means 10s.
	SaveTimeout time.Duration
	// MaxParallelTools bounds the tool calls of one step that run at once;
	// 0 means DefaultMaxParallelTools.
	MaxParallelTools int
	// Vision sends the images tools return to the model.
	Vision Vision
	// Locker serialises turns of a conversation; nil means in-process.
	Locker Locker
	// LeaseRenewal is how often a long turn renews the lease under which it
	// holds its conversation; 0 means every 20s (a third of the store's
	// 60s lease).
	LeaseRenewal time.Duration
	// TurnWait is how long a message (or a decision) waits for a turn of
	// its conversation that runs, here or on another instance, before it
	// is refused with turn_running; 0 means DefaultTurnWait, below 0 no
	// wait at all.
	TurnWait time.Duration
	// SamplingModels name the models the model server offers to servers'
	// sampling requests, the configured one first: a request whose model
	// preferences name one of them (a hint that is part of its name) gets
	// it; any other, the first.
	SamplingModels []string
	// InputPoll is how often a call waiting for the user's answer to a
	// server's question looks at the store, for an answer given on another
	// instance whose notification it missed; 0 means every 2s.
	InputPoll time.Duration
	// Observer, when set, is told of ended turns, tool calls and model
	// usage.
	Observer Observer
	// Tracer makes the spans of turns, model calls and tool calls; nil
	// means none.
	Tracer trace.Tracer
	Logger *slog.Logger
	// Agents are the agents turns run as (see agents.go); none means one
	// implicit agent: SystemPrompt, the model, every tool. New expects
	// them checked (CheckAgents).
	Agents []Agent
	// DefaultAgent names the agent of a conversation that has none; empty
	// means the first of Agents.
	DefaultAgent string
	// MaxHandoffs caps the handoffs of one turn; 0 means
	// DefaultMaxHandoffs.
	MaxHandoffs int
}

// Defaults.
const (
	DefaultMaxSteps         = 10
	DefaultHistoryLimit     = 50
	DefaultMaxParallelTools = 4
	DefaultTurnWait         = 5 * time.Second
	// repeatLimit is how many times one identical call may be asked for in
	// a turn before the loop stops.
	repeatLimit = 3
)

// Orchestrator runs turns. It is safe for concurrent use.
type Orchestrator struct {
	model  Model
	tools  Catalogs
	store  Store
	opts   Options
	logger *slog.Logger
	agents agents

	mu      sync.Mutex
	running map[string]*runningTurn // by conversation id
	// waiting wakes the calls waiting here for answers, by input id.
	waiting map[string]chan struct{}

	// background owns the goroutines that outlive a request (reconcile);
	// Close stops and waits for them.
	background sync.WaitGroup
	closing    chan struct{}
	closeOnce  sync.Once
}

type runningTurn struct {
	turnID string
	cancel context.CancelFunc
}

// New returns an orchestrator over model, tools and store.
func New(model Model, tools Catalogs, store Store, opts *Options) *Orchestrator {
	o := &Orchestrator{model: model, tools: tools, store: store, running: map[string]*runningTurn{}, closing: make(chan struct{})}
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
	if o.opts.MaxParallelTools <= 0 {
		o.opts.MaxParallelTools = DefaultMaxParallelTools
	}
	v := &o.opts.Vision
	v.MaxImagesPerStep = cmp.Or(v.MaxImagesPerStep, DefaultMaxImagesPerStep)
	v.MaxImageBytes = cmp.Or(v.MaxImageBytes, DefaultMaxImageBytes)
	v.MaxRequestBytes = cmp.Or(v.MaxRequestBytes, DefaultMaxImageRequestBytes)
	if o.opts.LeaseRenewal <= 0 {
		o.opts.LeaseRenewal = 20 * time.Second
	}
	switch {
	case o.opts.TurnWait == 0:
		o.opts.TurnWait = DefaultTurnWait
	case o.opts.TurnWait < 0:
		o.opts.TurnWait = 0
	}
	if o.opts.Locker == nil {
		o.opts.Locker = &keyedMutex{}
	}
	o.logger = o.opts.Logger
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.opts.Tracer == nil {
		o.opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if o.opts.Observer == nil {
		o.opts.Observer = nopObserver{}
	}
	o.opts.MaxHandoffs = cmp.Or(o.opts.MaxHandoffs, DefaultMaxHandoffs)
	o.agents = newAgents(slices.Clone(o.opts.Agents), o.opts.DefaultAgent)
	return o
}

type nopObserver struct{}

func (nopObserver) TurnEnded(switchboard.Turn)         {}
func (nopObserver) ToolCallEnded(switchboard.ToolCall) {}
func (nopObserver) ModelUsage(int, int)                {}

// Request is one user message to answer, as the client sent it: Run finds
// which conversation and which of its messages the request means.
type Request struct {
	UserID string
	// ConversationID continues one of the user's conversations; empty
	// starts a new one.
	ConversationID string
	// ExternalConversationID, instead of ConversationID, names the
	// conversation with the client's own id (the AI SDK's chat id): the
	// user's conversation of that id, or of our id when it is one of the
	// user's; else a new conversation of that id. Of two first messages of
	// one chat that race to start it, the second joins the conversation the
	// first made.
	ExternalConversationID string
	Content                string
	// Regenerate answers Content again: the user message of the
	// conversation that Position names, whose text is Content; the answers
	// after it leave the transcript (see switchboard.TurnStart). Edit
	// makes Content replace the user message that Position names: it and
	// the answers after it leave the transcript. Regenerate wins over Edit.
	// In a conversation that does not exist yet, Content is simply new.
	Regenerate, Edit bool
	// Position names the message of a Regenerate or an Edit.
	Position Position
	// IdempotencyKey, when set, makes a retry of the same request (same
	// RequestHash) answer with the stored outcome instead of running again.
	IdempotencyKey string
	RequestHash    string
	// RequestID names the HTTP request in logs.
	RequestID string
	// Agent names the agent to answer as (it becomes the conversation's
	// current one); empty means the conversation's current agent, or the
	// default. Roles are the user's, for the agents' users/roles.
	Agent string
	Roles []string
	// Decisions are answers the user gave to calls awaiting approval in
	// the conversation before writing Content (an AI SDK chat sends them
	// with its next message): Run applies them first, each continuing its
	// turn to its end unseen, as Decide does. Their UserID and
	// ConversationID are the request's.
	Decisions []Decision
}

// maxDecisions caps the Decisions a request applies: a step asks for few
// calls, and each decision runs a turn.
const maxDecisions = 16

// Decision is a person's answer to a tool call awaiting approval.
type Decision struct {
	UserID         string
	ConversationID string
	// ExternalConversationID, instead of ConversationID, names the
	// conversation with the client's own id, as in Request; Decide does not
	// start one.
	ExternalConversationID string
	CallID                 string // the ledger id
	// Roles are the user's, for the handoffs the turn's agent is offered.
	Roles     []string
	Approve   bool
	Reason    string
	RequestID string // names the HTTP request in logs
}

// Events receives a turn's progress as it happens, for streaming. All calls
// come from the goroutine running the turn, in order.
type Events interface {
	// TurnStarted tells the turn's ids, once stored.
	TurnStarted(turn switchboard.Turn)
	StepStarted(step int)
	TextDelta(delta string)
	// ToolStarted is called before a tool runs, ToolFinished after; calls
	// of one step may run at once, so their ends may come in any order.
	ToolStarted(call switchboard.ToolCall)
	ToolFinished(call switchboard.ToolCall)
	// ToolProgress tells what the server of a running call reported of it
	// (MCP notifications/progress), between its ToolStarted and
	// ToolFinished. Reports a slow reader has not taken may be dropped
	// for newer ones.
	ToolProgress(call switchboard.ToolCall, p switchboard.ToolProgress)
	// ApprovalRequested tells of a call that waits for a person.
	ApprovalRequested(call switchboard.ToolCall)
	StepFinished(step int)
}

// Result is the outcome of a turn.
type Result struct {
	Turn    switchboard.Turn
	Message switchboard.Message // the final assistant message
	// ToolCalls are the calls this request ran or decided, in the order the
	// model asked for them.
	ToolCalls []switchboard.ToolCall
	// Pending are the calls awaiting approval when the turn stopped as
	// awaiting_approval.
	Pending []switchboard.ToolCall
	// Inputs are the questions of servers waiting for the user's answer
	// when the turn is reported awaiting_input.
	Inputs []switchboard.Input
	// Replayed is true when the result is that of an earlier request with
	// the same idempotency key, read back from the store.
	Replayed bool
}

// Run answers one user message: it finds the conversation and the message
// the request means (see target), stores the message, loops between the
// model and the tools until a text answer, the step cap, a repeated call or
// a call that needs approval, stores every step, and returns the outcome.
// When ev is not nil the model is streamed and ev sees each step.
//
// Errors: ErrNotFound (conversation_not_found) for a conversation that is
// not the user's; llm_not_configured before anything is stored; ErrConflict
// for a reused idempotency key; the model's errors (ErrUpstream,
// ErrUpstreamTimeout) after the turn was stored as failed; ctx's error after
// it was stored as cancelled; store errors as they come. With
// req.Decisions, first those of applying them (see decideFirst): the
// message is then not stored, though tools of the decided calls may have
// run.
//
// When a server asks the user something during a call (see asks.go), Run
// returns at once with the turn awaiting_input and its pending inputs; the
// turn goes on in the background until it is answered (Answer) or
// cancelled.
func (o *Orchestrator) Run(ctx context.Context, req Request, ev Events) (*Result, error) {
	return o.detachable(ctx, req.UserID, ev, func(ctx context.Context, ev Events) (*Result, error) {
		for attempt := 0; ; attempt++ {
			res, err := o.run(ctx, req, ev)
			// Two first messages of one new chat raced to create it: the
			// loser, which stored nothing and told ev nothing, joins the
			// conversation the winner made.
			if attempt > 0 || req.ExternalConversationID == "" || switchboard.ErrorCode(err) != "conversation_exists" {
				return res, err
			}
		}
	})
}

func (o *Orchestrator) run(ctx context.Context, req Request, ev Events) (res *Result, err error) {
	at, err := o.target(ctx, req)
	if err != nil {
		return nil, err
	}
	agent, err := o.chooseAgent(ctx, req, at.conversationID)
	if err != nil {
		return nil, err
	}
	if err := o.modelOf(agent).Ready(); err != nil {
		return nil, err
	}
	if len(req.Decisions) > 0 && at.conversationID != "" {
		if err := o.decideFirst(ctx, req, at.conversationID); err != nil {
			return nil, err
		}
	}
	ctx, span := o.opts.Tracer.Start(ctx, "turn", trace.WithAttributes(attribute.String("user.id", req.UserID)))
	defer func() { endSpan(span, err) }()
	waitUntil := time.Now().Add(o.opts.TurnWait)
	if at.conversationID != "" {
		// A new message cancels the turn waiting for the user's answer
		// to a server's question. Only a running turn waits so: one
		// here, looked for now, or one of another instance, which
		// BeginTurn finds (see begin); most messages find neither and
		// read no inputs.
		if o.runsHere(at.conversationID) {
			o.cancelAwaitingInput(ctx, req.UserID, at.conversationID)
		}
		unlock, err := o.lock(ctx, at.conversationID, waitUntil)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	t := o.newTurn(ev, req.RequestID)
	t.agent, t.roles = agent, req.Roles
	err = t.begin(ctx, req, at, waitUntil)
	if switchboard.IsCode(err, switchboard.CodeIdempotencyKeyReused) {
		return o.replay(ctx, req, ev)
	}
	if err != nil {
		return nil, err
	}
	span.SetAttributes(attribute.String("conversation.id", t.rec.ConversationID), attribute.String("turn.id", t.rec.ID))
	ctx, done := o.track(ctx, t.rec)
	defer done()
	// Told only now that Cancel can find the turn: a client that stops it
	// as soon as it hears of it must not be refused.
	if ev != nil {
		ev.TurnStarted(t.rec)
	}
	return t.loop(ctx, 1)
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errorNote(err))
	}
	span.End()
}

// Cancel ends the running turn of the user's conversation: its model
// request is aborted, its running tool calls are cancelled, and it is
// stored as cancelled. A turn that another instance runs is asked to stop
// through the store (RequestCancel): that instance hears it at once when it
// listens (CancelTurn), else at the turn's next lease renewal. It returns
// the turn: running, being cancelled; or failed, when no live instance held
// it (its instance died: the store failed it at once, with its calls). It
// returns an error wrapping ErrNotFound (conversation_not_found) when the
// user has no such conversation, and ErrConflict (no_running_turn) when no
// turn runs in it.
func (o *Orchestrator) Cancel(ctx context.Context, userID, conversationID string) (switchboard.Turn, error) {
	conv, err := o.store.GetConversation(ctx, userID, conversationID)
	if notFound(err) {
		return switchboard.Turn{}, errConversationNotFound(conversationID)
	}
	if err != nil {
		return switchboard.Turn{}, fmt.Errorf("load conversation: %w", err)
	}
	conversationID = conv.ID
	o.mu.Lock()
	r := o.running[conversationID]
	o.mu.Unlock()
	if r != nil {
		r.cancel()
		return switchboard.Turn{ID: r.turnID, ConversationID: conversationID, UserID: userID, Status: switchboard.TurnRunning}, nil
	}
	id, interrupted, err := o.store.RequestCancel(ctx, userID, conversationID)
	if err != nil {
		if notFound(err) || switchboard.IsCode(err, switchboard.CodeNoRunningTurn) {
			return switchboard.Turn{}, switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeNoRunningTurn, "no turn is running in conversation %s", conversationID)
		}
		return switchboard.Turn{}, fmt.Errorf("request cancel: %w", err)
	}
	if interrupted != nil {
		o.interrupted(ctx, *interrupted, slog.String("failed_by", "cancel"))
		return interrupted.Turn, nil
	}
	return switchboard.Turn{ID: id, ConversationID: conversationID, UserID: userID, Status: switchboard.TurnRunning}, nil
}

// Recover fails, at once, the turns that this instance ran before it
// started again (after a crash or a kill: a clean shutdown leaves none),
// with their calls, as the store's RecoverTurns does, and logs and counts
// them. Call it before taking requests, once this process is sure to be
// the only one with its instance id.
func (o *Orchestrator) Recover(ctx context.Context) error {
	turns, err := o.store.RecoverTurns(ctx)
	if err != nil {
		return fmt.Errorf("recover turns: %w", err)
	}
	for _, in := range turns {
		o.interrupted(ctx, in, slog.String("failed_by", "restart"))
	}
	if len(turns) > 0 {
		o.logger.Warn("closed the turns this instance left running when it stopped", "turns", len(turns))
	}
	o.resumeAnswered(ctx, turns)
	return nil
}

// interrupted logs and counts a turn that the store failed because no live
// instance held it, and its calls, as their own instance would have, had
// it ended them.
func (o *Orchestrator) interrupted(ctx context.Context, in switchboard.Interrupted, by slog.Attr) {
	for _, c := range in.Calls {
		o.opts.Observer.ToolCallEnded(c)
		o.logger.LogAttrs(ctx, slog.LevelInfo, "tool call",
			slog.String("user_id", c.UserID), slog.String("conversation_id", c.ConversationID),
			slog.String("turn_id", c.TurnID), slog.String("call_id", c.ID), slog.String("server", c.Server),
			slog.String("tool", c.Tool), slog.String("status", string(c.Status)), slog.String("error_class", c.ErrorClass), by)
	}
	if in.Turn.Status == switchboard.TurnAwaitingInput {
		// Not ended: a modern server's question outlives the instance,
		// and its answer continues the turn (resume.go).
		o.logger.LogAttrs(ctx, slog.LevelInfo, "turn awaits input; the instance that ran it stopped",
			slog.String("user_id", in.Turn.UserID), slog.String("conversation_id", in.Turn.ConversationID),
			slog.String("turn_id", in.Turn.ID), slog.Int("tool_calls_closed", len(in.Calls)), by)
		return
	}
	o.opts.Observer.TurnEnded(in.Turn)
	o.logger.LogAttrs(ctx, slog.LevelWarn, "turn",
		slog.String("user_id", in.Turn.UserID), slog.String("conversation_id", in.Turn.ConversationID),
		slog.String("turn_id", in.Turn.ID), slog.String("status", string(in.Turn.Status)), slog.String("error", in.Turn.Error),
		slog.Int("tool_calls", len(in.Calls)), by)
}

// lock takes the in-process lock of a conversation, waiting for it until
// waitUntil at most: then it answers turn_running.
func (o *Orchestrator) lock(ctx context.Context, conversationID string, waitUntil time.Time) (func(), error) {
	lockCtx, cancel := context.WithDeadline(ctx, waitUntil)
	defer cancel()
	unlock, err := o.opts.Locker.Lock(lockCtx, conversationID)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, o.turnRunning()
	}
	return unlock, err
}

// runsHere reports whether a turn of the conversation runs on this
// instance.
func (o *Orchestrator) runsHere(conversationID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.running[conversationID]
	return ok
}

// turnRunning is the answer to a message or a decision that waited
// TurnWait for a turn of its conversation and would have to wait longer.
func (o *Orchestrator) turnRunning() error {
	e := switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeTurnRunning,
		"another turn of this conversation is running; try again when it has ended")
	e.RetryAfter = max(time.Second, o.opts.TurnWait)
	return e
}

// CancelTurn cancels the turn with the given id if it runs here, as
// Cancel does, and reports whether it did: for cancel requests heard from
// other instances (store.ListenCancels).
func (o *Orchestrator) CancelTurn(turnID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.running {
		if r.turnID == turnID {
			r.cancel()
			return true
		}
	}
	return false
}

// Close stops the background work of the orchestrator and waits for it, at
// most until ctx ends. Turns still running are not affected: their requests
// own them.
func (o *Orchestrator) Close(ctx context.Context) error {
	o.closeOnce.Do(func() { close(o.closing) })
	done := make(chan struct{})
	go func() { o.background.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconcile marks rec failed once the store answers again: its start may
// have been committed although the client was told it failed. It gives up
// after a minute or when the orchestrator closes; a turn it could not reach
// keeps its lease, and the next turn of its conversation fails it.
func (o *Orchestrator) reconcile(rec switchboard.Turn) {
	o.background.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rec.Status, rec.Error, rec.FinishedAt = switchboard.TurnFailed, "the store failed while the turn started; the client was told so", time.Now()
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			err := o.store.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: rec})
			if err == nil {
				o.logger.Info("a turn interrupted at its start was marked failed", "turn_id", rec.ID)
				return
			}
			if !errors.Is(err, switchboard.ErrUnavailable) {
				return // not stored (ErrNotFound): nothing to mend
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			case <-o.closing:
				return
			}
		}
	})
}

// track registers the running turn for Cancel, and renews its lease while
// it runs. The returned function ends both.
//
// The renewal runs from a timer, not from a goroutine of its own: a turn
// waiting on its model then holds no second stack (each as large as the
// average goroutine's, 8 KiB and more: 40 MB at 5,000 turns in flight).
func (o *Orchestrator) track(ctx context.Context, rec switchboard.Turn) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	r := &runningTurn{turnID: rec.ID, cancel: cancel}
	o.mu.Lock()
	o.running[rec.ConversationID] = r
	o.mu.Unlock()
	var (
		mu       sync.Mutex // guards stopped and the timer's re-arming
		stopped  bool
		renewing sync.WaitGroup // a renewal under way, which stop waits for
		timer    *time.Timer
	)
	renew := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		renewing.Add(1)
		mu.Unlock()
		defer renewing.Done()
		requested, err := o.store.RenewTurn(context.WithoutCancel(ctx), rec.ID)
		if err != nil && !notFound(err) {
			o.logger.Warn("renew turn lease", "turn_id", rec.ID, "err", err)
		}
		if requested {
			o.logger.Info("turn cancelled at the request of another instance", "turn_id", rec.ID)
			cancel()
		}
		mu.Lock()
		if !stopped {
			timer.Reset(o.opts.LeaseRenewal)
		}
		mu.Unlock()
	}
	mu.Lock()
	timer = time.AfterFunc(o.opts.LeaseRenewal, renew)
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
		renewing.Wait()
		o.mu.Lock()
		if o.running[rec.ConversationID] == r {
			delete(o.running, rec.ConversationID)
		}
		o.mu.Unlock()
		cancel()
	}
}

func (o *Orchestrator) newTurn(ev Events, requestID string) *turn {
	return &turn{o: o, catalog: o.tools.Current(), ev: ev, wallStart: time.Now(), seen: map[string]int{}, requestID: requestID,
		agent: o.agents.def, subPending: map[string][]switchboard.ToolCall{}}
}

// notFound reports whether err means absent, malformed or not the user's.
func notFound(err error) bool { return errors.Is(err, switchboard.ErrNotFound) }

// keyedMutex serialises turns of one conversation within this process.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

// Lock implements Locker.
func (k *keyedMutex) Lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	return func() {
		<-l.ch
		release()
	}, nil
}
