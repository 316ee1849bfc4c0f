package mcpclient

import "github.com/mark3labs/mcp-go/mcp"

// clientCapabilities is what Switchboard declares to a server it
// connects to: in the initialize request of the legacy era and in the
// _meta of every request of the modern one. It is the one place that
// decides, and it declares only what the client answers (see asks.go):
//   - elicitation, form and url mode: a server's questions go to the
//     person whose call asked them;
//   - sampling unless the server's sampling setting is deny (the default),
//     with tools (the server's own, as far as the user's catalog offers
//     them: see the orchestrator's sampling.go);
//   - roots, with listChanged, only when roots are configured.
func clientCapabilities(cfg Config) mcp.ClientCapabilities {
	caps := mcp.ClientCapabilities{
		Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}},
	}
	if samplingOn(cfg) {
		caps.Sampling = &mcp.SamplingCapability{Tools: &struct{}{}}
	}
	if cfg.Roots != nil {
		caps.Roots = &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: true}
	}
	return caps
}
