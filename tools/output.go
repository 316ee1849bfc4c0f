package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard"
)

// A tool that declares an outputSchema promises structured content that
// matches it, and MCP tells clients to check: the catalog compiles each
// tool's schema once, when it is built, and Run turns a result that breaks
// the promise into an error for the model (invalid_result).

// outputSchemaURL names a tool's output schema while it compiles. A $ref to
// anything else (another file, a URL) is refused: the schema is the
// server's input, and must not make Switchboard read files or fetch URLs.
const outputSchemaURL = "switchboard:output-schema.json"

// noLoader refuses every schema the compiler would load: only the tool's
// own schema, and the metaschemas the compiler embeds, are known.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: only references within the schema are followed", url)
}

// compileOutputSchema compiles a tool's outputSchema, as JSON Schema 2020-12
// unless it says otherwise (MCP's default). It returns nil, nil when the
// tool declares none.
func compileOutputSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("its outputSchema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(outputSchemaURL, doc); err != nil {
		return nil, fmt.Errorf("its outputSchema cannot be read: %w", err)
	}
	sch, err := c.Compile(outputSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("its outputSchema is not a valid JSON Schema: %s", oneLine(err.Error(), 300))
	}
	return sch, nil
}

// checkOutput reports how structured content breaks schema, or nil if it
// matches.
func checkOutput(schema *jsonschema.Schema, structured json.RawMessage) error {
	if len(bytes.TrimSpace(structured)) == 0 {
		return errors.New("the tool declares an output schema, but its result has no structured content")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(structured))
	if err != nil {
		return fmt.Errorf("its structured content is not JSON: %w", err)
	}
	if err := schema.Validate(v); err != nil {
		return fmt.Errorf("its structured content does not match its output schema: %s", validationMessage(err))
	}
	return nil
}

// validationMessage says where and how an instance fails, from the
// compiler's error: a first line naming the schema, then a line per cause
// ("- at '/temperature': got string, want number").
func validationMessage(err error) string {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) > 1 {
		lines = lines[1:]
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "- ")
	}
	return oneLine(strings.Join(lines, "; "), 500)
}

// oneLine joins s's lines and cuts it to n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n-3], "") + "..."
	}
	return s
}

// ResultText is what the model reads of a call's result: its text, and its
// structured content as well when that says more than the text. When the
// text only repeats the structured content — it is its JSON, compact or
// pretty-printed (what MCP asks servers to send for older clients), or the
// structured content only wraps the text or the content parts again (as
// server-filesystem does: {"content": text}) — the model gets it once. A
// call that failed is read as its Result says (the error, for the model);
// one without text, as its structured content.
func ResultText(c switchboard.ToolCall) string {
	text, structured := c.Result, bytes.TrimSpace(c.StructuredResult)
	switch {
	case len(structured) == 0:
		return text
	case text == "":
		return string(structured)
	case c.Status != switchboard.CallSucceeded || repeats(text, structured):
		return text
	}
	var compact bytes.Buffer
	if json.Compact(&compact, structured) == nil {
		structured = compact.Bytes()
	}
	return text + "\n\n[structured content]\n" + string(structured)
}

// repeats reports whether text says no less than the structured content:
// it is the same JSON value, or the structured content is an object of one
// field that holds the text, or holds content parts (the result's content
// again).
func repeats(text string, structured json.RawMessage) bool {
	s, ok := decodeJSON(structured)
	if !ok {
		return false
	}
	if t, ok := decodeJSON([]byte(text)); ok && reflect.DeepEqual(s, t) {
		return true
	}
	obj, ok := s.(map[string]any)
	if !ok || len(obj) != 1 {
		return false
	}
	for _, v := range obj {
		switch v := v.(type) {
		case string:
			return strings.TrimSpace(v) == strings.TrimSpace(text)
		case []any:
			return len(v) > 0 && areContentParts(v, text)
		}
	}
	return false
}

// areContentParts reports whether items are MCP content parts, and any
// text they hold is in text.
func areContentParts(items []any, text string) bool {
	for _, item := range items {
		part, ok := item.(map[string]any)
		if !ok {
			return false
		}
		switch part["type"] {
		case "text":
			if s, _ := part["text"].(string); !strings.Contains(text, s) {
				return false
			}
		case "image", "audio", "resource", "resource_link":
		default:
			return false
		}
	}
	return true
}

// decodeJSON decodes one JSON value, numbers kept as written.
func decodeJSON(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	return v, true
}
