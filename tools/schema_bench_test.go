package tools_test

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-dev/switchboard/tools"
)

// BenchmarkNormalizeSchema measures turning MCP input schemas into
// function parameters, which a catalog does once per tool when it is
// built (never per turn: turns share the catalog's definitions).
func BenchmarkNormalizeSchema(b *testing.B) {
	for _, bc := range []struct{ name, schema string }{
		// The example task server's add_task, as mcp-go describes it.
		{"flat", `{"type":"object","properties":{"user_id":{"type":"string","description":"The id of the user whose tasks to act on."},` +
			`"title":{"type":"string","minLength":1,"maxLength":200,"description":"A short title, e.g. \"Buy groceries\"."},` +
			`"description":{"type":"string","maxLength":1000,"description":"Optional details."}},"required":["user_id","title"]}`},
		// A generated schema: $defs, $refs, a top-level oneOf, keywords to drop.
		{"refs and alternatives", `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{` +
			`"address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city"]},` +
			`"person":{"type":"object","properties":{"name":{"type":"string"},"home":{"$ref":"#/$defs/address"},"work":{"$ref":"#/$defs/address"},"tags":{"type":"array","items":{"type":"string"},"uniqueItems":true}}}},` +
			`"oneOf":[{"type":"object","properties":{"person":{"$ref":"#/$defs/person"}},"required":["person"]},` +
			`{"type":"object","properties":{"people":{"type":"array","items":{"$ref":"#/$defs/person"}},"x-vendor":{"a":1}},"required":["people"]}]}`},
	} {
		raw := json.RawMessage(bc.schema)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tools.NormalizeSchema(raw, []string{"user_id"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
