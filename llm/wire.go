package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
)

// The wire format of chat completions. Requests are encoded here rather
// than by go-openai: it converts the whole history to its own types on
// every call and marshals each message twice through reflection (a custom
// MarshalJSON whose output encoding/json then compacts again), which was a
// fifth of the service's CPU. Replies are decoded into go-openai's types,
// and failures become its *openai.APIError and *openai.RequestError, as
// go-openai makes them.

// appendRequest appends the JSON body of a chat completions request to b:
// the same JSON value go-openai sends for the same request (its keys may
// come in another order, and it escapes <, > and &, which we need not).
func appendRequest(b []byte, model string, msgs []switchboard.Message, tools []switchboard.ToolDefinition, stream bool) []byte {
	b = append(b, `{"model":`...)
	b = appendString(b, model)
	b = append(b, `,"messages":[`...)
	first := true
	for i := range msgs {
		m := &msgs[i]
		if m.Type == switchboard.MessageError {
			continue // our own notes are not sent
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendMessage(b, m)
	}
	b = append(b, ']')
	if len(tools) > 0 {
		b = append(b, `,"tools":[`...)
		for i, d := range tools {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"function":{"name":`...)
			b = appendString(b, d.Name)
			if d.Description != "" {
				b = append(b, `,"description":`...)
				b = appendString(b, d.Description)
			}
			b = append(b, `,"parameters":`...)
			if len(d.Parameters) == 0 {
				b = append(b, "null"...)
			} else {
				b = append(b, d.Parameters...) // JSON already: the catalog made it
			}
			b = append(b, `},"type":"function"}`...)
		}
		b = append(b, ']')
	}
	if stream {
		b = append(b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	} else {
		b = append(b, `,"stream":false`...)
	}
	return append(b, '}')
}

// appendMessage appends one message in OpenAI's format: assistant messages
// that asked for tools carry their tool_calls, and a tool result is a tool
// message naming the call it answers.
func appendMessage(b []byte, m *switchboard.Message) []byte {
	switch {
	case m.Role == switchboard.RoleTool || m.Type == switchboard.MessageToolResult:
		content := m.Content
		if content == "" {
			content = "(empty result)" // OpenAI rejects a tool message without content
		}
		b = append(b, `{"role":"tool","content":`...)
		b = appendString(b, content)
		if m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = appendString(b, m.ToolCallID)
		}
		return append(b, '}')
	case m.Role == switchboard.RoleAssistant && len(m.ToolCalls) > 0:
		b = append(b, `{"role":"assistant"`...)
		if m.Content != "" {
			b = append(b, `,"content":`...)
			b = appendString(b, m.Content)
		}
		b = append(b, `,"tool_calls":[`...)
		for j, tc := range m.ToolCalls {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if tc.ID != "" {
				b = append(b, `"id":`...)
				b = appendString(b, tc.ID)
				b = append(b, ',')
			}
			b = append(b, `"type":"function","function":{`...)
			comma := false
			if tc.Name != "" {
				b = append(b, `"name":`...)
				b = appendString(b, tc.Name)
				comma = true
			}
			if tc.Arguments != "" {
				if comma {
					b = append(b, ',')
				}
				b = append(b, `"arguments":`...)
				b = appendString(b, tc.Arguments)
			}
			b = append(b, "}}"...)
		}
		return append(b, "]}"...)
	}
	b = append(b, `{"role":`...)
	b = appendString(b, string(m.Role))
	if m.Content != "" {
		b = append(b, `,"content":`...)
		b = appendString(b, m.Content)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, as encoding/json does with HTML
// escaping off: invalid UTF-8 becomes U+FFFD, and U+2028 and U+2029 are
// escaped for JavaScript's sake.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// requestSize estimates the encoded size of a request, to allocate its
// body once.
func requestSize(msgs []switchboard.Message, tools []switchboard.ToolDefinition) int {
	n := 128
	for i := range msgs {
		n += len(msgs[i].Content) + len(msgs[i].ToolCallID) + 48
		for _, tc := range msgs[i].ToolCalls {
			n += len(tc.ID) + len(tc.Name) + len(tc.Arguments) + 64
		}
	}
	for _, d := range tools {
		n += len(d.Name) + len(d.Description) + len(d.Parameters) + 64
	}
	return n + n/16 // room for escapes
}

// post sends a chat completions request and returns the response of a
// call that succeeded (2xx), or the failure as go-openai reports it.
func (c *Client) post(ctx context.Context, body []byte, stream bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Cache-Control", "no-cache")
		req.Header.Set("Connection", "keep-alive")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusBadRequest {
		defer resp.Body.Close()
		return nil, errorResponse(resp)
	}
	return resp, nil
}

// errorResponse reads a failed call's answer into go-openai's error types:
// an *openai.APIError when the body is OpenAI's error object, else an
// *openai.RequestError.
func errorResponse(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("error, reading response body: %w", err)
	}
	var er openai.ErrorResponse
	err = json.Unmarshal(body, &er)
	if err != nil || er.Error == nil {
		reqErr := &openai.RequestError{HTTPStatus: resp.Status, HTTPStatusCode: resp.StatusCode, Err: err, Body: body}
		if er.Error != nil {
			reqErr.Err = er.Error
		}
		return reqErr
	}
	er.Error.HTTPStatus = resp.Status
	er.Error.HTTPStatusCode = resp.StatusCode
	return er.Error
}

// maxEmptyStreamLines is how many lines that are not data a stream may
// send in a row (go-openai's default).
const maxEmptyStreamLines = 300

var errTooManyEmptyStreamLines = errors.New("stream has sent too many empty messages")

// streamReader reads a streamed reply's server-sent events, as go-openai
// reads them: "data:" lines carry chunks until "data: [DONE]"; an error
// object (on a data line or over several lines) ends the stream with it.
type streamReader struct {
	r    *bufio.Reader
	errs bytes.Buffer // lines that were not data, in case they are an error
	done bool
}

// next returns the next chunk, or io.EOF after [DONE].
func (s *streamReader) next(chunk *openai.ChatCompletionStreamResponse) error {
	if s.done {
		return io.EOF
	}
	empty := 0
	isError := false
	for {
		line, readErr := s.r.ReadBytes('\n')
		if readErr != nil || isError {
			if err := s.streamError(); err != nil {
				return fmt.Errorf("error, %w", err)
			}
			return readErr
		}
		line = bytes.TrimSpace(line)
		data, isData := cutData(line)
		if isData && bytes.HasPrefix(data, []byte(`{"error":`)) {
			isError = true
		}
		if !isData || isError {
			if isError {
				line = data
			}
			s.errs.Write(line)
			if empty++; empty > maxEmptyStreamLines {
				return errTooManyEmptyStreamLines
			}
			continue
		}
		if string(data) == "[DONE]" {
			s.done = true
			return io.EOF
		}
		*chunk = openai.ChatCompletionStreamResponse{}
		return json.Unmarshal(data, chunk)
	}
}

// cutData returns what follows "data:" (and spaces) on an SSE line.
func cutData(line []byte) ([]byte, bool) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return nil, false
	}
	return bytes.TrimLeft(data, " \t\r\n\v\f"), true
}

// streamError decodes the accumulated lines that were not data as an
// OpenAI error object, if they are one.
func (s *streamReader) streamError() *openai.APIError {
	if s.errs.Len() == 0 {
		return nil
	}
	var er openai.ErrorResponse
	if json.Unmarshal(s.errs.Bytes(), &er) != nil {
		return nil
	}
	return er.Error
}

// readers are the buffered readers of streamed replies, reused.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// chatURL is the chat completions endpoint under base.
func chatURL(base string) string { return base + "/chat/completions" }
