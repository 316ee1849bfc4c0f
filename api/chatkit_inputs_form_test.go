package api

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard"
)

// everythingSchema is server-everything's trigger-elicitation-request
// schema (every kind MCP's forms have), with a date-time, a long text, an
// integer enum and a required boolean added.
const everythingSchema = `{"type": "object", "properties": {
  "name": {"title": "String", "type": "string", "description": "Your full, legal name"},
  "check": {"title": "Boolean", "type": "boolean", "description": "Agree to the terms and conditions"},
  "firstLine": {"title": "String with default", "type": "string", "default": "It was a dark and stormy night."},
  "email": {"title": "String with email format", "type": "string", "format": "email"},
  "homepage": {"type": "string", "format": "uri", "title": "String with uri format"},
  "birthdate": {"title": "String with date format", "type": "string", "format": "date"},
  "integer": {"title": "Integer", "type": "integer", "minimum": 1, "maximum": 100, "default": 42},
  "number": {"title": "Number in range 1-1000", "type": "number", "minimum": 0, "maximum": 1000, "default": 3.14},
  "untitledSingleSelectEnum": {"type": "string", "title": "Untitled Single Select Enum",
    "enum": ["Monica", "Rachel", "Joey", "Chandler", "Ross", "Phoebe"], "default": "Monica"},
  "untitledMultipleSelectEnum": {"type": "array", "title": "Untitled Multiple Select Enum", "minItems": 1, "maxItems": 3,
    "items": {"type": "string", "enum": ["Guitar", "Piano", "Violin", "Drums", "Bass"]}, "default": ["Guitar"]},
  "titledSingleSelectEnum": {"type": "string", "title": "Titled Single Select Enum",
    "oneOf": [{"const": "hero-1", "title": "Superman"}, {"const": "hero-2", "title": "Green Lantern"}, {"const": "hero-3", "title": "Wonder Woman"}], "default": "hero-1"},
  "titledMultipleSelectEnum": {"type": "array", "title": "Titled Multiple Select Enum", "minItems": 1, "maxItems": 3,
    "items": {"anyOf": [{"const": "fish-1", "title": "Tuna"}, {"const": "fish-2", "title": "Salmon"}, {"const": "fish-3", "title": "Trout"}]}, "default": ["fish-1"]},
  "legacyTitledEnum": {"type": "string", "title": "Legacy Titled Single Select Enum",
    "enum": ["pet-1", "pet-2", "pet-3", "pet-4", "pet-5"], "enumNames": ["Cats", "Dogs", "Birds", "Fish", "Reptiles"], "default": "pet-1"},
  "meeting": {"type": "string", "format": "date-time", "title": "Meeting"},
  "story": {"type": "string", "maxLength": 2000, "title": "Story"},
  "size": {"type": "integer", "enum": [1, 2, 3], "title": "Size"},
  "input_id": {"type": "string", "title": "A property named like the payload's own key"}
}, "required": ["name"]}`

// TestFormContent: the values a ChatKit form puts in its submit action's
// payload (all text, checkboxes, one checkbox per option of a
// multi-select, the date picker's date-time) become the content the
// schema asks for, in its types; empty fields are left out; text that is
// no number where one is asked is refused with the field's title.
func TestFormContent(t *testing.T) {
	payload := func(kv ...any) map[string]any {
		m := map[string]any{"input_id": "the-input"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		payload map[string]any
		want    string // JSON, or the error's text
		wantErr bool
	}{
		{"every kind", payload(
			"field:name", "Alice", "field:check", true, "field:firstLine", "Once upon a time", "field:email", "alice@example.com",
			"field:homepage", "https://alice.example", "field:birthdate", "2001-02-03T00:00:00.000Z", "field:integer", "7",
			"field:number", " 2.5 ", "field:untitledSingleSelectEnum", "Joey",
			"field:untitledMultipleSelectEnum:0", true, "field:untitledMultipleSelectEnum:1", false, "field:untitledMultipleSelectEnum:2", "on",
			"field:titledSingleSelectEnum", "hero-2", "field:titledMultipleSelectEnum:2", true, "field:legacyTitledEnum", "pet-3",
			"field:meeting", "2026-12-24T10:00", "field:story", "a\nlong\nstory", "field:size", "2", "field:input_id", "mine"),
			`{"name":"Alice","check":true,"firstLine":"Once upon a time","email":"alice@example.com","homepage":"https://alice.example",
			  "birthdate":"2001-02-03","integer":7,"number":2.5,"untitledSingleSelectEnum":"Joey",
			  "untitledMultipleSelectEnum":["Guitar","Violin"],"titledSingleSelectEnum":"hero-2","titledMultipleSelectEnum":["fish-3"],
			  "legacyTitledEnum":"pet-3","meeting":"2026-12-24T10:00:00Z","story":"a\nlong\nstory","size":2,"input_id":"mine"}`, false},
		{"empty fields left out, an unchecked box false", payload("field:name", "Bob", "field:email", "", "field:integer", "  ",
			"field:untitledMultipleSelectEnum:0", false),
			`{"name":"Bob","check":false}`, false},
		{"numbers a client sent as numbers, an array sent whole", payload("field:integer", 12.0, "field:number", 1e3,
			"field:untitledMultipleSelectEnum", []any{"Piano", "Bass"}, "field:check", "off", "field:meeting", "2026-12-24T10:00:00+01:00"),
			`{"integer":12,"number":1000,"untitledMultipleSelectEnum":["Piano","Bass"],"check":false,"meeting":"2026-12-24T10:00:00+01:00"}`, false},
		{"a choice that is no option is passed on", payload("field:titledSingleSelectEnum", "hero-9", "field:size", "7"),
			`{"check":false,"titledSingleSelectEnum":"hero-9","size":"7"}`, false},
		{"a fraction for an integer", payload("field:integer", "7.5"), `Integer: "7.5" is not a whole number`, true},
		{"text for a number", payload("field:number", "lots"), `Number in range 1-1000: "lots" is not a number`, true},
		{"a checkbox that says neither", payload("field:check", "perhaps"), `Boolean: "perhaps" is not yes or no`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := formContent(json.RawMessage(everythingSchema), tc.payload)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) || switchboard.ErrorCode(err) != switchboard.CodeInputInvalid {
					t.Fatalf("got %s, %v; want an invalid_input error saying %q", got, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInputCardForm: the form of a question has one control per property,
// in the schema's order, of the kind its schema calls for, with its
// default; the submit action names the input; the card is a valid ChatKit
// widget item by chatkit-python's schema, pending and answered.
func TestInputCardForm(t *testing.T) {
	in := switchboard.Input{ID: "in-1", ConversationID: "conv-1", Server: "everything", Mode: switchboard.InputForm,
		Message: "Please provide inputs", RequestedSchema: json.RawMessage(everythingSchema), Status: switchboard.InputPending, CreatedAt: time.Now()}
	w := inputCard(in)

	type control struct{ Type, Name, Default string }
	var controls []control
	var submit []any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case widget:
			if name, ok := v["name"].(string); ok {
				d := ""
				for _, k := range []string{"defaultValue", "defaultChecked"} {
					if x, ok := v[k]; ok {
						b, _ := json.Marshal(x)
						d = string(b)
					}
				}
				controls = append(controls, control{v["type"].(string), name, d})
			}
			if a, ok := v["onSubmitAction"]; ok {
				submit = append(submit, a)
			}
			for _, c := range []string{"children"} {
				walk(v[c])
			}
		case []widget:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(w)
	want := []control{
		{"Input", "field:name", ""}, {"Checkbox", "field:check", "false"}, {"Input", "field:firstLine", `"It was a dark and stormy night."`},
		{"Input", "field:email", ""}, {"Input", "field:homepage", ""}, {"DatePicker", "field:birthdate", ""},
		{"Input", "field:integer", `"42"`}, {"Input", "field:number", `"3.14"`}, {"Select", "field:untitledSingleSelectEnum", `"Monica"`},
		{"Checkbox", "field:untitledMultipleSelectEnum:0", "true"}, {"Checkbox", "field:untitledMultipleSelectEnum:1", "false"},
		{"Checkbox", "field:untitledMultipleSelectEnum:2", "false"}, {"Checkbox", "field:untitledMultipleSelectEnum:3", "false"},
		{"Checkbox", "field:untitledMultipleSelectEnum:4", "false"},
		{"RadioGroup", "field:titledSingleSelectEnum", `"hero-1"`},
		{"Checkbox", "field:titledMultipleSelectEnum:0", "true"}, {"Checkbox", "field:titledMultipleSelectEnum:1", "false"},
		{"Checkbox", "field:titledMultipleSelectEnum:2", "false"},
		{"Select", "field:legacyTitledEnum", `"pet-1"`}, {"Input", "field:meeting", ""}, {"Textarea", "field:story", ""},
		{"RadioGroup", "field:size", ""}, {"Input", "field:input_id", ""},
	}
	if diff := cmp.Diff(want, controls); diff != "" {
		t.Errorf("controls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{widget{"type": ckActionInputSubmit, "payload": map[string]any{"input_id": "in-1"}}}, submit); diff != "" {
		t.Errorf("the form's submit action (-want +got):\n%s", diff)
	}
	raw, _ := json.Marshal(w)
	for _, label := range []string{`"Green Lantern"`, `"Reptiles"`, `"Tuna"`, `"String *"`, `"From 1 to 100."`, `"Choose 1 to 3."`} {
		if !bytes.Contains(raw, []byte(label)) {
			t.Errorf("the card does not say %s: %s", label, raw)
		}
	}

	schema := eventSchema(t)
	answered := in
	answered.Status, answered.Action = switchboard.InputAnswered, switchboard.ActionAccept
	answered.Content = json.RawMessage(`{"name":"Alice","check":true,"untitledMultipleSelectEnum":["Guitar","Violin"],"titledSingleSelectEnum":"hero-2"}`)
	url := switchboard.Input{ID: "in-2", ConversationID: "conv-1", Server: "everything", Mode: switchboard.InputURL, Message: "Open it",
		URL: "https://example.com/consent", Status: switchboard.InputPending, CreatedAt: time.Now()}
	for what, in := range map[string]switchboard.Input{"pending": in, "answered": answered, "url": url} {
		ev := map[string]any{"type": "thread.item.done", "item": widgetItem(inputItemID(in.ID), in.ConversationID, timestamp(in.CreatedAt), inputCard(in))}
		b, _ := json.Marshal(ev)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("the %s card does not validate: %v\n%s", what, err, b)
		}
	}
	raw, _ = json.Marshal(inputCard(answered))
	for _, shown := range []string{`"Accepted"`, `**String**: Alice`, `**Boolean**: yes`, `Guitar, Violin`, `Green Lantern`} {
		if !bytes.Contains(raw, []byte(shown)) {
			t.Errorf("the answered card does not show %s: %s", shown, raw)
		}
	}
	if bytes.Contains(raw, []byte(`"Submit"`)) {
		t.Errorf("the answered card still has its form: %s", raw)
	}
}

func eventSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/chatkit/chatkit-stream_event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("event.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("event.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
