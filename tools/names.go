package tools

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxNameLen is OpenAI's limit on a function name.
const maxNameLen = 64

// ExposedName returns the name the model sees for a server's tool:
// server__tool, with every character outside [a-zA-Z0-9_-] replaced by '_',
// and, when longer than 64 characters, cut and suffixed with a short hash of
// the original pair so that distinct long names stay distinct.
func ExposedName(server, tool string) string {
	name := sanitize(server) + "__" + sanitize(tool)
	if len(name) <= maxNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(server + "\x00" + tool))
	suffix := "_" + hex.EncodeToString(sum[:4])
	return name[:maxNameLen-len(suffix)] + suffix
}

func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
