package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "alpha", "EMPTY": "", "URL": "http://x/${NOT}"})
	tests := []struct {
		in, want, wantErr string
	}{
		{"plain", "plain", ""},
		{"${A}", "alpha", ""},
		{"x-${A}-y", "x-alpha-y", ""},
		{"${A:-def}", "alpha", ""},
		{"${MISSING:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY}", "", ""},
		{"${MISSING:-}", "", ""},
		{"${MISSING:-a:-b}", "a:-b", ""},
		{"$${A}", "${A}", ""},
		{"${URL}", "http://x/${NOT}", ""}, // values are not expanded again
		{"cost $5", "cost $5", ""},
		{"${MISSING}", "", "environment variable MISSING is not set"},
		{"${A", "", "unterminated ${"},
		{"${}", "", "invalid variable name"},
		{"${1A}", "", "invalid variable name"},
		{"${A B}", "", "invalid variable name"},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, env)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Expand(%q): got error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	yamlDoc := `
listen: ${ADDR:-127.0.0.1:9999}
database_url: ${DATABASE_URL:-}
llm:
  api_key: ${KEY}
  max_steps: ${STEPS:-7}
  timeout: 45s
auth:
  jwt_secret: "${SECRET:-}"
mcpServers:
  tasks:
    command: go
    args: [run, ./cmd/tasks-mcp]
    inject: {user_id: user_id}
    autoApprove: [add_task]
  everything:
    url: http://127.0.0.1:3001/mcp
    headers: {Authorization: "Bearer ${TOKEN:-}"}
    timeout: 30
    allowed_tools: [echo, add]
`
	cfg, warnings, err := ParseConfig([]byte(yamlDoc), envOf(map[string]string{"KEY": "sk-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.LLM.APIKey != "sk-1" || cfg.LLM.MaxSteps != 7 || cfg.DatabaseURL != "" {
		t.Errorf("got %+v", cfg)
	}
	if time.Duration(cfg.LLM.Timeout) != 45*time.Second || time.Duration(cfg.MCPServers["everything"].Timeout) != 30*time.Second {
		t.Errorf("durations: got %v and %v", cfg.LLM.Timeout, cfg.MCPServers["everything"].Timeout)
	}
	if got := cfg.MCPServers["everything"].Headers["Authorization"]; got != "Bearer " {
		t.Errorf("header: got %q", got)
	}
	if diff := cmp.Diff([]string{"run", "./cmd/tasks-mcp"}, cfg.MCPServers["tasks"].Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`mcpServers.tasks: ignoring key "autoApprove"`}, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}

	// Claude Desktop's JSON, pasted as is, tabs included.
	jsonDoc := "{\n\t\"mcpServers\": {\n\t\t\"filesystem\": {\n\t\t\t\"command\": \"npx\",\n\t\t\t\"args\": [\"-y\", \"@modelcontextprotocol/server-filesystem\", \"/tmp\"],\n\t\t\t\"env\": {\"DEBUG\": \"${DEBUG:-0}\"}\n\t\t}\n\t}\n}\n"
	cfg, _, err = ParseConfig([]byte(jsonDoc), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	fsrv := cfg.MCPServers["filesystem"]
	if fsrv.Command != "npx" || len(fsrv.Args) != 3 || fsrv.Env["DEBUG"] != "0" {
		t.Errorf("JSON config: got %+v", fsrv)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"missing variable names it", "llm:\n  api_key: ${OPENAI_KEY_X}\n", "OPENAI_KEY_X is not set"},
		{"unknown top-level key", "lisen: x\n", "field lisen not found"},
		{"wrong type", "llm:\n  max_steps: many\n", "cannot unmarshal"},
		{"bad duration", "llm:\n  timeout: soon\n", "is not a duration"},
		{"server without command or url", "mcpServers:\n  x: {args: [a]}\n", "no command or url"},
		{"server with both", "mcpServers:\n  x: {command: a, url: http://b}\n", "not both"},
		{"unknown type", "mcpServers:\n  x: {url: http://b, type: websocket}\n", "unknown transport type"},
		{"bad inject", "mcpServers:\n  x: {command: a, inject: {uid: email}}\n", "unknown caller field \"email\""},
		{"max steps", "llm: {max_steps: 1000}\n", "max_steps"},
		{"images per step", "llm: {vision: true, max_images_per_step: -1}\n", "llm.max_images_per_step must be from 1 to 100"},
		{"image bytes", "llm: {vision: true, max_image_bytes: 100000000}\n", "llm.max_image_bytes must be from 1 to 20971520"},
		{"not yaml", "a: [b\n", "parse config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseConfig([]byte(tt.doc), envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The embedded default must be the example file users read.
func TestEmbeddedDefaultMatchesExample(t *testing.T) {
	onDisk, err := os.ReadFile("../../" + defaultConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, defaultConfig) {
		t.Fatalf("cmd/switchboard/default.yaml differs from %s: copy it over", defaultConfigPath)
	}
	cfg, _, err := ParseConfig(defaultConfig, envOf(nil))
	if err != nil {
		t.Fatalf("the default config does not parse on a fresh machine: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.DatabaseURL != "" || cfg.MCPServers["tasks"].Inject["user_id"] != "user_id" {
		t.Errorf("default config: got %+v", cfg)
	}
}

func TestInstanceIDAndTurnWait(t *testing.T) {
	host := func() (string, error) { return "web-1", nil }
	tests := []struct {
		name, doc    string
		wantInstance string
		wantWait     time.Duration
	}{
		{"defaults", "mcpServers: {}\n", "web-1/127.0.0.1:8080", 0},
		{"the listen address", "listen: 0.0.0.0:9000\nmcpServers: {}\n", "web-1/0.0.0.0:9000", 0},
		{"any free port: no identity", "listen: 127.0.0.1:0\nmcpServers: {}\n", "", 0},
		{"configured", "instance_id: ${ID:-eu-1}\nlimits: {turn_wait: 2s}\nmcpServers: {}\n", "eu-1", 2 * time.Second},
		{"no wait", "limits: {turn_wait: 0}\nmcpServers: {}\n", "web-1/127.0.0.1:8080", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := ParseConfig([]byte(tt.doc), envOf(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := instanceID(cfg, host); got != tt.wantInstance {
				t.Errorf("instance id: got %q, want %q", got, tt.wantInstance)
			}
			if got := turnWait(cfg); got != tt.wantWait {
				t.Errorf("turn wait: got %s, want %s", got, tt.wantWait)
			}
		})
	}
}

// TestMemoryStoreMaxBytes: memory_store.max_bytes reads as a number of
// bytes, from a variable too; absent, it is 0 (the store's default).
func TestMemoryStoreMaxBytes(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		env  map[string]string
		want int64
	}{
		{"listen: 127.0.0.1:0\n", nil, 0},
		{"memory_store:\n  max_bytes: 1048576\n", nil, 1 << 20},
		{"memory_store:\n  max_bytes: ${MEM:-1048576}\n", map[string]string{"MEM": "-1"}, -1},
	} {
		cfg, _, err := ParseConfig([]byte(tt.doc), envOf(tt.env))
		if err != nil {
			t.Fatalf("%q: %v", tt.doc, err)
		}
		if cfg.MemoryStore.MaxBytes != tt.want {
			t.Errorf("%q: max_bytes %d, want %d", tt.doc, cfg.MemoryStore.MaxBytes, tt.want)
		}
	}
}
