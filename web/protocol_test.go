package web_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/web"
)

// TestReadStream runs protocol.js's stream reader in Node over streams
// cut into chunks every way: it reads the same parts from each, as
// EventSource would (line ends LF, CRLF or CR, data lines joined, comments
// and other fields ignored, an unfinished event dropped, [DONE] the end).
func TestReadStream(t *testing.T) {
	node := nodetest.Node(t)
	src, err := fs.ReadFile(web.FS(), "protocol.js")
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(t.TempDir(), "protocol.mjs") // Node reads it as a module by its name
	if err := os.WriteFile(module, src, 0o644); err != nil {
		t.Fatal(err)
	}
	type part = map[string]any
	tests := map[string]struct {
		stream string
		want   []part
	}{
		"as api writes it": {
			"data: {\"type\":\"start\",\"messageId\":\"t1\"}\n\ndata: {\"type\":\"text-delta\",\"id\":\"text-1\",\"delta\":\"héllo 👋\"}\n\n" +
				"data: {\"type\":\"finish\"}\n\ndata: [DONE]\n\n",
			[]part{{"type": "start", "messageId": "t1"}, {"type": "text-delta", "id": "text-1", "delta": "héllo 👋"}, {"type": "finish"}},
		},
		"CRLF and CR line ends": {
			"data: {\"type\":\"start\"}\r\n\r\ndata: {\"type\":\"finish\"}\r\rdata: [DONE]\r\n\r\n",
			[]part{{"type": "start"}, {"type": "finish"}},
		},
		"data lines joined, comments and other fields ignored": {
			": keep-alive\nevent: message\nid: 7\ndata: {\"type\":\ndata:\"text-delta\",\"delta\":\"a\"}\nretry: 10\n\n\n\ndata: [DONE]\n\n",
			[]part{{"type": "text-delta", "delta": "a"}},
		},
		"nothing read after [DONE]": {
			"data: {\"type\":\"start\"}\n\ndata: [DONE]\n\ndata: {\"type\":\"late\"}\n\n",
			[]part{{"type": "start"}},
		},
		"a body cut off: its unfinished event dropped": {
			"data: {\"type\":\"start\"}\n\ndata: {\"type\":\"text-delta\",\"delta\":\"a\"}\n",
			[]part{{"type": "start"}},
		},
		"a body ending in CR ends its event": {
			"data: {\"type\":\"start\"}\r\r",
			[]part{{"type": "start"}},
		},
	}
	cases := map[string]string{}
	for name, tt := range tests {
		cases[name] = tt.stream
	}
	b, _ := json.Marshal(cases)
	cmd := exec.Command(node, filepath.Join("testdata", "readstream.mjs"))
	cmd.Env = append(os.Environ(), "PROTOCOL="+module, "CASES="+string(b))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s", err, stderr)
	}
	var got map[string]struct {
		Parts  []part   `json:"parts"`
		Differ []string `json:"differ"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	for name, tt := range tests {
		g := got[name]
		if diff := cmp.Diff(tt.want, g.Parts); diff != "" {
			t.Errorf("%s: parts (-want +got):\n%s", name, diff)
		}
		for _, d := range g.Differ {
			t.Errorf("%s: read otherwise when %s", name, d)
		}
	}
}
