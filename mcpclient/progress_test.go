package mcpclient

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

func TestProgressOf(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	tests := map[string]struct {
		params map[string]any
		want   switchboard.ToolProgress
	}{
		"all fields": {map[string]any{"progressToken": "t", "progress": 2.0, "total": 6.0, "message": "step 2"}, switchboard.ToolProgress{Progress: 2, Total: 6, Message: "step 2"}},
		"no total":   {map[string]any{"progress": 0.5}, switchboard.ToolProgress{Progress: 0.5}},
		"fields of the wrong type read as absent": {map[string]any{"progress": "2", "total": true, "message": 7}, switchboard.ToolProgress{}},
		"a long message cut on a rune":            {map[string]any{"progress": 1.0, "message": long}, switchboard.ToolProgress{Progress: 1, Message: strings.Repeat("é", 256) + "…"}},
		"invalid UTF-8 replaced":                  {map[string]any{"progress": 1.0, "message": "a\xffb"}, switchboard.ToolProgress{Progress: 1, Message: "a\uFFFDb"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, progressOf(tt.params)); diff != "" {
				t.Errorf("progressOf (-want +got):\n%s", diff)
			}
		})
	}
}
