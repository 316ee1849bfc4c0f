package mcpclient

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard"
)

type progressKey struct{}

// WithProgress returns a context whose tool calls (CallTool) report each
// notifications/progress their server sends for them to fn. fn runs on
// the connection's read loop: it must return at once, neither blocking
// nor making a request.
func WithProgress(ctx context.Context, fn func(switchboard.ToolProgress)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

func progressReporter(ctx context.Context) func(switchboard.ToolProgress) {
	fn, _ := ctx.Value(progressKey{}).(func(switchboard.ToolProgress))
	return fn
}

// maxProgressMessage bounds the message of a progress notification that
// is passed on: it is shown to people, not stored.
const maxProgressMessage = 512

// progressOf reads a notifications/progress's params. Fields of the wrong
// type read as absent.
func progressOf(params map[string]any) switchboard.ToolProgress {
	var p switchboard.ToolProgress
	p.Progress, _ = params["progress"].(float64)
	p.Total, _ = params["total"].(float64)
	msg, _ := params["message"].(string)
	if len(msg) > maxProgressMessage {
		cut := maxProgressMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	p.Message = strings.ToValidUTF8(msg, "\uFFFD")
	return p
}
