package main

import (
	"strings"
	"testing"
)

// FuzzExpand: expansion never panics, and its output holds no ${ that the
// input did not escape.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"plain", "${A}", "${A:-d}", "${MISSING}", "$${A}", "${", "${}", "${A:-${B}}", "x${A}y${B:-z}", "$$$${A}"} {
		f.Add(s)
	}
	env := func(k string) (string, bool) {
		switch k {
		case "A":
			return "alpha", true
		case "EMPTY":
			return "", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Expand(s, env)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if !strings.Contains(s, "$${") && !strings.Contains(s, ":-") && strings.Contains(out, "${") {
			t.Fatalf("Expand(%q) = %q: an unexpanded ${", s, out)
		}
	})
}

// FuzzParseConfig: any document is a config or an error, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(defaultConfig))
	f.Add([]byte("mcpServers:\n  a: {command: x}\n"))
	f.Add([]byte(`{"mcpServers":{"fs":{"command":"npx","args":["-y","x"]}}}`))
	f.Add([]byte("llm: {max_steps: ${N:-3}}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _, _ = ParseConfig(doc, func(string) (string, bool) { return "", false })
	})
}
