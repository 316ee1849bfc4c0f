package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// newChatKitService is a service whose ChatKit route reads the ledger (its
// items show calls), with admins.
func newChatKitService(t *testing.T, st testStore, conn *mcpclient.Conn, respond llmtest.Responder, approval tools.ApprovalPolicy, admins ...string) *service {
	t.Helper()
	return newServiceWithDeps(t, st, conn, respond, nil, nil, admins, api.Deps{Admin: st.(api.AdminStore)}, approval)
}

// The ChatKit tests speak ChatKit's protocol to the real service and hold
// every request they send and every event and JSON reply they get to
// chatkit-python 1.6.5's JSON Schemas (testdata/chatkit, and the request
// schema the handler embeds), with formats asserted (timestamps are RFC
// 3339).

// ckSchemas are the schemas of ChatKit's requests and answers.
type ckSchemas struct {
	request, event, thread, threadsPage, itemsPage *jsonschema.Schema
}

var ckSchemaSets = map[bool]func() (*ckSchemas, error){
	true:  sync.OnceValues(func() (*ckSchemas, error) { return compileCKSchemas(true) }),
	false: sync.OnceValues(func() (*ckSchemas, error) { return compileCKSchemas(false) }),
}

// chatkitSchemas returns the schemas, with formats asserted or not
// (chatkit-python writes timestamps without a zone, which RFC 3339's
// date-time refuses).
func chatkitSchemas(t *testing.T, assertFormat bool) *ckSchemas {
	t.Helper()
	s, err := ckSchemaSets[assertFormat]()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func compileCKSchemas(assertFormat bool) (*ckSchemas, error) {
	compile := func(path string) (*jsonschema.Schema, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c := jsonschema.NewCompiler()
		if assertFormat {
			c.AssertFormat()
		}
		name := filepath.Base(path)
		if err := c.AddResource(name, doc); err != nil {
			return nil, err
		}
		return c.Compile(name)
	}
	var s ckSchemas
	var err error
	for path, dst := range map[string]**jsonschema.Schema{
		"chatkit-request.schema.json":                       &s.request,
		"testdata/chatkit/chatkit-stream_event.schema.json": &s.event,
		"testdata/chatkit/chatkit-thread.schema.json":       &s.thread,
		"testdata/chatkit/chatkit-threads_page.schema.json": &s.threadsPage,
		"testdata/chatkit/chatkit-items_page.schema.json":   &s.itemsPage,
	} {
		if *dst, err = compile(path); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

func mustJSONSchemaDoc(t *testing.T, raw []byte) any {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// validate holds raw JSON to schema.
func validate(t *testing.T, schema *jsonschema.Schema, what string, raw []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, raw)
	}
	if err := schema.Validate(doc); err != nil {
		t.Errorf("%s does not validate: %v\n%s", what, err, raw)
	}
}

// chatkit is a ChatKit client of one user.
type chatkit struct {
	t   *testing.T
	url string
	tok string
	s   *ckSchemas
}

func newChatKit(t *testing.T, svc *service, user string) *chatkit {
	return &chatkit{t: t, url: svc.url + "/api/" + user + "/chatkit", tok: token(t, user), s: chatkitSchemas(t, true)}
}

// send posts a request, which must validate, and returns the answer with
// its body read.
func (k *chatkit) send(ctx context.Context, req map[string]any) (*http.Response, []byte) {
	k.t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		k.t.Fatal(err)
	}
	validate(k.t, k.s.request, fmt.Sprintf("request %s", req["type"]), body)
	return k.raw(ctx, body)
}

// raw posts any body.
func (k *chatkit) raw(ctx context.Context, body []byte) (*http.Response, []byte) {
	k.t.Helper()
	r, err := http.NewRequestWithContext(ctx, "POST", k.url, bytes.NewReader(body))
	if err != nil {
		k.t.Fatal(err)
	}
	if k.tok != "" {
		r.Header.Set("Authorization", "Bearer "+k.tok)
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		k.t.Fatal(err)
	}
	return resp, raw
}

// json sends a request answered with JSON, wants 200 and a reply that
// validates against schema (nil: the reply is {}), and decodes it.
func (k *chatkit) json(req map[string]any, schema *jsonschema.Schema) map[string]any {
	k.t.Helper()
	resp, raw := k.send(context.Background(), req)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		k.t.Fatalf("%s: got %d %s %s, want 200 JSON", req["type"], resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		k.t.Fatal(err)
	}
	if schema == nil {
		if len(out) != 0 {
			k.t.Errorf("%s: got %s, want {}", req["type"], raw)
		}
		return out
	}
	validate(k.t, schema, fmt.Sprintf("reply to %s", req["type"]), raw)
	return out
}

// fail sends a request that must fail with status and code.
func (k *chatkit) fail(req map[string]any, status int, code string) string {
	k.t.Helper()
	resp, raw := k.send(context.Background(), req)
	return wantError(k.t, fmt.Sprint(req["type"]), resp, raw, status, code)
}

func wantError(t *testing.T, what string, resp *http.Response, raw []byte, status int, code string) string {
	t.Helper()
	var e struct {
		Success *bool
		Error   struct{ Code, Message string }
	}
	_ = json.Unmarshal(raw, &e)
	if resp.StatusCode != status || e.Success == nil || *e.Success || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: got %d %s, want %d %s with a message", what, resp.StatusCode, raw, status, code)
	}
	return e.Error.Message
}

// stream sends a streaming request and returns its events, each validated.
func (k *chatkit) stream(req map[string]any) ckEvents {
	k.t.Helper()
	resp, raw := k.send(context.Background(), req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		k.t.Fatalf("%s: got %d %s %s, want 200 text/event-stream", req["type"], resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	return k.events(bytes.NewReader(raw))
}

// events reads a stream: data: <json> and a blank line per event, nothing
// else (no event names, no ids, no [DONE]).
func (k *chatkit) events(r io.Reader) ckEvents {
	k.t.Helper()
	var out ckEvents
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			k.t.Fatalf("stream line %q: want data: <json>", line)
		}
		validate(k.t, k.s.event, "event", []byte(data))
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			k.t.Fatal(err)
		}
		out = append(out, ev)
		if !sc.Scan() || sc.Text() != "" {
			k.t.Fatalf("event %s: not followed by a blank line", data)
		}
	}
	if err := sc.Err(); err != nil {
		k.t.Fatal(err)
	}
	return out
}

// ckEvents is a ChatKit response stream, decoded.
type ckEvents []map[string]any

// shape names each event by its type and what it carries: the item's
// type, or the update's type; runs of text deltas are one.
func (evs ckEvents) shape() []string {
	var out []string
	for _, ev := range evs {
		s := ev["type"].(string)
		if item, ok := ev["item"].(map[string]any); ok {
			s += " " + item["type"].(string)
		}
		if u, ok := ev["update"].(map[string]any); ok {
			s += " " + u["type"].(string)
		}
		if len(out) > 0 && out[len(out)-1] == s && strings.HasSuffix(s, "text_delta") {
			continue
		}
		out = append(out, s)
	}
	return out
}

// done returns the items of the stream's thread.item.done events.
func (evs ckEvents) done() []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if ev["type"] == "thread.item.done" {
			out = append(out, ev["item"].(map[string]any))
		}
	}
	return out
}

func (evs ckEvents) find(typ string) map[string]any {
	for _, ev := range evs {
		if ev["type"] == typ {
			return ev
		}
	}
	return nil
}

// text is what the stream's text deltas add up to.
func (evs ckEvents) text() string {
	var b strings.Builder
	for _, ev := range evs {
		if u, ok := ev["update"].(map[string]any); ok && u["type"] == "assistant_message.content_part.text_delta" {
			b.WriteString(u["delta"].(string))
		}
	}
	return b.String()
}

// Requests, as a ChatKit client sends them.

func ckInput(text string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "input_text", "text": text}}, "attachments": []any{},
		"quoted_text": nil, "inference_options": map[string]any{}}
}

func ckReq(typ string, params map[string]any) map[string]any {
	return map[string]any{"type": typ, "params": params, "metadata": map[string]any{}}
}

func ckCreate(text string) map[string]any {
	return ckReq("threads.create", map[string]any{"input": ckInput(text)})
}

func ckAdd(thread, text string) map[string]any {
	return ckReq("threads.add_user_message", map[string]any{"thread_id": thread, "input": ckInput(text)})
}

func ckGet(thread string) map[string]any {
	return ckReq("threads.get_by_id", map[string]any{"thread_id": thread})
}

func ckItems(thread string, limit int, order, after string) map[string]any {
	p := map[string]any{"thread_id": thread, "limit": limit, "order": order}
	if after != "" {
		p["after"] = after
	}
	return ckReq("items.list", p)
}

func ckThreads(limit int, order, after string) map[string]any {
	p := map[string]any{"limit": limit, "order": order}
	if after != "" {
		p["after"] = after
	}
	return ckReq("threads.list", p)
}

func ckAction(thread, item, action, callID string) map[string]any {
	return ckReq("threads.custom_action", map[string]any{"thread_id": thread, "item_id": item,
		"action": map[string]any{"type": action, "payload": map[string]any{"call_id": callID}}})
}

func ckRetry(thread, item string) map[string]any {
	return ckReq("threads.retry_after_item", map[string]any{"thread_id": thread, "item_id": item})
}

// threadID is the thread a threads.create stream made.
func (evs ckEvents) threadID(t *testing.T) string {
	t.Helper()
	ev := evs.find("thread.created")
	if ev == nil {
		t.Fatalf("no thread.created in %v", evs.shape())
	}
	return ev["thread"].(map[string]any)["id"].(string)
}

// allItems reads a thread's items, oldest first, through get_by_id and
// items.list.
func (k *chatkit) allItems(thread string) []map[string]any {
	k.t.Helper()
	var out []map[string]any
	after := ""
	for {
		page := k.json(ckItems(thread, 100, "asc", after), k.s.itemsPage)
		for _, it := range page["data"].([]any) {
			out = append(out, it.(map[string]any))
		}
		if page["has_more"] != true {
			return out
		}
		after = page["after"].(string)
	}
}
