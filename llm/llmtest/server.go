// Package llmtest is a scripted OpenAI-compatible chat completions server for
// tests and benchmarks: it answers each request with the next reply of a
// script, streamed (server-sent events, as OpenAI streams) when the request
// asks for it, and records every request it received. It exercises a real
// client's HTTP path end to end.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Reply is one scripted answer.
type Reply struct {
	Text      string
	ToolCalls []Call
	// Delay is waited before answering (or before the first chunk).
	Delay time.Duration
	// Status, when not 0 or 200, makes the server answer with that HTTP
	// status and an OpenAI-style error body.
	Status     int
	RetryAfter string // Retry-After header sent with Status
	// PromptTokens and CompletionTokens are reported as usage.
	PromptTokens, CompletionTokens int
}

// Call is a scripted tool call.
type Call struct {
	ID        string // generated when empty
	Name      string
	Arguments string
}

// Responder chooses the reply to a request; n counts requests from 0.
type Responder func(n int, req *openai.ChatCompletionRequest) Reply

// Sequence answers the n-th request with replies[n], and with a 500 error
// once the script is exhausted.
func Sequence(replies ...Reply) Responder {
	return func(n int, _ *openai.ChatCompletionRequest) Reply {
		if n < len(replies) {
			return replies[n]
		}
		return Reply{Status: http.StatusInternalServerError, Text: fmt.Sprintf("script exhausted after %d replies", len(replies))}
	}
}

// Server is a running scripted model server.
type Server struct {
	// URL is the base URL to configure a client with (it ends in /v1).
	URL     string
	srv     *httptest.Server
	respond Responder

	forget  bool
	skim    bool
	scratch sync.Pool    // of *skimScratch, for Skim
	conns   atomic.Int64 // connections accepted

	// cancels receives the number (from 0) of each request whose client
	// went away before its reply was sent.
	cancels chan int

	mu       sync.Mutex
	n        int // requests received
	requests []openai.ChatCompletionRequest
	headers  []http.Header
}

// Options tune a Server; nil means defaults.
type Options struct {
	// Forget makes the server keep no record of the requests it received
	// (Requests and Headers return none), so that a benchmark sending
	// millions of them runs in constant memory.
	Forget bool
	// Skim decodes of each request only what choosing a reply needs: the
	// model, the stream flags and each message's role and tool call id.
	// The Responder sees a request with nothing else (no content, no
	// tools). For benchmarks: a server that decodes every request in full
	// costs as much CPU as the service it serves. A body that is not JSON,
	// or has a value of the wrong type in one of those fields, is still
	// answered with 400.
	Skim bool
}

// NewServer starts a server that answers with respond and records every
// request. Close it when done.
func NewServer(respond Responder) *Server { return NewServerWithOptions(respond, nil) }

// NewServerWithOptions starts a server that answers with respond, tuned by
// opts. Close it when done.
func NewServerWithOptions(respond Responder, opts *Options) *Server {
	s := &Server{respond: respond, cancels: make(chan int, 256)}
	if opts != nil {
		s.forget = opts.Forget
		s.skim = opts.Skim
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handle)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Connections returns how many connections the server has accepted, to
// tell whether clients reuse them.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// Cancels receives the number (counting from 0, as Responder's n) of each
// request that its client cancelled (its connection closed, its context
// ended) while the server was delaying or streaming its reply.
func (s *Server) Cancels() <-chan int { return s.cancels }

// cancelled records that request n was cancelled by its client.
func (s *Server) cancelled(n int) {
	select {
	case s.cancels <- n:
	default: // a test that does not read them
	}
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []openai.ChatCompletionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]openai.ChatCompletionRequest(nil), s.requests...)
}

// Headers returns the HTTP headers of the requests received so far.
func (s *Server) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	req, err := s.decode(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "", "invalid JSON body: "+err.Error())
		return
	}
	s.mu.Lock()
	n := s.n
	s.n++
	if !s.forget {
		s.requests = append(s.requests, req)
		s.headers = append(s.headers, r.Header.Clone())
	}
	s.mu.Unlock()

	reply := s.respond(n, &req)
	if reply.Delay > 0 {
		t := time.NewTimer(reply.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			s.cancelled(n)
			return
		case <-t.C:
		}
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		writeError(w, reply.Status, reply.RetryAfter, reply.Text)
		return
	}
	calls := make([]openai.ToolCall, len(reply.ToolCalls))
	for i, c := range reply.ToolCalls {
		id := c.ID
		if id == "" {
			id = fmt.Sprintf("call_%d_%d", n, i)
		}
		calls[i] = openai.ToolCall{ID: id, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: c.Name, Arguments: c.Arguments}}
	}
	finish := openai.FinishReasonStop
	if len(calls) > 0 {
		finish = openai.FinishReasonToolCalls
	}
	usage := openai.Usage{PromptTokens: reply.PromptTokens, CompletionTokens: reply.CompletionTokens,
		TotalTokens: reply.PromptTokens + reply.CompletionTokens}
	if req.Stream {
		if !s.stream(w, r, req, reply.Text, calls, finish, usage) {
			s.cancelled(n)
		}
		return
	}
	resp := openai.ChatCompletionResponse{
		ID: fmt.Sprintf("chatcmpl-%d", n), Object: "chat.completion", Created: time.Now().Unix(), Model: req.Model,
		Choices: []openai.ChatCompletionChoice{{Index: 0, FinishReason: finish,
			Message: openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: reply.Text, ToolCalls: calls}}},
		Usage: usage,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Server) decode(r *http.Request) (openai.ChatCompletionRequest, error) {
	var req openai.ChatCompletionRequest
	if !s.skim {
		err := json.NewDecoder(r.Body).Decode(&req)
		return req, err
	}
	return s.skimBody(r.Body)
}

// stream answers as OpenAI streams: the text a word at a time, then each
// tool call in pieces (id and name first, the arguments in two halves), a
// final chunk with the finish reason, usage when asked for, and [DONE].
// It reports false when the client went away before the end.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, req openai.ChatCompletionRequest, text string, calls []openai.ToolCall, finish openai.FinishReason, usage openai.Usage) bool {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	send := func(chunk openai.ChatCompletionStreamResponse) bool {
		chunk.Object, chunk.Model = "chat.completion.chunk", req.Model
		b, _ := json.Marshal(chunk)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return r.Context().Err() == nil
	}
	delta := func(d openai.ChatCompletionStreamChoiceDelta) openai.ChatCompletionStreamResponse {
		return openai.ChatCompletionStreamResponse{Choices: []openai.ChatCompletionStreamChoice{{Delta: d}}}
	}
	if !send(delta(openai.ChatCompletionStreamChoiceDelta{Role: openai.ChatMessageRoleAssistant})) {
		return false
	}
	for _, piece := range splitWords(text) {
		if !send(delta(openai.ChatCompletionStreamChoiceDelta{Content: piece})) {
			return false
		}
	}
	for i, c := range calls {
		idx := i
		head := openai.ToolCall{Index: &idx, ID: c.ID, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: c.Function.Name}}
		if !send(delta(openai.ChatCompletionStreamChoiceDelta{ToolCalls: []openai.ToolCall{head}})) {
			return false
		}
		args := c.Function.Arguments
		for _, part := range []string{args[:len(args)/2], args[len(args)/2:]} {
			if part == "" {
				continue
			}
			p := openai.ToolCall{Index: &idx, Function: openai.FunctionCall{Arguments: part}}
			if !send(delta(openai.ChatCompletionStreamChoiceDelta{ToolCalls: []openai.ToolCall{p}})) {
				return false
			}
		}
	}
	if !send(openai.ChatCompletionStreamResponse{Choices: []openai.ChatCompletionStreamChoice{{FinishReason: finish}}}) {
		return false
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := usage
		if !send(openai.ChatCompletionStreamResponse{Choices: []openai.ChatCompletionStreamChoice{}, Usage: &u}) {
			return false
		}
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
	return true
}

// splitWords cuts s into pieces that each end after a space, so that the
// pieces concatenate back to s.
func splitWords(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

func writeError(w http.ResponseWriter, status int, retryAfter, msg string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if msg == "" {
		msg = http.StatusText(status)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "scripted_error", "code": nil}})
}
