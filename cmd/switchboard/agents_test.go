package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// agentsYAML is a config with the tasks server and agents: triage (no
// tools of its own, hands off to tasks) and tasks (the task tools, on a
// model of llm.models).
func agentsYAML(extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
llm: {base_url: "${TRIAGE_URL:-http://127.0.0.1:1/v1}", api_key: k, model: small,
  models: {big: {base_url: "${TASKS_URL:-http://127.0.0.1:2/v1}", api_key: k2, model: big-model}}}
mcpServers:
  tasks: {command: %q, inject: {user_id: user_id}}
default_agent: triage
agents:
  triage:
    description: Routes the user.
    instructions: "Triage for {{user_id}}."
    servers: []
    tools: ["tasks__list_*"]
    handoffs: [tasks]
  tasks:
    description: Keeps the user's tasks.
    model: big
    model_settings: {temperature: 0.2, max_tokens: 300, tool_choice: auto, parallel_tool_calls: false}
    servers: [tasks]
    max_steps: 4
%s`, tasksBin, extra)
}

func TestAgentsConfig(t *testing.T) {
	cfg, _, err := ParseConfig([]byte(agentsYAML("")), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	agents := configAgents(cfg, nil)
	var names []string
	for _, a := range agents {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{"triage", "tasks"}, names); diff != "" {
		t.Errorf("agents in the file's order (-want +got):\n%s", diff)
	}
	withSchema, _, err := ParseConfig([]byte(agentsYAML(`  typed:
    output_schema: {type: object, properties: {done: {type: boolean}}, required: [done], additionalProperties: false}
    input_guardrails: [{agent: triage}, {pattern: "(?i)password", reason: no passwords}]
    output_guardrails: [{name: short, max_length: 500}]
`)), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	typed := configAgents(withSchema, nil)[2]
	if string(typed.OutputSchema) != `{"additionalProperties":false,"properties":{"done":{"type":"boolean"}},"required":["done"],"type":"object"}` ||
		len(typed.InputGuardrails) != 2 || typed.InputGuardrails[1].Reason != "no passwords" || typed.OutputGuardrails[0].MaxLength != 500 {
		t.Errorf("typed: got schema %s, guardrails %+v and %+v", typed.OutputSchema, typed.InputGuardrails, typed.OutputGuardrails)
	}
	if a := agents[1]; a.MaxSteps != 4 || *a.Settings.Temperature != 0.2 || a.Settings.MaxTokens != 300 || *a.Settings.ParallelToolCalls {
		t.Errorf("tasks: got %+v", a)
	}

	bad := []struct {
		name, yaml, want string
	}{
		{"unknown handoff", "  billing: {handoffs: [nobody]}\n", `handoff to "nobody", which is not an agent`},
		{"unknown model", "  billing: {model: huge}\n", `model "huge" is not in llm.models`},
		{"unknown server", "  billing: {servers: [mail]}\n", `server "mail" is not in mcpServers`},
		{"glob of no server", "  billing: {tools: [\"mail__*\"]}\n", `tools glob "mail__*" matches nothing: no server "mail"`},
		{"glob without server", "  billing: {tools: [\"send\"]}\n", `must be server__tool`},
		{"placeholder", "  billing: {instructions: \"Hi {{user_name}}\"}\n", `only {{user_id}}, {{date}} and {{agent}}`},
		{"name", "  \"bill ing\": {}\n", `a name must be`},
		{"effort", "  billing: {model_settings: {reasoning_effort: extreme}}\n", `reasoning_effort`},
		{"cycle", "  a: {agents_as_tools: [b]}\n  b: {agents_as_tools: [a]}\n", `agents_as_tools make a cycle: a -> b -> a`},
		{"agent tool", "  a: {agents_as_tools: [zed]}\n", `agents_as_tools names "zed", which is not an agent`},
		{"schema", "  billing: {output_schema: {type: array}}\n", `output_schema must be of type object`},
		{"guardrail agent", "  billing: {input_guardrails: [{agent: judge}]}\n", `agent "judge" is not an agent`},
		{"guardrail rules", "  billing: {output_guardrails: [{pattern: x, max_length: 3}]}\n", `give one of agent, pattern and max_length`},
		{"guardrail pattern", "  billing: {input_guardrails: [{pattern: \"(\"}]}\n", `pattern: error parsing regexp`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseConfig([]byte(agentsYAML(tt.yaml)), envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	_, _, err = ParseConfig([]byte(strings.Replace(agentsYAML(""), "default_agent: triage", "default_agent: nobody", 1)), envOf(nil))
	if err == nil || !strings.Contains(err.Error(), `default_agent "nobody" is not an agent`) {
		t.Errorf("unknown default agent: got %v", err)
	}
}

// TestAgentsCommand: switchboard agents connects to the servers and
// prints each agent's resolved tools and handoffs; a glob that matches no
// tool is a problem it names and fails on, and so does start-up.
func TestAgentsCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", agentsYAML(""))
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"agents", "--config", good}, envOf(nil), &out, &errOut); err != nil {
		t.Fatalf("agents: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"triage (default)\n  model: small\n", "  tools (1): tasks__list_tasks\n  handoffs: tasks\n",
		"tasks\n  model: big: big-model\n", "tools (5): tasks__add_task, tasks__complete_task, tasks__delete_task, tasks__list_tasks, tasks__update_task\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("agents output lacks %q:\n%s", want, out.String())
		}
	}

	bad := write("bad.yaml", agentsYAML("  lost: {tools: [\"tasks__nothing_*\"]}\n"))
	out.Reset()
	err := run(ctx, []string{"agents", "--config", bad}, envOf(nil), &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "agent lost: tools glob tasks__nothing_* matches no tool") {
		t.Errorf("agents with a glob matching nothing: got %v and\n%s", err, out.String())
	}
	err = run(ctx, []string{"serve", "--config", bad}, envOf(nil), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "agent lost: tools glob tasks__nothing_* matches no tool") {
		t.Errorf("serve with a glob matching nothing: got %v, want it refused", err)
	}
}

// TestAgentsExampleConfig: configs/agents.yaml, the README's example, loads.
func TestAgentsExampleConfig(t *testing.T) {
	cfg, _, _, err := loadConfig("../../configs/agents.yaml", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range configAgents(cfg, nil) {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{"triage", "tasks", "planner", "moderator"}, names); diff != "" {
		t.Errorf("agents (-want +got):\n%s", diff)
	}
}
