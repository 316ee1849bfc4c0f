package tools_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/tools"
)

func TestNormalizeSchemaForProviders(t *testing.T) {
	deep := `{"type":"string"}`
	for range 40 {
		deep = `{"type":"object","properties":{"a":` + deep + `}}`
	}
	// Each level refers to the next four times: 4^10 nodes once inlined.
	var bomb strings.Builder
	bomb.WriteString(`{"type":"object","properties":{"x":{"$ref":"#/$defs/d0"}},"$defs":{`)
	for i := range 10 {
		next := fmt.Sprintf(`{"$ref":"#/$defs/d%d"}`, i+1)
		fmt.Fprintf(&bomb, `"d%d":{"type":"object","properties":{"a":%s,"b":%s,"c":%s,"d":%s}},`, i, next, next, next, next)
	}
	bomb.WriteString(`"d10":{"type":"string"}}}`)

	tests := []struct {
		name, in, want, err string
	}{
		{name: "unsupported keywords",
			in:   `{"type":"object","$comment":"c","unevaluatedProperties":false,"patternProperties":{"^x":{}},"properties":{"a":{"type":"string","x-vendor":1,"readOnly":true,"deprecated":true,"pattern":"^a+$"}},"if":{},"then":{}}`,
			want: `{"properties":{"a":{"pattern":"^a+$","type":"string"}},"type":"object"}`},
		{name: "$ref into $defs, with a sibling description",
			in:   `{"type":"object","properties":{"p":{"$ref":"#/$defs/pt","description":"where"}},"$defs":{"pt":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}}}`,
			want: `{"properties":{"p":{"description":"where","properties":{"x":{"type":"number"}},"required":["x"],"type":"object"}},"type":"object"}`},
		{name: "draft-07 definitions",
			in:   `{"type":"object","properties":{"c":{"$ref":"#/definitions/color"}},"definitions":{"color":{"enum":["red","blue"]}}}`,
			want: `{"properties":{"c":{"enum":["red","blue"]}},"type":"object"}`},
		{name: "a property named like a keyword",
			in:   `{"type":"object","properties":{"default":{"$ref":"#/$defs/s"},"enum":{"type":"string"}},"$defs":{"s":{"type":"string"}}}`,
			want: `{"properties":{"default":{"type":"string"},"enum":{"type":"string"}},"type":"object"}`},
		{name: "recursive $ref",
			in:   `{"type":"object","properties":{"tree":{"$ref":"#/$defs/node"}},"$defs":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/$defs/node"}}}}}}`,
			want: `{"properties":{"tree":{"properties":{"children":{"items":{"description":"(recursive: same shape as its parent)"},"type":"array"}},"type":"object"}},"type":"object"}`},
		{name: "remote $ref", in: `{"type":"object","properties":{"a":{"$ref":"https://example.com/s.json"}}}`, err: "not local"},
		{name: "dangling $ref", in: `{"type":"object","properties":{"a":{"$ref":"#/$defs/nope"}}}`, err: "points at nothing"},
		{name: "top-level anyOf of objects",
			in:   `{"anyOf":[{"type":"object","properties":{"id":{"type":"integer"},"kind":{"const":"id"}},"required":["id","kind"]},{"type":"object","properties":{"name":{"type":"string"},"kind":{"const":"name"}},"required":["name","kind"]}]}`,
			want: `{"description":"One of 2 argument shapes; see the properties.","properties":{"id":{"type":"integer"},"kind":{"anyOf":[{"const":"id"},{"const":"name"}]},"name":{"type":"string"}},"required":["kind"],"type":"object"}`},
		{name: "top-level anyOf of constraints",
			in:   `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"anyOf":[{"required":["a"]},{"required":["b"]}]}`,
			want: `{"description":"One of 2 argument shapes; see the properties.","properties":{"a":{"type":"string"},"b":{"type":"string"}},"type":"object"}`},
		{name: "top-level allOf",
			in:   `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"number"}},"required":["b"]}]}`,
			want: `{"properties":{"a":{"type":"string"},"b":{"type":"number"}},"required":["a","b"],"type":"object"}`},
		{name: "top-level oneOf with a string", in: `{"oneOf":[{"type":"object"},{"type":"string"}]}`, err: "top-level oneOf/1 is not an object schema"},
		{name: "nullable object", in: `{"type":["object","null"],"properties":{}}`, want: `{"properties":{},"type":"object"}`},
		{name: "true", in: `true`, want: `{"properties":{},"type":"object"}`},
		{name: "unknown type", in: `{"type":"object","properties":{"when":{"type":"date"}}}`, err: `#/properties/when has type "date"`},
		{name: "required without a property",
			in:   `{"type":"object","properties":{"a":{"type":"string"}},"required":["a","b"]}`,
			want: `{"properties":{"a":{"type":"string"},"b":{}},"required":["a","b"],"type":"object"}`},
		{name: "boolean properties", in: `{"type":"object","properties":{"any":true,"never":false}}`, want: `{"properties":{"any":{}},"type":"object"}`},
		{name: "empty enum", in: `{"type":"object","properties":{"e":{"type":"string","enum":[]}}}`, want: `{"properties":{"e":{"type":"string"}},"type":"object"}`},
		{name: "nested arrays and additionalProperties",
			in:   `{"type":"object","properties":{"m":{"type":"object","additionalProperties":{"type":"array"}},"t":{"type":"array","prefixItems":[{"type":"string"}]}}}`,
			want: `{"properties":{"m":{"additionalProperties":{"items":{},"type":"array"},"properties":{},"type":"object"},"t":{"items":{},"type":"array"}},"type":"object"}`},
		{name: "too deep", in: deep, err: "deeper than 32 levels"},
		{name: "$ref bomb", in: bomb.String(), err: "more than 20000 nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tools.NormalizeSchema(json.RawMessage(tt.in), nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %s, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}
