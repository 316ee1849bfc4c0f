package mcpclient

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
)

// Part is a binary part of a result, decoded: an image, audio, or a
// resource whose content is not text.
type Part struct {
	Kind     string // "image", "audio" or "resource"
	MIMEType string
	URI      string // a resource's
	Data     []byte
}

// newResult converts mcp-go's result of a call to the server named server:
// text parts verbatim, binary parts decoded into Parts (the text names
// each), resource links with the hint that read_resource reads them,
// structured content as sent.
func newResult(server string, res *mcp.CallToolResult) *Result {
	r := &Result{IsError: res.IsError}
	texts := make([]string, 0, len(res.Content))
	for _, content := range res.Content {
		texts = append(texts, r.add(server, content))
	}
	r.Text = strings.Join(texts, "\n")
	switch {
	case len(res.RawStructuredContent) > 0:
		r.Structured = json.RawMessage(append([]byte(nil), res.RawStructuredContent...))
	case res.StructuredContent != nil:
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			r.Structured = b
		}
	}
	return r
}

// add keeps content's binary data in r.Parts and returns its text: the
// text of a text part or of a text resource, a one-line summary of the
// others.
func (r *Result) add(server string, content mcp.Content) string {
	if c, ok := mcp.AsTextContent(content); ok {
		return c.Text
	}
	if c, ok := mcp.AsImageContent(content); ok {
		return r.binary("image", c.MIMEType, "", c.Data)
	}
	if c, ok := mcp.AsAudioContent(content); ok {
		return r.binary("audio", c.MIMEType, "", c.Data)
	}
	if c, ok := content.(mcp.ResourceLink); ok {
		return resourceLinkText(server, c)
	}
	if c, ok := content.(*mcp.ResourceLink); ok {
		return resourceLinkText(server, *c)
	}
	if c, ok := mcp.AsEmbeddedResource(content); ok {
		return r.addResource(c.Resource)
	}
	b, _ := json.Marshal(content)
	var typ struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(b, &typ) == nil && typ.Type != "" {
		return fmt.Sprintf("[%s content]", typ.Type)
	}
	return "[content]"
}

// addResource keeps the contents of a resource (embedded in a result, or
// read with resources/read) and returns its text: the text of a text
// resource, or of a blob whose mime type is text and whose bytes are
// UTF-8; a summary of other blobs, whose bytes go to r.Parts.
func (r *Result) addResource(res mcp.ResourceContents) string {
	if t, ok := mcp.AsTextResourceContents(res); ok {
		return fmt.Sprintf("[resource %s]\n%s", t.URI, t.Text)
	}
	if b, ok := mcp.AsBlobResourceContents(res); ok {
		if IsTextMIME(b.MIMEType) {
			if data, err := decodeBase64(b.Blob); err == nil && utf8.Valid(data) {
				return fmt.Sprintf("[resource %s]\n%s", b.URI, data)
			}
		}
		return r.binary("resource", b.MIMEType, b.URI, b.Blob)
	}
	return "[resource]"
}

// binary decodes the base64 data of a binary part into r.Parts and returns
// the part's summary, like "[image image/png, 1234 bytes]".
func (r *Result) binary(kind, mimeType, uri, data string) string {
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	name := kind
	if uri != "" {
		name += " " + uri
	}
	raw, err := decodeBase64(data)
	if err != nil {
		return fmt.Sprintf("[%s %s: the data is not valid base64]", name, mimeType)
	}
	r.Parts = append(r.Parts, Part{Kind: kind, MIMEType: mimeType, URI: uri, Data: raw})
	return fmt.Sprintf("[%s %s, %d bytes]", name, mimeType, len(raw))
}

// decodeBase64 decodes MCP's base64 (standard alphabet), with or without
// padding, ignoring line breaks.
func decodeBase64(s string) ([]byte, error) {
	s = strings.NewReplacer("\n", "", "\r", "").Replace(strings.TrimSpace(s))
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// IsTextMIME reports whether content of the mime type is text a model can
// read: text/*, JSON, XML, YAML, JavaScript and their +json/+xml kin.
func IsTextMIME(mimeType string) bool {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		return false
	}
	if strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") {
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/yaml", "application/x-yaml", "application/toml",
		"application/javascript", "application/ecmascript", "application/x-sh", "application/sql", "application/graphql":
		return true
	}
	return false
}

// resourceLinkText lists a resource link for the model, with how to read
// it.
func resourceLinkText(server string, l mcp.ResourceLink) string {
	s := "[resource link " + l.URI
	if l.Name != "" && l.Name != l.URI {
		s += " (" + l.Name + ")"
	}
	if l.MIMEType != "" {
		s += " " + l.MIMEType
	}
	if l.Description != "" {
		s += ": " + l.Description
	}
	return s + fmt.Sprintf("; read it with read_resource(server=%q, uri=%q)]", server, l.URI)
}
