package mcpclient

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// What a server may send in one message. Every transport reads its messages
// through a frame filter (stdio: a line; SSE: an event's data; streamable
// HTTP: a JSON body or an event) that holds at most MaxMessageBytes of a
// message in memory and bounds how deep it nests, before mcp-go sees it:
//   - A message over the size bound is dropped as it is read, never held
//     whole. When it answers a request of ours, a JSON-RPC error of ours with
//     codeTooLarge takes its place, so the request fails at once; a
//     notification or a request of the server is dropped (and logged).
//   - A value nested deeper than maxDepth is replaced by a string saying so
//     (Go's encoding/json refuses 10,000 levels, and mcp-go then drops the
//     whole message without a word). In an answer to tools/list that costs
//     only the tool it is in, which the catalog then quarantines as too
//     deep; any other answer is replaced by a JSON-RPC error with
//     codeTooDeep, so the call fails at once as malformed.
const (
	// DefaultMaxMessageBytes bounds one message of a server when
	// Config.MaxMessageBytes is zero: 8 MiB.
	DefaultMaxMessageBytes = 8 << 20
	// maxDepth bounds how deep a server's JSON nests.
	maxDepth = 512
	// Our JSON-RPC error codes for a message the frame filter replaced, in
	// the range JSON-RPC leaves to implementations.
	codeTooLarge = -32090
	codeTooDeep  = -32091
	// listIDPrefix starts the ids of our tools/list requests: their answers
	// keep a too deep value's tool, replaced, instead of failing whole.
	listIDPrefix = "switchboard-list-"
	// deepMarker replaces a value nested deeper than maxDepth.
	deepMarker = `"switchboard: a value nested deeper than 512 levels was removed"`
)

// frameReport tells the Conn about messages a filter dropped.
type frameReport func(what string, size int64)

// jsonFilter scans one JSON message as it streams by, without holding it:
// it counts its bytes, cuts values nested deeper than maxDepth, and picks
// out the top-level "id" and whether the message is an answer (a "result"
// or "error") or a request or notification (a "method").
type jsonFilter struct {
	depth int
	// skip > 0 is the depth inside a value being cut out.
	skip      int
	inStr     bool
	esc       bool
	topObj    bool // the message is an object
	wantKey   bool // at depth 1, the next string is a member name
	inKey     bool
	key       []byte // the member name being read, up to 8 bytes
	keyLong   bool
	capturing bool // reading the top-level id
	idBuf     []byte

	id        []byte // the raw top-level id, once read
	hasMethod bool
	hasAnswer bool
	cut       bool // a value was cut out
	size      int64
}

func (f *jsonFilter) reset() { *f = jsonFilter{idBuf: f.idBuf[:0], key: f.key[:0]} }

// feed scans in and appends to out what mcp-go may see of it.
func (f *jsonFilter) feed(in, out []byte, keep bool) []byte {
	f.size += int64(len(in))
	start := 0 // the start of the run of in that is passed on
	flush := func(end int) {
		if keep && end > start {
			out = append(out, in[start:end]...)
		}
	}
	for i := 0; i < len(in); i++ {
		c := in[i]
		if f.skip > 0 {
			switch {
			case f.inStr:
				if f.esc {
					f.esc = false
				} else if c == '\\' {
					f.esc = true
				} else if c == '"' {
					f.inStr = false
				}
			case c == '"':
				f.inStr = true
			case c == '{' || c == '[':
				f.skip++
			case c == '}' || c == ']':
				f.skip--
			}
			if f.skip == 0 {
				start = i + 1
			}
			continue
		}
		if f.inStr {
			if f.esc {
				f.esc = false
			} else if c == '\\' {
				f.esc = true
			} else if c == '"' {
				f.inStr = false
				if f.inKey {
					f.inKey = false
				}
			} else if !f.inKey && !f.capturing {
				// Skip ahead to the next quote or backslash.
				j := bytes.IndexByte(in[i:], '"')
				if j < 0 {
					j = len(in) - i
				}
				if k := bytes.IndexByte(in[i:i+j], '\\'); k >= 0 {
					j = k
				}
				i += j - 1
				continue
			}
			if f.inKey && f.inStr {
				if len(f.key) < 8 {
					f.key = append(f.key, c)
				} else {
					f.keyLong = true
				}
			}
			if f.capturing {
				f.capture(c)
			}
			continue
		}
		switch c {
		case '"':
			f.inStr = true
			if f.depth == 1 && f.topObj && f.wantKey {
				f.inKey, f.wantKey = true, false
				f.key, f.keyLong = f.key[:0], false
			} else if f.capturing {
				f.capture(c)
			}
		case '{', '[':
			if f.depth >= maxDepth {
				flush(i)
				if keep {
					out = append(out, deepMarker...)
				}
				f.cut = true
				f.skip = 1
				continue
			}
			if f.capturing {
				f.capturing = false // an id is never an object or array
				f.idBuf = f.idBuf[:0]
			}
			f.depth++
			if f.depth == 1 {
				f.topObj = c == '{'
				f.wantKey = f.topObj
			}
		case '}', ']':
			if f.depth == 1 {
				f.endValue()
			}
			if f.depth > 0 {
				f.depth--
			}
		case ':':
			if f.depth == 1 && f.topObj {
				key := f.key
				if f.keyLong {
					key = nil
				}
				switch string(key) {
				case "id":
					f.capturing = true
					f.idBuf = f.idBuf[:0]
				case "method":
					f.hasMethod = true
				case "result", "error":
					f.hasAnswer = true
				}
			}
		case ',':
			if f.depth == 1 {
				f.endValue()
				f.wantKey = f.topObj
			}
		default:
			if f.capturing && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				f.capture(c)
			}
		}
	}
	if f.skip == 0 {
		flush(len(in))
	}
	return out
}

func (f *jsonFilter) capture(c byte) {
	if len(f.idBuf) < 256 {
		f.idBuf = append(f.idBuf, c)
	}
}

// endValue ends the value of a top-level member.
func (f *jsonFilter) endValue() {
	if f.capturing {
		f.capturing = false
		if len(f.idBuf) > 0 && string(f.idBuf) != "null" {
			f.id = append(f.id[:0], f.idBuf...)
		}
	}
}

// isAnswer reports whether the message answers a request: it has an id and
// no method.
func (f *jsonFilter) isAnswer() bool { return f.id != nil && !f.hasMethod }

// isRequest reports whether the message is a request of the server: it
// has an id and a method.
func (f *jsonFilter) isRequest() bool { return f.id != nil && f.hasMethod }

// keepsCut reports whether a message with a cut value goes on, the cut
// value replaced: an answer to our tools/list.
func (f *jsonFilter) keepsCut() bool {
	id, err := strconv.Unquote(string(f.id))
	return err == nil && strings.HasPrefix(id, listIDPrefix)
}

// errorFor returns the JSON-RPC error that replaces an answer with id.
func errorFor(id []byte, code int, msg string) []byte {
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%q}}`, id, code, msg)
}

func tooLargeMessage(limit int64) string {
	return fmt.Sprintf("the server's answer is larger than max_result_bytes (%d bytes)", limit)
}

func tooDeepMessage() string {
	return fmt.Sprintf("the server's answer nests deeper than %d levels", maxDepth)
}

// frame is one message going through a filter.
type frame struct {
	limit int64
	f     jsonFilter
	out   []byte
	over  bool // past limit: no longer kept
	sent  bool // its replacement went out already
}

func (fr *frame) reset() {
	fr.f.reset()
	fr.out = fr.out[:0]
	fr.over, fr.sent = false, false
	if cap(fr.out) > 64<<10 {
		fr.out = nil // do not keep a large buffer for ever
	}
}

func (fr *frame) feed(in []byte) {
	fr.out = fr.f.feed(in, fr.out, !fr.over)
	if !fr.over && fr.f.size > fr.limit {
		fr.over = true
		fr.out = fr.out[:0]
	}
}

// early returns the replacement of an answer over the limit as soon as its
// id is known, so the request fails while the rest is still being dropped.
func (fr *frame) early() []byte {
	if !fr.over || fr.sent || !fr.f.hasAnswer || fr.f.hasMethod || fr.f.id == nil {
		return nil
	}
	fr.sent = true
	return errorFor(fr.f.id, codeTooLarge, tooLargeMessage(fr.limit))
}

// finish returns what the message becomes once it ended: itself, its
// replacement, or nothing; and why a dropped one was dropped.
func (fr *frame) finish() (msg []byte, dropped string) {
	f := &fr.f
	switch {
	case fr.sent:
		return nil, ""
	case fr.over && f.isAnswer():
		return errorFor(f.id, codeTooLarge, tooLargeMessage(fr.limit)), "too_large"
	case fr.over:
		return nil, "too_large"
	case f.cut && f.isAnswer() && !f.keepsCut():
		return errorFor(f.id, codeTooDeep, tooDeepMessage()), "too_deep"
	}
	return fr.out, ""
}

// lineFilter reads a stdio server's stdout, one message per line, through
// a frame.
type lineFilter struct {
	src     io.Reader
	buf     []byte
	fr      frame
	pending []byte // filtered bytes, read up to off
	off     int
	report  frameReport
	// unroutable ends the connection when a message over the limit cannot
	// be told to answer a request or not: a request may wait for it.
	unroutable func(error)
	// request, when set, takes the requests of the server out of the
	// stream (asks.go); it must not block.
	request func(msg []byte)
	err     error
}

func newLineFilter(src io.Reader, limit int64, report frameReport, unroutable func(error)) *lineFilter {
	return &lineFilter{src: src, buf: make([]byte, 64<<10), fr: frame{limit: limit}, report: report, unroutable: unroutable}
}

// Read returns filtered lines. It reads what the pipe has and acts on it at
// once, so an answer over the limit fails its request as soon as its id is
// known.
func (l *lineFilter) Read(p []byte) (int, error) {
	for len(l.pending) == 0 {
		if l.err != nil {
			return 0, l.err
		}
		n, err := l.src.Read(l.buf)
		chunk := l.buf[:n]
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				l.fr.feed(chunk)
				break
			}
			l.fr.feed(chunk[:i])
			chunk = chunk[i+1:]
			l.endLine()
		}
		if msg := l.fr.early(); msg != nil {
			l.pending = append(append(l.pending, msg...), '\n')
			l.report("too_large", l.fr.f.size)
		}
		if err != nil {
			if l.fr.f.size > 0 {
				l.endLine() // a last message without its newline
			}
			l.err = err
		}
	}
	n := copy(p, l.pending[l.off:])
	l.off += n
	if l.off == len(l.pending) {
		l.pending, l.off = l.pending[:0], 0
		if cap(l.pending) > 64<<10 {
			l.pending = nil
		}
	}
	return n, nil
}

func (l *lineFilter) endLine() {
	if msg := l.fr.early(); msg != nil {
		l.pending = append(append(l.pending, msg...), '\n')
		l.report("too_large", l.fr.f.size)
	}
	msg, dropped := l.fr.finish()
	if dropped != "" {
		l.report(dropped, l.fr.f.size)
		if msg == nil && !l.fr.f.hasMethod && l.unroutable != nil {
			l.unroutable(fmt.Errorf("the server sent a message of %d bytes, over max_result_bytes (%d), that answers no request we can tell", l.fr.f.size, l.fr.limit))
		}
	}
	if msg != nil && l.request != nil && l.fr.f.isRequest() {
		l.request(bytes.Clone(msg))
		msg = nil
	}
	if msg != nil {
		l.pending = append(append(l.pending, msg...), '\n')
	}
	l.fr.reset()
}

// sseFilter reads a text/event-stream body (legacy SSE, or a streamable HTTP
// answer) and passes each event's data through a frame. Events other than
// messages (the legacy endpoint event) are only bounded.
type sseFilter struct {
	body    io.ReadCloser
	src     *bufio.Reader
	fr      frame
	event   []byte // the event's lines other than data, kept in order
	hasData bool
	name    string
	pending []byte
	report  frameReport
	err     error
	// ended, when set, is told when the stream ends.
	ended func()
	// request, when set, takes the requests of the server out of the
	// stream (asks.go); it must not block.
	request func(msg []byte)
}

func newSSEFilter(body io.ReadCloser, limit int64, report frameReport) *sseFilter {
	return &sseFilter{body: body, src: bufio.NewReaderSize(body, 64<<10), fr: frame{limit: limit}, report: report}
}

func (s *sseFilter) Close() error { return s.body.Close() }

func (s *sseFilter) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if err := s.readLine(); err != nil {
			if s.hasData || len(s.event) > 0 {
				s.endEvent()
			}
			s.err = err
			if s.ended != nil {
				s.ended()
			}
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = s.pending[:0:0]
	}
	return n, nil
}

// readLine reads one line of the stream and acts on it, a chunk at a time:
// a data line of any length is never held whole.
func (s *sseFilter) readLine() error {
	chunk, err := s.src.ReadSlice('\n')
	if len(chunk) == 0 && err != nil {
		return err
	}
	if err == nil && len(bytes.TrimRight(chunk, "\r\n")) == 0 {
		s.endEvent()
		return nil
	}
	isData := bytes.HasPrefix(chunk, []byte("data:"))
	switch {
	case isData:
		chunk = bytes.TrimPrefix(chunk[len("data:"):], []byte(" "))
		if s.hasData {
			s.fr.feed([]byte(" ")) // the line break between two data lines
		}
		s.hasData = true
	case bytes.HasPrefix(chunk, []byte("event:")):
		s.name = string(bytes.TrimSpace(chunk[len("event:"):]))
	}
	for {
		switch {
		case isData && err == nil:
			s.fr.feed(bytes.TrimRight(chunk, "\r\n"))
		case isData:
			s.fr.feed(chunk)
		case len(s.event)+len(chunk) <= 64<<10:
			s.event = append(s.event, chunk...)
		}
		if err != bufio.ErrBufferFull {
			break
		}
		chunk, err = s.src.ReadSlice('\n')
	}
	if err != nil && !isData {
		s.event = append(s.event, '\n') // a last line without its end
	}
	return err
}

// endEvent emits the event that just ended, or its replacement.
func (s *sseFilter) endEvent() {
	defer func() {
		s.fr.reset()
		s.event, s.hasData, s.name = s.event[:0], false, ""
	}()
	if !s.hasData {
		if len(s.event) > 0 {
			s.pending = append(append(s.pending, s.event...), '\n')
		}
		return
	}
	var data []byte
	if s.name != "" && s.name != "message" {
		// Not a JSON-RPC message (the endpoint event): bounded, kept as is.
		if s.fr.over {
			s.report("too_large", s.fr.f.size)
			return
		}
		data = s.fr.out
	} else {
		msg, dropped := s.fr.finish()
		if dropped != "" {
			s.report(dropped, s.fr.f.size)
		}
		if msg == nil {
			return
		}
		if s.request != nil && s.fr.f.isRequest() {
			s.request(bytes.Clone(msg))
			return
		}
		data = msg
	}
	s.pending = append(s.pending, s.event...)
	s.pending = append(s.pending, "data: "...)
	s.pending = append(s.pending, data...)
	s.pending = append(s.pending, "\n\n"...)
}

// jsonBodyFilter reads an application/json body, one message, through a
// frame, and returns the message or its replacement.
type jsonBodyFilter struct {
	body   io.ReadCloser
	fr     frame
	report frameReport
	out    *bytes.Reader
}

func newJSONBodyFilter(body io.ReadCloser, limit int64, report frameReport) *jsonBodyFilter {
	return &jsonBodyFilter{body: body, fr: frame{limit: limit}, report: report}
}

func (j *jsonBodyFilter) Close() error { return j.body.Close() }

func (j *jsonBodyFilter) Read(p []byte) (int, error) {
	if j.out == nil {
		buf := make([]byte, 32<<10)
		for {
			n, err := j.body.Read(buf)
			j.fr.feed(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
		}
		msg, dropped := j.fr.finish()
		if dropped != "" {
			j.report(dropped, j.fr.f.size)
			if msg == nil {
				msg = []byte(`{"jsonrpc":"2.0","error":{"code":-32090,"message":"the server's answer is larger than max_result_bytes"}}`)
			}
		}
		j.out = bytes.NewReader(msg)
	}
	return j.out.Read(p)
}

// dropped logs a message a frame filter dropped or replaced.
func (c *Conn) dropped(what string, size int64) {
	c.log.Warn("mcp server message refused", "why", what, "bytes", size, "max_result_bytes", c.cfg.maxMessageBytes())
}

// unroutable ends a connection whose server sent a message over the bound
// that a request may be waiting for: the requests fail instead of waiting
// for their timeouts, and a Supervisor starts the server again.
func (c *Conn) unroutable(err error) {
	c.log.Warn("mcp server sent a message over the bound that answers no request we can tell; ending the connection", "err", err)
	c.kill(withKind(switchboard.ErrUnavailable, err))
}
