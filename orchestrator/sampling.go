package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// Sampling (MCP sampling/createMessage): a server whose sampling setting is
// allow or approve may ask the model for a completion during a tool call.
// The request goes to the configured model (or another the model server
// offers, Options.SamplingModels, when the server's model preferences name
// it), its maxTokens capped by the server's sampling_max_tokens; with
// approve, the user is asked first, as an input (a form without fields:
// accept approves, decline or cancel denies). Each request is a ledger row
// of its own (store.RecordSampling), linked to the call, and is counted.
//
// Sampling with tools (MCP 2025-11-25, sampling.tools): the request may
// offer the model tools, which the server runs itself when the model asks
// for them (tool_use in the result, tool_result in its next request). Only
// the server's own tools that the user's turn is offered (its agent's
// catalog) may be offered so: a server cannot have the model drive a tool
// the user could not call. A request offering any other is refused
// (-32602), naming it.

// SamplingObserver is what an Observer that also counts sampling requests
// implements. *metrics.Metrics implements it.
type SamplingObserver interface {
	SamplingEnded(s switchboard.Sampling)
}

// SamplingStore records sampling requests. store.Memory and store.Postgres
// implement it.
type SamplingStore interface {
	RecordSampling(ctx context.Context, s *switchboard.Sampling) error
}

// codeUserRejected is the JSON-RPC error code of a sampling request the
// user did not approve (the spec's examples use -1).
const codeUserRejected = -1

// samplingParams is what Switchboard reads of a sampling request.
type samplingParams struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	SystemPrompt     string `json:"systemPrompt"`
	MaxTokens        int    `json:"maxTokens"`
	ModelPreferences *struct {
		Hints []struct {
			Name string `json:"name"`
		} `json:"hints"`
	} `json:"modelPreferences"`
	Tools []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
	} `json:"tools"`
	ToolChoice *struct {
		Mode string `json:"mode"`
	} `json:"toolChoice"`
}

// samplingBlock is a content block of a sampling message: text, and with
// tools tool_use (the model asked for a tool) and tool_result (what the
// server's tool returned).
type samplingBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
	// tool_use
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
	// tool_result
	ToolUseID string          `json:"toolUseId"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"isError"`
}

// messages turns the request's messages into the model's: text, and the
// tool uses and results of sampling with tools (a user message of tool
// results becomes one tool message per result).
func (p samplingParams) messages() ([]switchboard.Message, error) {
	var out []switchboard.Message
	if p.SystemPrompt != "" {
		out = append(out, switchboard.Message{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: p.SystemPrompt})
	}
	for i, m := range p.Messages {
		blocks, err := samplingBlocks(m.Content)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		var texts []string
		var uses []switchboard.RequestedCall
		var results []switchboard.Message
		for _, b := range blocks {
			switch b.Type {
			case "text":
				texts = append(texts, b.Text)
			case "tool_use":
				if m.Role != "assistant" || b.ID == "" || b.Name == "" {
					return nil, fmt.Errorf("messages[%d]: a tool_use block needs an id and a name, in an assistant message", i)
				}
				args := string(b.Input)
				if args == "" || args == "null" {
					args = "{}"
				}
				uses = append(uses, switchboard.RequestedCall{ID: b.ID, Name: b.Name, Arguments: args})
			case "tool_result":
				if m.Role != "user" || b.ToolUseID == "" {
					return nil, fmt.Errorf("messages[%d]: a tool_result block needs a toolUseId, in a user message", i)
				}
				text, err := samplingText(b.Content)
				if err != nil {
					return nil, fmt.Errorf("messages[%d]: tool_result: %w", i, err)
				}
				if b.IsError {
					text = "error: " + text
				}
				results = append(results, switchboard.Message{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult,
					ToolCallID: b.ToolUseID, Content: text})
			default:
				return nil, fmt.Errorf("messages[%d]: content of type %q: only text, tool_use and tool_result are sampled", i, b.Type)
			}
		}
		switch {
		case len(results) > 0:
			if len(texts) > 0 || len(uses) > 0 {
				return nil, fmt.Errorf("messages[%d]: a message of tool results holds nothing else", i)
			}
			out = append(out, results...)
		case m.Role == "user":
			out = append(out, switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: strings.Join(texts, "\n")})
		case m.Role == "assistant" && len(uses) > 0:
			out = append(out, switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
				Content: strings.Join(texts, "\n"), ToolCalls: uses})
		case m.Role == "assistant":
			out = append(out, switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageText, Content: strings.Join(texts, "\n")})
		default:
			return nil, fmt.Errorf("messages[%d]: role %q: want user or assistant", i, m.Role)
		}
	}
	if len(p.Messages) == 0 {
		return nil, fmt.Errorf("no messages")
	}
	return out, nil
}

// samplingBlocks reads a message's content: one block, or a list of them.
func samplingBlocks(raw json.RawMessage) ([]samplingBlock, error) {
	var blocks []samplingBlock
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "[") {
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return nil, fmt.Errorf("content: %w", err)
		}
	} else {
		var b samplingBlock
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("content: %w", err)
		}
		blocks = []samplingBlock{b}
	}
	return blocks, nil
}

// samplingText reads the text of content: one text block, or a list of
// them.
func samplingText(raw json.RawMessage) (string, error) {
	blocks, err := samplingBlocks(raw)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, b := range blocks {
		if b.Type != "text" {
			return "", fmt.Errorf("content of type %q: want text", b.Type)
		}
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n"), nil
}

// samplingTools checks the tools a sampling request of server offers the
// model (see above) and returns them as the model's, with the tool choice
// to send ("" for the model's default; none sends no tools).
func (a *callAsker) samplingTools(server string, p samplingParams) ([]switchboard.ToolDefinition, string, error) {
	if len(p.Tools) == 0 {
		return nil, "", nil
	}
	mode := ""
	if p.ToolChoice != nil {
		mode = p.ToolChoice.Mode
	}
	switch mode {
	case "", "auto", "required", "none":
	default:
		return nil, "", fmt.Errorf("toolChoice mode %q: want auto, required or none", mode)
	}
	offered := a.t.toolsOf(a.t.agent)
	own := map[string]bool{}
	for _, e := range a.t.catalog.Entries() {
		if e.Server == server && offered.offers(e.ExposedName) {
			own[e.Tool] = true
		}
	}
	defs := make([]switchboard.ToolDefinition, 0, len(p.Tools))
	for _, tl := range p.Tools {
		if !own[tl.Name] {
			return nil, "", fmt.Errorf("tool %q is not a tool of %s that this user's turn is offered: a server may let the model use only its own tools in the user's catalog", tl.Name, server)
		}
		params := tl.InputSchema
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object"}`)
		}
		defs = append(defs, switchboard.ToolDefinition{Name: tl.Name, Description: tl.Description, Parameters: params})
	}
	if mode == "none" {
		return nil, "", nil
	}
	return defs, mode, nil
}

// samplingResult is the result of a sampling request: the model's text,
// and with tools the uses it asked for (tool_use blocks, stopReason
// toolUse).
func samplingResult(reply switchboard.ModelReply, model string) json.RawMessage {
	stop := "endTurn"
	if reply.FinishReason == "length" {
		stop = "maxTokens"
	}
	var content any = map[string]any{"type": "text", "text": reply.Content}
	if len(reply.ToolCalls) > 0 {
		stop = "toolUse"
		var blocks []map[string]any
		if reply.Content != "" {
			blocks = append(blocks, map[string]any{"type": "text", "text": reply.Content})
		}
		for _, c := range reply.ToolCalls {
			input := json.RawMessage(c.Arguments)
			if !json.Valid(input) || len(strings.TrimSpace(c.Arguments)) == 0 {
				input = json.RawMessage(`{}`)
			}
			blocks = append(blocks, map[string]any{"type": "tool_use", "id": c.ID, "name": c.Name, "input": input})
		}
		content = blocks
	}
	out, _ := json.Marshal(map[string]any{"role": "assistant", "content": content, "model": model, "stopReason": stop})
	return out
}

// pickModel maps the server's model hints onto the configured models: the
// first hint that names one (or is a part of its name) picks it; else the
// default ("": the configured model).
func (o *Orchestrator) pickModel(p samplingParams) string {
	if p.ModelPreferences == nil {
		return ""
	}
	for _, h := range p.ModelPreferences.Hints {
		if h.Name == "" {
			continue
		}
		for _, m := range o.opts.SamplingModels {
			if strings.Contains(strings.ToLower(m), strings.ToLower(h.Name)) {
				return m
			}
		}
	}
	return ""
}

// CreateMessage answers a server's sampling request (see above).
func (a *callAsker) CreateMessage(ctx context.Context, server string, r tools.SamplingRequest) (json.RawMessage, error) {
	o := a.t.o
	row := switchboard.Sampling{UserID: a.call.UserID, ConversationID: a.call.ConversationID, TurnID: a.call.TurnID,
		ToolCallID: a.call.ID, Server: server, Kind: "sampling", StartedAt: time.Now()}
	record := func(status switchboard.SamplingStatus, why string) {
		row.Status, row.Error, row.FinishedAt = status, why, time.Now()
		row.Duration = row.FinishedAt.Sub(row.StartedAt)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := o.store.RecordSampling(rctx, &row); err != nil {
			o.logger.Warn("record sampling", "call_id", a.call.ID, "err", err)
		}
		if so, ok := o.opts.Observer.(SamplingObserver); ok {
			so.SamplingEnded(row)
		}
		o.logger.Info("sampling", "user_id", row.UserID, "conversation_id", row.ConversationID, "turn_id", row.TurnID,
			"call_id", row.ToolCallID, "server", server, "model", row.Model, "status", string(status),
			"prompt_tokens", row.PromptTokens, "completion_tokens", row.CompletionTokens, "duration", row.Duration)
	}
	var p samplingParams
	if err := json.Unmarshal(r.Params, &p); err != nil {
		return nil, &tools.RequestError{Code: -32602, Message: "invalid sampling params: " + err.Error()}
	}
	defs, choice, err := a.samplingTools(server, p)
	if err != nil {
		record(switchboard.SamplingDenied, err.Error())
		return nil, &tools.RequestError{Code: -32602, Message: "invalid sampling request: " + err.Error()}
	}
	msgs, err := p.messages()
	if err != nil {
		return nil, &tools.RequestError{Code: -32602, Message: "invalid sampling request: " + err.Error()}
	}
	row.MaxTokens = r.MaxTokens
	if p.MaxTokens > 0 && (r.MaxTokens <= 0 || p.MaxTokens < r.MaxTokens) {
		row.MaxTokens = p.MaxTokens
	}
	row.Model = o.pickModel(p)
	if r.Approve {
		last := msgs[len(msgs)-1].Content
		if len(last) > 500 {
			last = last[:500] + "…"
		}
		ans, err := a.ask(ctx, switchboard.Input{Server: server, Mode: switchboard.InputForm,
			Message:         fmt.Sprintf("%s asks to use the model (at most %d tokens) for: %s — approve?", server, row.MaxTokens, last),
			RequestedSchema: json.RawMessage(`{"type":"object","properties":{}}`)})
		if err != nil {
			record(switchboard.SamplingFailed, err.Error())
			return nil, err
		}
		if ans.Action != switchboard.ActionAccept {
			record(switchboard.SamplingDenied, "the user did not approve the request ("+ans.Action+")")
			return nil, &tools.RequestError{Code: codeUserRejected, Message: "the user rejected the sampling request"}
		}
	}
	reply, err := o.model.Complete(ctx, switchboard.ModelRequest{Messages: msgs, Tools: defs, Model: row.Model, MaxTokens: row.MaxTokens,
		Settings: switchboard.ModelSettings{ToolChoice: choice}}, nil)
	row.PromptTokens, row.CompletionTokens = reply.PromptTokens, reply.CompletionTokens
	if row.Model == "" {
		row.Model = o.opts.defaultModel()
	}
	if err != nil {
		record(switchboard.SamplingFailed, errorNote(err))
		return nil, &tools.RequestError{Code: -32603, Message: "the model failed: " + errorNote(err)}
	}
	o.opts.Observer.ModelUsage(reply.PromptTokens, reply.CompletionTokens)
	record(switchboard.SamplingSucceeded, "")
	return samplingResult(reply, row.Model), nil
}

// defaultModel names the configured model in a sampling row.
func (opts Options) defaultModel() string {
	if len(opts.SamplingModels) > 0 {
		return opts.SamplingModels[0]
	}
	return "default"
}
