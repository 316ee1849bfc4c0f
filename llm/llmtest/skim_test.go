package llmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"
	"github.com/sashabaranov/go-openai/jsonschema"
)

// fullDecode decodes a body as the server does without Skim.
func fullDecode(body []byte) (openai.ChatCompletionRequest, error) {
	var req openai.ChatCompletionRequest
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&req)
	return req, err
}

// skimmed is what Options.Skim promises the Responder of req: the model,
// the stream flags and each message's role and tool call id, nothing else.
func skimmed(req openai.ChatCompletionRequest) openai.ChatCompletionRequest {
	out := openai.ChatCompletionRequest{Model: req.Model, Stream: req.Stream, StreamOptions: req.StreamOptions}
	if req.Messages != nil {
		out.Messages = make([]openai.ChatCompletionMessage, len(req.Messages))
		for i, m := range req.Messages {
			out.Messages[i] = openai.ChatCompletionMessage{Role: m.Role, ToolCallID: m.ToolCallID}
		}
	}
	return out
}

// tools are the definitions of a handful of tools, with the JSON schemas
// of their parameters.
func tools() []openai.Tool {
	str := func(desc string) jsonschema.Definition {
		return jsonschema.Definition{Type: jsonschema.String, Description: desc}
	}
	defs := []openai.FunctionDefinition{
		{Name: "lab__echo", Description: "Echoes its text back.", Parameters: jsonschema.Definition{
			Type: jsonschema.Object, Properties: map[string]jsonschema.Definition{"text": str("What to echo.")}, Required: []string{"text"}}},
		{Name: "files__read", Description: "Reads a file's lines, a window at a time.", Parameters: jsonschema.Definition{
			Type: jsonschema.Object, Properties: map[string]jsonschema.Definition{
				"path":   str("The file's path, relative to the workspace (\"./\" is its root)."),
				"offset": {Type: jsonschema.Integer, Description: "The first line, from 0."},
				"limit":  {Type: jsonschema.Integer, Description: "How many lines; at most 2000."},
			}, Required: []string{"path"}}},
		{Name: "web__search", Description: "Searches the web & returns <title, url, snippet> for each hit.", Parameters: jsonschema.Definition{
			Type: jsonschema.Object, Properties: map[string]jsonschema.Definition{
				"query":   str("Keywords; quote a phrase with \"double quotes\"."),
				"domains": {Type: jsonschema.Array, Items: &jsonschema.Definition{Type: jsonschema.String}, Description: "Only these sites."},
				"recency": {Type: jsonschema.String, Enum: []string{"day", "week", "month", "any"}},
			}, Required: []string{"query"}}},
		{Name: "http__get", Description: "Fetches a URL.", Strict: true, Parameters: json.RawMessage(
			`{"type":"object","properties":{"url":{"type":"string"},"headers":{"type":"object","additionalProperties":{"type":"string"}},` +
				`"timeout_ms":{"type":"number","minimum":1,"maximum":6e4,"default":1.5e3}},"required":["url"],"additionalProperties":false}`)},
		{Name: "sql__query", Description: "Runs a read-only SQL query; C:\\ paths are not files.", Parameters: jsonschema.Definition{
			Type: jsonschema.Object, Properties: map[string]jsonschema.Definition{
				"query":  str("SELECT … with $1, $2 … placeholders."),
				"params": {Type: jsonschema.Array, Items: &jsonschema.Definition{Type: jsonschema.String}},
			}, Required: []string{"query", "params"}}},
	}
	out := make([]openai.Tool, len(defs))
	for i := range defs {
		out[i] = openai.Tool{Type: openai.ToolTypeFunction, Function: &defs[i]}
	}
	return out
}

// conversation is a request as the service sends one n messages into a
// conversation: a system prompt, then rounds of a user asking, the
// assistant calling tools, the tools answering (in JSON, so in strings
// full of escaped quotes) and the assistant answering; streamed, with the
// tools' definitions.
func conversation(n int) openai.ChatCompletionRequest {
	req := openai.ChatCompletionRequest{
		Model: "switchboard-bench", Stream: true, StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		Tools: tools(), ParallelToolCalls: true, Temperature: 0.2,
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleSystem, Content: "You are Switchboard's assistant. " +
			"Use the tools when they help; cite the files and pages you used. Answer in the user's language, in Markdown, " +
			"briefly unless asked for detail. Never run a query that writes. Today's date is 2025-01-01."}},
	}
	add := func(m openai.ChatCompletionMessage) bool {
		if len(req.Messages) == n {
			return false
		}
		req.Messages = append(req.Messages, m)
		return true
	}
	for round := 0; ; round++ {
		id1, id2 := fmt.Sprintf("call_%d_a9F3kQ", round), fmt.Sprintf("call_%d_Zx81pL", round)
		if !add(openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser,
			Content: fmt.Sprintf("Round %d: what does config/app.yaml set \"timeout\" to, and is that the default? Search the docs too.", round)}) ||
			!add(openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, ToolCalls: []openai.ToolCall{
				{ID: id1, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: "files__read", Arguments: `{"path":"config/app.yaml","limit":40}`}},
				{ID: id2, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: "web__search", Arguments: `{"query":"switchboard \"timeout\" default","recency":"any"}`}},
			}}) ||
			!add(openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: id1,
				Content: `{"path":"config/app.yaml","lines":["server:","  listen: \":8080\"","  timeout: 30s  # was 10s","  paths: [\"C:\\data\", \"/srv/data\"]"],"total":4}`}) ||
			!add(openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: id2,
				Content: `{"hits":[{"title":"Configuration – Switchboard","url":"https://example.com/docs/config?x=1&y=2","snippet":"<b>timeout</b> defaults to \"30s\"; set it per route…"}]}`}) ||
			!add(openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant,
				Content: fmt.Sprintf("It sets `timeout: 30s`, which **is** the default (round %d). The comment says it was 10s; see config/app.yaml line 3 and the docs' \"Configuration\" page.", round)}) {
			return req
		}
	}
}

// awkward is a request with every kind of message go-openai sends and
// text that needs escaping everywhere, the ids and roles too.
func awkward() openai.ChatCompletionRequest {
	text := "quotes \" and \\\" and backslashes \\ \\\\, a literal \\u00e9 and \\ud83d\\ude00, the real é and 😀, " +
		"controls \n\t\r\x01\x1f, html <a href=\"x\">&amp;</a>, \u2028 and \u2029, a nested {\"role\":\"system\",\"tool_call_id\":\"x\"}"
	return openai.ChatCompletionRequest{
		Model: "mödel \"quoted\" \\ <&>", Tools: tools(), ToolChoice: "auto",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: text},
			{Role: openai.ChatMessageRoleDeveloper, Content: "be brief"},
			{Role: openai.ChatMessageRoleUser, Name: "ana\"lyst", Content: text},
			{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
				{Type: openai.ChatMessagePartTypeText, Text: text},
				{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "https://example.com/a.png?x=\"1\"", Detail: openai.ImageURLDetailLow}},
			}},
			{Role: openai.ChatMessageRoleAssistant, ReasoningContent: text, ToolCalls: []openai.ToolCall{
				{ID: "call_\"é😀\\<>", Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: "lab__echo", Arguments: `{"text":"` + strings.ReplaceAll(text, `"`, `\"`) + `"}`}},
				{ID: "call_2", Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: "lab__echo", Arguments: `{}`}},
			}},
			{Role: openai.ChatMessageRoleTool, ToolCallID: "call_\"é😀\\<>", Content: text},
			{Role: openai.ChatMessageRoleTool, ToolCallID: "call_2", MultiContent: []openai.ChatMessagePart{{Type: openai.ChatMessagePartTypeText, Text: "{}"}}},
			{Role: openai.ChatMessageRoleAssistant, FunctionCall: &openai.FunctionCall{Name: "old", Arguments: `{"a":[1,2,{"b":null}]}`}},
			{Role: openai.ChatMessageRoleFunction, Name: "old", Content: `{"ok":true}`},
			{Role: openai.ChatMessageRoleAssistant, Refusal: "no"},
			{Role: "tool\"ish\\ 😀 \x01", ToolCallID: "\xff invalid UTF-8 \xfe"},
			{},
		},
	}
}

// goOpenAIRequests are requests built with go-openai's types, as a client
// built on it sends them.
func goOpenAIRequests() []struct {
	name string
	req  openai.ChatCompletionRequest
} {
	return []struct {
		name string
		req  openai.ChatCompletionRequest
	}{
		{"empty", openai.ChatCompletionRequest{}},
		{"one message", openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hi"}}}},
		{"no messages", openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{}}},
		{"stream options without usage", openai.ChatCompletionRequest{Model: "m", Stream: true, StreamOptions: &openai.StreamOptions{}}},
		{"awkward", awkward()},
		{"conversation of 7", conversation(7)},
		{"conversation of 50", conversation(50)},
	}
}

// rawRequests are bodies go-openai does not send but encoding/json
// decodes, each with a twist the skim must decode as it does.
var rawRequests = []struct{ name, body string }{
	{"escaped keys", `{"mod\u0065l":"m","str\u0065am":true,"messages":[{"r\u006fle":"user","tool_call_i\u0064":"x"}]}`},
	{"keys in other cases", `{"MODEL":"m","Stream":true,"STREAM_OPTIONS":{"Include_Usage":true},"Messages":[{"ROLE":"tool","Tool_Call_ID":"x"}]}`},
	{"keys folded beyond ASCII", `{"\u017ftream":true,"me\u017f\u017fages":[{"role":"user"}],"ſtream_options":{"include_uſage":true}}`},
	{"keys that only look alike", `{"model ":"x","modell":"y","stream_option":true,"message":1,"messages":[{"rol":1,"roles":2,"tool_call":3,"role":"user"}]}`},
	{"repeated keys", `{"model":"a","model":"b","stream":true,"stream":false,"messages":[{"role":"user"},{}],"messages":[{"role":"a","role":"b","tool_call_id":"x","tool_call_id":"y"}]}`},
	{"nulls", `{"model":"a","model":null,"stream":true,"stream":null,"stream_options":{"include_usage":true},"stream_options":null,` +
		`"messages":[null,{"role":null,"tool_call_id":null},{"role":"user","role":null}]}`},
	{"stream options merged", `{"stream_options":{"include_usage":true},"stream_options":{}}`},
	{"stream options null usage", `{"stream_options":{"include_usage":true},"stream_options":{"include_usage":null,"other":[1]}}`},
	{"messages null at last", `{"messages":[{"role":"user"}],"messages":null}`},
	{"messages empty at last", `{"messages":[{"role":"user"}],"messages":[]}`},
	{"messages with null", `{"messages":[{"role":"user","tool_call_id":"a"},null]}`},
	{"whitespace", " \t\r\n{ \"model\" :\n\"m\" , \"stream\"\t:\rtrue,\"messages\" : [ { \"role\" : \"user\" } , null ] , \"x\" : [ 1 , { } , [ ] ] } \n"},
	{"trailing data", `{"model":"m"} and then some`},
	{"two values", `{"model":"m"}{"model":"n"}`},
	{"null", `null`},
	{"null and more", ` null, garbage`},
	{"empty object", `{}`},
	{"escapes in values", `{"model":"m\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00","messages":[{"role":"us\u0065r","tool_call_id":"\ud83d"},{"role":"\ud83d\ude00","tool_call_id":"\udc00\u0000"}]}`},
	{"raw invalid UTF-8", "{\"model\":\"\xff\",\"messages\":[{\"role\":\"us\xc3er\",\"tool_call_id\":\"\xed\xa0\x80\"}],\"x\":\"\xff\xfe\"}"},
	{"skipped values of every kind", `{"x1":-0.5e+10,"x2":1E5,"x3":0,"x4":-0,"x5":12.25e-3,"x6":true,"x7":false,"x8":null,"x9":"",` +
		`"x10":"\"\\\/\b\f\n\r\t\u0041\uD83D\uDE00","x11":{},"x12":[],"x13":[[[{"a":[{"b":{}}]}]]],"x14":{"messages":[{"role":"evil"}]},` +
		`"messages":[{"content":"\"role\":\"evil\"","role":"user","x":{"role":"evil","tool_call_id":"evil"},"tool_calls":[{"id":"evil"}]}],"x15":[1,"2",3.0,true,null,{"3":4}]}`},
	{"role and ids in skipped places", `{"x":{"role":"system","model":"evil","stream":true},"messages":[{"role":"user","content":"{\"role\":\"evil\"}"}],"y":["messages",{"messages":[]}]}`},
	{"nesting at the limit", `{"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `,"model":"deep"}`},
	{"nesting at the limit in a message", `{"messages":[{"x":` + strings.Repeat("{\"a\":", maxDepth-3) + "1" + strings.Repeat("}", maxDepth-3) + `,"role":"user"}]}`},
	{"long strings", `{"model":"` + strings.Repeat("m", 1000) + `","x":"` + strings.Repeat(`abcdefg\"`, 500) + `","messages":[{"role":"` + strings.Repeat("r", 33) + `"}]}`},
}

// raw returns the body of the raw request named name.
func raw(t *testing.T, name string) string {
	for _, c := range rawRequests {
		if c.name == name {
			return c.body
		}
	}
	t.Fatalf("no raw request %q", name)
	return ""
}

// malformed are bodies encoding/json rejects.
var malformed = []struct{ name, body string }{
	{"empty", ``},
	{"spaces", " \n"},
	{"array", `[]`},
	{"string", `"x"`},
	{"number", `1`},
	{"true", `true`},
	{"bad null", `nul`},
	{"bad null at top", `nulL`},
	{"open", `{`},
	{"key only", `{"model"`},
	{"no value", `{"model":`},
	{"not closed", `{"model":"m"`},
	{"trailing comma", `{"model":"m",}`},
	{"lone comma", `{,}`},
	{"no colon", `{"model" "m"}`},
	{"no comma", `{"model":"m" "stream":true}`},
	{"bare key", `{model:"m"}`},
	{"single quotes", `{'model':'m'}`},
	{"BOM", "\ufeff{}"},
	{"model number", `{"model":1}`},
	{"model bool", `{"model":true}`},
	{"model object", `{"model":{}}`},
	{"model array", `{"model":["m"]}`},
	{"stream string", `{"stream":"true"}`},
	{"stream number", `{"stream":1}`},
	{"stream bad literal", `{"stream":tru}`},
	{"stream null bad", `{"stream":nil}`},
	{"stream options bool", `{"stream_options":true}`},
	{"stream options array", `{"stream_options":[]}`},
	{"include usage string", `{"stream_options":{"include_usage":"yes"}}`},
	{"messages object", `{"messages":{}}`},
	{"messages string", `{"messages":"x"}`},
	{"message number", `{"messages":[1]}`},
	{"message string", `{"messages":["user"]}`},
	{"message array", `{"messages":[[]]}`},
	{"message bool", `{"messages":[true]}`},
	{"role number", `{"messages":[{"role":1}]}`},
	{"role array", `{"messages":[{"role":["user"]}]}`},
	{"tool call id bool", `{"messages":[{"tool_call_id":false}]}`},
	{"role folded number", `{"messages":[{"ROLE":1}]}`},
	{"message trailing comma", `{"messages":[{"role":"user",}]}`},
	{"messages trailing comma", `{"messages":[{"role":"user"},]}`},
	{"messages no comma", `{"messages":[{"role":"user"} {"role":"user"}]}`},
	{"messages leading comma", `{"messages":[,{"role":"user"}]}`},
	{"messages not closed", `{"messages":[{"role":"user"}}`},
	{"control character", "{\"x\":\"a\x01b\"}"},
	{"control character in model", "{\"model\":\"a\x1f\"}"},
	{"control character in key", "{\"mo\x00del\":\"m\"}"},
	{"newline in string", "{\"x\":\"a\nb\"}"},
	{"bad escape", `{"x":"a\qb"}`},
	{"bad escape in role", `{"messages":[{"role":"us\er"}]}`},
	{"short unicode escape", `{"x":"\u12"}`},
	{"bad unicode escape", `{"x":"\u12g4"}`},
	{"unterminated", `{"x":"abc`},
	{"unterminated escape", `{"x":"abc\`},
	{"unterminated key", `{"x`},
	{"leading zero", `{"x":01}`},
	{"bare point", `{"x":1.}`},
	{"leading point", `{"x":.5}`},
	{"lone minus", `{"x":-}`},
	{"empty exponent", `{"x":1e}`},
	{"signed empty exponent", `{"x":1e+}`},
	{"plus", `{"x":+1}`},
	{"hex", `{"x":0x10}`},
	{"bad true", `{"x":tru}`},
	{"capital true", `{"x":True}`},
	{"array trailing comma", `{"x":[1,]}`},
	{"array no comma", `{"x":[1 2]}`},
	{"array leading comma", `{"x":[,1]}`},
	{"object trailing comma", `{"x":{"a":1,}}`},
	{"object key only", `{"x":{"a"}}`},
	{"number key", `{"x":{1:2}}`},
	{"mismatched brackets", `{"x":[}`},
	{"mismatched braces", `{"x":{]}`},
	{"stray bracket", `{"x":]}`},
	{"nested unterminated", `{"x":[{"a":[1,2,{"b":"c`},
	{"too deep", `{"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`},
	{"too deep in a message", `{"messages":[{"x":` + strings.Repeat("{\"a\":", maxDepth-2) + "1" + strings.Repeat("}", maxDepth-2) + `}]}`},
}

// skimCases are the bodies the skim must decode as encoding/json does.
func skimCases(t testing.TB) []struct {
	name string
	body []byte
} {
	var cases []struct {
		name string
		body []byte
	}
	for _, c := range goOpenAIRequests() {
		body, err := json.Marshal(c.req) // as go-openai's client encodes a request
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cases = append(cases, struct {
			name string
			body []byte
		}{c.name, body})
	}
	for _, c := range rawRequests {
		cases = append(cases, struct {
			name string
			body []byte
		}{c.name, []byte(c.body)})
	}
	return cases
}

func TestSkimDecodesAsEncodingJSON(t *testing.T) {
	var s Server // one for all, so that each skim reuses the last one's scratch
	for _, c := range skimCases(t) {
		t.Run(c.name, func(t *testing.T) {
			full, err := fullDecode(c.body)
			if err != nil {
				t.Fatalf("full decode: %v", err)
			}
			got, err := s.skimBody(bytes.NewReader(c.body))
			if err != nil {
				t.Fatalf("skim: %v", err)
			}
			if diff := cmp.Diff(got, skimmed(full)); diff != "" {
				t.Errorf("skim (-got +want):\n%s", diff)
			}
		})
	}
}

// TestSkimReadsTheRequest checks the cases above against what they say,
// not only against encoding/json.
func TestSkimReadsTheRequest(t *testing.T) {
	msgs := func(roleAndIDs ...string) []openai.ChatCompletionMessage {
		out := []openai.ChatCompletionMessage{}
		for i := 0; i < len(roleAndIDs); i += 2 {
			out = append(out, openai.ChatCompletionMessage{Role: roleAndIDs[i], ToolCallID: roleAndIDs[i+1]})
		}
		return out
	}
	awkwardBody, _ := json.Marshal(awkward())
	tests := []struct {
		name string
		body string
		want openai.ChatCompletionRequest
	}{
		{"awkward", string(awkwardBody), openai.ChatCompletionRequest{Model: "mödel \"quoted\" \\ <&>", Messages: msgs(
			"system", "", "developer", "", "user", "", "user", "", "assistant", "", "tool", "call_\"é😀\\<>", "tool", "call_2",
			"assistant", "", "function", "", "assistant", "", "tool\"ish\\ 😀 \x01", "\ufffd invalid UTF-8 \ufffd", "", "")}},
		{"keys in other cases", raw(t, "keys in other cases"), openai.ChatCompletionRequest{Model: "m", Stream: true,
			StreamOptions: &openai.StreamOptions{IncludeUsage: true}, Messages: msgs("tool", "x")}},
		{"keys folded beyond ASCII", raw(t, "keys folded beyond ASCII"), openai.ChatCompletionRequest{Stream: true,
			StreamOptions: &openai.StreamOptions{IncludeUsage: true}, Messages: msgs("user", "")}},
		{"repeated keys", raw(t, "repeated keys"), openai.ChatCompletionRequest{Model: "b", Messages: msgs("b", "y")}},
		{"nulls", raw(t, "nulls"), openai.ChatCompletionRequest{Model: "a", Stream: true, Messages: msgs("", "", "", "", "user", "")}},
		{"null", "null", openai.ChatCompletionRequest{}},
		{"escapes in values", raw(t, "escapes in values"), openai.ChatCompletionRequest{Model: "m\"\\/\b\f\n\r\tAé😀",
			Messages: msgs("user", "\ufffd", "😀", "\ufffd\x00")}},
	}
	var s Server
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.skimBody(strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("skim (-got +want):\n%s", diff)
			}
		})
	}
}

func TestSkimRejectsMalformed(t *testing.T) {
	var s Server
	for _, c := range malformed {
		t.Run(c.name, func(t *testing.T) {
			if _, err := fullDecode([]byte(c.body)); err == nil {
				t.Fatal("encoding/json decodes it, so it is not a malformed case")
			}
			req, err := s.skimBody(strings.NewReader(c.body))
			if err == nil {
				t.Fatalf("skim: got %+v, want an error", req)
			}
			t.Log(err)
		})
	}
}

// TestSkimRejectsEveryPrefix cuts valid bodies at every offset: each cut
// must be an error, never a panic or a request.
func TestSkimRejectsEveryPrefix(t *testing.T) {
	var s Server
	for _, c := range skimCases(t) {
		body := bytes.TrimRight(c.body, " \t\r\n")
		if len(body) > 20000 || !json.Valid(body) || body[len(body)-1] != '}' {
			continue // too long to cut everywhere, or complete before its end
		}
		t.Run(c.name, func(t *testing.T) {
			for i := range len(body) {
				if req, err := s.skimBody(bytes.NewReader(body[:i])); err == nil {
					t.Fatalf("skim of the first %d bytes %q: got %+v, want an error", i, body[:i], req)
				}
			}
		})
	}
}

func TestSkimErrorSaysWhere(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"x":"abc`, "unexpected end of JSON input"},
		{`{"x":[1 2]}`, `invalid character '2' after array element at offset 8`},
		{`{"messages":[{"role":"user"},{"role":5}]}`, "messages[1].role is a number at offset 37, want a string"},
		{`[]`, "request is an array at offset 0, want an object"},
	}
	var s Server
	for _, tt := range tests {
		_, err := s.skimBody(strings.NewReader(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("skim %s: got error %v, want one with %q", tt.body, err, tt.want)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestSkimReadError(t *testing.T) {
	var s Server
	_, err := s.skimBody(io.MultiReader(strings.NewReader(`{"model":`), failingReader{}))
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("got error %v, want the read's", err)
	}
}

// TestSkimServer runs a skimming server with go-openai's client: the
// Responder sees the skimmed request, stream options still take effect,
// and a body that is not JSON is a 400.
func TestSkimServer(t *testing.T) {
	srv := NewServerWithOptions(Sequence(
		Reply{Text: "plain answer", PromptTokens: 3, CompletionTokens: 2},
		Reply{Text: "streamed answer", PromptTokens: 5, CompletionTokens: 7},
	), &Options{Skim: true})
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	cfg := openai.DefaultConfig("key")
	cfg.BaseURL, cfg.HTTPClient = srv.URL, &http.Client{Transport: transport}
	client := openai.NewClientWithConfig(cfg)
	ctx := context.Background()

	plain := awkward()
	resp, err := client.CreateChatCompletion(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "plain answer" {
		t.Errorf("got answer %q, want %q", got, "plain answer")
	}

	streamed := conversation(50)
	stream, err := client.CreateChatCompletionStream(ctx, streamed)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var text strings.Builder
	var usage *openai.Usage
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk.Choices) > 0 {
			text.WriteString(chunk.Choices[0].Delta.Content)
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
	}
	if text.String() != "streamed answer" || usage == nil || usage.TotalTokens != 12 {
		t.Errorf("got stream %q with usage %+v, want %q with 12 tokens", text.String(), usage, "streamed answer")
	}

	var want []openai.ChatCompletionRequest
	for _, req := range []openai.ChatCompletionRequest{plain, streamed} {
		body, _ := json.Marshal(req)
		full, err := fullDecode(body)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, skimmed(full))
	}
	if diff := cmp.Diff(srv.Requests(), want); diff != "" {
		t.Errorf("requests the server saw (-got +want):\n%s", diff)
	}

	hc := &http.Client{Transport: transport}
	r, err := hc.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user"`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("invalid JSON body: unexpected end of JSON input")) {
		t.Errorf("malformed body: got %d %s, want 400 with the error", r.StatusCode, body)
	}
}

// FuzzSkim checks the skim against encoding/json: whatever encoding/json
// decodes (as the server's json.Decoder does, which includes bodies
// json.Valid rejects only for what follows the first value), the skim
// decodes to the same model, stream flags, roles and tool call ids; and
// the skim only ever accepts a body whose value, up to where it stopped
// reading, is valid JSON.
func FuzzSkim(f *testing.F) {
	for _, c := range skimCases(f) {
		if len(c.body) < 4096 {
			f.Add(c.body)
		}
	}
	for _, c := range malformed {
		if len(c.body) < 4096 {
			f.Add([]byte(c.body))
		}
	}
	var s Server
	f.Fuzz(func(t *testing.T, body []byte) {
		k := skimmer{data: body}
		got, err := k.request()
		if err == nil && !json.Valid(body[:k.pos]) {
			t.Fatalf("skim accepted %q, which is not valid JSON", body[:k.pos])
		}
		pooled, pooledErr := s.skimBody(bytes.NewReader(body))
		if (err == nil) != (pooledErr == nil) || !cmp.Equal(pooled, got) {
			t.Fatalf("skim with reused scratch: got %+v (%v), want %+v (%v)", pooled, pooledErr, got, err)
		}
		full, fullErr := fullDecode(body)
		if fullErr != nil {
			return
		}
		if err != nil {
			t.Fatalf("skim: %v; encoding/json decodes it", err)
		}
		if diff := cmp.Diff(got, skimmed(full)); diff != "" {
			t.Errorf("skim (-got +want):\n%s", diff)
		}
	})
}

// oldSkim is how the skim decoded a request before the skimmer: with
// encoding/json, into a struct with only the fields it takes.
func oldSkim(body io.Reader) (openai.ChatCompletionRequest, error) {
	var req openai.ChatCompletionRequest
	var skim struct {
		Model         string                `json:"model"`
		Stream        bool                  `json:"stream"`
		StreamOptions *openai.StreamOptions `json:"stream_options"`
		Messages      []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(body).Decode(&skim); err != nil {
		return req, err
	}
	req.Model, req.Stream, req.StreamOptions = skim.Model, skim.Stream, skim.StreamOptions
	req.Messages = make([]openai.ChatCompletionMessage, len(skim.Messages))
	for i, m := range skim.Messages {
		req.Messages[i] = openai.ChatCompletionMessage{Role: m.Role, ToolCallID: m.ToolCallID}
	}
	return req, nil
}

// BenchmarkSkim compares the skimmer with the encoding/json skim it
// replaced, on a 50-message request as the service sends one.
func BenchmarkSkim(b *testing.B) {
	body, err := json.Marshal(conversation(50))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("body: %d bytes", len(body))
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := oldSkim(bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("skimmer", func(b *testing.B) {
		var s Server
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.skimBody(bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
