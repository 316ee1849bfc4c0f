package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/tools"
)

// AgentConfig is one entry of agents: what the orchestrator runs a turn as
// (see orchestrator.Agent).
type AgentConfig struct {
	Description  string `yaml:"description"`
	Instructions string `yaml:"instructions"`
	// Model names an entry of llm.models; empty means the llm block's
	// model.
	Model         string              `yaml:"model"`
	ModelSettings ModelSettingsConfig `yaml:"model_settings"`
	// Servers and Tools (server__tool globs) select its tools; neither
	// means every tool.
	Servers         []string `yaml:"servers"`
	Tools           []string `yaml:"tools"`
	Handoffs        []string `yaml:"handoffs"`
	AgentsAsTools   []string `yaml:"agents_as_tools"`
	MaxSteps        int      `yaml:"max_steps"`
	RequireApproval bool     `yaml:"require_approval"`
	// Users and Roles say who may use it; neither means everyone.
	Users []string `yaml:"users"`
	Roles []string `yaml:"roles"`
	// OutputSchema is the JSON Schema of an object its answers must be.
	OutputSchema map[string]any `yaml:"output_schema"`
	// InputGuardrails check the user's message, OutputGuardrails the
	// answer.
	InputGuardrails  []GuardrailConfig `yaml:"input_guardrails"`
	OutputGuardrails []GuardrailConfig `yaml:"output_guardrails"`
}

// GuardrailConfig is one guardrail: {agent: NAME}, {pattern: REGEX} or
// {max_length: N}, with an optional name and, for a rule, the reason it
// gives.
type GuardrailConfig struct {
	Name      string `yaml:"name"`
	Agent     string `yaml:"agent"`
	Pattern   string `yaml:"pattern"`
	MaxLength int    `yaml:"max_length"`
	Reason    string `yaml:"reason"`
}

func guardrails(list []GuardrailConfig) []orchestrator.Guardrail {
	var out []orchestrator.Guardrail
	for _, g := range list {
		out = append(out, orchestrator.Guardrail{Name: g.Name, Agent: g.Agent, Pattern: g.Pattern, MaxLength: g.MaxLength, Reason: g.Reason})
	}
	return out
}

// ModelSettingsConfig is an agent's model_settings.
type ModelSettingsConfig struct {
	Temperature       *float64 `yaml:"temperature"`
	TopP              *float64 `yaml:"top_p"`
	MaxTokens         int      `yaml:"max_tokens"`
	ToolChoice        string   `yaml:"tool_choice"`
	ParallelToolCalls *bool    `yaml:"parallel_tool_calls"`
	ReasoningEffort   string   `yaml:"reasoning_effort"`
}

// ModelConfig is one entry of llm.models: a model of a provider that
// agents name.
type ModelConfig struct {
	BaseURL string `yaml:"base_url"`
	APIKey  string `yaml:"api_key"`
	Model   string `yaml:"model"`
}

// agentNames names the agents in the file's order.
func agentNames(cfg *Config) []string {
	names := slices.Clone(cfg.agentOrder)
	for name := range cfg.Agents {
		if !slices.Contains(names, name) {
			names = append(names, name) // a config built in code
		}
	}
	slices.Sort(names[len(cfg.agentOrder):])
	return slices.DeleteFunc(names, func(n string) bool { _, ok := cfg.Agents[n]; return !ok })
}

// validateAgents checks what can be checked without the servers: the
// orchestrator's rules (names, default, handoff targets, placeholders,
// globs), each agent's model and servers, the servers named by its globs'
// server__ part, its settings.
func (c *Config) validateAgents() []error {
	var errs []error
	if len(c.Agents) == 0 {
		if c.DefaultAgent != "" {
			errs = append(errs, fmt.Errorf("default_agent %q: no agents are configured", c.DefaultAgent))
		}
		return errs
	}
	if err := orchestrator.CheckAgents(configAgents(c, nil), c.DefaultAgent); err != nil {
		errs = append(errs, fmt.Errorf("agents: %w", err))
	}
	if c.MaxHandoffs < 0 || c.MaxHandoffs > 100 {
		errs = append(errs, fmt.Errorf("max_handoffs must be from 1 to 100, or 0 for %d (got %d)", orchestrator.DefaultMaxHandoffs, c.MaxHandoffs))
	}
	for name, m := range c.LLM.Models {
		if m.Model == "" {
			errs = append(errs, fmt.Errorf("llm.models.%s: model is required", name))
		}
	}
	prefixes := map[string]bool{}
	for name := range c.MCPServers {
		prefixes[serverPrefix(name)] = true
	}
	for _, name := range agentNames(c) {
		a := c.Agents[name]
		if _, ok := c.LLM.Models[a.Model]; a.Model != "" && !ok {
			errs = append(errs, fmt.Errorf("agents.%s: model %q is not in llm.models", name, a.Model))
		}
		for _, s := range a.Servers {
			if _, ok := c.MCPServers[s]; !ok {
				errs = append(errs, fmt.Errorf("agents.%s: server %q is not in mcpServers", name, s))
			}
		}
		for _, g := range a.Tools {
			server, _, ok := strings.Cut(g, "__")
			if !ok {
				errs = append(errs, fmt.Errorf("agents.%s: tools glob %q must be server__tool (a glob of the names the model sees)", name, g))
			} else if !strings.ContainsAny(server, `*?[\`) && !prefixes[server] {
				errs = append(errs, fmt.Errorf("agents.%s: tools glob %q matches nothing: no server %q in mcpServers", name, g, server))
			}
		}
		if a.MaxSteps < 0 || a.MaxSteps > 100 {
			errs = append(errs, fmt.Errorf("agents.%s: max_steps must be from 1 to 100, or 0 for llm.max_steps (got %d)", name, a.MaxSteps))
		}
		switch a.ModelSettings.ReasoningEffort {
		case "", "minimal", "low", "medium", "high":
		default:
			errs = append(errs, fmt.Errorf("agents.%s: model_settings.reasoning_effort must be minimal, low, medium or high (got %q)", name, a.ModelSettings.ReasoningEffort))
		}
		if t := a.ModelSettings.Temperature; t != nil && (*t < 0 || *t > 2) {
			errs = append(errs, fmt.Errorf("agents.%s: model_settings.temperature must be from 0 to 2 (got %g)", name, *t))
		}
		if p := a.ModelSettings.TopP; p != nil && (*p < 0 || *p > 1) {
			errs = append(errs, fmt.Errorf("agents.%s: model_settings.top_p must be from 0 to 1 (got %g)", name, *p))
		}
	}
	return errs
}

// configAgents builds the orchestrator's agents of cfg, in the file's
// order, their models from clients (by llm.models name; nil leaves every
// agent on the default model).
func configAgents(cfg *Config, clients map[string]*llm.Client) []orchestrator.Agent {
	var out []orchestrator.Agent
	for _, name := range agentNames(cfg) {
		a := cfg.Agents[name]
		s := a.ModelSettings
		oa := orchestrator.Agent{Name: name, Description: strings.TrimSpace(a.Description), Instructions: a.Instructions,
			Settings: switchboard.ModelSettings{Temperature: s.Temperature, TopP: s.TopP, MaxTokens: s.MaxTokens, ToolChoice: s.ToolChoice,
				ParallelToolCalls: s.ParallelToolCalls, ReasoningEffort: s.ReasoningEffort},
			Servers: a.Servers, Tools: a.Tools, Handoffs: a.Handoffs, AgentsAsTools: a.AgentsAsTools, MaxSteps: a.MaxSteps, RequireApproval: a.RequireApproval,
			Users: a.Users, Roles: a.Roles,
			InputGuardrails: guardrails(a.InputGuardrails), OutputGuardrails: guardrails(a.OutputGuardrails)}
		if a.OutputSchema != nil {
			oa.OutputSchema, _ = json.Marshal(a.OutputSchema)
		}
		if c := clients[a.Model]; c != nil {
			oa.Model, oa.ModelName = c, cfg.LLM.Models[a.Model].Model
		}
		out = append(out, oa)
	}
	return out
}

// modelClients makes the clients of llm.models that agents use: one per
// provider (base URL and key), each sending the model its agent names.
func modelClients(cfg *Config, logger *slog.Logger) (map[string]*llm.Client, func()) {
	byProvider := map[[2]string]*llm.Client{}
	out := map[string]*llm.Client{}
	for name, m := range cfg.LLM.Models {
		key := [2]string{m.BaseURL, m.APIKey}
		c := byProvider[key]
		if c == nil {
			c = llm.New(llm.Config{BaseURL: m.BaseURL, APIKey: m.APIKey, Model: m.Model, Timeout: time.Duration(cfg.LLM.Timeout)}, &llm.Options{Logger: logger})
			byProvider[key] = c
		}
		out[name] = c
	}
	return out, func() {
		for _, c := range byProvider {
			c.CloseIdleConnections()
		}
	}
}

// agentProblems are what is wrong with the agents against a catalog:
// servers and globs that select no tool. With live, only those of servers
// that are connected count (the others may still come), as start-up
// checks them.
func agentProblems(cfg *Config, catalog *tools.Catalog, ready func(server string) bool) []string {
	var out []string
	for _, a := range configAgents(cfg, nil) {
		_, unmatched := orchestrator.AgentTools(a, catalog)
		for _, u := range unmatched {
			if ready != nil && !ready(selectorServer(cfg, u)) {
				continue
			}
			out = append(out, fmt.Sprintf("agent %s: %s matches no tool", a.Name, u))
		}
	}
	return out
}

// selectorServer is the configured server a selector of AgentTools names
// ("server tasks", "tools glob tasks__add*"); empty for a glob of several.
func selectorServer(cfg *Config, sel string) string {
	if s, ok := strings.CutPrefix(sel, "server "); ok {
		return s
	}
	g, _ := strings.CutPrefix(sel, "tools glob ")
	prefix, _, _ := strings.Cut(g, "__")
	for name := range cfg.MCPServers {
		if serverPrefix(name) == prefix {
			return name
		}
	}
	return ""
}

// serverPrefix is what the names of a server's tools start with, before
// their __.
func serverPrefix(server string) string {
	return strings.TrimSuffix(tools.ExposedName(server, "x"), "__x")
}

// readyServers reports which of the fleet's servers are connected.
func readyServers(fleet *tools.Fleet) func(string) bool {
	ready := map[string]bool{}
	for _, s := range fleet.Servers() {
		ready[s.Name] = s.State == switchboard.ServerReady
	}
	return func(name string) bool { return ready[name] }
}

// listAgents connects to the configured servers, as switchboard tools
// does, and prints each agent with its model, its resolved tools and its
// handoffs, then what is wrong; it fails when something is.
func listAgents(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	cfg, logger, err := commandConfig("agents", args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(cfg.Agents) == 0 {
		fmt.Fprintln(stdout, "No agents configured: every turn runs as one agent with llm's model, llm.system_prompt and every tool.")
		return nil
	}
	fleet, startErr := connectAll(ctx, cfg, logger)
	defer closeServers(fleet, logger)
	catalog := fleet.Current()
	def := cfg.DefaultAgent
	for _, a := range configAgents(cfg, nil) {
		if def == "" {
			def = a.Name
		}
		title := a.Name
		if a.Name == def {
			title += " (default)"
		}
		model := cfg.LLM.Model
		if m := cfg.Agents[a.Name].Model; m != "" {
			model = m + ": " + cfg.LLM.Models[m].Model
		}
		fmt.Fprintf(stdout, "%s\n  model: %s\n", title, model)
		if a.Description != "" {
			fmt.Fprintf(stdout, "  description: %s\n", oneLine(a.Description, 100))
		}
		offered, _ := orchestrator.AgentTools(a, catalog)
		names := make([]string, len(offered))
		for i, e := range offered {
			names[i] = e.ExposedName
		}
		fmt.Fprintf(stdout, "  tools (%d): %s\n", len(names), orNone(names))
		fmt.Fprintf(stdout, "  handoffs: %s\n", orNone(a.Handoffs))
		if len(a.AgentsAsTools) > 0 {
			fmt.Fprintf(stdout, "  agents as tools: %s\n", strings.Join(a.AgentsAsTools, ", "))
		}
		if len(a.Users)+len(a.Roles) > 0 {
			fmt.Fprintf(stdout, "  users: %s; roles: %s\n", orNone(a.Users), orNone(a.Roles))
		}
	}
	problems := agentProblems(cfg, catalog, nil)
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "\nProblems:\n  %s\n", strings.Join(problems, "\n  "))
		return errors.Join(startErr, fmt.Errorf("agents: %d problems", len(problems)))
	}
	return startErr
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
