package mcpclient

import "github.com/mark3labs/mcp-go/mcp"

// clientCapabilities is what Switchboard declares to a server it
// connects to: in the initialize request of the legacy era and in the
// _meta of every request of the modern one. It is the one place that
// decides; today it declares nothing.
func clientCapabilities(cfg Config) mcp.ClientCapabilities {
	_ = cfg
	return mcp.ClientCapabilities{}
}
