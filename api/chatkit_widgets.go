package api

import (
	"encoding/json"
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// The widgets the ChatKit adapter sends where a turn waits for the user:
// a call awaiting approval, a server the user must connect, and a server's
// question (chatkit_inputs.go). Each is a Card (chatkit/widgets.py) whose
// buttons post an action.

// widget is a widget component as JSON.
type widget map[string]any

func widgetItem(id, threadID, created string, w widget) ckWidgetItem {
	return ckWidgetItem{ID: id, ThreadID: threadID, CreatedAt: created, Type: "widget", Widget: w}
}

func card(children ...widget) widget { return widget{"type": "Card", "children": children} }

func text(value string) widget { return widget{"type": "Text", "value": value} }

func caption(value string) widget { return widget{"type": "Caption", "value": value} }

func title(value string) widget { return widget{"type": "Title", "value": value, "size": "sm"} }

func markdown(value string) widget { return widget{"type": "Markdown", "value": value} }

func row(children ...widget) widget { return widget{"type": "Row", "gap": 2, "children": children} }

func badge(label, color string) widget {
	return widget{"type": "Badge", "label": label, "color": color}
}

// button is a button whose click posts action: to the server
// (threads.custom_action), or, with handler "client", to the page's
// widgets.onAction.
func button(label, style, color string, action widget) widget {
	return widget{"type": "Button", "label": label, "style": style, "color": color, "onClickAction": action}
}

// codeBlock is value as a fenced block of Markdown, whatever backticks it
// holds.
func codeBlock(lang, value string) string {
	fence := "```"
	for strings.Contains(value, fence) {
		fence += "`"
	}
	return fence + lang + "\n" + value + "\n" + fence
}

// approvalCard shows a call that awaits approval: its server, its tool and
// its arguments, with Approve and Deny buttons whose actions post
// threads.custom_action with the call's ledger id. Once decided (decided
// not empty: what came of it), it shows the outcome instead of the
// buttons.
func approvalCard(c switchboard.ToolCall, decided string) widget {
	args := "{}"
	var pretty strings.Builder
	if len(c.Arguments) > 0 {
		var v any
		if json.Unmarshal(c.Arguments, &v) == nil {
			b, _ := json.MarshalIndent(v, "", "  ")
			pretty.Write(b)
			args = pretty.String()
		}
	}
	children := []widget{
		title("Run this tool?"),
		text("Server: " + c.Server),
		text("Tool: " + c.Tool),
		markdown(codeBlock("json", args)),
	}
	if decided == "" {
		payload := map[string]any{"call_id": c.ID}
		children = append(children, row(
			button("Approve", "primary", "primary", widget{"type": ckActionApprove, "payload": payload}),
			button("Deny", "secondary", "danger", widget{"type": ckActionDeny, "payload": payload}),
		))
	} else {
		color := "secondary"
		switch c.Status {
		case switchboard.CallSucceeded:
			color = "success"
		case switchboard.CallRunning:
			color = "info"
		case switchboard.CallDenied, switchboard.CallFailed, switchboard.CallTimedOut, switchboard.CallCancelled:
			color = "danger"
		}
		children = append(children, row(badge(decided, color)))
		if c.Status != switchboard.CallRunning {
			if t := task(c); t.Content != "" {
				children = append(children, caption(clipText(t.Content, 400)))
			}
		}
	}
	return card(children...)
}

// decisionLabel says what came of a decided call.
func decisionLabel(c switchboard.ToolCall) string {
	switch c.Status {
	case switchboard.CallRunning:
		return "Approved · running"
	case switchboard.CallSucceeded:
		return "Approved · done"
	case switchboard.CallDenied:
		return "Denied"
	}
	return "Approved · " + strings.ReplaceAll(string(c.Status), "_", " ")
}

// connectionCard tells the user to connect a server that acts as them
// before its calls run: a button that opens its sign-in page (an action the
// page handles, ckActionConnect with the URL), and the link itself for a
// page that handles no actions. A server that takes secrets has no
// sign-in page: the card says where to give them.
func connectionCard(need connectionRequiredDTO, userID string) widget {
	children := []widget{
		title("Connect " + need.Server),
		text(need.Server + " acts as you: connect it, then ask again."),
	}
	if need.AuthorizationURL != "" {
		children = append(children,
			row(button("Connect "+need.Server, "primary", "primary", widget{"type": ckActionConnect, "handler": "client",
				"payload": map[string]any{"server": need.Server, "url": need.AuthorizationURL}})),
			markdown("Or open [the sign-in page](<"+need.AuthorizationURL+">)."))
	} else {
		children = append(children, caption("Give its secrets with POST /api/"+userID+"/connections/"+need.Server+"."))
	}
	return card(children...)
}

// clipText cuts s to n bytes at most, at a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n] + "…"
}
