package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/tools"
)

// Config is the service's configuration file (YAML, or JSON, which YAML
// reads too). Every string may use ${VAR} and ${VAR:-default}.
type Config struct {
	Listen string `yaml:"listen"`
	// MetricsListen, when set, is the address /metrics is served on
	// instead of listen's: a port kept off the public side (metrics are
	// not authenticated).
	MetricsListen string `yaml:"metrics_listen"`
	// ShutdownGrace is how long running turns may take to finish when the
	// service is asked to stop; then they are cancelled. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	DatabaseURL   string   `yaml:"database_url"`
	// DatabaseDirectURL, when set, is used for migrations (which hold a
	// session lock), so that database_url may go through a transaction
	// pooler such as PgBouncer or Neon's pooled endpoint.
	DatabaseDirectURL string                  `yaml:"database_direct_url"`
	LLM               LLMConfig               `yaml:"llm"`
	Auth              AuthConfig              `yaml:"auth"`
	HTTP              HTTPConfig              `yaml:"http"`
	Limits            LimitsConfig            `yaml:"limits"`
	Retention         RetentionConfig         `yaml:"retention"`
	MemoryStore       MemoryStoreConfig       `yaml:"memory_store"`
	MCPServers        map[string]ServerConfig `yaml:"mcpServers"`
	// MCPStartupWait is how long start-up (and a reload) waits for MCP
	// servers that are not required; those still connecting join the
	// catalog when ready. Absent means 2s; 0 means no wait.
	MCPStartupWait *Duration `yaml:"mcp_startup_wait"`
	// InstanceID names this instance among those sharing the database and
	// stays the same when it starts again, so that it knows the turns its
	// earlier life left running for dead; empty means one made of the host
	// name and the listen address (see instanceID).
	InstanceID string `yaml:"instance_id"`
	// PublicURL is this service's URL as users' browsers reach it: the
	// OAuth callback is PublicURL/oauth/callback. Required with a server of
	// auth type oauth, outside dev mode (which uses the listen address).
	PublicURL string `yaml:"public_url"`
	// SecretsKey is the key ring that seals users' credentials at rest:
	// 32 random bytes in base64 (`openssl rand -base64 32`), or several,
	// comma-separated, the current first ("id:key" names one). Required
	// with a server that has auth, outside dev mode (which makes an
	// ephemeral one).
	SecretsKey string `yaml:"secrets_key"`
	// Agents are the agents turns run as (see AgentConfig); none means one
	// agent of the llm block and every tool. DefaultAgent names the one a
	// new conversation starts with (default: the first); MaxHandoffs caps
	// the handoffs of a turn (0: 5).
	Agents       map[string]AgentConfig `yaml:"agents"`
	DefaultAgent string                 `yaml:"default_agent"`
	MaxHandoffs  int                    `yaml:"max_handoffs"`

	// agentOrder names the agents in the file's order.
	agentOrder []string
	// serverOrder names the mcpServers in the file's order, which is their
	// order in the tool catalog.
	serverOrder []string
}

// LLMConfig configures the model.
type LLMConfig struct {
	BaseURL      string `yaml:"base_url"`
	APIKey       string `yaml:"api_key"`
	Model        string `yaml:"model"`
	MaxSteps     int    `yaml:"max_steps"`
	HistoryLimit int    `yaml:"history_limit"`
	// HistoryTokens caps the approximate tokens replayed; 0 means no cap
	// beyond history_limit.
	HistoryTokens int      `yaml:"history_tokens"`
	Timeout       Duration `yaml:"timeout"`
	SystemPrompt  string   `yaml:"system_prompt"`
	// MaxTools caps the tools of one model request (OpenAI refuses more
	// than 128); the tools past it, in configuration order, are not sent.
	// Absent means 128; 0 means no cap.
	MaxTools *int `yaml:"max_tools"`
	// Vision sends the images tools return to the model, as image parts
	// of a user message after the step's results; MaxImagesPerStep and
	// MaxImageBytes bound them (0 means the orchestrator's defaults).
	Vision           bool `yaml:"vision"`
	MaxImagesPerStep int  `yaml:"max_images_per_step"`
	MaxImageBytes    int  `yaml:"max_image_bytes"`
	// Models are the models agents may name, each of its own provider;
	// the block's own base_url, api_key and model stay the default.
	Models map[string]ModelConfig `yaml:"models"`
	// SamplingModels are other models the model server offers, which an
	// MCP server's sampling request may name in its model preferences;
	// others get model.
	SamplingModels []string `yaml:"sampling_models"`
}

// defaultMaxTools is OpenAI's limit on the tools of a chat completion
// request.
const defaultMaxTools = 128

// maxTools is llm.max_tools: 0 means no cap.
func (c LLMConfig) maxTools() int {
	if c.MaxTools == nil {
		return defaultMaxTools
	}
	return *c.MaxTools
}

// AuthConfig configures token verification.
type AuthConfig struct {
	JWTSecret  string   `yaml:"jwt_secret"`
	JWKSURL    string   `yaml:"jwks_url"`
	Issuer     string   `yaml:"issuer"`
	Audience   string   `yaml:"audience"`
	AdminUsers []string `yaml:"admin_users"`
}

// HTTPConfig bounds how long a client may hold a connection of the HTTP
// server without making progress. Absent (or 0) means the default.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers; default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included, from its
	// first byte; default 30s. It does not bound the handling: once the
	// body is read, the turn takes as long as it takes.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a reply; default 30s. The replies of the
	// routes that run a turn (chat, its stream, approvals) and of a reload
	// may come later and go on for longer: each of their writes gets it
	// instead.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request; default 60s.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// Defaults of the http block.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultWriteTimeout      = 30 * time.Second
	defaultIdleTimeout       = 60 * time.Second
)

// httpTimeouts are the http block with its defaults applied.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

func (c HTTPConfig) timeouts() httpTimeouts {
	or := func(d Duration, def time.Duration) time.Duration {
		if d > 0 {
			return time.Duration(d)
		}
		return def
	}
	return httpTimeouts{
		readHeader: or(c.ReadHeaderTimeout, defaultReadHeaderTimeout),
		read:       or(c.ReadTimeout, defaultReadTimeout),
		write:      or(c.WriteTimeout, defaultWriteTimeout),
		idle:       or(c.IdleTimeout, defaultIdleTimeout),
	}
}

// LimitsConfig bounds requests.
type LimitsConfig struct {
	MaxBodyBytes    int64 `yaml:"max_body_bytes"`
	MaxMessageChars int   `yaml:"max_message_chars"`
	// RatePerMinute and Burst limit each user's chat requests (0: none);
	// MaxConcurrentTurns caps a user's turns running at once (0: none).
	RatePerMinute      float64 `yaml:"rate_per_minute"`
	Burst              int     `yaml:"burst"`
	MaxConcurrentTurns int     `yaml:"max_concurrent_turns"`
	// TurnWait is how long a message waits for a running turn of its
	// conversation before it is answered 409 turn_running with
	// Retry-After. Absent means 5s; 0 means no wait.
	TurnWait *Duration `yaml:"turn_wait"`
}

// MemoryStoreConfig bounds the in-memory store (no database_url).
type MemoryStoreConfig struct {
	// MaxBytes bounds what it keeps of conversations: past it, whole
	// conversations go, least recently used first (never one with a turn
	// running). 0 means 256 MiB (store.DefaultMemoryMaxBytes); below 0, no
	// bound.
	MaxBytes int64 `yaml:"max_bytes"`
}

// RetentionConfig says how long tool-call payloads are kept.
type RetentionConfig struct {
	// ToolCallPayloads is the age past which a ledger row's arguments and
	// results are removed (the row stays for statistics); absent means 90
	// days, 0 keeps them forever.
	ToolCallPayloads *Duration `yaml:"tool_call_payloads"`
	// Interval is how often the pruning runs; default 1h.
	Interval Duration `yaml:"interval"`
	// Batch is how many rows one pruning statement touches; default 1000.
	Batch int `yaml:"batch"`
}

// ServerConfig is one entry of mcpServers: Claude Desktop's keys (command,
// args, env; url, type, headers) and our optional extensions beside them.
type ServerConfig struct {
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Cwd     string            `yaml:"cwd"`

	URL     string            `yaml:"url"`
	Type    string            `yaml:"type"`
	Headers map[string]string `yaml:"headers"`

	// Protocol is the MCP protocol era: auto (default), legacy (the
	// initialize handshake) or modern (MCP 2026-07-28).
	Protocol string `yaml:"protocol"`

	Disabled      bool                `yaml:"disabled"`
	Required      bool                `yaml:"required"`
	InitTimeout   Duration            `yaml:"init_timeout"`
	Timeout       Duration            `yaml:"timeout"`
	ToolTimeouts  map[string]Duration `yaml:"tool_timeouts"`
	AllowedTools  []string            `yaml:"allowed_tools"`
	ExcludedTools []string            `yaml:"excluded_tools"`
	Inject        map[string]string   `yaml:"inject"`

	// RequireApproval: true, false (default) or destructive, for every
	// tool of the server, or a map of tool name (or "*") to one of those.
	RequireApproval ApprovalPolicy `yaml:"require_approval"`
	// Parallel lets the server's tools run concurrently even when they do
	// not declare themselves read-only.
	Parallel bool `yaml:"parallel"`
	// OutputBudget is how many bytes of a result the model sees at once
	// (default 16 KiB); ToolOutputBudgets overrides it per tool.
	OutputBudget      int            `yaml:"output_budget"`
	ToolOutputBudgets map[string]int `yaml:"tool_output_budgets"`
	// MaxResultBytes bounds one message of the server (a result, a tool
	// list), enforced while it is read; default 8 MiB.
	MaxResultBytes int64 `yaml:"max_result_bytes"`
	// HealthInterval is how often a remote server is pinged, so that one
	// that went away is reported degraded without a failed call; default
	// 30s.
	HealthInterval Duration `yaml:"health_interval"`
	// Scope is whose session a call runs on: user (the default), shared
	// (the default of a server with inject) or conversation.
	Scope string `yaml:"scope"`
	// MaxSessions and IdleTimeout bound the sessions of a server of scope
	// user or conversation: defaults 50 (stdio) or 5,000 (HTTP), and 10m.
	MaxSessions int      `yaml:"max_sessions"`
	IdleTimeout Duration `yaml:"idle_timeout"`
	// Auth makes the server act as each user with their own credentials.
	Auth *ServerAuthConfig `yaml:"auth"`
	// Roots are offered to the server (roots/list), file:// URIs that may
	// hold ${user.id} on a server of scope user or conversation; without
	// them the client declares no roots capability.
	Roots []RootConfig `yaml:"roots"`
	// Sampling is deny (the default), allow or approve: whether the
	// server may ask the configured model for a completion, and whether a
	// person approves each request first. SamplingMaxTokens caps what one
	// request may ask for (default 1024).
	Sampling          string `yaml:"sampling"`
	SamplingMaxTokens int    `yaml:"sampling_max_tokens"`
	// ElicitationTimeout bounds the wait for a person's answer to one
	// question of the server (default 10m).
	ElicitationTimeout Duration `yaml:"elicitation_timeout"`
}

// RootConfig is one root of a server's roots.
type RootConfig struct {
	URI  string `yaml:"uri"`
	Name string `yaml:"name"`
}

// ServerAuthConfig is a server's auth: {type: oauth, scopes, client_id,
// client_secret, client_metadata_url} (all but type optional), or {type:
// user_secret, secrets: {NAME: "what it is"}}, whose values the server's
// headers and env use as ${user.NAME}.
type ServerAuthConfig struct {
	Type              string            `yaml:"type"`
	Scopes            []string          `yaml:"scopes"`
	ClientID          string            `yaml:"client_id"`
	ClientSecret      string            `yaml:"client_secret"`
	ClientMetadataURL string            `yaml:"client_metadata_url"`
	Secrets           map[string]string `yaml:"secrets"`
}

// ApprovalPolicy is a server's require_approval, as the file writes it:
// true, false or destructive for all its tools, or a map of tool name (or
// "*") to one of those.
type ApprovalPolicy tools.ApprovalPolicy

// UnmarshalYAML reads true, false, "destructive", or a map of those.
func (p *ApprovalPolicy) UnmarshalYAML(n *yaml.Node) error {
	one := func(n *yaml.Node) (tools.Approval, error) {
		if n.Kind == yaml.ScalarNode {
			switch strings.ToLower(n.Value) {
			case "true", "always", "yes":
				return tools.ApprovalAlways, nil
			case "false", "never", "no":
				return tools.ApprovalNever, nil
			case "destructive":
				return tools.ApprovalDestructive, nil
			}
		}
		return "", fmt.Errorf("line %d: require_approval takes true, false or destructive", n.Line)
	}
	if n.Kind == yaml.MappingNode {
		p.Tools = map[string]tools.Approval{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			a, err := one(n.Content[i+1])
			if err != nil {
				return err
			}
			p.Tools[n.Content[i].Value] = a
		}
		return nil
	}
	a, err := one(n)
	p.All = a
	return err
}

// serverKeys are the keys of ServerConfig; other keys in a server entry
// (other hosts' extensions, such as autoApprove) are ignored with a warning.
var serverKeys = map[string]bool{
	"command": true, "args": true, "env": true, "cwd": true, "url": true, "type": true, "headers": true,
	"disabled": true, "required": true, "init_timeout": true, "timeout": true, "allowed_tools": true,
	"excluded_tools": true, "inject": true, "tool_timeouts": true,
	"require_approval": true, "parallel": true, "output_budget": true, "tool_output_budgets": true,
	"max_result_bytes": true, "health_interval": true, "scope": true, "max_sessions": true, "idle_timeout": true,
	"auth": true, "roots": true, "sampling": true, "sampling_max_tokens": true, "elicitation_timeout": true,
	"protocol": true,
}

// Duration reads "30s", "1m30s", or a bare number of seconds.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be like 30s or a number of seconds", n.Line)
	}
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(secs * float64(time.Second))
	} else if days, err := strconv.ParseFloat(strings.TrimSuffix(n.Value, "d"), 64); err == nil && strings.HasSuffix(n.Value, "d") {
		*d = Duration(days * float64(24*time.Hour))
	} else if v, err := time.ParseDuration(n.Value); err == nil {
		*d = Duration(v)
	} else {
		return fmt.Errorf("line %d: %q is not a duration (like 30s, 2m or 90d)", n.Line, n.Value)
	}
	if *d < 0 {
		return fmt.Errorf("line %d: a duration cannot be negative", n.Line)
	}
	return nil
}

// ParseConfig reads a configuration document, expanding variables with
// getenv. It returns the warnings worth logging (ignored keys) and an error
// naming the problem: a missing variable, a type mismatch with its line, an
// unknown top-level key, an invalid server entry.
func ParseConfig(data []byte, getenv func(string) (string, bool)) (*Config, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse config: %w", err)
	}
	if doc.Kind == 0 { // empty document
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if err := expandNode(&doc, getenv); err != nil {
		return nil, nil, err
	}
	var (
		warnings []string
		order    []string
	)
	if servers := mappingValue(doc.Content[0], "mcpServers"); servers != nil && servers.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(servers.Content); i += 2 {
			name, entry := servers.Content[i].Value, servers.Content[i+1]
			order = append(order, name)
			if entry.Kind != yaml.MappingNode {
				continue
			}
			kept := entry.Content[:0:0]
			for j := 0; j+1 < len(entry.Content); j += 2 {
				if k := entry.Content[j].Value; !serverKeys[k] {
					warnings = append(warnings, fmt.Sprintf("mcpServers.%s: ignoring key %q", name, k))
					continue
				}
				kept = append(kept, entry.Content[j], entry.Content[j+1])
			}
			entry.Content = kept
		}
	}
	var agentOrder []string
	if agents := mappingValue(doc.Content[0], "agents"); agents != nil && agents.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(agents.Content); i += 2 {
			agentOrder = append(agentOrder, agents.Content[i].Value)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("parse config: %w", err)
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	cfg := &Config{agentOrder: agentOrder}
	if err := dec.Decode(cfg); err != nil {
		return nil, nil, fmt.Errorf("parse config: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	cfg.serverOrder = order
	return cfg, warnings, nil
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// expandNode expands variables in every scalar value (not in keys). A plain
// (unquoted) scalar is re-typed after expansion, so `max_steps: ${N:-10}`
// reads as a number.
func expandNode(n *yaml.Node, getenv func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return nil
		}
		v, err := Expand(n.Value, getenv)
		if err != nil {
			return fmt.Errorf("config line %d: %w", n.Line, err)
		}
		n.Value = v
		if n.Style == 0 || n.Style == yaml.TaggedStyle && n.Tag == "" {
			n.Tag = ""
			if v == "" {
				n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expandNode(n.Content[i], getenv); err != nil {
				return err
			}
		}
	default:
		for _, c := range n.Content {
			if err := expandNode(c, getenv); err != nil {
				return err
			}
		}
	}
	return nil
}

// Expand replaces ${VAR} with the variable's value and ${VAR:-default} with
// the value, or default when the variable is unset or empty. $${ is a
// literal ${. A ${VAR} whose variable is unset is an error naming it. The
// session placeholders ${user.…} and ${conversation.…} stay as they are.
func Expand(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ -> literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", truncate(s[i:], 40))
		}
		expr := s[i+2 : i+end]
		if strings.HasPrefix(expr, "user.") || strings.HasPrefix(expr, "conversation.") {
			// A session placeholder (${user.id}): filled when a server's
			// session starts, never from the environment.
			b.WriteString(s[i : i+end+1])
			s = s[i+end+1:]
			continue
		}
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${%s}", name, truncate(expr, 40))
		}
		v, ok := getenv(name)
		switch {
		case hasDef && v == "":
			b.WriteString(def)
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to make it optional)", name, name)
		default:
			b.WriteString(v)
		}
	}
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// validate checks what decoding cannot.
func (c *Config) validate() error {
	var errs []error
	if c.LLM.MaxSteps < 0 || c.LLM.MaxSteps > 100 {
		errs = append(errs, fmt.Errorf("llm.max_steps must be from 1 to 100 (got %d)", c.LLM.MaxSteps))
	}
	if n := c.LLM.maxTools(); n < 0 || n > 0 && n <= orchestrator.BuiltinTools {
		errs = append(errs, fmt.Errorf("llm.max_tools must be 0 (no limit) or at least %d, %d places being kept for the built-in read_tool_result and read_resource (got %d)",
			orchestrator.BuiltinTools+1, orchestrator.BuiltinTools, n))
	}
	if n := c.LLM.MaxImagesPerStep; n < 0 || n > 100 {
		errs = append(errs, fmt.Errorf("llm.max_images_per_step must be from 1 to 100, or 0 for %d (got %d)", orchestrator.DefaultMaxImagesPerStep, n))
	}
	if n := c.LLM.MaxImageBytes; n < 0 || n > orchestrator.DefaultMaxImageRequestBytes {
		errs = append(errs, fmt.Errorf("llm.max_image_bytes must be from 1 to %d, or 0 for %d (got %d)",
			orchestrator.DefaultMaxImageRequestBytes, orchestrator.DefaultMaxImageBytes, n))
	}
	if t := c.HTTP.timeouts(); t.readHeader > t.read {
		errs = append(errs, fmt.Errorf("http.read_header_timeout (%s) must not be longer than http.read_timeout (%s), which bounds the headers too", t.readHeader, t.read))
	}
	// The servers are checked where they are understood: mcpclient (how
	// to reach one), tools (names, policies, scope, placeholders).
	if err := tools.ValidateSpecs(serverSpecs(c)); err != nil {
		errs = append(errs, fmt.Errorf("mcpServers: %w", err))
	}
	errs = append(errs, c.validateAgents()...)
	return errors.Join(errs...)
}

// loadConfig reads the configuration from path, or, when path is empty,
// from configs/switchboard.yaml if it exists, else the embedded default.
// It returns the config, where it came from, and warnings.
func loadConfig(path string, getenv func(string) (string, bool)) (*Config, string, []string, error) {
	var (
		data []byte
		err  error
		from = path
	)
	switch {
	case path != "":
		data, err = os.ReadFile(path)
	default:
		from = defaultConfigPath
		data, err = os.ReadFile(defaultConfigPath)
		if errors.Is(err, os.ErrNotExist) {
			from, data, err = "embedded default", defaultConfig, nil
		}
	}
	if err != nil {
		return nil, from, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, warnings, err := ParseConfig(data, getenv)
	if err != nil {
		return nil, from, nil, fmt.Errorf("%s: %w", from, err)
	}
	return cfg, from, warnings, nil
}
