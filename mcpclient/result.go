package mcpclient

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// newResult converts mcp-go's result: text parts verbatim, other parts as a
// one-line summary, structured content as sent.
func newResult(res *mcp.CallToolResult) *Result {
	parts := make([]string, 0, len(res.Content))
	for _, content := range res.Content {
		parts = append(parts, contentText(content))
	}
	r := &Result{Text: strings.Join(parts, "\n"), IsError: res.IsError}
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

// contentText renders one content part as text.
func contentText(content mcp.Content) string {
	if c, ok := mcp.AsTextContent(content); ok {
		return c.Text
	}
	if c, ok := mcp.AsImageContent(content); ok {
		return fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, base64Len(c.Data))
	}
	if c, ok := mcp.AsAudioContent(content); ok {
		return fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, base64Len(c.Data))
	}
	if c, ok := content.(mcp.ResourceLink); ok {
		return resourceLinkText(c)
	}
	if c, ok := content.(*mcp.ResourceLink); ok {
		return resourceLinkText(*c)
	}
	if c, ok := mcp.AsEmbeddedResource(content); ok {
		if r, ok := mcp.AsTextResourceContents(c.Resource); ok {
			// The text of a resource is content the model can read.
			return fmt.Sprintf("[resource %s]\n%s", r.URI, r.Text)
		}
		if r, ok := mcp.AsBlobResourceContents(c.Resource); ok {
			return fmt.Sprintf("[resource %s %s, %d bytes]", r.URI, r.MIMEType, base64Len(r.Blob))
		}
		return "[resource]"
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

func resourceLinkText(l mcp.ResourceLink) string {
	s := "[resource link " + l.URI
	if l.Name != "" && l.Name != l.URI {
		s += " (" + l.Name + ")"
	}
	if l.MIMEType != "" {
		s += " " + l.MIMEType
	}
	return s + "]"
}

// base64Len returns the length of the data that the base64 text s encodes.
func base64Len(s string) int {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	return len(s) * 3 / 4
}
