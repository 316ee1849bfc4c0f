package llmtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// The skim (Options.Skim) reads a request body with a purpose-written JSON
// walker instead of encoding/json: encoding/json runs every byte of a
// 10-20 KB body through its state machine, which was about half of the
// CPU the bench process spent. The walker checks the syntax of the whole value
// as encoding/json does, but skips the values it does not need by jumping
// over strings eight bytes at a time and only takes the model, the stream
// flags and each message's role and tool call id.
//
// It gives what encoding/json gives decoding into an
// openai.ChatCompletionRequest, restricted to those fields: keys match
// case-insensitively (bytes.EqualFold, as encoding/json matches field
// names), a repeated key's last value wins, null leaves a string or bool
// alone and sets stream_options or messages to nil, a null message is an
// empty one, a value of the wrong type for one of those fields is an
// error, a top-level null is an empty request, and what follows the
// top-level value is not read (json.Decoder's Decode reads one value). It
// rejects the syntax errors encoding/json rejects (including control
// characters in strings and nesting deeper than encoding/json allows); it
// does not see type errors in the fields it skips, which the full decode
// reports.

// maxDepth is encoding/json's limit on nested objects and arrays.
const maxDepth = 10000

// skimScratch is the memory a skim reuses from one request to the next.
type skimScratch struct {
	body  bytes.Buffer
	stack []byte
	msgs  []skimMessage
}

// maxPooledBody is the largest body buffer kept for the next request, so
// that one huge request does not pin its buffer.
const maxPooledBody = 1 << 20

// skimBody reads a request body whole and skims it (see Options.Skim).
func (s *Server) skimBody(body io.Reader) (openai.ChatCompletionRequest, error) {
	sc, _ := s.scratch.Get().(*skimScratch)
	if sc == nil {
		sc = new(skimScratch)
	}
	defer func() {
		if sc.body.Cap() <= maxPooledBody {
			s.scratch.Put(sc)
		}
	}()
	sc.body.Reset()
	if _, err := sc.body.ReadFrom(body); err != nil {
		return openai.ChatCompletionRequest{}, fmt.Errorf("read body: %w", err)
	}
	k := skimmer{data: sc.body.Bytes(), stack: sc.stack, msgs: sc.msgs}
	req, err := k.request()
	clear(k.msgs[:cap(k.msgs)]) // drop the strings they hold
	sc.stack, sc.msgs = k.stack[:0], k.msgs[:0]
	return req, err
}

// skimmer walks one JSON body; pos is the offset of the next byte to read.
type skimmer struct {
	data  []byte
	pos   int
	stack []byte        // the '{' and '[' open while skipping a value
	msgs  []skimMessage // the messages of the messages array being read
}

type skimMessage struct{ role, toolCallID string }

// request reads the top-level value: an object, or null.
func (k *skimmer) request() (openai.ChatCompletionRequest, error) {
	var req openai.ChatCompletionRequest
	k.space()
	switch k.peek() {
	case '{':
		k.pos++
	case 'n':
		return req, k.literal("null")
	default:
		return req, k.typeError("request", "an object")
	}
	for first := true; ; first = false {
		key, done, err := k.member(first)
		if err != nil {
			return req, err
		}
		if done {
			return req, nil
		}
		switch {
		case keyIs(key, "model"):
			err = k.stringField(&req.Model, "model", -1)
		case keyIs(key, "stream"):
			err = k.boolField(&req.Stream, "stream")
		case keyIs(key, "stream_options"):
			err = k.streamOptions(&req.StreamOptions)
		case keyIs(key, "messages"):
			err = k.messages(&req.Messages)
		default:
			err = k.skip(1)
		}
		if err != nil {
			return req, err
		}
	}
}

func (k *skimmer) streamOptions(opts **openai.StreamOptions) error {
	switch k.peek() {
	case 'n':
		*opts = nil
		return k.literal("null")
	case '{':
		k.pos++
	default:
		return k.typeError("stream_options", "an object")
	}
	if *opts == nil { // a repeated stream_options decodes into the first, as in encoding/json
		*opts = new(openai.StreamOptions)
	}
	for first := true; ; first = false {
		key, done, err := k.member(first)
		if err != nil || done {
			return err
		}
		if keyIs(key, "include_usage") {
			err = k.boolField(&(*opts).IncludeUsage, "stream_options.include_usage")
		} else {
			err = k.skip(2)
		}
		if err != nil {
			return err
		}
	}
}

// messages reads the messages array into *msgs: nil for null, as many
// messages (each with only a role and a tool call id) as it has otherwise.
func (k *skimmer) messages(msgs *[]openai.ChatCompletionMessage) error {
	switch k.peek() {
	case 'n':
		*msgs = nil
		return k.literal("null")
	case '[':
		k.pos++
	default:
		return k.typeError("messages", "an array")
	}
	k.msgs = k.msgs[:0]
	for first := true; ; first = false {
		done, err := k.element(first)
		if err != nil {
			return err
		}
		if done {
			break
		}
		var m skimMessage
		switch k.peek() {
		case 'n':
			// go-openai's UnmarshalJSON makes null an empty message.
			err = k.literal("null")
		case '{':
			k.pos++
			err = k.message(&m, len(k.msgs))
		default:
			err = k.typeError(fmt.Sprintf("messages[%d]", len(k.msgs)), "an object")
		}
		if err != nil {
			return err
		}
		k.msgs = append(k.msgs, m)
	}
	// Non-nil even when empty: encoding/json makes [] an empty slice.
	*msgs = make([]openai.ChatCompletionMessage, len(k.msgs))
	for i, m := range k.msgs {
		(*msgs)[i] = openai.ChatCompletionMessage{Role: m.role, ToolCallID: m.toolCallID}
	}
	return nil
}

// message reads the members of the i-th message, whose '{' has been read.
func (k *skimmer) message(m *skimMessage, i int) error {
	for first := true; ; first = false {
		key, done, err := k.member(first)
		if err != nil || done {
			return err
		}
		switch {
		case keyIs(key, "role"):
			err = k.stringField(&m.role, "role", i)
		case keyIs(key, "tool_call_id"):
			err = k.stringField(&m.toolCallID, "tool_call_id", i)
		default:
			err = k.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

// keyIs reports whether an object key names the field name, as
// encoding/json matches keys to field names: exactly or else
// case-insensitively.
func keyIs(key []byte, name string) bool {
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

// member reads up to the value of the next member of an object: after its
// '{' when first, else after a member's value. It returns the member's key
// (valid until the next read), or done once it has read the closing '}'.
func (k *skimmer) member(first bool) (key []byte, done bool, err error) {
	k.space()
	if first {
		if k.peek() == '}' {
			k.pos++
			return nil, true, nil
		}
	} else {
		switch k.peek() {
		case ',':
			k.pos++
			k.space()
		case '}':
			k.pos++
			return nil, true, nil
		default:
			return nil, false, k.syntaxError("after object key:value pair")
		}
	}
	if k.peek() != '"' {
		return nil, false, k.syntaxError("looking for beginning of object key string")
	}
	if key, err = k.key(); err != nil {
		return nil, false, err
	}
	k.space()
	if k.peek() != ':' {
		return nil, false, k.syntaxError("after object key")
	}
	k.pos++
	k.space()
	return key, false, nil
}

// element reads up to the next element of an array: after its '[' when
// first, else after an element. It returns done once it has read the
// closing ']'.
func (k *skimmer) element(first bool) (done bool, err error) {
	k.space()
	if k.peek() == ']' && first {
		k.pos++
		return true, nil
	}
	if !first {
		switch k.peek() {
		case ',':
			k.pos++
			k.space()
		case ']':
			k.pos++
			return true, nil
		default:
			return false, k.syntaxError("after array element")
		}
	}
	return false, nil
}

// stringField reads a string into *dst, leaves *dst alone for null and
// fails for any other value. field names it, in the message numbered
// message unless that is -1. Roles are interned.
func (k *skimmer) stringField(dst *string, field string, message int) error {
	switch k.peek() {
	case '"':
		b, err := k.str()
		if err != nil {
			return err
		}
		if field == "role" {
			*dst = role(b)
		} else {
			*dst = string(b)
		}
		return nil
	case 'n':
		return k.literal("null")
	}
	if message >= 0 {
		field = fmt.Sprintf("messages[%d].%s", message, field)
	}
	return k.typeError(field, "a string")
}

// boolField reads true or false into *dst, leaves *dst alone for null and
// fails for any other value.
func (k *skimmer) boolField(dst *bool, field string) error {
	switch k.peek() {
	case 't':
		*dst = true
		return k.literal("true")
	case 'f':
		*dst = false
		return k.literal("false")
	case 'n':
		return k.literal("null")
	}
	return k.typeError(field, "a bool")
}

// role returns the role b names, without allocating for the usual ones.
func role(b []byte) string {
	switch string(b) {
	case openai.ChatMessageRoleSystem:
		return openai.ChatMessageRoleSystem
	case openai.ChatMessageRoleDeveloper:
		return openai.ChatMessageRoleDeveloper
	case openai.ChatMessageRoleUser:
		return openai.ChatMessageRoleUser
	case openai.ChatMessageRoleAssistant:
		return openai.ChatMessageRoleAssistant
	case openai.ChatMessageRoleTool:
		return openai.ChatMessageRoleTool
	case openai.ChatMessageRoleFunction:
		return openai.ChatMessageRoleFunction
	}
	return string(b)
}

// str reads the string starting at pos and returns its value: the bytes
// of the body when it has no escapes and is valid UTF-8, else a decoded
// copy (by encoding/json, so that escapes, surrogates and invalid UTF-8
// come out as they do there; such strings are rare in what we read).
func (k *skimmer) str() ([]byte, error) {
	start := k.pos
	escaped, err := k.skipString()
	if err != nil {
		return nil, err
	}
	raw := k.data[start+1 : k.pos-1]
	if !escaped && utf8.Valid(raw) {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(k.data[start:k.pos], &s); err != nil {
		return nil, fmt.Errorf("string at offset %d: %w", start, err)
	}
	return []byte(s), nil
}

// key reads the object key starting at pos for keyIs: as str does, but
// without checking UTF-8 when it has no escapes, since invalid UTF-8 (which
// encoding/json decodes to U+FFFD) matches no field name either way.
func (k *skimmer) key() ([]byte, error) {
	start := k.pos
	escaped, err := k.skipString()
	if err != nil {
		return nil, err
	}
	if !escaped {
		return k.data[start+1 : k.pos-1], nil
	}
	k.pos = start
	return k.str()
}

// skipString reads past the string starting at pos, checking its escapes
// and that it has no control characters, and reports whether it has
// escapes. It reads eight bytes at a time, finding in each word all the
// bytes that interrupt a plain run of string bytes.
func (k *skimmer) skipString() (escaped bool, err error) {
	d := k.data
	i := k.pos + 1
	next := i // bytes before next are part of an escape already read
	for len(d)-i >= 8 {
		for m := specials(binary.LittleEndian.Uint64(d[i:])); m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)/8
			if j < next {
				continue
			}
			switch d[j] {
			case '"':
				k.pos = j + 1
				return escaped, nil
			case '\\':
				escaped = true
				if j+1 < len(d) && (d[j+1] == '"' || d[j+1] == '\\') {
					next = j + 2 // the usual escapes, without a call
					continue
				}
				n, ok := escapeLen(d[j:])
				if !ok {
					k.pos = min(j+n, len(d))
					return escaped, k.syntaxError("in string escape code")
				}
				next = j + n
			default:
				k.pos = j
				return escaped, k.syntaxError("in string literal")
			}
		}
		i = max(i+8, next)
	}
	for i = max(i, next); i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			k.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			n, ok := escapeLen(d[i:])
			if !ok {
				k.pos = min(i+n, len(d))
				return escaped, k.syntaxError("in string escape code")
			}
			i += n - 1
		case c < 0x20:
			k.pos = i
			return escaped, k.syntaxError("in string literal")
		}
	}
	k.pos = len(d)
	return escaped, k.syntaxError("in string literal")
}

// specials marks the bytes of w (eight bytes of a string, the first in
// the low byte) that interrupt a plain run: the high bit of each byte that
// is '"', '\\' or a control character is set, every other bit is clear.
// Its byte-wise test for zero is exact (no carry crosses from one byte to
// the next), so every set bit is a byte to look at.
func specials(w uint64) uint64 {
	const (
		ones = 0x0101010101010101
		low7 = 0x7f7f7f7f7f7f7f7f
	)
	zero := func(x uint64) uint64 { return ^((x&low7 + low7) | x | low7) }
	return zero(w^(ones*'"')) | zero(w^(ones*'\\')) | zero(w&(ones*0xe0))
}

// escapeLen returns the length of the escape sequence b starts with, or
// the offset of its first wrong byte and false.
func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return len(b), false
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		for i := 2; i < 6; i++ {
			if i >= len(b) || !isHex(b[i]) {
				return i, false
			}
		}
		return 6, true
	}
	return 1, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skip reads past the value at pos, checking its syntax; depth is how many
// objects and arrays enclose it.
func (k *skimmer) skip(depth int) error {
	k.stack = k.stack[:0]
	for {
		// A value.
		k.space()
		switch c := k.peek(); {
		case c == '"':
			if _, err := k.skipString(); err != nil {
				return err
			}
		case c == '{' || c == '[':
			if depth+len(k.stack)+1 > maxDepth {
				return fmt.Errorf("exceeded max depth at offset %d", k.pos)
			}
			k.pos++
			k.space()
			if k.peek() == c+2 { // '}' is '{'+2, ']' is '['+2
				k.pos++
				break
			}
			k.stack = append(k.stack, c)
			if c == '{' {
				if err := k.skipKey(); err != nil {
					return err
				}
			}
			continue
		case c == 't':
			if err := k.literal("true"); err != nil {
				return err
			}
		case c == 'f':
			if err := k.literal("false"); err != nil {
				return err
			}
		case c == 'n':
			if err := k.literal("null"); err != nil {
				return err
			}
		case c == '-' || '0' <= c && c <= '9':
			if err := k.skipNumber(); err != nil {
				return err
			}
		default:
			return k.syntaxError("looking for beginning of value")
		}
		// After a value: close what it ends, up to the next value.
		for {
			n := len(k.stack)
			if n == 0 {
				return nil
			}
			k.space()
			open := k.stack[n-1]
			c := k.peek()
			if c == open+2 {
				k.pos++
				k.stack = k.stack[:n-1]
				continue
			}
			if c != ',' {
				if open == '{' {
					return k.syntaxError("after object key:value pair")
				}
				return k.syntaxError("after array element")
			}
			k.pos++
			if open == '{' {
				if err := k.skipKey(); err != nil {
					return err
				}
			}
			break
		}
	}
}

// skipKey reads past an object key and its colon.
func (k *skimmer) skipKey() error {
	k.space()
	if k.peek() != '"' {
		return k.syntaxError("looking for beginning of object key string")
	}
	if _, err := k.skipString(); err != nil {
		return err
	}
	k.space()
	if k.peek() != ':' {
		return k.syntaxError("after object key")
	}
	k.pos++
	return nil
}

// skipNumber reads past the number at pos: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (k *skimmer) skipNumber() error {
	d, i := k.data, k.pos
	digits := func() bool {
		start := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i > start
	}
	fail := func() error {
		k.pos = i
		return k.syntaxError("in numeric literal")
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		return fail()
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return fail()
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return fail()
		}
	}
	k.pos = i
	return nil
}

// literal reads past word (true, false or null), which must be at pos.
func (k *skimmer) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if k.pos >= len(k.data) || k.data[k.pos] != word[i] {
			return k.syntaxError("in literal " + word)
		}
		k.pos++
	}
	return nil
}

func (k *skimmer) space() {
	if k.pos < len(k.data) && k.data[k.pos] > ' ' {
		return // the usual case, inlined
	}
	k.moreSpace()
}

func (k *skimmer) moreSpace() {
	for k.pos < len(k.data) {
		switch k.data[k.pos] {
		case ' ', '\t', '\n', '\r':
			k.pos++
		default:
			return
		}
	}
}

// peek returns the byte at pos, or 0 at the end (which no caller takes for
// a byte it wants).
func (k *skimmer) peek() byte {
	if k.pos < len(k.data) {
		return k.data[k.pos]
	}
	return 0
}

// syntaxError describes the byte at pos, found where it does not belong.
func (k *skimmer) syntaxError(where string) error {
	if k.pos >= len(k.data) {
		return fmt.Errorf("unexpected end of JSON input (%s)", where)
	}
	return fmt.Errorf("invalid character %q %s at offset %d", k.data[k.pos], where, k.pos)
}

// typeError reports that field has the value at pos, which is not of the
// kind want names (or is a syntax error).
func (k *skimmer) typeError(field, want string) error {
	var got string
	switch c := k.peek(); {
	case c == '"':
		got = "a string"
	case c == '{':
		got = "an object"
	case c == '[':
		got = "an array"
	case c == 't' || c == 'f':
		got = "a bool"
	case c == 'n':
		got = "null"
	case c == '-' || '0' <= c && c <= '9':
		got = "a number"
	default:
		return k.syntaxError("looking for beginning of value")
	}
	return fmt.Errorf("%s is %s at offset %d, want %s", field, got, k.pos, want)
}
