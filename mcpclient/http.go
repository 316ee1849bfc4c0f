package mcpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/switchboard-dev/switchboard"
)

// httpLink reaches a remote server for a Conn, over streamable HTTP or, with
// sse, the legacy HTTP+SSE transport: the Conn's link over HTTP (see link).
// Its HTTP transport is the Conn's own, so Close can drop its connections.
type httpLink struct {
	sse    bool
	listen bool // open the standalone GET stream (the legacy era's)
	httpTr *http.Transport
	shared bool // httpTr is a Pool's: its idle connections are the Pool's to drop
}

func (l *httpLink) open(c *Conn) (transport.Interface, error) {
	cfg := c.cfg
	c.recheck = make(chan struct{}, 1)
	if l.httpTr == nil {
		l.httpTr = newHTTPTransport()
	} else {
		l.shared = true
	}
	kind := kindHTTP
	if l.sse {
		kind = kindSSE
	}
	c.log.Debug("connecting to mcp server", "transport", kind, "url", redactURL(cfg.URL))
	var (
		tr  transport.Interface
		err error
	)
	if l.sse {
		// Like client.NewSSEMCPClient, which builds exactly this transport,
		// but that constructor takes no client options.
		tr, err = transport.NewSSE(cfg.URL,
			transport.WithHeaders(cfg.Headers),
			transport.WithHTTPClient(c.httpClient(l.httpTr, false)),
			transport.WithSSELogger(c.log),
			transport.WithEndpointTimeout(cfg.InitTimeout),
			// Our contexts bound requests; the transport's own default
			// (60s), or any fixed bound, would cut short a call that
			// progress extends or a person's answer holds up.
			transport.WithResponseTimeout(noLimit),
			transport.WithMaxMessageBytes(cfg.maxMessageBytes()+transportSlack))
	} else {
		opts := []transport.StreamableHTTPCOption{
			transport.WithHTTPHeaders(cfg.Headers),
			transport.WithHTTPBasicClient(c.httpClient(l.httpTr, true)),
			transport.WithHTTPLogger(c.log),
			transport.WithHTTPMaxMessageBytes(cfg.maxMessageBytes() + transportSlack),
		}
		if l.listen {
			// Without the standalone GET stream, streamable HTTP delivers
			// notifications only while a request of ours is in flight, and
			// a server's question not tied to a request of ours (the
			// TypeScript SDK's elicitInput, as its examples call it) is
			// never heard: every legacy connection holds one open, a Pool's
			// sessions too. The modern era has no such stream.
			opts = append(opts, transport.WithContinuousListening())
		}
		if c.resuming() {
			opts = append(opts, transport.WithSession(cfg.Resume.SessionID))
		}
		tr, err = transport.NewStreamableHTTP(cfg.URL, opts...)
	}
	if err != nil {
		return nil, withKind(switchboard.ErrInvalid, err)
	}
	return tr, nil
}

func (l *httpLink) started(*Conn) {}

// stop waits for mcp-go's transport to close (its errors are only logged
// by mcp-go), then drops the idle connections and their goroutines.
func (l *httpLink) stop(_ *Conn, closed <-chan error, deadline time.Time) error {
	if !l.shared {
		defer l.httpTr.CloseIdleConnections()
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-closed:
		return nil
	case <-t.C:
		return errors.New("transport did not close in time")
	}
}

func (l *httpLink) settle(*Conn, error) bool { return false }

func (l *httpLink) pid() int { return 0 }

func (l *httpLink) ring() (*lineRing, int) { return nil, 0 }

// newHTTPTransport returns an HTTP transport of a Conn's own, so that Close
// can drop its idle connections (and their goroutines) without touching
// anyone else's.
func newHTTPTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// httpClient returns the HTTP client of a remote Conn. It adds the
// configured headers to any request that lacks them: mcp-go v1.2.1's
// streamable HTTP transport sends its session-ending DELETE without them,
// which a server behind authentication refuses. With sessionFix it also
// reads a 400 that says our session is unknown as the 404 the spec
// prescribes (see headerTransport).
func (c *Conn) httpClient(base http.RoundTripper, sessionFix bool) *http.Client {
	return &http.Client{Transport: &headerTransport{base: base, headers: c.cfg.Headers, sessionFix: sessionFix,
		limit: c.cfg.maxMessageBytes(), report: c.dropped, streamEnded: c.checkHealth, auth: c.cfg.Auth,
		request: c.serverRequest}}
}

// headerTransport sets headers on requests that lack them.
//
// With sessionFix, a 400 answer to a request that carried a session id,
// whose body speaks of the session, becomes a 404. The streamable HTTP spec
// says a server that no longer knows a session answers 404, which tells
// mcp-go to start a new session; but the TypeScript SDK's example server,
// which many servers copy (server-everything among them), answers 400 "No
// valid session ID provided", and the client would fail every call until
// restarted.
//
// It also reads every answer's body through a frame filter (see frames.go):
// a JSON body is one message, an event stream's events are messages.
type headerTransport struct {
	base       http.RoundTripper
	headers    map[string]string
	sessionFix bool
	limit      int64
	report     frameReport
	// streamEnded is told when a GET (an event stream of the server) fails
	// or ends.
	streamEnded func()
	// auth, when set, gives each request its bearer token (Config.Auth).
	auth Authorizer
	// request takes the requests of the server out of its event streams
	// (asks.go), with the context of the HTTP request whose answer carried
	// them.
	request func(msg []byte, origin context.Context)
}

// filterBody reads a successful answer's body through a frame filter.
func (t *headerTransport) filterBody(resp *http.Response) *http.Response {
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil || resp.Body == http.NoBody {
		return resp
	}
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch media {
	case "application/json":
		resp.Body = newJSONBodyFilter(resp.Body, t.limit, t.report)
		resp.ContentLength = -1
	case "text/event-stream":
		f := newSSEFilter(resp.Body, t.limit, t.report)
		if resp.Request != nil && resp.Request.Method == http.MethodGet {
			f.ended = t.streamEnded
		}
		if t.request != nil {
			var origin context.Context
			if resp.Request != nil {
				origin = resp.Request.Context()
			}
			f.request = func(msg []byte) { t.request(msg, origin) }
		}
		resp.Body = f
		resp.ContentLength = -1
	}
	return resp
}

// maxPeek bounds how much of a 400 body headerTransport reads.
const maxPeek = 4096

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.auth == nil {
		return t.roundTrip(r)
	}
	token, err := t.auth.Token(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.roundTrip(withBearer(r, token))
	if err != nil {
		return resp, err
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	switch {
	case resp.StatusCode == http.StatusUnauthorized && (r.Body == nil || r.GetBody != nil):
		drain(resp)
		if token, err = t.auth.Rejected(r.Context(), token, challenge); err != nil {
			return nil, err
		}
		again := withBearer(r, token)
		if r.GetBody != nil {
			if again.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		}
		return t.roundTrip(again)
	case resp.StatusCode == http.StatusForbidden && strings.Contains(challenge, "insufficient_scope"):
		drain(resp)
		return nil, t.auth.Forbidden(r.Context(), challenge)
	}
	return resp, nil
}

// withBearer returns r with the bearer token (a RoundTripper must not
// change its request).
func withBearer(r *http.Request, token string) *http.Request {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxPeek))
	resp.Body.Close()
}

func (t *headerTransport) roundTrip(r *http.Request) (*http.Response, error) {
	for k := range t.headers {
		if r.Header.Get(k) == "" {
			r = r.Clone(r.Context()) // a RoundTripper must not change its request
			for k, v := range t.headers {
				if r.Header.Get(k) == "" {
					r.Header.Set(k, v)
				}
			}
			break
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		if r.Method == http.MethodGet && r.Context().Err() == nil && t.streamEnded != nil {
			t.streamEnded()
		}
		return resp, err
	}
	if !t.sessionFix || resp.StatusCode != http.StatusBadRequest || r.Header.Get("Mcp-Session-Id") == "" {
		return t.filterBody(resp), nil
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, maxPeek))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
	if bytes.Contains(bytes.ToLower(peek), []byte("session")) {
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
	}
	return resp, nil
}
