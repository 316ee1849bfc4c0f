package api

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard/web"
)

// TestProtocolJS holds web/static/protocol.js, the web UI's knowledge of
// the protocol, equal to the Go constants: the stream's part types, the
// statuses of calls and turns, roles and message types, every constant of
// each type; and the error codes the UI names, each one a Code constant of
// the root package. It fails when either side changes alone.
func TestProtocolJS(t *testing.T) {
	js := protocolJS(t)
	root := goConsts(t, "..")
	api := goConsts(t, ".")
	for _, c := range []struct {
		key    string            // in protocol.js
		consts map[string]string // Go's, by name
		prefix string            // of their names
	}{
		{"part", api.typed["partType"], "part"},
		{"callStatus", root.typed["ToolCallStatus"], "Call"},
		{"turnStatus", root.typed["TurnStatus"], "Turn"},
		{"role", root.typed["Role"], "Role"},
		{"messageType", root.typed["MessageType"], "Message"},
	} {
		if len(c.consts) == 0 {
			t.Fatalf("%s: found no Go constants to compare with", c.key)
		}
		if diff := cmp.Diff(js[c.key], jsNames(t, c.consts, c.prefix)); diff != "" {
			t.Errorf("protocol.js %s differs from the Go constants (-protocol.js +Go):\n%s", c.key, diff)
		}
	}
	if len(js["code"]) == 0 {
		t.Errorf("protocol.js names no code")
	}
	codes := jsNames(t, root.untyped, "Code")
	for name, value := range js["code"] {
		if want, ok := codes[name]; !ok || value != want {
			t.Errorf("protocol.js code.%s = %q: got %q from the Go constant %s, want it the same (and the constant there)",
				name, value, want, goName("Code", name))
		}
	}
}

// protocolMarkers delimit the JSON object of protocol.js.
var protocolMarkers = regexp.MustCompile(`(?s)/\* protocol:begin \*/(.*?)/\* protocol:end \*/`)

// protocolJS returns the JSON object of the embedded protocol.js: its
// groups of names and values.
func protocolJS(t *testing.T) map[string]map[string]string {
	t.Helper()
	src, err := fs.ReadFile(web.FS(), "protocol.js")
	if err != nil {
		t.Fatal(err)
	}
	m := protocolMarkers.FindAllSubmatch(src, -1)
	if len(m) != 1 {
		t.Fatalf("protocol.js: got %d blocks between /* protocol:begin */ and /* protocol:end */, want 1", len(m))
	}
	var groups map[string]map[string]string
	if err := json.Unmarshal(m[0][1], &groups); err != nil {
		t.Fatalf("protocol.js: the block between the markers is not JSON of groups of strings: %v", err)
	}
	return groups
}

// consts are a package's string constants: by type (those declared with
// one) and untyped.
type consts struct {
	typed   map[string]map[string]string // type name -> constant name -> value
	untyped map[string]string
}

// goConsts reads the string constants of the package in dir (its non-test
// files) from the source: those whose value is a string literal, each
// under its declared type, if any.
func goConsts(t *testing.T, dir string) consts {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := consts{typed: map[string]map[string]string{}, untyped: map[string]string{}}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					switch typ := vs.Type.(type) {
					case nil:
						out.untyped[name.Name] = v
					case *ast.Ident:
						if out.typed[typ.Name] == nil {
							out.typed[typ.Name] = map[string]string{}
						}
						out.typed[typ.Name][name.Name] = v
					}
				}
			}
		}
	}
	return out
}

// jsNames renames the constants with prefix as protocol.js names them:
// the prefix cut, the first letter lower-cased (CallTimedOut: timedOut).
// Constants without the prefix are left out.
func jsNames(t *testing.T, consts map[string]string, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, v := range consts {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" {
			continue
		}
		r, n := utf8.DecodeRuneInString(rest)
		if !unicode.IsUpper(r) {
			continue // partTypes, Calls: another word
		}
		out[string(unicode.ToLower(r))+rest[n:]] = v
	}
	return out
}

// goName is the Go constant protocol.js's name stands for.
func goName(prefix, name string) string {
	r, n := utf8.DecodeRuneInString(name)
	return prefix + string(unicode.ToUpper(r)) + name[n:]
}
