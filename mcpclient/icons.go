package mcpclient

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/switchboard-dev/switchboard"
)

// Bounds on the icons kept of a server or a tool.
const (
	// maxIcons is how many icons of one server or tool are kept.
	maxIcons = 8
	// maxIconURL bounds an https: icon's URL.
	maxIconURL = 2048
	// maxIconData bounds a data: icon's URL: a small image, not a payload.
	maxIconData = 64 << 10
)

// dataIcon matches the data: URLs of icons a page may show: base64 PNG,
// JPEG, GIF or WebP. SVG is refused, as every other type: an SVG document
// can carry script.
var dataIcon = regexp.MustCompile(`^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+=*$`)

// iconSize matches an entry of an icon's sizes.
var iconSize = regexp.MustCompile(`^([0-9]{1,5}x[0-9]{1,5}|any)$`)

// decodeIcons reads the icons of a tool entry, as the server sent them
// (nil when absent or not an array); see safeIcons.
func decodeIcons(raw json.RawMessage) []switchboard.Icon {
	var entries []json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	icons := make([]mcp.Icon, 0, len(entries))
	for _, e := range entries {
		var icon mcp.Icon
		if json.Unmarshal(e, &icon) == nil {
			icons = append(icons, icon)
		}
	}
	return safeIcons(icons)
}

// safeIcons keeps the icons a page can show without risk: an https: URL
// (not one that says it is SVG), or a data: URL of a PNG, JPEG, GIF or WebP
// image of at most 64 KiB; at most 8 of them. Icons are untrusted input
// (MCP says so): whatever shows one must still check its Src.
func safeIcons(icons []mcp.Icon) []switchboard.Icon {
	var out []switchboard.Icon
	for _, icon := range icons {
		if len(out) == maxIcons {
			break
		}
		if !safeIconSrc(icon.Src) || strings.Contains(strings.ToLower(icon.MIMEType), "svg") {
			continue
		}
		kept := switchboard.Icon{Src: icon.Src}
		if u, err := url.Parse(icon.Src); err == nil && u.Scheme == "https" {
			kept.Src = u.String()
		}
		if len(icon.MIMEType) <= 100 && strings.HasPrefix(icon.MIMEType, "image/") {
			kept.MIMEType = icon.MIMEType
		}
		for _, s := range icon.Sizes {
			if len(kept.Sizes) < maxIcons && iconSize.MatchString(s) {
				kept.Sizes = append(kept.Sizes, s)
			}
		}
		if icon.Theme == mcp.IconThemeLight || icon.Theme == mcp.IconThemeDark {
			kept.Theme = string(icon.Theme)
		}
		out = append(out, kept)
	}
	return out
}

// safeIconSrc reports whether src is an icon URL a page may load: https:
// with a host, or a data: URL that dataIcon accepts.
func safeIconSrc(src string) bool {
	if strings.HasPrefix(src, "data:") {
		return len(src) <= maxIconData && dataIcon.MatchString(src)
	}
	if len(src) > maxIconURL {
		return false
	}
	u, err := url.Parse(src)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return false
	}
	return !strings.HasSuffix(strings.ToLower(u.Path), ".svg")
}
