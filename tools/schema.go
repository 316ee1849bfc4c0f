package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// droppedKeywords are JSON Schema keywords that OpenAI-compatible providers
// reject or that mean nothing to a model.
var droppedKeywords = []string{"$schema", "$id", "$comment"}

// NormalizeSchema turns an MCP tool's input schema into OpenAI function
// parameters: an object schema with properties, without the hidden
// arguments (those filled from the caller), and without keywords providers
// reject. An absent schema means a tool without arguments. It returns an
// error saying why when the schema cannot be made valid: the tool is then
// quarantined.
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
		return nil, fmt.Errorf("input schema is a JSON %s, not an object", jsonKind(v))
	}
	switch t := root["type"].(type) {
	case nil:
		root["type"] = "object"
	case string:
		if t != "object" {
			return nil, fmt.Errorf("input schema has type %q; a tool's parameters must be an object", t)
		}
	default:
		return nil, fmt.Errorf("input schema's type is a JSON %s; a tool's parameters must have type \"object\"", jsonKind(t))
	}
	if err := normalizeNode(root, "#"); err != nil {
		return nil, err
	}
	props, _ := root["properties"].(map[string]any)
	for _, h := range hidden {
		delete(props, h)
	}
	if req, ok := root["required"].([]any); ok {
		kept := req[:0]
		for _, r := range req {
			if name, ok := r.(string); ok && props[name] != nil {
				kept = append(kept, r)
			}
		}
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

// normalizeNode fixes one schema node and its children in place.
func normalizeNode(node map[string]any, path string) error {
	for _, k := range droppedKeywords {
		delete(node, k)
	}
	if hasType(node, "object") {
		switch p := node["properties"].(type) {
		case nil:
			node["properties"] = map[string]any{}
		case map[string]any:
			for name, child := range p {
				m, ok := child.(map[string]any)
				if !ok {
					if b, isBool := child.(bool); isBool && b {
						p[name] = map[string]any{}
						continue
					}
					return fmt.Errorf("input schema property %s/properties/%s is not a schema object", path, name)
				}
				if err := normalizeNode(m, path+"/properties/"+name); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("input schema %s/properties is a JSON %s, not an object", path, jsonKind(p))
		}
	}
	if hasType(node, "array") {
		switch it := node["items"].(type) {
		case nil, bool:
			node["items"] = map[string]any{}
		case map[string]any:
			if err := normalizeNode(it, path+"/items"); err != nil {
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
			continue
		}
		for i, child := range list {
			if m, ok := child.(map[string]any); ok {
				if err := normalizeNode(m, fmt.Sprintf("%s/%s/%d", path, k, i)); err != nil {
					return err
				}
			}
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
