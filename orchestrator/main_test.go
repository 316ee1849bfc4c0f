package orchestrator_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a turn starts (lease renewal, parallel tool calls) ends
// with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of net/http's default transport, used
		// by go-openai and the MCP client, are pooled, not leaked.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
