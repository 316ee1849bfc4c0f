package api_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestTraceOfATurn: a chat request with a tool call makes the span tree
// request > turn > model calls, tool call, store queries.
func TestTraceOfATurn(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	pg, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(t), &store.Options{Tracer: tp.Tracer("store")})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"milk"}`}}},
		llmtest.Reply{Text: "Added."},
	))
	defer model.Close()
	catalog, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(tasksServer(t, "stdio")), Policy: tools.Policy{Inject: map[string]string{"user_id": "user_id"}}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := tools.NewRegistry(catalog)
	orch := orchestrator.New(llm.New(llm.Config{BaseURL: model.URL, APIKey: "k"}, nil), reg, pg, &orchestrator.Options{Tracer: tp.Tracer("orchestrator")})
	authn, _ := auth.New(context.Background(), auth.Config{Secret: secret})
	srv := httptest.NewServer(api.NewHandler(api.Deps{Chat: orch, Store: pg, Tools: reg, Auth: authn}, &api.Options{Tracer: tp.Tracer("api")}))
	defer srv.Close()

	if resp := do(t, "POST", srv.URL+"/api/alice/chat", token(t, "alice"), `{"message":{"content":"add milk"}}`, nil); resp.StatusCode != 200 {
		t.Fatalf("chat: %d", resp.StatusCode)
	}
	// The request span ends after the reply is written: wait for it.
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		spans = exp.GetSpans()
		if find(spans, "POST /api/:user_id/chat") != nil || time.Now().After(deadline) {
			break
		}
	}
	req := find(spans, "POST /api/:user_id/chat")
	turn := find(spans, "turn")
	if req == nil || turn == nil {
		t.Fatalf("spans: got %v, want a request span and a turn span", names(spans))
	}
	if turn.Parent.SpanID() != req.SpanContext.SpanID() {
		t.Errorf("the turn is not a child of the request")
	}
	children := map[string]int{}
	for _, s := range spans {
		if s.Parent.SpanID() == turn.SpanContext.SpanID() {
			children[s.Name]++
		}
	}
	if children["model.call"] != 2 || children["tool.call"] != 1 || children["db.batch"] < 2 {
		t.Errorf("children of the turn: got %v, want 2 model calls, 1 tool call and the store's batches", children)
	}
	call := find(spans, "tool.call")
	attrs := map[string]string{}
	for _, a := range call.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["mcp.server"] != "tasks" || attrs["mcp.tool"] != "add_task" || attrs["tool_call.status"] != "succeeded" {
		t.Errorf("tool call span attributes: got %v", attrs)
	}
	if s := find(spans, "db.batch"); s != nil {
		for _, a := range s.Attributes {
			if v := a.Value.Emit(); len(v) > 200 {
				t.Errorf("a store span carries a long attribute (arguments?): %s=%s", a.Key, v)
			}
		}
	}
}

func find(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
