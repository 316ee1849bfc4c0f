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
// it), its maxTokens capped by the server's sampling_max_tokens, without
// tools (the client does not declare sampling.tools); with approve, the
// user is asked first, as an input (a form without fields: accept approves,
// decline or cancel denies). Each request is a ledger row of its own
// (store.RecordSampling), linked to the call, and is counted.

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
	Tools json.RawMessage `json:"tools"`
}

// messages turns the request's messages into the model's: text only.
func (p samplingParams) messages() ([]switchboard.Message, error) {
	var out []switchboard.Message
	if p.SystemPrompt != "" {
		out = append(out, switchboard.Message{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: p.SystemPrompt})
	}
	for i, m := range p.Messages {
		var role switchboard.Role
		switch m.Role {
		case "user":
			role = switchboard.RoleUser
		case "assistant":
			role = switchboard.RoleAssistant
		default:
			return nil, fmt.Errorf("messages[%d]: role %q: want user or assistant", i, m.Role)
		}
		text, err := samplingText(m.Content)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		out = append(out, switchboard.Message{Role: role, Type: switchboard.MessageText, Content: text})
	}
	if len(p.Messages) == 0 {
		return nil, fmt.Errorf("no messages")
	}
	return out, nil
}

// samplingText reads a message's content: one text block, or a list of
// them.
func samplingText(raw json.RawMessage) (string, error) {
	type block struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	var blocks []block
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "[") {
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return "", fmt.Errorf("content: %w", err)
		}
	} else {
		var b block
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", fmt.Errorf("content: %w", err)
		}
		blocks = []block{b}
	}
	var parts []string
	for _, b := range blocks {
		if b.Type != "text" {
			return "", fmt.Errorf("content of type %q: only text is sampled", b.Type)
		}
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n"), nil
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
	if len(p.Tools) > 0 && string(p.Tools) != "null" {
		return nil, &tools.RequestError{Code: -32602, Message: "sampling with tools is not offered (the client does not declare sampling.tools)"}
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
	reply, err := o.model.Complete(ctx, switchboard.ModelRequest{Messages: msgs, Model: row.Model, MaxTokens: row.MaxTokens}, nil)
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
	stop := "endTurn"
	if reply.FinishReason == "length" {
		stop = "maxTokens"
	}
	out, _ := json.Marshal(map[string]any{"role": "assistant", "content": map[string]any{"type": "text", "text": reply.Content},
		"model": row.Model, "stopReason": stop})
	return out, nil
}

// defaultModel names the configured model in a sampling row.
func (opts Options) defaultModel() string {
	if len(opts.SamplingModels) > 0 {
		return opts.SamplingModels[0]
	}
	return "default"
}
