package orchestrator

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchboard-dev/switchboard"
)

// Vision tunes how tool images reach a model that sees images.
type Vision struct {
	// Enabled sends the images of tool results to the model, after the
	// results of their step, as a user message with image parts (Chat
	// Completions tool messages carry text only); the history replays
	// those of earlier steps in the window alike. Otherwise the model
	// reads the text placeholder the result has for each.
	Enabled bool
	// MaxImagesPerStep bounds the images sent for one step's results: its
	// first ones of a type and size the model takes, in the order the
	// calls were asked for; 0 means DefaultMaxImagesPerStep.
	MaxImagesPerStep int
	// MaxImageBytes bounds the size of one image sent; larger ones are
	// named, not sent. 0 means DefaultMaxImageBytes.
	MaxImageBytes int
	// MaxRequestBytes bounds the images of one model request, the newest
	// steps' first (an older step's image that no longer fits is left
	// out); 0 means DefaultMaxImageRequestBytes.
	MaxRequestBytes int
}

// Defaults of Vision.
const (
	DefaultMaxImagesPerStep     = 4
	DefaultMaxImageBytes        = 5 << 20
	DefaultMaxImageRequestBytes = 20 << 20
)

// visionTypes are the image types the Chat Completions API takes.
var visionTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// withImages returns msgs with the bytes of the images the model is to
// see filled into the attachments of their tool_result messages (copies:
// msgs is not changed), within the Vision bounds; the images of this
// turn's calls come from memory, earlier ones from the store. Images it
// leaves out keep Data nil: the model reads their placeholder.
func (t *turn) withImages(ctx context.Context, msgs []switchboard.Message) []switchboard.Message {
	v := t.o.opts.Vision
	if !v.Enabled {
		return msgs
	}
	var out []switchboard.Message
	budget := v.MaxRequestBytes
	// Steps newest first: each is a run of tool_result messages.
	for end := len(msgs); end > 0; {
		if msgs[end-1].Type != switchboard.MessageToolResult {
			end--
			continue
		}
		start := end
		for start > 0 && msgs[start-1].Type == switchboard.MessageToolResult {
			start--
		}
		// The step's images are its first MaxImagesPerStep of a type and
		// size the model takes, whatever the budget leaves of them: a
		// step shows the model the same images in every request.
		images := 0
		for i := start; i < end; i++ {
			m := &msgs[i]
			var filled []switchboard.ContentPart
			for j, p := range m.Attachments {
				if p.Kind != switchboard.ContentImage || !visionTypes[p.MIMEType] || p.Size > v.MaxImageBytes ||
					images == v.MaxImagesPerStep {
					continue
				}
				images++
				if p.Size > budget {
					continue
				}
				data := t.imageBytes(ctx, p)
				if data == nil {
					continue
				}
				if filled == nil {
					filled = append([]switchboard.ContentPart(nil), m.Attachments...)
				}
				filled[j].Data = data
				budget -= len(data)
			}
			if filled != nil {
				if out == nil {
					out = append([]switchboard.Message(nil), msgs...)
				}
				out[i].Attachments = filled
			}
		}
		end = start
	}
	if out == nil {
		return msgs
	}
	return out
}

// imageBytes returns the bytes of part p: from a call of this request, or
// read from the store (then kept for the turn's next model calls); nil if
// they cannot be read (retention removed them).
func (t *turn) imageBytes(ctx context.Context, p switchboard.ContentPart) []byte {
	key := fmt.Sprintf("%s/%d", p.ToolCallID, p.Index)
	if data, ok := t.images[key]; ok {
		return data
	}
	for _, c := range t.calls {
		if c.ID == p.ToolCallID && p.Index < len(c.Content) && c.Content[p.Index].Data != nil {
			return c.Content[p.Index].Data
		}
	}
	part, err := t.o.store.GetToolCallContent(ctx, t.caller.UserID, p.ToolCallID, p.Index)
	if err != nil {
		t.o.logger.LogAttrs(ctx, slog.LevelDebug, "a tool image is not sent to the model",
			slog.String("call_id", p.ToolCallID), slog.Int("index", p.Index), slog.String("err", err.Error()))
		part.Data = nil
	}
	if t.images == nil {
		t.images = map[string][]byte{}
	}
	t.images[key] = part.Data
	return part.Data
}
