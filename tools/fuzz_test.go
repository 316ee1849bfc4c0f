package tools

import (
	"encoding/json"
	"testing"
)

// FuzzNormalizeSchema: any input schema is made into valid OpenAI
// parameters (a JSON object of type object with properties, without the
// hidden arguments) or refused with a reason; never a panic.
func FuzzNormalizeSchema(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `{"type":"object"}`, `{"type":"string"}`, `[1]`,
		`{"type":"object","properties":{"user_id":{"type":"string"},"q":{"type":"array"}},"required":["user_id","q"]}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"a":{"anyOf":[{"type":"array"},{"type":"null"}]}}}`,
		`{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"type":"object"}}}`,
		`{"type":["object","null"]}`, `{"type":"object","properties":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := NormalizeSchema(raw, []string{"user_id"})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		var root map[string]any
		if err := json.Unmarshal(out, &root); err != nil {
			t.Fatalf("output is not a JSON object: %s", out)
		}
		if root["type"] != "object" {
			t.Fatalf("output type is %v, want object: %s", root["type"], out)
		}
		props, ok := root["properties"].(map[string]any)
		if !ok {
			t.Fatalf("output has no properties object: %s", out)
		}
		if _, ok := props["user_id"]; ok {
			t.Fatalf("the hidden argument is visible: %s", out)
		}
	})
}
