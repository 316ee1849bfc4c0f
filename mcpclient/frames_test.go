package mcpclient

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func deepJSON(levels int) string {
	return strings.Repeat(`{"a":`, levels) + `1` + strings.Repeat(`}`, levels)
}

// filterLines runs input through a lineFilter with limit, reading one byte
// at a time when slow, and returns the lines mcp-go would see and the
// reports.
func filterLines(t *testing.T, input string, limit int64, slow bool) (lines []string, reports []string, unroutable bool) {
	t.Helper()
	var src io.Reader = strings.NewReader(input)
	if slow {
		src = iotest.OneByteReader(src)
	}
	lf := newLineFilter(src, limit, func(what string, size int64) { reports = append(reports, what) },
		func(error) { unroutable = true })
	out, err := io.ReadAll(lf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(string(out), "\n"), "\n") {
		lines = append(lines, l)
	}
	return lines, reports, unroutable
}

func TestLineFilter(t *testing.T) {
	big := strings.Repeat("x", 2000)
	tests := []struct {
		name       string
		input      string
		limit      int64
		want       []string
		reports    []string
		unroutable bool
	}{
		{"small messages pass unchanged", "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":[1,\"}\\\"{\"]}}\n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n", 1000,
			[]string{`{"jsonrpc":"2.0","id":1,"result":{"a":[1,"}\"{"]}}`, `{"jsonrpc":"2.0","method":"x"}`}, nil, false},
		{"a last line without newline", `{"id":2,"result":{}}`, 1000, []string{`{"id":2,"result":{}}`}, nil, false},
		{"an answer over the limit, id first", `{"jsonrpc":"2.0","id":"switchboard-7","result":{"t":"` + big + `"}}` + "\n" + `{"id":3,"result":{}}` + "\n", 1000,
			[]string{string(errorFor([]byte(`"switchboard-7"`), codeTooLarge, tooLargeMessage(1000))), `{"id":3,"result":{}}`}, []string{"too_large"}, false},
		{"an answer over the limit, id last", `{"result":{"t":"` + big + `"},"jsonrpc":"2.0","id":42}` + "\n", 1000,
			[]string{string(errorFor([]byte(`42`), codeTooLarge, tooLargeMessage(1000)))}, []string{"too_large"}, false},
		{"a notification over the limit is dropped", `{"jsonrpc":"2.0","method":"notifications/message","params":{"t":"` + big + `"}}` + "\n" + `{"id":3,"result":{}}` + "\n", 1000,
			[]string{`{"id":3,"result":{}}`}, []string{"too_large"}, false},
		{"garbage over the limit ends the connection", big + "\n", 1000, []string{""}, []string{"too_large"}, true},
		{"an answer too deep fails", `{"jsonrpc":"2.0","id":5,"result":` + deepJSON(600) + `}` + "\n", 1 << 20,
			[]string{string(errorFor([]byte(`5`), codeTooDeep, tooDeepMessage()))}, []string{"too_deep"}, false},
		{"a tools/list answer keeps its other tools", `{"jsonrpc":"2.0","id":"switchboard-list-1","result":{"tools":[{"name":"deep","inputSchema":` + deepJSON(600) + `},{"name":"ok"}]}}` + "\n", 1 << 20,
			[]string{`{"jsonrpc":"2.0","id":"switchboard-list-1","result":{"tools":[{"name":"deep","inputSchema":` +
				strings.Repeat(`{"a":`, maxDepth-4) + deepMarker + strings.Repeat(`}`, maxDepth-4) + `},{"name":"ok"}]}}`}, nil, false},
	}
	for _, tt := range tests {
		for _, slow := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				lines, reports, unroutable := filterLines(t, tt.input, tt.limit, slow)
				if diff := cmp.Diff(tt.want, lines); diff != "" {
					t.Errorf("lines (-want +got):\n%.2000s", diff)
				}
				if diff := cmp.Diff(tt.reports, reports); diff != "" {
					t.Errorf("reports (-want +got):\n%s", diff)
				}
				if unroutable != tt.unroutable {
					t.Errorf("unroutable = %v, want %v", unroutable, tt.unroutable)
				}
				for _, l := range lines {
					if l != "" && !json.Valid([]byte(l)) {
						t.Errorf("line is not valid JSON: %.200s", l)
					}
				}
			})
		}
	}
}

// TestLineFilterEarly: an answer over the limit whose id comes first fails
// its request before the rest of the line has even been sent.
func TestLineFilterEarly(t *testing.T) {
	pr, pw := io.Pipe()
	lf := newLineFilter(pr, 100, func(string, int64) {}, nil)
	go func() {
		pw.Write([]byte(`{"jsonrpc":"2.0","id":9,"result":{"t":"` + strings.Repeat("y", 500)))
		// The rest of the line never comes while the test reads.
	}()
	buf := make([]byte, 1000)
	n, err := lf.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), string(errorFor([]byte("9"), codeTooLarge, tooLargeMessage(100)))+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	pw.Close()
}

func TestSSEFilter(t *testing.T) {
	big := strings.Repeat("z", 6000)
	input := "event: endpoint\ndata: /messages?sessionId=abc\n\n" +
		": a comment\nid: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":1,\"result\":{}}\n\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"t\":\"" + big + "\"}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"t\":\"" + big + "\"}}\r\n\r\n" +
		"data: {\"id\":3,\"result\":" + strings.Repeat("[", 600) + strings.Repeat("]", 600) + "}\n\n" +
		"data: {\"id\":4,\"result\":{}}"
	want := "event: endpoint\ndata: /messages?sessionId=abc\n\n" +
		": a comment\nid: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\", \"id\":1,\"result\":{}}\n\n" +
		"event: message\ndata: " + string(errorFor([]byte("2"), codeTooLarge, tooLargeMessage(5000))) + "\n\n" +
		"data: " + string(errorFor([]byte("3"), codeTooDeep, tooDeepMessage())) + "\n\n" +
		"data: {\"id\":4,\"result\":{}}\n\n"
	for _, slow := range []bool{false, true} {
		var reports []string
		var src io.Reader = strings.NewReader(input)
		if slow {
			src = iotest.OneByteReader(src)
		}
		f := newSSEFilter(io.NopCloser(src), 5000, func(what string, size int64) { reports = append(reports, what) })
		got, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("slow=%v (-want +got):\n%.3000s", slow, diff)
		}
		if diff := cmp.Diff([]string{"too_large", "too_large", "too_deep"}, reports); diff != "" {
			t.Errorf("reports (-want +got):\n%s", diff)
		}
	}
}

func TestJSONBodyFilter(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, `{"jsonrpc":"2.0","id":1,"result":{}}`},
		{`{"jsonrpc":"2.0","id":1,"result":"` + strings.Repeat("q", 5000) + `"}`, string(errorFor([]byte("1"), codeTooLarge, tooLargeMessage(1000)))},
	} {
		f := newJSONBodyFilter(io.NopCloser(bytes.NewReader([]byte(tt.in))), 1000, func(string, int64) {})
		got, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("got %.300s, want %.300s", got, tt.want)
		}
	}
}

// BenchmarkLineFilter is the filter's cost per message of a typical size.
func BenchmarkLineFilter(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":"switchboard-1","result":{"content":[{"type":"text","text":"` + strings.Repeat("hello world ", 80) + `"}],"structuredContent":{"a":[1,2,3],"b":{"c":"d"}}}}` + "\n")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	src := &repeatReader{msg: msg}
	lf := newLineFilter(src, DefaultMaxMessageBytes, func(string, int64) {}, nil)
	buf := make([]byte, 4096)
	for b.Loop() {
		src.left = 1
		if _, err := lf.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader gives msg left times, one per Read.
type repeatReader struct {
	msg  []byte
	left int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	r.left--
	return copy(p, r.msg), nil
}
