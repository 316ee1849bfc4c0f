package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/switchboard-dev/switchboard"
)

// Protocol modes (Config.Protocol) and eras.
//
// MCP 2026-07-28 starts the modern era: no initialize handshake and no
// sessions; every request carries its protocol version, the client's
// capabilities and the client's identity in its _meta (and over HTTP the
// Mcp-Method and Mcp-Name headers); server/discover tells what a server
// speaks; subscriptions/listen carries list changes. Revisions up to
// 2025-11-25 are the legacy era, opened with initialize.
const (
	// ProtocolAuto finds the server's era: over streamable HTTP it tries
	// the modern era first (server/discover) and falls back to
	// initialize; over stdio it starts with initialize, which every server
	// answers (some exit on an unknown method), and moves to the modern era
	// when the server announces it in its answer (a modern-only server
	// names its versions in the error it answers initialize with). What it
	// found is remembered per server configuration (Options.Eras).
	ProtocolAuto = "auto"
	// ProtocolLegacy speaks only the initialize handshake, at
	// mcp.LATEST_LEGACY_PROTOCOL_VERSION or what the server answers.
	ProtocolLegacy = "legacy"
	// ProtocolModern speaks only MCP 2026-07-28 (or a later modern
	// revision both sides know); a legacy server fails to connect.
	ProtocolModern = "modern"

	// EraLegacy and EraModern name what a connection speaks.
	EraLegacy = "legacy"
	EraModern = "modern"
)

// discoverProbeWait bounds the server/discover probe over HTTP: a server
// that does not answer it in time is taken to be legacy.
const discoverProbeWait = 5 * time.Second

// Protocol is what a connection speaks (Era is EraLegacy or EraModern)
// and what the server said of itself, in its initialize result (legacy) or
// its server/discover result (modern).
type Protocol = switchboard.ServerProtocol

// Eras remembers, per server configuration, the era ProtocolAuto found,
// so that later connections (restarts, the other sessions of a Pool) skip
// the probe. It lives in memory, for the process: a restart probes again.
// A connection that fails on what was remembered forgets it, and the next
// one probes again. Its methods are safe for concurrent use.
type Eras struct {
	mu sync.Mutex
	m  map[string]string
}

// NewEras returns an empty Eras.
func NewEras() *Eras { return &Eras{m: map[string]string{}} }

// Era returns the era remembered for cfg, or "".
func (e *Eras) Era(cfg Config) string {
	if e == nil {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[eraKey(cfg)]
}

func (e *Eras) set(cfg Config, era string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if era == "" {
		delete(e.m, eraKey(cfg))
		return
	}
	e.m[eraKey(cfg)] = era
}

// eraKey names the server a configuration reaches: its URL, or its command
// line and directory. The environment is left out (it may hold a user's
// credentials); it does not change what the program speaks.
func eraKey(cfg Config) string {
	kind, _ := cfg.kind()
	if kind != kindStdio {
		return kind + "\x00" + cfg.URL
	}
	return kind + "\x00" + cfg.Dir + "\x00" + cfg.Command + "\x00" + strings.Join(cfg.Args, "\x00")
}

// protocolMode returns cfg.Protocol resolved: auto, legacy or modern.
func (cfg Config) protocolMode() (string, error) {
	switch strings.ToLower(cfg.Protocol) {
	case "", ProtocolAuto:
		return ProtocolAuto, nil
	case ProtocolLegacy:
		return ProtocolLegacy, nil
	case ProtocolModern:
		return ProtocolModern, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want auto, legacy or modern)", cfg.Protocol)
}

// errRedial asks dialConn to start over on the given era: a probe found
// the server speaks another than the connection it made.
type errRedial struct{ era string }

func (e *errRedial) Error() string { return "the server speaks the " + e.era + " era" }

// Protocol returns what the connection speaks and what the server said of
// itself.
func (c *Conn) Protocol() Protocol {
	p := c.proto
	p.Capabilities = slices.Clone(p.Capabilities)
	return p
}

// modern reports whether the Conn speaks the modern era.
func (c *Conn) modern() bool { return c.proto.Era == EraModern }

// setProtocol records what the handshake (initialize or server/discover)
// said.
func (c *Conn) setProtocol(era string, info *mcp.InitializeResult) {
	c.proto = Protocol{Era: era, Version: info.ProtocolVersion,
		ServerName: info.ServerInfo.Name, ServerVersion: info.ServerInfo.Version}
	if caps, err := json.Marshal(info.Capabilities); err == nil {
		c.proto.Capabilities = caps
	}
}

// withEra adds to a raw request what the modern era wants on every one: in
// params' _meta the protocol version, the client's capabilities and the
// client's identity, and over HTTP the Mcp-Method and Mcp-Name headers. A
// legacy connection's requests are left as they are.
func (c *Conn) withEra(req transport.JSONRPCRequest, p Protocol) transport.JSONRPCRequest {
	if p.Era != EraModern {
		return req
	}
	fields := map[string]any{}
	if req.Params != nil {
		b, err := json.Marshal(req.Params)
		if err != nil || json.Unmarshal(b, &fields) != nil || fields == nil {
			return req // not an object: it cannot carry _meta
		}
	}
	meta, _ := fields["_meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta[mcp.MetaKeyProtocolVersion] = p.Version
	meta[mcp.MetaKeyClientCapabilities] = clientCapabilities(c.cfg)
	meta[mcp.MetaKeyClientInfo] = c.clientInfo
	fields["_meta"] = meta
	req.Params = fields
	if _, ok := c.link.(*httpLink); ok {
		params, _ := json.Marshal(fields)
		header := make(http.Header)
		for k, v := range req.Header {
			header[k] = v
		}
		for k, v := range mcp.StandardHeaders(p.Version, mcp.MCPMethod(req.Method), params) {
			header.Set(k, v)
		}
		if req.Method == string(mcp.MethodToolsCall) {
			// Arguments the tool's schema marks x-mcp-header are mirrored
			// into Mcp-Param-* headers (SEP-2243), for gateways.
			name, _ := fields["name"].(string)
			if t, ok := c.tool(name); ok {
				for k, v := range mcp.GenerateParamHeaders(&mcp.Tool{Name: name, RawInputSchema: t.InputSchema}, params) {
					header.Set(k, v)
				}
			}
		}
		req.Header = header
	}
	return req
}

// announcesModern reports whether the error a server answered initialize
// with names a modern protocol version it speaks: an
// UnsupportedProtocolVersionError listing one, or any error whose message
// names one (the 2026-07-28 spec asks a modern-only server to name its
// versions in whatever it answers to initialize).
func announcesModern(err error) bool {
	var unsupported mcp.UnsupportedProtocolVersionError
	if errors.As(err, &unsupported) && mcp.IsModernProtocol(mcp.NegotiateMutuallySupportedVersion(unsupported.Supported)) {
		return true
	}
	return strings.Contains(err.Error(), mcp.ProtocolVersion20260728)
}

// noteRefusal keeps what a server answered a refused initialize with
// over HTTP (mcp-go reports only that it was a 4xx), for handshake's error.
func (c *Conn) noteRefusal(body []byte) {
	s := strings.ToValidUTF8(strings.TrimSpace(string(body)), "")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	c.refusal.Store(&s)
}

// refusedWith adds to err what the server answered a refused initialize
// with, if it did.
func (c *Conn) refusedWith(err error) error {
	if s := c.refusal.Load(); s != nil && *s != "" {
		return fmt.Errorf("%w (the server answered: %s)", err, *s)
	}
	return err
}

// legacyRefused turns the error of a legacy handshake that a modern-only
// server refused into one that says so, wrapping switchboard.ErrInvalid: a
// configuration to change, not an outage to retry.
func legacyRefused(err error) error {
	if !announcesModern(err) {
		return err
	}
	return withKind(switchboard.ErrInvalid, fmt.Errorf(
		"the server speaks only the modern MCP era (%s), not the initialize handshake that protocol: legacy asks for; set protocol: auto or modern: %w",
		mcp.ProtocolVersion20260728, err))
}

// tool returns the listed tool of that name.
func (c *Conn) tool(name string) (Tool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tools {
		if t.Name == name {
			return t, true
		}
	}
	return Tool{}, false
}

// badHeaderAnnotations reports why a tool listed on a modern streamable
// HTTP connection must be left out: x-mcp-header annotations that break
// SEP-2243's rules (a client must exclude such a tool), or nil.
func (c *Conn) badHeaderAnnotations(t Tool) error {
	if !c.modern() || c.stdio() || len(t.InputSchema) == 0 {
		return nil
	}
	return mcp.ValidateParamHeaderAnnotations(&mcp.Tool{Name: t.Name, RawInputSchema: t.InputSchema})
}

// send sends one raw request with what the connection's era adds to it
// (see withEra).
func (c *Conn) send(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	return c.client.GetTransport().SendRequest(ctx, c.withEra(req, c.proto))
}

// listen keeps a subscriptions/listen request open for the whole
// connection, opted in to tools/list_changed: the modern era's way to hear
// of list changes (it has no standalone GET stream). The notifications
// reach onNotification like any other; so does the server's
// acknowledgement of the subscription, on which the tools are listed again
// (a change made before the stream opened was told to no one). A stream
// that ends while the Conn lives is opened again, after a pause that grows
// to a minute.
func (c *Conn) listen() {
	defer c.wg.Done()
	wait := listenRetry
	for {
		start := time.Now()
		err := c.client.Listen(c.ctx, mcp.SubscriptionFilter{ToolsListChanged: true})
		if c.ctx.Err() != nil {
			return
		}
		c.log.Debug("the mcp server ended the subscriptions/listen stream", "err", c.redact(err))
		c.checkHealth()
		if time.Since(start) > time.Minute {
			wait = listenRetry
		}
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, time.Minute)
	}
}

// listenRetry is the first pause before a subscriptions/listen stream that
// ended is opened again.
const listenRetry = 250 * time.Millisecond

// maxInputRounds bounds how often a request is sent again when a modern
// server answers input_required with nothing to fulfil (only a
// requestState to echo).
const maxInputRounds = 10

// InputRequiredError is a modern server's answer that it needs input before
// it can finish a request (resultType input_required, MCP 2026-07-28's
// multi round-trip requests): the requests it asks the client to fulfil
// (elicitation/create, sampling/createMessage, roots/list, by the server's
// keys) and the state to echo back when the request is sent again. A
// request fails with it when no call's Asker can answer what it asks (see
// sendRounds). It wraps switchboard.ErrInvalid.
type InputRequiredError struct {
	Method        string
	InputRequests map[string]json.RawMessage
	RequestState  string
}

func (e *InputRequiredError) Error() string {
	keys := make([]string, 0, len(e.InputRequests))
	for k, v := range e.InputRequests {
		var r struct {
			Method string `json:"method"`
		}
		json.Unmarshal(v, &r)
		keys = append(keys, k+" ("+r.Method+")")
	}
	slices.Sort(keys)
	return fmt.Sprintf("%s: the server asks for input, which nobody is there to answer: %s", e.Method, strings.Join(keys, ", "))
}

func (e *InputRequiredError) Unwrap() error { return switchboard.ErrInvalid }

// inputRequired is what an input_required result carries.
type inputRequired struct {
	InputRequests map[string]json.RawMessage `json:"inputRequests"`
	RequestState  *string                    `json:"requestState"`
}

// checkResult honours a result's resultType (MCP 2026-07-28): absent or
// "complete" is a final result (nil); "input_required" on a request that may
// take it (tools/call, resources/read, prompts/get) comes back as ir; any
// other value, or input_required elsewhere, makes the result invalid (an
// error wrapping ErrMalformed).
func checkResult(method string, raw json.RawMessage) (ir *inputRequired, err error) {
	var head struct {
		ResultType *string `json:"resultType"`
	}
	if json.Unmarshal(raw, &head) != nil || head.ResultType == nil || *head.ResultType == string(mcp.ResultTypeComplete) {
		return nil, nil
	}
	switch {
	case *head.ResultType != string(mcp.ResultTypeInputRequired):
		return nil, withKind(ErrMalformed, fmt.Errorf("%s: unknown resultType %q", method, *head.ResultType))
	case method != string(mcp.MethodToolsCall) && method != string(mcp.MethodResourcesRead) && method != string(mcp.MethodPromptsGet):
		return nil, withKind(ErrMalformed, fmt.Errorf("%s: resultType input_required, which only tools/call, resources/read and prompts/get may answer", method))
	}
	ir = &inputRequired{}
	if err := json.Unmarshal(raw, ir); err != nil {
		return nil, withKind(ErrMalformed, fmt.Errorf("%s: decode input_required result: %w", method, err))
	}
	if len(ir.InputRequests) == 0 && ir.RequestState == nil {
		return nil, withKind(ErrMalformed, fmt.Errorf("%s: input_required result with neither inputRequests nor requestState", method))
	}
	return ir, nil
}

// sendRounds sends req and, while the server answers input_required,
// sends it again (a new id each time, as the spec wants), up to
// maxInputRounds: with the requestState to echo, and with inputResponses
// answering the inputRequests, which go to the Asker of the call that
// made req (elicitation/create and sampling/createMessage, as on a legacy
// connection: asks.go) or are answered here (roots/list). Nothing is held
// open on the connection meanwhile. The response is the final one; input
// that no call can take (no Asker: a listing, or a call made without one)
// fails as an *InputRequiredError, and one its Asker fails to answer with
// an error naming it (both rejected: answers of the server).
//
// req.ID is left the id of the last request sent, for a caller to cancel.
//
// A call resumed (WithResume) starts with the round it was resumed at: its
// input is asked for, then it is sent.
func (c *Conn) sendRounds(ctx context.Context, req *transport.JSONRPCRequest) (resp *transport.JSONRPCResponse, rejected bool, err error) {
	first := req.ID.Value()
	resume, resumed := ctx.Value(resumeKey{}).(*Resume)
	for round := 1; ; round++ {
		var ir *inputRequired
		if round == 1 && resumed {
			if !c.modern() {
				return nil, false, withKind(switchboard.ErrUnavailable, errors.New("the call cannot go on with its answers: the server no longer speaks the modern era (2026-07-28)"))
			}
			ir = &inputRequired{InputRequests: resume.InputRequests}
			if resume.RequestState != "" {
				ir.RequestState = &resume.RequestState
			}
		} else {
			resp, err = c.send(ctx, *req)
			if err != nil || resp.Error != nil || !c.modern() {
				// resultType is the modern era's: a legacy answer is final.
				return resp, false, err
			}
			if ir, err = checkResult(req.Method, resp.Result); err != nil {
				return nil, true, err
			}
			if ir == nil {
				return resp, false, nil
			}
		}
		state := ""
		if ir.RequestState != nil {
			state = *ir.RequestState
		}
		if round == maxInputRounds {
			return nil, true, &InputRequiredError{Method: req.Method, InputRequests: ir.InputRequests, RequestState: state}
		}
		params := map[string]any{}
		if b, err := json.Marshal(req.Params); err == nil && req.Params != nil {
			json.Unmarshal(b, &params)
		}
		delete(params, "inputResponses")
		delete(params, "requestState")
		if len(ir.InputRequests) > 0 {
			token, _ := ctx.Value(callKey{}).(string)
			responses, err := c.fulfil(c.callOf(token), req.Method, ir.InputRequests, state)
			if err != nil {
				return nil, true, err
			}
			params["inputResponses"] = responses
		}
		if ctx.Err() != nil {
			return nil, false, context.Cause(ctx)
		}
		if ir.RequestState != nil {
			params["requestState"] = state
		}
		req.Params = params
		req.ID = mcp.NewRequestId(fmt.Sprintf("%v.%d", first, round+1))
	}
}

// Resume is where a call of a modern server stopped for input: the round
// of questions (inputRequests, by key) and the requestState of the
// input_required result it got, perhaps on another instance, before a
// restart. See WithResume.
type Resume struct {
	InputRequests map[string]json.RawMessage
	RequestState  string
}

type resumeKey struct{}

// WithResume makes the tools/call made with ctx go on from r instead of
// starting: the call's Asker is asked r's questions (one that kept their
// answers gives them at once), and the call is sent with the answers
// (inputResponses) and r's requestState, as if the server had just asked.
// A call of a legacy-era connection, or of a tool that runs as a task,
// fails rather than start again: its first request may have done its work.
func WithResume(ctx context.Context, r Resume) context.Context {
	return context.WithValue(ctx, resumeKey{}, &r)
}

// callOf returns the call of token if it has an Asker, else nil. Unlike
// callFor it never guesses: the request that got input_required is known,
// and another call's user must not be asked in its place.
func (c *Conn) callOf(token string) *inflight {
	if token == "" {
		return nil
	}
	if v, ok := c.calls.Load(token); ok && v.(*inflight).asker != nil {
		return v.(*inflight)
	}
	return nil
}

// fulfil answers a modern server's inputRequests for call, one after the
// other (a person answers one question at a time), by their keys. state
// is the result's requestState, which every question is stored with.
// Without a call (nil: no Asker) only roots/list can be answered; asked
// more, fulfil fails with an *InputRequiredError before it asks anything.
func (c *Conn) fulfil(call *inflight, method string, requests map[string]json.RawMessage, state string) (map[string]any, error) {
	keys := slices.Sorted(maps.Keys(requests))
	if call == nil {
		for _, key := range keys {
			var r struct {
				Method string `json:"method"`
			}
			if json.Unmarshal(requests[key], &r) != nil || r.Method != string(mcp.MethodListRoots) {
				return nil, &InputRequiredError{Method: method, InputRequests: requests, RequestState: state}
			}
		}
	}
	responses := make(map[string]any, len(keys))
	for _, key := range keys {
		var r struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(requests[key], &r); err != nil {
			return nil, withKind(ErrMalformed, fmt.Errorf("%s: input request %q: %w", method, key, err))
		}
		var (
			res  any
			rerr *RequestError
		)
		switch r.Method {
		case string(mcp.MethodElicitationCreate), string(mcp.MethodSamplingCreateMessage):
			res, rerr = c.ask(call, r.Method, r.Params, &modernAsk{key: key, state: state, round: requests})
		case string(mcp.MethodListRoots):
			if roots := c.roots(); roots != nil {
				res = map[string]any{"roots": roots}
			} else {
				rerr = &RequestError{codeMethodNotFound, "roots are not configured for this server"}
			}
		default:
			rerr = &RequestError{codeMethodNotFound, "method not found: " + r.Method}
		}
		if rerr != nil {
			return nil, withKind(switchboard.ErrInvalid, fmt.Errorf("%s: the server's input request %q (%s) could not be answered: %s",
				method, key, r.Method, c.scrub.String(rerr.Message)))
		}
		responses[key] = res
	}
	return responses, nil
}
