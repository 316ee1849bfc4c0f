package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// A server's question to the user (an MCP elicitation, an Input) as a
// ChatKit widget: a form-mode question is a Card holding a Form drawn from
// its requested schema, whose submit action carries the values; a url-mode
// one a Card with the link to open. Both have Decline and Cancel buttons.
// The actions post threads.custom_action, answered through Chat.Answer as
// the inputs route answers (chatkitAnswer). Nothing here decides whether an
// answer fits: Answer checks it against the schema; this file only turns
// the widget's strings back into the schema's types.

// The actions of an input's widget: the form's submit (payload {input_id}
// and the form's values), url mode's "I opened it" (accept), Decline and
// Cancel (payload {input_id}), and url mode's Open button, which the page
// handles (handler client, payload {input_id, url}).
const (
	ckActionInputSubmit  = "input.submit"
	ckActionInputAccept  = "input.accept"
	ckActionInputDecline = "input.decline"
	ckActionInputCancel  = "input.cancel"
	ckActionInputOpen    = "input.open_url"
)

// formFieldPrefix starts the name of every control of an input's form:
// ChatKit puts a form's values into the submit action's payload beside the
// payload's own keys, and a property of the server's schema may be named
// input_id.
const formFieldPrefix = "field:"

func inputItemID(inputID string) string { return "input-" + inputID }

// isInputAction tells the actions of input widgets posted to the server.
func isInputAction(typ string) bool {
	switch typ {
	case ckActionInputSubmit, ckActionInputAccept, ckActionInputDecline, ckActionInputCancel:
		return true
	}
	return false
}

// formField is a property of a requested schema, as the form shows it.
type formField struct {
	name     string
	s        fieldSchema
	required bool
	kind     fieldKind
	options  []fieldOption // of enums and multi-selects
}

type fieldKind int

const (
	kindString fieldKind = iota
	kindNumber
	kindInteger
	kindBoolean
	kindEnum
	kindMulti // an array of enum values
)

// fieldSchema is what a form reads of a property's schema (MCP's
// PrimitiveSchemaDefinition: strings, numbers, booleans, enums, arrays of
// enums).
type fieldSchema struct {
	Type        json.RawMessage `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Format      string          `json:"format"`
	Default     json.RawMessage `json:"default"`
	Minimum     *float64        `json:"minimum"`
	Maximum     *float64        `json:"maximum"`
	MinLength   *int            `json:"minLength"`
	MaxLength   *int            `json:"maxLength"`
	MinItems    *int            `json:"minItems"`
	MaxItems    *int            `json:"maxItems"`
	Enum        []any           `json:"enum"`
	EnumNames   []string        `json:"enumNames"`
	OneOf       []titledConst   `json:"oneOf"`
	AnyOf       []titledConst   `json:"anyOf"`
	Items       *fieldSchema    `json:"items"`
}

type titledConst struct {
	Const *any   `json:"const"`
	Title string `json:"title"`
}

// fieldOption is a choice of an enum: value is how the widget names it (a
// string), raw the value in the schema's own type.
type fieldOption struct {
	value, label string
	raw          any
}

// typeName is the schema's type: the first of a list that is not null.
func (s fieldSchema) typeName() string {
	var one string
	if json.Unmarshal(s.Type, &one) == nil {
		return one
	}
	var many []string
	_ = json.Unmarshal(s.Type, &many)
	for _, t := range many {
		if t != "null" {
			return t
		}
	}
	return ""
}

// choices are the options of an enum schema: oneOf/anyOf of const and
// title, or enum with the legacy enumNames; nil for another schema.
func (s *fieldSchema) choices() []fieldOption {
	if s == nil {
		return nil
	}
	for _, alts := range [][]titledConst{s.OneOf, s.AnyOf} {
		if len(alts) == 0 {
			continue
		}
		out := make([]fieldOption, 0, len(alts))
		for _, a := range alts {
			if a.Const == nil {
				return nil
			}
			v := optionValue(*a.Const)
			out = append(out, fieldOption{value: v, label: cmpOr(a.Title, v), raw: *a.Const})
		}
		return out
	}
	if len(s.Enum) == 0 {
		return nil
	}
	out := make([]fieldOption, len(s.Enum))
	for i, e := range s.Enum {
		v := optionValue(e)
		label := v
		if i < len(s.EnumNames) && s.EnumNames[i] != "" {
			label = s.EnumNames[i]
		}
		out[i] = fieldOption{value: v, label: label, raw: e}
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// optionValue is an enum value as a widget's option names it.
func optionValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// label is the field's title for people.
func (f formField) label() string { return cmpOr(f.s.Title, f.name) }

// parseForm reads a requested schema's properties in the order the server
// wrote them (the order of the form).
func parseForm(schema json.RawMessage) ([]formField, error) {
	var top struct {
		Properties json.RawMessage `json:"properties"`
		Required   []string        `json:"required"`
	}
	if err := json.Unmarshal(schema, &top); err != nil {
		return nil, fmt.Errorf("the requested schema is not a JSON object: %w", err)
	}
	names, err := objectKeys(top.Properties)
	if err != nil {
		return nil, fmt.Errorf("the requested schema's properties: %w", err)
	}
	var props map[string]json.RawMessage
	if len(names) > 0 {
		if err := json.Unmarshal(top.Properties, &props); err != nil {
			return nil, fmt.Errorf("the requested schema's properties: %w", err)
		}
	}
	required := map[string]bool{}
	for _, r := range top.Required {
		required[r] = true
	}
	out := make([]formField, 0, len(names))
	for _, name := range names {
		f := formField{name: name, required: required[name]}
		dec := json.NewDecoder(bytes.NewReader(props[name]))
		dec.UseNumber() // enum values and defaults keep their exact numbers
		if err := dec.Decode(&f.s); err != nil {
			return nil, fmt.Errorf("property %q of the requested schema: %w", name, err)
		}
		switch t := f.s.typeName(); {
		case t == "array":
			f.kind, f.options = kindMulti, f.s.Items.choices()
		case f.s.choices() != nil:
			f.kind, f.options = kindEnum, f.s.choices()
		case t == "boolean":
			f.kind = kindBoolean
		case t == "integer":
			f.kind = kindInteger
		case t == "number":
			f.kind = kindNumber
		}
		out = append(out, f)
	}
	return out, nil
}

// objectKeys returns the keys of a JSON object in their order; none for
// an absent object.
func objectKeys(raw json.RawMessage) ([]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func fieldName(name string) string { return formFieldPrefix + name }

func optionFieldName(name string, i int) string { return fieldName(name) + ":" + strconv.Itoa(i) }

// formContent turns the values a submitted form put in its action's
// payload into the content its requested schema asks for: numbers and
// integers from their text, booleans from checkboxes, a multi-select's
// checked options as an array of the enum's values, an enum's choice as
// the enum's value, dates as YYYY-MM-DD and date-times as RFC 3339. An
// empty field is left out (a required one is then missing, which Answer
// reports). It returns ErrInvalid (invalid_input) for text that is not a
// number where a number is asked; whether the content fits the schema is
// Answer's to check.
func formContent(schema json.RawMessage, payload map[string]any) (json.RawMessage, error) {
	fields, err := parseForm(schema)
	if err != nil {
		return nil, switchboard.Errorf(switchboard.ErrInvalid, switchboard.CodeInputInvalid, "%s", err.Error())
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		v, ok, err := f.value(payload)
		if err != nil {
			return nil, switchboard.Errorf(switchboard.ErrInvalid, switchboard.CodeInputInvalid, "%s: %s", f.label(), err.Error())
		}
		if ok {
			out[f.name] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode the form's content: %w", err)
	}
	return b, nil
}

// value reads the field's value from a submitted payload; ok is false for
// a field left empty.
func (f formField) value(payload map[string]any) (any, bool, error) {
	v, present := payload[fieldName(f.name)]
	switch f.kind {
	case kindBoolean:
		// An unchecked box may send false or nothing: both are false.
		b, err := truthy(v)
		return b, err == nil, err
	case kindMulti:
		var picked []any
		if list, ok := v.([]any); ok { // a client that sends the array itself
			for _, e := range list {
				picked = append(picked, f.option(e))
			}
		} else {
			for i, o := range f.options {
				if on, err := truthy(payload[optionFieldName(f.name, i)]); err == nil && on {
					picked = append(picked, o.raw)
				}
			}
		}
		if len(picked) == 0 && !present {
			return nil, false, nil
		}
		if picked == nil {
			picked = []any{}
		}
		return picked, true, nil
	}
	s, isString := v.(string)
	if !present || v == nil || isString && strings.TrimSpace(s) == "" {
		return nil, false, nil
	}
	switch f.kind {
	case kindEnum:
		return f.option(v), true, nil
	case kindNumber, kindInteger:
		return number(v, f.kind == kindInteger)
	}
	if !isString {
		s = optionValue(v)
	}
	switch f.s.Format {
	case "date":
		return dateOf(s), true, nil
	case "date-time":
		return dateTimeOf(s), true, nil
	}
	return s, true, nil
}

// option maps a widget's choice back to the enum's value; one that names
// no option is passed on as it is (Answer refuses it).
func (f formField) option(v any) any {
	s := optionValue(v)
	for _, o := range f.options {
		if o.value == s {
			return o.raw
		}
	}
	return v
}

// truthy reads a checkbox: a boolean, or the text a form may send for
// one.
func truthy(v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case float64:
		return v != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "on", "1", "yes", "checked":
			return true, nil
		case "false", "off", "0", "no", "":
			return false, nil
		}
		return false, fmt.Errorf("%q is not yes or no", clipText(v, 40))
	}
	return false, fmt.Errorf("%s is not yes or no", clipText(optionValue(v), 40))
}

// number reads a number field's value: the text of a number input, or a
// number a client sent as one.
func number(v any, integer bool) (any, bool, error) {
	var f float64
	var text string
	switch v := v.(type) {
	case float64:
		f, text = v, strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		text = strings.TrimSpace(v)
		if integer {
			if n, err := strconv.ParseInt(text, 10, 64); err == nil {
				return n, true, nil
			}
		}
		var err error
		if f, err = strconv.ParseFloat(text, 64); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			what := "a number"
			if integer {
				what = "a whole number"
			}
			return nil, false, fmt.Errorf("%q is not %s", clipText(text, 40), what)
		}
	default:
		return nil, false, fmt.Errorf("%s is not a number", clipText(optionValue(v), 40))
	}
	if integer {
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return nil, false, fmt.Errorf("%q is not a whole number", clipText(text, 40))
		}
		return int64(f), true, nil
	}
	return f, true, nil
}

var datePrefix = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)

// dateOf is a date picker's value as a date (YYYY-MM-DD): ChatKit's
// DatePicker gives an ISO date-time, whose date part is the day picked.
func dateOf(s string) string {
	s = strings.TrimSpace(s)
	if d := datePrefix.FindString(s); d != "" {
		return d
	}
	return s
}

// dateTimeOf is a date-time field's text as RFC 3339: as written when it
// is, in UTC when it has no zone; text that is no date-time is passed on
// (Answer refuses it).
func dateTimeOf(s string) string {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.Format(time.RFC3339Nano)
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return s
}

// inputCard shows a server's question: pending, a form (or a link) with
// Decline and Cancel; answered or closed, what came of it, as an approval
// card shows its decision.
func inputCard(in switchboard.Input) widget {
	children := []widget{title(in.Server + " asks")}
	if in.Message != "" {
		children = append(children, text(in.Message))
	}
	if in.Status != switchboard.InputPending {
		return card(append(children, answeredInput(in)...)...)
	}
	payload := map[string]any{"input_id": in.ID}
	answers := row(
		button("Decline", "secondary", "secondary", widget{"type": ckActionInputDecline, "payload": payload}),
		button("Cancel", "secondary", "secondary", widget{"type": ckActionInputCancel, "payload": payload}),
	)
	if in.Mode == switchboard.InputURL {
		if safeURL(in.URL) {
			u, _ := url.Parse(in.URL)
			children = append(children,
				markdown("Open [the page on "+u.Host+"](<"+in.URL+">), then say so."),
				row(button("Open "+u.Host, "primary", "primary", widget{"type": ckActionInputOpen, "handler": "client",
					"payload": map[string]any{"input_id": in.ID, "url": in.URL}}),
					button("I opened it", "secondary", "primary", widget{"type": ckActionInputAccept, "payload": payload})))
		} else {
			children = append(children, caption("The server sent a link that is not http(s): "+clipText(in.URL, 200)))
		}
		return card(append(children, answers)...)
	}
	fields, err := parseForm(in.RequestedSchema)
	if err != nil {
		children = append(children, caption("The form cannot be shown: "+err.Error()))
		return card(append(children, answers)...)
	}
	form := []widget{}
	for _, f := range fields {
		form = append(form, f.widget())
	}
	form = append(form, row(widget{"type": "Button", "label": "Submit", "style": "primary", "color": "primary", "submit": true}))
	children = append(children,
		widget{"type": "Form", "direction": "col", "gap": 3, "children": form,
			"onSubmitAction": widget{"type": ckActionInputSubmit, "payload": payload}},
		answers)
	return card(children...)
}

// safeURL tells a link a page may open: http(s) only (a javascript: URL
// would run in it).
func safeURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// widget is the field's control, with its label and what the schema says
// of it.
func (f formField) widget() widget {
	name := fieldName(f.name)
	label := f.label()
	if f.required {
		label += " *"
	}
	parts := []widget{}
	if f.kind != kindBoolean {
		parts = append(parts, widget{"type": "Label", "value": label, "fieldName": name})
	}
	var def any
	if len(f.s.Default) > 0 {
		dec := json.NewDecoder(bytes.NewReader(f.s.Default))
		dec.UseNumber()
		_ = dec.Decode(&def)
	}
	switch f.kind {
	case kindBoolean:
		b, _ := def.(bool)
		parts = append(parts, widget{"type": "Checkbox", "name": name, "label": label, "defaultChecked": b})
	case kindMulti:
		defaults := map[string]bool{}
		if list, ok := def.([]any); ok {
			for _, d := range list {
				defaults[optionValue(d)] = true
			}
		}
		boxes := make([]widget, len(f.options))
		for i, o := range f.options {
			boxes[i] = widget{"type": "Checkbox", "name": optionFieldName(f.name, i), "label": o.label, "defaultChecked": defaults[o.value]}
		}
		parts = append(parts, widget{"type": "Col", "gap": 1, "children": boxes})
	case kindEnum:
		opts := make([]widget, len(f.options))
		for i, o := range f.options {
			opts[i] = widget{"value": o.value, "label": o.label}
		}
		var w widget
		if len(f.options) <= 4 {
			w = widget{"type": "RadioGroup", "name": name, "options": opts, "direction": "col", "required": f.required}
		} else {
			w = widget{"type": "Select", "name": name, "options": opts, "clearable": !f.required}
		}
		if def != nil {
			w["defaultValue"] = optionValue(def)
		}
		parts = append(parts, w)
	case kindNumber, kindInteger:
		w := widget{"type": "Input", "name": name, "inputType": "number", "required": f.required}
		if def != nil {
			w["defaultValue"] = optionValue(def)
		}
		parts = append(parts, w)
	default:
		parts = append(parts, f.textWidget(name, def))
	}
	if help := f.help(); help != "" {
		parts = append(parts, caption(help))
	}
	return widget{"type": "Col", "gap": 1, "children": parts}
}

// textWidget is a string's control: a date picker for dates, an email or
// URL input for those formats, a text area for long text.
func (f formField) textWidget(name string, def any) widget {
	s, _ := def.(string)
	switch f.s.Format {
	case "date":
		w := widget{"type": "DatePicker", "name": name, "clearable": !f.required}
		// DatePicker's default is a date-time: the day's midnight.
		if d, err := time.Parse("2006-01-02", dateOf(s)); err == nil {
			w["defaultValue"] = d.Format(time.RFC3339)
		}
		return w
	case "date-time":
		w := widget{"type": "Input", "name": name, "required": f.required, "placeholder": "2026-12-24T10:00:00Z"}
		if s != "" {
			w["defaultValue"] = s
		}
		return w
	}
	w := widget{"type": "Input", "name": name, "required": f.required}
	switch f.s.Format {
	case "email":
		w["inputType"] = "email"
	case "uri":
		w["inputType"] = "url"
	default:
		if f.s.MaxLength != nil && *f.s.MaxLength > 200 {
			w = widget{"type": "Textarea", "name": name, "required": f.required, "autoResize": true}
		} else {
			w["inputType"] = "text"
		}
	}
	if s != "" {
		w["defaultValue"] = s
	}
	return w
}

// help is the field's description with its bounds.
func (f formField) help() string {
	var parts []string
	if f.s.Description != "" {
		parts = append(parts, f.s.Description)
	}
	num := func(p *float64) string { return strconv.FormatFloat(*p, 'f', -1, 64) }
	switch {
	case f.s.Minimum != nil && f.s.Maximum != nil:
		parts = append(parts, "From "+num(f.s.Minimum)+" to "+num(f.s.Maximum)+".")
	case f.s.Minimum != nil:
		parts = append(parts, "At least "+num(f.s.Minimum)+".")
	case f.s.Maximum != nil:
		parts = append(parts, "At most "+num(f.s.Maximum)+".")
	}
	switch {
	case f.s.MinLength != nil && f.s.MaxLength != nil:
		parts = append(parts, fmt.Sprintf("%d to %d characters.", *f.s.MinLength, *f.s.MaxLength))
	case f.s.MinLength != nil:
		parts = append(parts, fmt.Sprintf("At least %d characters.", *f.s.MinLength))
	case f.s.MaxLength != nil:
		parts = append(parts, fmt.Sprintf("At most %d characters.", *f.s.MaxLength))
	}
	switch {
	case f.s.MinItems != nil && f.s.MaxItems != nil:
		parts = append(parts, fmt.Sprintf("Choose %d to %d.", *f.s.MinItems, *f.s.MaxItems))
	case f.s.MinItems != nil:
		parts = append(parts, fmt.Sprintf("Choose at least %d.", *f.s.MinItems))
	case f.s.MaxItems != nil:
		parts = append(parts, fmt.Sprintf("Choose at most %d.", *f.s.MaxItems))
	}
	if f.s.Format == "date-time" {
		parts = append(parts, "A date and time, as 2026-12-24T10:00:00Z.")
	}
	return strings.Join(parts, " ")
}

// inputOutcome is what came of an input, in words, with a badge color.
func inputOutcome(in switchboard.Input) (string, string) {
	switch in.Status {
	case switchboard.InputAnswered:
		switch in.Action {
		case switchboard.ActionAccept:
			if in.Mode == switchboard.InputURL {
				return "Opened", "success"
			}
			return "Accepted", "success"
		case switchboard.ActionDecline:
			return "Declined", "secondary"
		}
		return "Cancelled", "secondary"
	case switchboard.InputCompleted:
		return "Completed", "success"
	case switchboard.InputPending:
		return "Waiting for you", "info"
	}
	label := strings.ToUpper(string(in.Status[:1])) + string(in.Status[1:])
	if in.Reason != "" {
		label += " · " + in.Reason
	}
	return label, "danger"
}

// secretField tells a field whose value an answered card does not repeat.
var secretField = regexp.MustCompile(`(?i)password|passcode|passphrase|secret|token|api[_-]?key|\bpin\b`)

// answeredInput is the outcome of an answered or closed input: a badge,
// and the values an accepted form gave (secrets masked).
func answeredInput(in switchboard.Input) []widget {
	label, color := inputOutcome(in)
	out := []widget{row(badge(label, color))}
	if in.Status != switchboard.InputAnswered || in.Action != switchboard.ActionAccept || in.Mode != switchboard.InputForm || len(in.Content) == 0 {
		return out
	}
	fields, err := parseForm(in.RequestedSchema)
	if err != nil {
		return out
	}
	var given map[string]any
	if json.Unmarshal(in.Content, &given) != nil {
		return out
	}
	var lines []string
	for _, f := range fields {
		v, ok := given[f.name]
		if !ok {
			continue
		}
		shown := answerText(f, v)
		if secretField.MatchString(f.name) || secretField.MatchString(f.s.Title) {
			shown = "••••••"
		}
		lines = append(lines, "- **"+markdownEscape(f.label())+"**: "+markdownEscape(clipText(shown, 200)))
	}
	if len(lines) > 0 {
		out = append(out, markdown(strings.Join(lines, "\n")))
	}
	return out
}

// answerText is an answer's value for people: an option's label, yes or
// no, the number or text.
func answerText(f formField, v any) string {
	label := func(x any) string {
		s := optionValue(x)
		for _, o := range f.options {
			if o.value == s {
				return o.label
			}
		}
		return s
	}
	switch v := v.(type) {
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case []any:
		names := make([]string, len(v))
		for i, x := range v {
			names[i] = label(x)
		}
		return strings.Join(names, ", ")
	}
	return label(v)
}

var markdownSpecial = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`, "]", `\]`, "<", `\<`, ">", `\>`, "#", `\#`, "\n", " ")

func markdownEscape(s string) string { return markdownSpecial.Replace(s) }

// inputGetter is what a Store that keeps servers' questions also
// implements: one question of the user's.
type inputGetter interface {
	GetInput(ctx context.Context, userID, id string) (switchboard.Input, error)
}

// chatkitAnswer answers a server's question from its widget's action
// (threads.custom_action: input.submit with the form's values, input.accept,
// input.decline, input.cancel; payload {input_id}) through Chat.Answer, as
// the inputs route does, and streams the turn's next stop: the widget
// replaced by the answer, then what the turn did after it (read from the
// stored transcript, since the answer's turn runs where the question is
// held and sends no events here), its end or its next question.
//
// A question that is not the caller's, or not in the thread, is 404
// input_not_found and one answered or closed already 409 input_closed, as
// JSON before the stream starts; an answer that does not fit the form is
// an error event in the stream, and nothing is sent to the server.
func (h *Handler) chatkitAnswer(c *gin.Context, p chatkitParams) {
	ctx := c.Request.Context()
	userID := identity(c).UserID
	action := p.Action
	inputID, _ := action.Payload["input_id"].(string)
	if inputID == "" {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_action", `the action's payload must name the question: {"input_id": "..."}`))
		return
	}
	conv, err := h.chatkitThread(c, p.ThreadID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	ig, ok := h.Store.(inputGetter)
	if !ok {
		h.writeError(c, switchboard.Errorf(switchboard.ErrUnavailable, "not_available", "this server's store keeps no questions of servers"))
		return
	}
	in, err := ig.GetInput(ctx, userID, inputID)
	if err == nil && in.ConversationID != conv.ID {
		err = switchboard.Errorf(switchboard.ErrNotFound, switchboard.CodeInputNotFound, "input %q not found in this thread", clip(inputID))
	}
	if err != nil {
		h.writeError(c, err)
		return
	}
	if in.Status != switchboard.InputPending {
		label, _ := inputOutcome(in)
		h.writeError(c, switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeInputClosed, "the question was answered or closed already: %s", strings.ToLower(label)))
		return
	}
	a := orchestrator.InputAnswer{UserID: userID, ConversationID: conv.ID, InputID: in.ID, Action: switchboard.ActionAccept}
	switch action.Type {
	case ckActionInputDecline:
		a.Action = switchboard.ActionDecline
	case ckActionInputCancel:
		a.Action = switchboard.ActionCancel
	}

	s := &chatkitStream{c: c, kind: ckThreadsCustomAction, connect: func(server string) connectionRequiredDTO {
		return h.connectionRequired(ctx, userID, server)
	}}
	s.TurnStarted(switchboard.Turn{ID: in.TurnID, UserID: userID, ConversationID: conv.ID, StartedAt: in.CreatedAt})
	c.Set(ctxTurn, s.turn)
	if action.Type == ckActionInputSubmit && in.Mode == switchboard.InputForm {
		if a.Content, err = formContent(in.RequestedSchema, action.Payload); err != nil {
			s.finish(nil, err)
			return
		}
	}
	s.event(ckProgress{Type: "progress_update", Icon: "bolt", Text: "Answering " + in.Server + "…"})
	s.flush()
	res, err := h.Chat.Answer(ctx, a)
	if err != nil {
		if status, _ := describe(err); status >= 500 && !errors.Is(err, context.Canceled) {
			h.logger.Error("answer failed while streaming", "request_id", requestID(c), "turn_id", in.TurnID, "input_id", in.ID, "err", err)
		}
	}
	if res == nil {
		if err == nil {
			err = errors.New("the answer has no next stop")
		}
		s.finish(nil, err)
		return
	}
	s.turn = res.Turn
	answered := in
	answered.Status, answered.Action, answered.Content = switchboard.InputAnswered, a.Action, a.Content
	s.item("thread.item.replaced", widgetItem(inputItemID(in.ID), conv.ID, timestamp(in.CreatedAt), inputCard(answered)))
	h.streamAfterAnswer(c, s, conv, in)
	s.finish(res, err)
}

// streamAfterAnswer sends what the answered turn did after the question:
// the workflow of the call that asked, replaced with its calls as they are
// now, then the turn's items after it (text, workflows, the next question,
// the answer). A transcript that cannot be read sends nothing; finish still
// sends the turn's answer and questions.
func (h *Handler) streamAfterAnswer(c *gin.Context, s *chatkitStream, conv switchboard.Conversation, in switchboard.Input) {
	items, calls, err := h.threadItemsAndCalls(c, conv)
	if err != nil {
		h.logger.Warn("read the thread after an answer", "request_id", requestID(c), "conversation_id", conv.ID, "err", err)
		return
	}
	parent := map[string]string{}
	for _, cl := range calls {
		parent[cl.ID] = cl.ParentID
	}
	start := -1
	// The asking call, or for a call of an agent used as a tool the call
	// it runs under.
	for holder, hops := in.ToolCallID, 0; holder != "" && hops < 8 && start < 0; holder, hops = parent[holder], hops+1 {
		start = slices.IndexFunc(items, func(it threadItem) bool { return it.turn == in.TurnID && slices.Contains(it.calls, holder) })
	}
	if start < 0 {
		return
	}
	if s.sent == nil {
		s.sent = map[string]bool{}
	}
	if s.inputs == nil {
		s.inputs = map[string]bool{}
	}
	s.item("thread.item.replaced", items[start].value)
	for _, it := range items[start+1:] {
		if it.turn != in.TurnID {
			continue
		}
		s.item("thread.item.done", it.value)
		s.sent[it.id] = true
		if id, ok := strings.CutPrefix(it.id, "input-"); ok {
			s.inputs[id] = true
		}
	}
	s.sendWaiting()
}
