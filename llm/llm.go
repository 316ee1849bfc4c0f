// Package llm is Switchboard's client for OpenAI-compatible chat models
// (OpenAI, Ollama, vLLM, LiteLLM ...), on top of go-openai: it turns the
// stored transcript into OpenAI's message format, calls the model streamed or
// not, retries rate limits and server errors, and maps failures to the
// domain's errors.
package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/redact"
)

// Defaults.
const (
	DefaultBaseURL    = "https://api.openai.com/v1"
	DefaultModel      = "gpt-4o-mini"
	DefaultTimeout    = 120 * time.Second
	DefaultMaxRetries = 2
)

// Config says which model to call and how.
type Config struct {
	BaseURL string // any OpenAI-compatible server; empty means OpenAI
	APIKey  string
	Model   string
	// Timeout bounds one model call, a streamed one included; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxRetries is how many times a call that met a rate limit (429) or a
	// server error (5xx) is retried; 0 means DefaultMaxRetries, negative none.
	MaxRetries int
}

// Configured reports whether cfg names a model server that can answer: an
// API key, or a base URL other than OpenAI's (a local Ollama needs no key).
func (cfg Config) Configured() bool {
	if cfg.APIKey != "" {
		return true
	}
	if cfg.BaseURL == "" {
		return false
	}
	u, err := url.Parse(cfg.BaseURL)
	return err == nil && u.Host != "" && !strings.HasSuffix(u.Hostname(), "api.openai.com")
}

// Options are the optional collaborators of a Client; nil means defaults.
type Options struct {
	Logger *slog.Logger
	// Transport carries the HTTP requests; nil means a transport of the
	// client's own, which keeps up to MaxIdleConnsPerHost connections to
	// the model server open between calls.
	Transport http.RoundTripper
}

// MaxIdleConnsPerHost is how many idle connections to the model server the
// default transport keeps. net/http's default, 2, makes every concurrent
// turn past the second dial a new connection for each model call (and
// leaves the closed ones in TIME_WAIT).
const MaxIdleConnsPerHost = 256

// ConnBufferSize is the default transport's read and write buffer per
// connection to the model server (net/http's default is 4 KiB each). A
// connection is held for the whole of a call, seconds of the model's
// thinking, so at thousands of turns in flight the buffers are megabytes
// that wait; a request's body and a reply's chunks larger than the buffer
// go past it in one system call anyway, and a streamed reply is read
// through go-openai's own 4 KiB reader.
const ConnBufferSize = 1 << 10

// Client calls one configured model. It is safe for concurrent use.
type Client struct {
	cfg    Config
	api    *openai.Client
	http   *http.Client
	logger *slog.Logger
	// scrub hides the API key (and the base URL's secrets) in what the
	// model server says back: some echo the request's headers.
	scrub *redact.Scrubber
}

// New returns a client for cfg. It never fails: an unconfigured model is
// reported by Ready and by every call.
func New(cfg Config, opts *Options) *Client {
	if opts == nil {
		opts = &Options{}
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := opts.Transport
	if base == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 0 // no limit but the per-host one
		tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		tr.ReadBufferSize, tr.WriteBufferSize = ConnBufferSize, ConnBufferSize
		base = tr
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	hc := &http.Client{Transport: &retryTransport{base: base, max: max(cfg.MaxRetries, 0), logger: logger}}
	oc.HTTPClient = hc
	scrub := redact.New(append(redact.URLSecrets(cfg.BaseURL), redact.HeaderSecrets("Bearer "+cfg.APIKey)...)...)
	return &Client{cfg: cfg, api: openai.NewClientWithConfig(oc), http: hc, logger: logger, scrub: scrub}
}

// CloseIdleConnections closes the connections to the model server that no
// call uses (each holds two goroutines until it times out after 90s).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Model returns the configured model name.
func (c *Client) Model() string { return c.cfg.Model }

// Ready returns nil when a model is configured, else an error with code
// llm_not_configured (kind switchboard.ErrUnavailable) that says how to
// configure one.
func (c *Client) Ready() error {
	if c.cfg.Configured() {
		return nil
	}
	return switchboard.Errorf(switchboard.ErrUnavailable, "llm_not_configured",
		"no model is configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server such as Ollama, vLLM or LiteLLM), or llm.api_key and llm.base_url in the config file, then restart")
}

// Complete sends one request to the model. When onText is not nil the reply
// is streamed and onText receives each piece of text as it arrives.
//
// Errors: llm_not_configured (ErrUnavailable) when no model is configured;
// the caller's own context error when ctx ends; model_timeout
// (ErrUpstreamTimeout) when the call exceeds its timeout; otherwise an error
// of kind ErrUpstream whose code says what the model server did.
func (c *Client) Complete(ctx context.Context, req switchboard.ModelRequest, onText func(string)) (switchboard.ModelReply, error) {
	if err := c.Ready(); err != nil {
		return switchboard.ModelReply{}, err
	}
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	msgs := messageSlices.Get().(*[]openai.ChatCompletionMessage)
	*msgs = toOpenAIMessages((*msgs)[:0], req.Messages)
	defer func() {
		clear(*msgs) // keep no message's text alive
		if cap(*msgs) <= maxPooledMessages {
			messageSlices.Put(msgs)
		}
	}()
	creq := openai.ChatCompletionRequest{
		Model:     cmp.Or(req.Model, c.cfg.Model),
		Messages:  *msgs,
		Tools:     toOpenAITools(req.Tools),
		MaxTokens: req.MaxTokens,
	}
	applySettings(&creq, req)
	var (
		reply switchboard.ModelReply
		err   error
	)
	if onText == nil {
		reply, err = c.complete(callCtx, creq)
	} else {
		reply, err = c.stream(callCtx, creq, onText)
	}
	if err != nil {
		return switchboard.ModelReply{}, c.classify(ctx, callCtx, err)
	}
	return reply, nil
}

// applySettings puts an agent's model settings and output schema on creq.
// A tool choice that names no mode is a tool's name; the tool choice and
// parallel_tool_calls are sent only with tools, which OpenAI requires.
func applySettings(creq *openai.ChatCompletionRequest, req switchboard.ModelRequest) {
	s := req.Settings
	if s.Temperature != nil {
		creq.Temperature = float32(*s.Temperature)
	}
	if s.TopP != nil {
		creq.TopP = float32(*s.TopP)
	}
	creq.MaxTokens = cmp.Or(req.MaxTokens, s.MaxTokens)
	creq.ReasoningEffort = s.ReasoningEffort
	if len(creq.Tools) > 0 {
		switch s.ToolChoice {
		case "":
		case "auto", "required", "none":
			creq.ToolChoice = s.ToolChoice
		default:
			creq.ToolChoice = openai.ToolChoice{Type: openai.ToolTypeFunction, Function: openai.ToolFunction{Name: s.ToolChoice}}
		}
		if s.ParallelToolCalls != nil {
			creq.ParallelToolCalls = *s.ParallelToolCalls
		}
	}
	if o := req.OutputSchema; o != nil {
		creq.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{Name: o.Name, Schema: rawSchema(o.Schema), Strict: true}}
	}
}

// rawSchema is a JSON Schema sent as it is.
type rawSchema json.RawMessage

// MarshalJSON implements json.Marshaler.
func (r rawSchema) MarshalJSON() ([]byte, error) { return json.RawMessage(r).MarshalJSON() }

func (c *Client) complete(ctx context.Context, creq openai.ChatCompletionRequest) (switchboard.ModelReply, error) {
	resp, err := c.api.CreateChatCompletion(ctx, creq)
	if err != nil {
		return switchboard.ModelReply{}, err
	}
	if len(resp.Choices) == 0 {
		return switchboard.ModelReply{}, switchboard.Errorf(switchboard.ErrUpstream, "model_bad_response", "the model server answered without a choice")
	}
	ch := resp.Choices[0]
	reply := switchboard.ModelReply{
		Content:          ch.Message.Content,
		FinishReason:     string(ch.FinishReason),
		PromptTokens:     resp.Usage.PromptTokens,
		CompletionTokens: resp.Usage.CompletionTokens,
	}
	for _, tc := range ch.Message.ToolCalls {
		reply.ToolCalls = append(reply.ToolCalls, switchboard.RequestedCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	return reply, nil
}

func (c *Client) stream(ctx context.Context, creq openai.ChatCompletionRequest, onText func(string)) (switchboard.ModelReply, error) {
	creq.Stream = true
	creq.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	s, err := c.api.CreateChatCompletionStream(ctx, creq)
	if err != nil {
		return switchboard.ModelReply{}, err
	}
	defer s.Close()
	var (
		reply   switchboard.ModelReply
		content strings.Builder
		calls   []switchboard.RequestedCall
		args    []strings.Builder
	)
	for {
		chunk, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return switchboard.ModelReply{}, err
		}
		if chunk.Usage != nil {
			reply.PromptTokens = chunk.Usage.PromptTokens
			reply.CompletionTokens = chunk.Usage.CompletionTokens
		}
		if len(chunk.Choices) == 0 {
			continue
		}
		ch := chunk.Choices[0]
		if ch.FinishReason != "" {
			reply.FinishReason = string(ch.FinishReason)
		}
		if d := ch.Delta.Content; d != "" {
			content.WriteString(d)
			onText(d)
		}
		for _, tc := range ch.Delta.ToolCalls {
			i := len(calls)
			if tc.Index != nil {
				i = *tc.Index
			} else if tc.ID == "" && i > 0 {
				i-- // a continuation without an index belongs to the last call
			}
			if i < 0 || i > 1024 {
				return switchboard.ModelReply{}, switchboard.Errorf(switchboard.ErrUpstream, "model_bad_response", "the model server streamed a tool call with index %d", i)
			}
			for len(calls) <= i {
				calls = append(calls, switchboard.RequestedCall{})
				args = append(args, strings.Builder{})
			}
			if tc.ID != "" {
				calls[i].ID = tc.ID
			}
			calls[i].Name += tc.Function.Name
			args[i].WriteString(tc.Function.Arguments)
		}
	}
	reply.Content = content.String()
	for i := range calls {
		calls[i].Arguments = args[i].String()
		if calls[i].Name == "" {
			return switchboard.ModelReply{}, switchboard.Errorf(switchboard.ErrUpstream, "model_bad_response", "the model server streamed a tool call without a name")
		}
		if calls[i].ID == "" {
			calls[i].ID = fmt.Sprintf("call_%s_%d", switchboard.NewID()[24:], i)
		}
	}
	reply.ToolCalls = calls
	return reply, nil
}

// classify maps a failed call to the domain's errors. parent is the
// caller's context, callCtx the one bounded by the model timeout.
func (c *Client) classify(parent, callCtx context.Context, err error) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	var se *switchboard.Error
	if errors.As(err, &se) {
		return err
	}
	if callCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return switchboard.Errorf(switchboard.ErrUpstreamTimeout, "model_timeout",
			"the model did not answer within %s", c.cfg.Timeout)
	}
	status := 0
	msg := ""
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status, msg = apiErr.HTTPStatusCode, apiErr.Message
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
	}
	msg = c.scrub.String(msg)
	c.logger.Warn("model call failed", "model", c.cfg.Model, "status", status, "err", c.scrub.String(err.Error()))
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return switchboard.Errorf(switchboard.ErrUpstream, "model_auth_failed",
			"the model server refused our credentials (HTTP %d): check llm.api_key", status)
	case status == http.StatusTooManyRequests:
		return switchboard.Errorf(switchboard.ErrUpstream, "model_rate_limited",
			"the model server is rate limiting us; try again shortly")
	case status == http.StatusNotFound:
		return switchboard.Errorf(switchboard.ErrUpstream, "model_not_found",
			"the model server does not know model %q or the path %s/chat/completions", c.cfg.Model, c.scrub.String(c.cfg.BaseURL))
	case status >= 400 && status < 500:
		if msg == "" {
			msg = "no reason given"
		}
		return switchboard.Errorf(switchboard.ErrUpstream, "model_rejected_request",
			"the model server rejected the request (HTTP %d): %s", status, msg)
	case status >= 500:
		return switchboard.Errorf(switchboard.ErrUpstream, "model_unavailable",
			"the model server failed (HTTP %d)", status)
	}
	return switchboard.Errorf(switchboard.ErrUpstream, "model_unreachable",
		"the model server could not be reached at %s", c.scrub.String(c.cfg.BaseURL))
}
