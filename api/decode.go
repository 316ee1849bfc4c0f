package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// decodeJSON decodes a request body into v, a pointer to the body's struct.
// It is the one place that turns a decoding error into words: the error
// wraps ErrInvalid with code, and its message names the field at fault and
// says what it takes in JSON's terms (never Go's types), without echoing
// the input; example is the body to show when there is no object at all.
func decodeJSON(body []byte, v any, code, example string) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	return switchboard.Errorf(switchboard.ErrInvalid, code, "%s", decodeProblem(err, body, reflect.TypeOf(v), example))
}

// decodeProblem says what is wrong with body, which decoding into root
// failed with err.
func decodeProblem(err error, body []byte, root reflect.Type, example string) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		return "the request body is empty: send a JSON object such as " + example
	case errors.As(err, &syn) && syn.Offset >= int64(len(body)):
		return "the request body is not valid JSON: it ends before the JSON does"
	case errors.As(err, &syn):
		return fmt.Sprintf("the request body is not valid JSON: syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Sprintf("the request body must be a JSON object such as %s, not %s", example, foundKind(typ.Value))
	case errors.As(err, &typ):
		path, item := fieldPath(root, typ.Field, typ.Type)
		if item {
			path = "each item of " + path
		}
		return fmt.Sprintf("%s must be %s, not %s", path, describeJSON(typ.Type), foundKind(typ.Value))
	}
	return "the request body is not valid JSON"
}

// fieldPath renders the dotted path of a decoding error (JSON names, as
// encoding/json gives them) with [] after each array it goes through, as
// in messages[].parts[].type. item reports that the value at fault is an
// item of the array at the path's end, not the array itself (the error's
// type is then the item's).
func fieldPath(root reflect.Type, dotted string, target reflect.Type) (path string, item bool) {
	names := strings.Split(dotted, ".")
	t := root
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(name)
		f, ok := jsonField(t, name)
		if !ok {
			return dotted, false // not ours to walk: say it as encoding/json does
		}
		t = deref(f.Type)
		if i < len(names)-1 && isArray(t) {
			b.WriteString("[]")
			t = deref(t.Elem())
		}
	}
	return b.String(), isArray(t) && deref(t.Elem()) == deref(target)
}

// jsonField finds the field of struct type t that the JSON key name
// decodes into.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	t = deref(t)
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && jsonName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// jsonName is the key of a struct field in JSON.
func jsonName(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
		return name
	}
	return f.Name
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func isArray(t reflect.Type) bool {
	return (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t.Elem().Kind() != reflect.Uint8
}

// jsonNamer is a body type with a name of its own in error messages: one
// value (with its article) and many.
type jsonNamer interface {
	jsonName() (one, many string)
}

var jsonNamerType = reflect.TypeFor[jsonNamer]()

// describeJSON says what a value of Go type t is in JSON, with its
// article: "a string", "an array of UI messages", "an object with a string
// field content".
func describeJSON(t reflect.Type) string {
	t = deref(t)
	if t.Implements(jsonNamerType) {
		one, _ := reflect.Zero(t).Interface().(jsonNamer).jsonName()
		return one
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + pluralJSON(t.Elem())
	case reflect.Map:
		return "an object"
	case reflect.Struct:
		var fields []reflect.StructField
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fields = append(fields, f)
			}
		}
		switch len(fields) {
		case 0:
			return "an object"
		case 1:
			if kind := strings.TrimPrefix(strings.TrimPrefix(describeJSON(fields[0].Type), "a "), "an "); !strings.Contains(kind, " ") {
				return fmt.Sprintf("an object with a %s field %s", kind, jsonName(fields[0]))
			}
			return "an object with a field " + jsonName(fields[0])
		}
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = jsonName(f)
		}
		return "an object with fields " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
	return "a JSON value"
}

// pluralJSON is describeJSON for many values: "strings", "UI messages".
func pluralJSON(t reflect.Type) string {
	t = deref(t)
	if t.Implements(jsonNamerType) {
		_, many := reflect.Zero(t).Interface().(jsonNamer).jsonName()
		return many
	}
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "true or false values"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	case reflect.Slice, reflect.Array:
		return "arrays"
	case reflect.Map, reflect.Struct:
		return "objects"
	}
	if describeJSON(t) == "a whole number in range" {
		return "whole numbers"
	}
	return "JSON values"
}

// foundKind names the kind of JSON value encoding/json found (its
// UnmarshalTypeError.Value: "string", "number", "number 1.5", "bool",
// "array", "object"), without the value itself.
func foundKind(value string) string {
	kind, _, _ := strings.Cut(value, " ")
	switch kind {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "true or false"
	case "array":
		return "an array"
	case "object":
		return "an object"
	}
	return "another kind of value"
}
