package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
	"github.com/switchboard-dev/switchboard/tools"
)

// lab is a real MCP server, served in process over streamable HTTP, with
// tools that let the tests observe concurrency, cancellation and size.
type lab struct {
	mu        sync.Mutex
	arrived   int
	meet      chan struct{}
	inFlight  atomic.Int32
	maxFlight atomic.Int32
	cancelled chan string   // names of calls whose context ended early
	sleeping  chan struct{} // a sleep call is running in the server
	calls     []string      // write calls, in the order they ran
}

func newLab(t *testing.T) (*lab, *mcpclient.Conn) {
	l := &lab{meet: make(chan struct{}), cancelled: make(chan string, 16), sleeping: make(chan struct{}, 16)}
	s := server.NewMCPServer("lab", "1.0.0", server.WithToolCapabilities(false))
	track := func(f server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n := l.inFlight.Add(1)
			defer l.inFlight.Add(-1)
			for {
				m := l.maxFlight.Load()
				if n <= m || l.maxFlight.CompareAndSwap(m, n) {
					break
				}
			}
			return f(ctx, r)
		}
	}
	// rendezvous returns once n calls are in it at the same time, or says
	// it was alone after a while: proof of concurrency without timing.
	s.AddTool(mcp.NewTool("rendezvous", mcp.WithReadOnlyHintAnnotation(true), mcp.WithNumber("n", mcp.Required())),
		track(func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n := r.GetInt("n", 2)
			l.mu.Lock()
			l.arrived++
			if l.arrived == n {
				close(l.meet)
			}
			l.mu.Unlock()
			select {
			case <-l.meet:
				return mcp.NewToolResultText("met"), nil
			case <-time.After(3 * time.Second):
				return mcp.NewToolResultText("alone"), nil
			}
		}))
	s.AddTool(mcp.NewTool("sleep", mcp.WithReadOnlyHintAnnotation(true), mcp.WithNumber("ms", mcp.Required())),
		track(func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case l.sleeping <- struct{}{}:
			default:
			}
			select {
			case <-time.After(time.Duration(r.GetInt("ms", 0)) * time.Millisecond):
				return mcp.NewToolResultText("slept"), nil
			case <-ctx.Done():
				l.cancelled <- "sleep"
				return nil, ctx.Err()
			}
		}))
	s.AddTool(mcp.NewTool("big", mcp.WithReadOnlyHintAnnotation(true), mcp.WithNumber("n", mcp.Required())),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var b strings.Builder
			for i := 0; b.Len() < r.GetInt("n", 0); i++ {
				fmt.Fprintf(&b, "line %05d é\n", i)
			}
			return mcp.NewToolResultText(b.String()[:r.GetInt("n", 0)]), nil
		})
	s.AddTool(mcp.NewTool("write", mcp.WithDestructiveHintAnnotation(true), mcp.WithString("x", mcp.Required())),
		track(func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			x := r.GetString("x", "")
			time.Sleep(20 * time.Millisecond) // long enough for an overlap to show in maxFlight
			l.mu.Lock()
			l.calls = append(l.calls, x)
			l.mu.Unlock()
			return mcp.NewToolResultText("wrote " + x), nil
		}))
	// images returns PNGs of the sizes given (each byte its index), then an
	// SVG and a 40-byte GIF.
	s.AddTool(mcp.NewTool("images", mcp.WithReadOnlyHintAnnotation(true), mcp.WithArray("sizes", mcp.Required())),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res := &mcp.CallToolResult{}
			for i, n := range r.GetIntSlice("sizes", nil) {
				res.Content = append(res.Content, mcp.NewImageContent(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, n)), "image/png"))
			}
			res.Content = append(res.Content,
				mcp.NewImageContent(base64.StdEncoding.EncodeToString([]byte("<svg/>")), "image/svg+xml"),
				mcp.NewImageContent(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("G"), 40)), "image/gif"))
			return res, nil
		})
	s.AddTool(mcp.NewTool("fail"), func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultError("the disk is full"), nil
	})
	srv := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(srv.Close)
	conn, err := mcpclient.Dial(context.Background(), mcpclient.Config{Name: "lab", URL: srv.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return l, conn
}

// rig is an orchestrator over a scripted model, the lab server and a store.
type rig struct {
	o     *orchestrator.Orchestrator
	model *llmtest.Server
	store orchestrator.Store
	lab   *lab
	reg   *tools.Registry
}

type storeFactory func(t *testing.T) orchestrator.Store

func stores() map[string]storeFactory {
	return map[string]storeFactory{
		"memory": func(t *testing.T) orchestrator.Store { return store.NewMemory() },
		"postgres": func(t *testing.T) orchestrator.Store {
			pg, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pg.Close)
			return pg
		},
	}
}

func newRig(t *testing.T, st orchestrator.Store, respond llmtest.Responder, opts *orchestrator.Options) *rig {
	t.Helper()
	return newRigWith(t, st, respond, tools.Policy{}, opts)
}

// newRigWith is newRig with the lab server's policy (its timeout is 5s).
func newRigWith(t *testing.T, st orchestrator.Store, respond llmtest.Responder, policy tools.Policy, opts *orchestrator.Options) *rig {
	t.Helper()
	l, conn := newLab(t)
	policy.Timeout = 5 * time.Second
	catalog, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(conn), Policy: policy}})
	if err != nil {
		t.Fatal(err)
	}
	model := llmtest.NewServer(respond)
	t.Cleanup(model.Close)
	reg := tools.NewRegistry(catalog)
	client := llm.New(llm.Config{BaseURL: model.URL, APIKey: "k", MaxRetries: -1}, nil)
	return &rig{o: orchestrator.New(client, reg, st, opts), model: model, store: st, lab: l, reg: reg}
}

func calls(cs ...llmtest.Call) llmtest.Reply { return llmtest.Reply{ToolCalls: cs} }

func call(id, name, args string) llmtest.Call {
	return llmtest.Call{ID: id, Name: name, Arguments: args}
}

// toolMessages returns the tool messages of a model request, as id=content.
func toolMessages(req openai.ChatCompletionRequest) []string {
	var out []string
	for _, m := range req.Messages {
		if m.Role == openai.ChatMessageRoleTool {
			out = append(out, m.ToolCallID+"="+m.Content)
		}
	}
	return out
}

func TestParallelReadOnlyCallsKeepTheirOrder(t *testing.T) {
	r := newRig(t, store.NewMemory(), llmtest.Sequence(
		calls(call("a", "lab__rendezvous", `{"n":3,"tag":"a"}`), call("b", "lab__rendezvous", `{"n":3,"tag":"b"}`), call("c", "lab__rendezvous", `{"n":3,"tag":"c"}`)),
		llmtest.Reply{Text: "done"},
	), nil)
	res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := toolMessages(r.model.Requests()[1])
	if diff := cmp.Diff([]string{"a=met", "b=met", "c=met"}, got); diff != "" {
		t.Errorf("results to the model (-want +got), all three must have met at once:\n%s", diff)
	}
	if len(res.ToolCalls) != 3 || res.ToolCalls[0].CallID != "a" || res.ToolCalls[2].CallID != "c" {
		t.Errorf("result calls: got %+v", res.ToolCalls)
	}
}

func TestWritesRunInOrder(t *testing.T) {
	r := newRig(t, store.NewMemory(), llmtest.Sequence(
		calls(call("1", "lab__write", `{"x":"one"}`), call("2", "lab__write", `{"x":"two"}`), call("3", "lab__write", `{"x":"three"}`)),
		llmtest.Reply{Text: "done"},
	), nil)
	if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"one", "two", "three"}, r.lab.calls); diff != "" || r.lab.maxFlight.Load() != 1 {
		t.Errorf("writes: order diff %s, max in flight %d; want in order, one at a time", diff, r.lab.maxFlight.Load())
	}
}

func TestParallelServerOption(t *testing.T) {
	r := newRigWith(t, store.NewMemory(), llmtest.Sequence(
		calls(call("1", "lab__write", `{"x":"one"}`), call("2", "lab__write", `{"x":"two"}`)),
		llmtest.Reply{Text: "done"},
	), tools.Policy{Parallel: true}, nil)
	if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, nil); err != nil {
		t.Fatal(err)
	}
	if r.lab.maxFlight.Load() != 2 {
		t.Errorf("max in flight: got %d, want 2 on a server configured parallel", r.lab.maxFlight.Load())
	}
}

var readMore = regexp.MustCompile(`call_id "([^"]+)" and offset (\d+)`)

func TestOutputBudgetAndPaging(t *testing.T) {
	const size = 40000
	r := newRig(t, store.NewMemory(), func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		switch {
		case n == 0:
			return calls(call("big", "lab__big", fmt.Sprintf(`{"n":%d}`, size)))
		case n < 4:
			m := readMore.FindStringSubmatch(last.Content)
			if m == nil {
				return llmtest.Reply{Text: "no more to read"}
			}
			return calls(call(fmt.Sprintf("r%d", n), "read_tool_result", fmt.Sprintf(`{"call_id":%q,"offset":%s}`, m[1], m[2])))
		}
		return llmtest.Reply{Text: "read it all"}
	}, nil)
	res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqs := r.model.Requests()
	var seen strings.Builder
	for i := 1; i < len(reqs); i++ {
		last := reqs[i].Messages[len(reqs[i].Messages)-1]
		body, _, _ := strings.Cut(last.Content, "\n\n[truncated:")
		if len(body) > tools.DefaultOutputBudget {
			t.Errorf("request %d: the model saw %d bytes of one result, budget %d", i, len(body), tools.DefaultOutputBudget)
		}
		if !utf8Valid(body) {
			t.Errorf("request %d: a character was split", i)
		}
		seen.WriteString(body)
	}
	big := res.ToolCalls[0]
	if !big.Truncated || len(big.Result) != size {
		t.Errorf("ledger row: truncated %v, result %d bytes; want the full %d bytes kept", big.Truncated, len(big.Result), size)
	}
	if seen.String() != big.Result {
		t.Errorf("paging through read_tool_result: got %d bytes, want the whole %d-byte result in order", seen.Len(), size)
	}
	if got := res.Message.Content; got != "read it all" && got != "no more to read" {
		t.Errorf("final message: got %q", got)
	}
	for _, c := range res.ToolCalls[1:] {
		if c.Server != "switchboard" || c.Tool != "read_tool_result" || c.Status != switchboard.CallSucceeded {
			t.Errorf("read_tool_result row: got %+v", c)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestReadToolResultIsPrivate(t *testing.T) {
	st := store.NewMemory()
	var stolen string
	r := newRig(t, st, func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		switch n {
		case 0:
			return calls(call("big", "lab__big", `{"n":20000}`))
		case 1:
			stolen = readMore.FindStringSubmatch(last.Content)[1]
			return llmtest.Reply{Text: "ok"}
		case 2: // another user's turn, with paging offered by a truncation of their own
			return calls(call("big2", "lab__big", `{"n":20000}`))
		case 3:
			return calls(call("steal", "read_tool_result", fmt.Sprintf(`{"call_id":%q,"offset":0}`, stolen)))
		}
		return llmtest.Reply{Text: last.Content}
	}, nil)
	if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "alice", Content: "go"}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "mallory", Content: "go"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message.Content, "no tool result with call_id") {
		t.Errorf("another user's result: the model got %q", res.Message.Content)
	}
}

func TestCancelEndsTheTurn(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			r := newRig(t, st, llmtest.Sequence(calls(call("s", "lab__sleep", `{"ms":30000}`)), llmtest.Reply{Text: "never"}), nil)
			ev := &recorder{started: make(chan struct{})}
			errc := make(chan error, 1)
			var res *orchestrator.Result
			go func() {
				var err error
				res, err = r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, ev)
				errc <- err
			}()
			<-ev.started
			<-r.lab.sleeping // the call reached the server
			// Another user's conversation is not found, as for the API.
			if _, err := r.o.Cancel(context.Background(), "someone-else", ev.turn.ConversationID); switchboard.ErrorCode(err) != "conversation_not_found" {
				t.Errorf("cancel by another user: got %v, want conversation_not_found", err)
			}
			if _, err := r.o.Cancel(context.Background(), "u", ev.turn.ConversationID); err != nil {
				t.Fatal(err)
			}
			err := <-errc
			if !errors.Is(err, context.Canceled) || res != nil {
				t.Fatalf("Run: got %v, want context.Canceled", err)
			}
			select {
			case <-r.lab.cancelled:
			case <-time.After(5 * time.Second):
				t.Error("the MCP server never saw the call cancelled")
			}
			turn, row := storedTurn(t, st, ev.turn)
			if turn.Status != switchboard.TurnCancelled || turn.FinishedAt.IsZero() {
				t.Errorf("stored turn: got %+v, want cancelled", turn)
			}
			if row.Status != switchboard.CallCancelled {
				t.Errorf("ledger row: got %s, want cancelled", row.Status)
			}
			if _, err := r.o.Cancel(context.Background(), "u", ev.turn.ConversationID); !errors.Is(err, switchboard.ErrConflict) {
				t.Errorf("cancel with nothing running: got %v, want a conflict", err)
			}
		})
	}
}

// storedTurn reads a turn and its first ledger row back.
func storedTurn(t *testing.T, st orchestrator.Store, turn switchboard.Turn) (switchboard.Turn, switchboard.ToolCall) {
	t.Helper()
	got, err := st.GetTurn(context.Background(), turn.UserID, turn.ID)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := st.ListToolCalls(context.Background(), switchboard.ToolCallFilter{TurnID: turn.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		return got, switchboard.ToolCall{}
	}
	return got, rows[len(rows)-1]
}

// recorder is an orchestrator.Events that keeps what it saw.
type recorder struct {
	mu      sync.Mutex
	turn    switchboard.Turn
	events  []string
	started chan struct{} // closed at the first ToolStarted
	once    sync.Once
}

func (r *recorder) add(s string) { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recorder) TurnStarted(t switchboard.Turn) {
	r.mu.Lock()
	r.turn = t
	r.mu.Unlock()
	r.add("turn")
}
func (r *recorder) StepStarted(n int)  { r.add(fmt.Sprintf("step %d", n)) }
func (r *recorder) TextDelta(d string) { r.add("text " + d) }
func (r *recorder) StepFinished(n int) { r.add(fmt.Sprintf("end step %d", n)) }
func (r *recorder) ToolFinished(c switchboard.ToolCall) {
	r.add("done " + c.ExposedName + " " + string(c.Status))
}
func (r *recorder) ApprovalRequested(c switchboard.ToolCall) { r.add("approve? " + c.ExposedName) }
func (r *recorder) ToolProgress(c switchboard.ToolCall, p switchboard.ToolProgress) {
	r.add(fmt.Sprintf("progress %s %g/%g %s", c.ExposedName, p.Progress, p.Total, p.Message))
}
func (r *recorder) ToolStarted(c switchboard.ToolCall) {
	r.add("run " + c.ExposedName)
	if r.started != nil {
		r.once.Do(func() { close(r.started) })
	}
}

func TestEventsOfAStreamedTurn(t *testing.T) {
	r := newRig(t, store.NewMemory(), llmtest.Sequence(
		llmtest.Reply{Text: "Let me check. ", ToolCalls: []llmtest.Call{call("f", "lab__fail", `{}`)}},
		llmtest.Reply{Text: "The disk is full."},
	), nil)
	ev := &recorder{}
	if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, ev); err != nil {
		t.Fatal(err)
	}
	want := []string{"turn", "step 1", "text Let ", "text me ", "text check. ", "run lab__fail", "done lab__fail failed", "end step 1",
		"step 2", "text The ", "text disk ", "text is ", "text full.", "end step 2"}
	if diff := cmp.Diff(want, ev.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if !r.model.Requests()[0].Stream {
		t.Error("a turn with events did not stream the model")
	}
}

func TestGuards(t *testing.T) {
	t.Run("max steps", func(t *testing.T) {
		r := newRig(t, store.NewMemory(), func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
			return calls(call("", "lab__sleep", fmt.Sprintf(`{"ms":%d}`, n)))
		}, &orchestrator.Options{MaxSteps: 3})
		res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Turn.Status != switchboard.TurnMaxSteps || res.Turn.Steps != 3 || len(r.model.Requests()) != 3 || !strings.Contains(res.Message.Content, "3 model calls") {
			t.Errorf("got status %s after %d steps (%d requests): %q", res.Turn.Status, res.Turn.Steps, len(r.model.Requests()), res.Message.Content)
		}
	})
	t.Run("repeated call", func(t *testing.T) {
		r := newRig(t, store.NewMemory(), func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
			return calls(call("", "lab__sleep", `{"ms": 1}`)) // the same arguments every time
		}, nil)
		res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "go"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Turn.Status != switchboard.TurnMaxSteps || len(r.model.Requests()) != 3 || !strings.Contains(res.Turn.Error, "same call") {
			t.Errorf("got status %s, %d model calls, error %q; want a stop at the third identical call", res.Turn.Status, len(r.model.Requests()), res.Turn.Error)
		}
		if last := res.ToolCalls[2]; last.Status != switchboard.CallFailed || !strings.Contains(last.Error, "refused") {
			t.Errorf("third call: got %+v, want refused", last)
		}
	})
	t.Run("model failure keeps the message", func(t *testing.T) {
		st := store.NewMemory()
		r := newRig(t, st, llmtest.Sequence(llmtest.Reply{Status: 500}), nil)
		ev := &recorder{}
		_, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "hello?"}, ev)
		if !errors.Is(err, switchboard.ErrUpstream) {
			t.Fatalf("got %v, want ErrUpstream", err)
		}
		turn, _ := storedTurn(t, st, ev.turn)
		msgs, _ := st.ListMessages(context.Background(), "u", ev.turn.ConversationID)
		if turn.Status != switchboard.TurnFailed || len(msgs) != 2 || msgs[0].Content != "hello?" || msgs[1].Type != switchboard.MessageError {
			t.Errorf("stored: turn %s, messages %+v; want failed with the user's message and an error note", turn.Status, msgs)
		}
	})
}

// approveWrites asks for approval of the lab's destructive tools.
var approveWrites = tools.Policy{RequireApproval: tools.ApprovalPolicy{All: tools.ApprovalDestructive}}

func TestApprovalSurvivesARestart(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			script := llmtest.Sequence(
				calls(call("w", "lab__write", `{"x":"precious"}`), call("s", "lab__sleep", `{"ms":1}`)),
				llmtest.Reply{Text: "Written."},
				calls(call("w2", "lab__write", `{"x":"again"}`)),
				llmtest.Reply{Text: "Not written."},
			)
			r := newRigWith(t, st, script, approveWrites, nil)
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "write it"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Turn.Status != switchboard.TurnAwaitingApproval || len(res.Pending) != 1 || res.Pending[0].Tool != "write" {
				t.Fatalf("got %s with pending %+v, want awaiting approval of write", res.Turn.Status, res.Pending)
			}
			if len(r.lab.calls) != 0 {
				t.Fatalf("the write ran before approval: %v", r.lab.calls)
			}
			pending := res.Pending[0]
			conv := res.Turn.ConversationID

			// A new orchestrator over the same store: a restart.
			client := llm.New(llm.Config{BaseURL: r.model.URL, APIKey: "k"}, nil)
			restarted := orchestrator.New(client, r.reg, st, nil)
			if _, err := restarted.Decide(context.Background(), orchestrator.Decision{UserID: "mallory", ConversationID: conv, CallID: pending.ID, Approve: true}, nil); !errors.Is(err, switchboard.ErrNotFound) {
				t.Errorf("another user's approval: got %v, want not found", err)
			}
			res, err = restarted.Decide(context.Background(), orchestrator.Decision{UserID: "u", ConversationID: conv, CallID: pending.ID, Approve: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Turn.Status != switchboard.TurnCompleted || res.Message.Content != "Written." || res.Turn.ID != pending.TurnID {
				t.Errorf("after approval: got %s %q", res.Turn.Status, res.Message.Content)
			}
			if diff := cmp.Diff([]string{"precious"}, r.lab.calls); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if got := toolMessages(r.model.Requests()[1]); len(got) != 2 || got[0] != "s=slept" || got[1] != "w=wrote precious" {
				t.Errorf("results the model got after approval: %q", got)
			}
			if _, err := restarted.Decide(context.Background(), orchestrator.Decision{UserID: "u", ConversationID: conv, CallID: pending.ID, Approve: true}, nil); !errors.Is(err, switchboard.ErrConflict) {
				t.Errorf("deciding twice: got %v, want a conflict", err)
			}

			// Deny the next one: the model is told, nothing runs.
			res, err = restarted.Run(context.Background(), orchestrator.Request{UserID: "u", ConversationID: conv, Content: "again"}, nil)
			if err != nil || len(res.Pending) != 1 {
				t.Fatalf("second write: %v %+v", err, res)
			}
			res, err = restarted.Decide(context.Background(), orchestrator.Decision{UserID: "u", ConversationID: conv, CallID: res.Pending[0].ID, Approve: false, Reason: "not now"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			row, _ := st.GetToolCall(context.Background(), "u", res.ToolCalls[0].ID)
			if row.Status != switchboard.CallDenied || !strings.Contains(row.Error, "not now") || len(r.lab.calls) != 1 {
				t.Errorf("denied row: got %+v, writes %v", row, r.lab.calls)
			}
			last := r.model.Requests()[3].Messages
			if got := last[len(last)-1]; got.Role != "tool" || !strings.Contains(got.Content, "denied") {
				t.Errorf("the model was told: %+v", got)
			}
		})
	}
}

func TestHistoryNeverSplitsACall(t *testing.T) {
	// Each turn adds user, tool request, tool result, answer: with a window
	// of 6 messages the cut falls inside an earlier turn.
	r := newRig(t, store.NewMemory(), func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
		if n%2 == 0 {
			return calls(call(fmt.Sprintf("c%d", n), "lab__sleep", fmt.Sprintf(`{"ms":%d}`, n)))
		}
		return llmtest.Reply{Text: "ok"}
	}, &orchestrator.Options{HistoryLimit: 6})
	conv := ""
	for i := 0; i < 4; i++ {
		res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", ConversationID: conv, Content: fmt.Sprint("turn ", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		conv = res.Turn.ConversationID
	}
	for i, req := range r.model.Requests() {
		if req.Messages[0].Role != "user" {
			t.Errorf("request %d starts with a %s message", i, req.Messages[0].Role)
		}
		asked := map[string]bool{}
		for _, m := range req.Messages {
			for _, c := range m.ToolCalls {
				asked[c.ID] = true
			}
			if m.Role == "tool" && !asked[m.ToolCallID] {
				t.Errorf("request %d: tool result %s without its request", i, m.ToolCallID)
			}
		}
	}
}

func TestConcurrentTurnsOfOneConversationAreSerialised(t *testing.T) {
	r := newRig(t, store.NewMemory(), func(n int, _ *openai.ChatCompletionRequest) llmtest.Reply {
		return llmtest.Reply{Text: "ok"}
	}, nil)
	first, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "start"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", ConversationID: first.Turn.ConversationID, Content: fmt.Sprint(i)}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	msgs, err := r.store.ListMessages(context.Background(), "u", first.Turn.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 22 {
		t.Fatalf("messages: got %d, want 22", len(msgs))
	}
	for i := 0; i < len(msgs); i += 2 { // every user message is followed by its own answer
		if msgs[i].Role != switchboard.RoleUser || msgs[i+1].Role != switchboard.RoleAssistant || msgs[i].TurnID != msgs[i+1].TurnID {
			t.Fatalf("transcript interleaved at %d: %+v / %+v", i, msgs[i], msgs[i+1])
		}
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGoldenTranscript: what the model receives in a multi-step turn — the
// messages of each request, tool calls and results with their ids, and the
// tools offered — against testdata/multistep.golden (go test -update
// rewrites it).
func TestGoldenTranscript(t *testing.T) {
	r := newRig(t, store.NewMemory(), llmtest.Sequence(
		llmtest.Reply{Text: "Let me look.", ToolCalls: []llmtest.Call{call("c1", "lab__big", `{"n":39}`), call("c2", "lab__fail", `{}`)}},
		llmtest.Reply{ToolCalls: []llmtest.Call{call("c3", "lab__write", `{"x":"note"}`)}},
		llmtest.Reply{Text: "Done: wrote a note."},
	), &orchestrator.Options{SystemPrompt: "You are a test."})
	if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "look, then write"}, nil); err != nil {
		t.Fatal(err)
	}
	type msg struct {
		Role       string   `json:"role"`
		Content    string   `json:"content,omitempty"`
		ToolCalls  []string `json:"tool_calls,omitempty"`
		ToolCallID string   `json:"tool_call_id,omitempty"`
	}
	type request struct {
		Tools    []string `json:"tools"`
		Messages []msg    `json:"messages"`
	}
	var got []request
	for _, req := range r.model.Requests() {
		var rq request
		for _, tl := range req.Tools {
			params, _ := json.Marshal(tl.Function.Parameters)
			rq.Tools = append(rq.Tools, tl.Function.Name+" "+string(params))
		}
		for _, m := range req.Messages {
			mm := msg{Role: m.Role, Content: m.Content, ToolCallID: m.ToolCallID}
			for _, c := range m.ToolCalls {
				mm.ToolCalls = append(mm.ToolCalls, c.ID+" "+c.Function.Name+" "+c.Function.Arguments)
			}
			rq.Messages = append(rq.Messages, mm)
		}
		got = append(got, rq)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	golden := filepath.Join("testdata", "multistep.golden")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(b)); diff != "" {
		t.Errorf("what the model received (-golden +got); go test -update rewrites the golden file:\n%s", diff)
	}
}

// TestCancelWhileAnApprovedCallRuns: stopping a turn while the call a person
// approved runs ends the turn cancelled, records the call, and leaves the
// conversation free at once.
func TestCancelWhileAnApprovedCallRuns(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			approveSleep := tools.Policy{RequireApproval: tools.ApprovalPolicy{Tools: map[string]tools.Approval{"sleep": tools.ApprovalAlways}}}
			r := newRigWith(t, st, llmtest.Sequence(calls(call("s", "lab__sleep", `{"ms":30000}`)), llmtest.Reply{Text: "next"}),
				approveSleep, nil)
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "sleep"}, nil)
			if err != nil || len(res.Pending) != 1 {
				t.Fatalf("Run: got %v, %+v, want a call awaiting approval", err, res)
			}
			conv, pending := res.Turn.ConversationID, res.Pending[0]
			errc := make(chan error, 1)
			go func() {
				_, err := r.o.Decide(context.Background(), orchestrator.Decision{UserID: "u", ConversationID: conv, CallID: pending.ID, Approve: true}, nil)
				errc <- err
			}()
			<-r.lab.sleeping // the approved call reached the server
			if _, err := r.o.Cancel(context.Background(), "u", conv); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("Decide: got %v, want context.Canceled", err)
			}
			turn, row := storedTurn(t, st, res.Turn)
			if turn.Status != switchboard.TurnCancelled || row.Status != switchboard.CallCancelled {
				t.Errorf("stored: turn %s, call %s; want both cancelled", turn.Status, row.Status)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			next, err := r.o.Run(ctx, orchestrator.Request{UserID: "u", ConversationID: conv, Content: "and now?"}, nil)
			if err != nil || next.Message.Content != "next" {
				t.Errorf("the next message: got %v, %+v, want it answered at once", err, next)
			}
		})
	}
}

// failingDecisions is a memory store whose next DecideToolCall fails as a
// store that went away does.
type failingDecisions struct {
	*store.Memory
	fail atomic.Bool
}

func (s *failingDecisions) DecideToolCall(ctx context.Context, userID, id string, approve bool) (switchboard.ToolCall, error) {
	if s.fail.Swap(false) {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, switchboard.ErrUnavailable)
	}
	return s.Memory.DecideToolCall(ctx, userID, id, approve)
}

// TestDecisionsSentWithAMessage: decisions that come with a new message
// (Request.Decisions) are applied first; one the store could not take, or
// a request cancelled, stops the request before the message is stored —
// which would cancel the call — and a retry applies it.
func TestDecisionsSentWithAMessage(t *testing.T) {
	st := &failingDecisions{Memory: store.NewMemory()}
	r := newRigWith(t, st, llmtest.Sequence(
		calls(call("w", "lab__write", `{"x":"precious"}`)),
		llmtest.Reply{Text: "Written."},
		llmtest.Reply{Text: "Noted."},
	), approveWrites, nil)
	ctx := context.Background()
	res, err := r.o.Run(ctx, orchestrator.Request{UserID: "u", Content: "write it"}, nil)
	if err != nil || len(res.Pending) != 1 {
		t.Fatalf("write: %v %+v", err, res)
	}
	conv, pending := res.Turn.ConversationID, res.Pending[0].ID
	next := orchestrator.Request{UserID: "u", ConversationID: conv, Content: "and now?",
		Decisions: []orchestrator.Decision{{CallID: pending, Approve: true}}}
	unchanged := func(what string) {
		t.Helper()
		msgs, _ := st.ListMessages(ctx, "u", conv)
		c, _ := st.GetToolCall(ctx, "u", pending)
		if len(msgs) != 2 || c.Status != switchboard.CallAwaitingApproval || len(r.lab.calls) != 0 {
			t.Errorf("%s: %d messages, call %s, writes %v; want the message not stored and the call still awaiting", what, len(msgs), c.Status, r.lab.calls)
		}
	}

	st.fail.Store(true)
	if _, err := r.o.Run(ctx, next, nil); !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("the store failing the decision: got %v, want unavailable", err)
	}
	unchanged("after the store failed the decision")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.o.Run(cancelled, next, nil); err == nil {
		t.Errorf("a cancelled request: got no error")
	}
	unchanged("after a cancelled request")

	res, err = r.o.Run(ctx, next, nil)
	if err != nil || res.Message.Content != "Noted." {
		t.Fatalf("the retry: %v %+v", err, res)
	}
	if c, _ := st.GetToolCall(ctx, "u", pending); c.Status != switchboard.CallSucceeded || !slices.Equal(r.lab.calls, []string{"precious"}) {
		t.Errorf("the retry: call %s, writes %v; want the approved write run once", c.Status, r.lab.calls)
	}
}

// callRecorder is an Observer that keeps the calls it is told of.
type callRecorder struct {
	mu    sync.Mutex
	calls []switchboard.ToolCall
}

func (r *callRecorder) TurnEnded(switchboard.Turn) {}
func (r *callRecorder) ModelUsage(int, int)        {}
func (r *callRecorder) ToolCallEnded(c switchboard.ToolCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// TestANewMessageCancelsACallAwaitingApproval: the call a user went on
// from without deciding is told to the observer (metrics) as cancelled,
// with no tool time.
func TestANewMessageCancelsACallAwaitingApproval(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			rec := &callRecorder{}
			r := newRigWith(t, open(t), llmtest.Sequence(
				calls(call("w", "lab__write", `{"x":"precious"}`)),
				llmtest.Reply{Text: "Never mind, then."},
			), approveWrites, &orchestrator.Options{Observer: rec})
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "write it"}, nil)
			if err != nil || len(res.Pending) != 1 {
				t.Fatalf("write: %v %+v", err, res)
			}
			if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", ConversationID: res.Turn.ConversationID, Content: "no, don't"}, nil); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.calls) != 1 || rec.calls[0].ID != res.Pending[0].ID || rec.calls[0].Status != switchboard.CallCancelled ||
				rec.calls[0].Server != "lab" || rec.calls[0].Tool != "write" || rec.calls[0].Duration != 0 {
				t.Errorf("observed calls: got %+v, want the awaiting write, cancelled", rec.calls)
			}
		})
	}
}
