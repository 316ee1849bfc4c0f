package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Bounds on a normalised schema.
const (
	// maxSchemaDepth bounds how deep schemas nest.
	maxSchemaDepth = 32
	// maxSchemaNodes bounds the schema nodes after $ref resolution, which
	// can multiply them.
	maxSchemaNodes = 20000
)

// keptKeywords are the JSON Schema keywords function parameters keep: those
// OpenAI-compatible providers (OpenAI, and the stricter Gemini, vLLM and
// llama.cpp grammars) accept. Everything else ($schema, $id, $comment,
// $anchor, not, if/then/else, patternProperties, propertyNames,
// dependentRequired, unevaluatedProperties, prefixItems, contains,
// readOnly, deprecated, x-* extensions ...) is dropped: it would make a
// provider refuse the whole request, and the server validates its
// arguments anyway.
var keptKeywords = map[string]bool{
	"type": true, "description": true, "title": true, "default": true,
	"enum": true, "const": true, "nullable": true,
	"properties": true, "required": true, "additionalProperties": true,
	"items": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"anyOf": true, "oneOf": true, "allOf": true,
	"format": true, "pattern": true, "minLength": true, "maxLength": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true, "multipleOf": true,
}

// jsonTypes are the valid values of "type".
var jsonTypes = map[string]bool{
	"object": true, "array": true, "string": true, "number": true, "integer": true, "boolean": true, "null": true,
}

// NormalizeSchema turns an MCP tool's input schema into OpenAI function
// parameters: an object schema with properties, without the hidden
// arguments (those filled from the caller). On the way it
//   - resolves local $refs ("#/$defs/...", "#/definitions/...", any JSON
//     pointer into the schema) by inlining them; a recursive reference
//     becomes an unconstrained schema where it recurs;
//   - merges top-level anyOf/oneOf alternatives (a union of argument shapes,
//     which providers refuse at the top) into one object whose properties
//     are all the alternatives' and whose required ones are those every
//     alternative requires, and folds a top-level allOf into the root;
//   - gives every object properties, every array items, and every name in
//     required a property;
//   - drops keywords providers reject (see keptKeywords), empty enums, and
//     false (never valid) properties.
//
// An absent schema means a tool without arguments. It returns an error
// saying why when the schema cannot be made valid (not JSON, not an object
// schema, a non-object top-level alternative, an invalid type, a $ref that
// cannot be resolved, too deep or too large): the tool is then quarantined.
func NormalizeSchema(raw json.RawMessage, hidden []string) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return json.RawMessage(`{"type":"object","properties":{}}`), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("input schema is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("input schema has trailing data after the JSON object")
	}
	root, ok := v.(map[string]any)
	if !ok {
		if b, isBool := v.(bool); isBool && b {
			root = map[string]any{} // true: any arguments
		} else {
			return nil, fmt.Errorf("input schema is a JSON %s, not an object", jsonKind(v))
		}
	}

	r := &resolver{root: root}
	resolved, err := r.resolve(root, "#", 0)
	if err != nil {
		return nil, err
	}
	root = resolved.(map[string]any)
	if err := mergeTopLevel(root); err != nil {
		return nil, err
	}
	switch t := root["type"].(type) {
	case nil:
		root["type"] = "object"
	case string:
		if t != "object" {
			return nil, fmt.Errorf("input schema has type %q; a tool's parameters must be an object", t)
		}
	case []any:
		// ["object", "null"]: the arguments are always an object.
		if !slices.Contains(t, any("object")) {
			return nil, fmt.Errorf("input schema has type %v; a tool's parameters must be an object", t)
		}
		root["type"] = "object"
	default:
		return nil, fmt.Errorf("input schema's type is a JSON %s; a tool's parameters must have type \"object\"", jsonKind(t))
	}
	if err := normalizeNode(root, "#", 0); err != nil {
		return nil, err
	}
	props, _ := root["properties"].(map[string]any)
	for _, h := range hidden {
		delete(props, h)
	}
	if req, ok := root["required"].([]any); ok {
		kept := slices.DeleteFunc(req, func(r any) bool { return props[r.(string)] == nil })
		if len(kept) == 0 {
			delete(root, "required")
		} else {
			root["required"] = kept
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("encode input schema: %w", err)
	}
	return out, nil
}

// resolver inlines local $refs.
type resolver struct {
	root  map[string]any
	stack []string // the refs being expanded, to spot recursion
	nodes int
}

// resolve returns a copy of v with every $ref inlined.
func (r *resolver) resolve(v any, path string, depth int) (any, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("input schema nests deeper than %d levels at %s", maxSchemaDepth, path)
	}
	r.nodes++
	if r.nodes > maxSchemaNodes {
		return nil, fmt.Errorf("input schema is too large: more than %d nodes (with its $refs inlined)", maxSchemaNodes)
	}
	switch n := v.(type) {
	case []any:
		out := make([]any, len(n))
		for i, x := range n {
			var err error
			if out[i], err = r.resolve(x, fmt.Sprintf("%s/%d", path, i), depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		ref, isRef := n["$ref"].(string)
		if !isRef {
			return r.resolveKeywords(n, path, depth)
		}
		target, err := r.lookup(ref)
		if err != nil {
			return nil, fmt.Errorf("input schema %s: %w", path, err)
		}
		resolved := map[string]any{}
		if slices.Contains(r.stack, ref) {
			// A recursive structure (a tree): below this point, accept any
			// value rather than unroll it forever.
			resolved = map[string]any{"description": "(recursive: same shape as its parent)"}
		} else {
			r.stack = append(r.stack, ref)
			x, err := r.resolve(target, path, depth+1)
			r.stack = r.stack[:len(r.stack)-1]
			if err != nil {
				return nil, err
			}
			switch x := x.(type) {
			case map[string]any:
				resolved = x
			case bool:
				if !x {
					return nil, fmt.Errorf("input schema %s: $ref %q points at the false schema", path, ref)
				}
			default:
				return nil, fmt.Errorf("input schema %s: $ref %q does not point at a schema", path, ref)
			}
		}
		// Keywords beside $ref (a description, say) refine the target.
		rest := maps.Clone(n)
		delete(rest, "$ref")
		siblings, err := r.resolveKeywords(rest, path, depth)
		if err != nil {
			return nil, err
		}
		maps.Copy(resolved, siblings.(map[string]any))
		return resolved, nil
	}
	return v, nil
}

// resolveKeywords resolves the $refs under one schema object's keywords:
// the values of schema keywords are schemas; those of properties-like
// keywords are maps of names to schemas; the rest (enum, const, default,
// examples, required ...) are plain values.
func (r *resolver) resolveKeywords(n map[string]any, path string, depth int) (any, error) {
	out := make(map[string]any, len(n))
	for k, x := range n {
		var err error
		switch k {
		case "$defs", "definitions":
			// Inlined where used.
		case "properties", "patternProperties", "dependentSchemas":
			m, ok := x.(map[string]any)
			if !ok {
				out[k] = x // normalizeNode judges it
				continue
			}
			props := make(map[string]any, len(m))
			for name, child := range m {
				if props[name], err = r.resolve(child, path+"/"+k+"/"+name, depth+1); err != nil {
					return nil, err
				}
			}
			out[k] = props
		case "items", "additionalProperties", "anyOf", "oneOf", "allOf", "not", "prefixItems", "contains":
			if out[k], err = r.resolve(x, path+"/"+k, depth+1); err != nil {
				return nil, err
			}
		default:
			out[k] = x
		}
	}
	return out, nil
}

// lookup finds a local $ref's target: a JSON pointer into the root schema.
func (r *resolver) lookup(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, fmt.Errorf("$ref %q is not local to the schema (only #/... references can be resolved)", ref)
	}
	var cur any = r.root
	ptr := strings.TrimPrefix(ref, "#")
	if ptr == "" {
		return cur, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("$ref %q: anchors are not supported", ref)
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := cur.(type) {
		case map[string]any:
			next, ok := n[tok]
			if !ok {
				return nil, fmt.Errorf("$ref %q points at nothing", ref)
			}
			cur = next
		case []any:
			var i int
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(n) {
				return nil, fmt.Errorf("$ref %q points at nothing", ref)
			}
			cur = n[i]
		default:
			return nil, fmt.Errorf("$ref %q points at nothing", ref)
		}
	}
	return cur, nil
}

// mergeTopLevel folds top-level combinators into the root object schema.
func mergeTopLevel(root map[string]any) error {
	if list, ok := root["allOf"].([]any); ok {
		delete(root, "allOf")
		for i, b := range list {
			branch, ok := b.(map[string]any)
			if !ok || !objectish(branch) {
				return fmt.Errorf("input schema's top-level allOf/%d is not an object schema", i)
			}
			mergeInto(root, branch, true)
		}
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		list, ok := root[k].([]any)
		if !ok {
			continue
		}
		delete(root, k)
		var branches []map[string]any
		for i, b := range list {
			branch, ok := b.(map[string]any)
			if !ok || !objectish(branch) {
				return fmt.Errorf("input schema's top-level %s/%d is not an object schema; a tool's parameters must be one object", k, i)
			}
			branches = append(branches, branch)
		}
		if len(branches) == 0 {
			continue
		}
		// Properties: every alternative's; one named in several with
		// different schemas accepts any of them.
		props, _ := root["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		variants := map[string][]any{}
		for _, b := range branches {
			bp, _ := b["properties"].(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(bp)) {
				if _, own := props[name]; own {
					continue
				}
				if !slices.ContainsFunc(variants[name], func(x any) bool { return jsonEqual(x, bp[name]) }) {
					variants[name] = append(variants[name], bp[name])
				}
			}
		}
		for name, vs := range variants {
			if len(vs) == 1 {
				props[name] = vs[0]
			} else {
				props[name] = map[string]any{"anyOf": vs}
			}
		}
		root["properties"] = props
		// Required: what every alternative requires.
		required := stringList(branches[0]["required"])
		for _, b := range branches[1:] {
			theirs := stringList(b["required"])
			required = slices.DeleteFunc(required, func(s string) bool { return !slices.Contains(theirs, s) })
		}
		for _, r := range required {
			root["required"] = appendUnique(root["required"], r)
		}
		if d, _ := root["description"].(string); d == "" {
			root["description"] = fmt.Sprintf("One of %d argument shapes; see the properties.", len(branches))
		}
	}
	return nil
}

// objectish reports whether a top-level alternative can describe the
// arguments object: it says it is an object, or only constrains one (as
// {"required": ["a"]} in "a or b is required").
func objectish(s map[string]any) bool {
	return s["type"] == nil || hasType(s, "object")
}

// mergeInto adds branch's properties and required names to root.
func mergeInto(root, branch map[string]any, requireAll bool) {
	props, _ := root["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	bp, _ := branch["properties"].(map[string]any)
	for name, s := range bp {
		if prev, ok := props[name]; ok && !jsonEqual(prev, s) {
			props[name] = map[string]any{"allOf": []any{prev, s}}
			continue
		}
		props[name] = s
	}
	root["properties"] = props
	if requireAll {
		for _, r := range stringList(branch["required"]) {
			root["required"] = appendUnique(root["required"], r)
		}
	}
	if d, _ := root["description"].(string); d == "" {
		if bd, _ := branch["description"].(string); bd != "" {
			root["description"] = bd
		}
	}
}

// normalizeNode fixes one schema node and its children in place.
func normalizeNode(node map[string]any, path string, depth int) error {
	if depth > maxSchemaDepth {
		return fmt.Errorf("input schema nests deeper than %d levels at %s", maxSchemaDepth, path)
	}
	for k := range node {
		if !keptKeywords[k] {
			delete(node, k)
		}
	}
	switch t := node["type"].(type) {
	case nil:
	case string:
		if !jsonTypes[t] {
			return fmt.Errorf("input schema %s has type %q, which JSON Schema does not know", path, t)
		}
	case []any:
		if len(t) == 0 {
			delete(node, "type")
		}
		for _, x := range t {
			if s, ok := x.(string); !ok || !jsonTypes[s] {
				return fmt.Errorf("input schema %s has type %v, which JSON Schema does not know", path, t)
			}
		}
	default:
		return fmt.Errorf("input schema %s: type is a JSON %s", path, jsonKind(t))
	}
	if e, ok := node["enum"]; ok {
		if list, isList := e.([]any); !isList || len(list) == 0 {
			delete(node, "enum")
		}
	}

	props, hasProps := node["properties"]
	if hasType(node, "object") || hasProps {
		switch p := props.(type) {
		case nil:
			node["properties"] = map[string]any{}
		case map[string]any:
			for _, name := range slices.Sorted(maps.Keys(p)) {
				switch child := p[name].(type) {
				case map[string]any:
					if err := normalizeNode(child, path+"/properties/"+name, depth+1); err != nil {
						return err
					}
				case bool:
					if child {
						p[name] = map[string]any{}
					} else {
						delete(p, name) // false: the argument must not be given
					}
				default:
					return fmt.Errorf("input schema property %s/properties/%s is not a schema object", path, name)
				}
			}
		default:
			return fmt.Errorf("input schema %s/properties is a JSON %s, not an object", path, jsonKind(p))
		}
		p := node["properties"].(map[string]any)
		if req, ok := node["required"]; ok {
			names := stringList(req)
			for _, n := range names {
				if _, ok := p[n]; !ok {
					p[n] = map[string]any{} // required but undescribed: say it exists
				}
			}
			if len(names) == 0 {
				delete(node, "required")
			} else {
				list := make([]any, len(names))
				for i, n := range names {
					list[i] = n
				}
				node["required"] = list
			}
		}
		switch ap := node["additionalProperties"].(type) {
		case nil, bool:
		case map[string]any:
			if err := normalizeNode(ap, path+"/additionalProperties", depth+1); err != nil {
				return err
			}
		default:
			delete(node, "additionalProperties")
		}
	} else {
		delete(node, "required")
	}

	if hasType(node, "array") || node["items"] != nil {
		switch it := node["items"].(type) {
		case nil, bool:
			node["items"] = map[string]any{}
		case map[string]any:
			if err := normalizeNode(it, path+"/items", depth+1); err != nil {
				return err
			}
		case []any: // tuple form, which OpenAI rejects: accept any item
			node["items"] = map[string]any{}
		default:
			return fmt.Errorf("input schema %s/items is a JSON %s, not a schema", path, jsonKind(it))
		}
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		list, ok := node[k].([]any)
		if !ok {
			delete(node, k)
			continue
		}
		kept := list[:0]
		for i, child := range list {
			switch c := child.(type) {
			case map[string]any:
				if err := normalizeNode(c, fmt.Sprintf("%s/%s/%d", path, k, i), depth+1); err != nil {
					return err
				}
				kept = append(kept, c)
			case bool:
				if c {
					kept = append(kept, map[string]any{})
				}
			}
		}
		if len(kept) == 0 {
			delete(node, k)
		} else {
			node[k] = kept
		}
	}
	return nil
}

func hasType(node map[string]any, want string) bool {
	switch t := node["type"].(type) {
	case string:
		return t == want
	case []any:
		for _, x := range t {
			if x == want {
				return true
			}
		}
	}
	return false
}

// stringList returns the strings of a JSON array, without duplicates.
func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func appendUnique(list any, s string) []any {
	l, _ := list.([]any)
	if slices.Contains(l, any(s)) {
		return l
	}
	return append(l, s)
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
