package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
)

// sentImages returns the images of a model request's user messages, as
// their bytes' lengths and first bytes ("3x1": 3 bytes of 1).
func sentImages(t *testing.T, req openai.ChatCompletionRequest) []string {
	t.Helper()
	var out []string
	for _, m := range req.Messages {
		for _, p := range m.MultiContent {
			if p.Type != openai.ChatMessagePartTypeImageURL {
				continue
			}
			mediaType, data, ok := strings.Cut(strings.TrimPrefix(p.ImageURL.URL, "data:"), ";base64,")
			b, err := base64.StdEncoding.DecodeString(data)
			if !ok || err != nil || len(b) == 0 || !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) {
				t.Fatalf("an image part that is not one of the lab's: %.60s", p.ImageURL.URL)
			}
			out = append(out, mediaType+":"+string(rune('0'+len(b)/10))+"x"+string(rune('0'+b[0])))
		}
	}
	return out
}

// TestVisionBounds: the images a step sends are its first ones of the types
// the model takes (not SVG), at most MaxImagesPerStep and none over
// MaxImageBytes; a request carries at most MaxRequestBytes of them, the
// newest step's first; without Vision none; on both stores (the earlier
// turn's images are read back from the store).
func TestVisionBounds(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			// sizes 10, 20, 30, 10 bytes (tens as digits below).
			shoot := calls(call("i1", "lab__images", `{"sizes":[10,20,30,10]}`))
			r := newRig(t, open(t), llmtest.Sequence(
				shoot, llmtest.Reply{Text: "seen"},
				calls(call("i2", "lab__images", `{"sizes":[20]}`)), llmtest.Reply{Text: "seen again"},
			), &orchestrator.Options{Vision: orchestrator.Vision{Enabled: true, MaxImagesPerStep: 2, MaxImageBytes: 25, MaxRequestBytes: 40}})
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "look"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// 30 bytes is over MaxImageBytes, the SVG is not a type the
			// model takes, the fourth PNG is past the two of the step.
			if got := sentImages(t, r.model.Requests()[1]); strings.Join(got, " ") != "image/png:1x0 image/png:2x1" {
				t.Errorf("first step: sent %v, want the 10- and 20-byte PNGs", got)
			}
			if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", ConversationID: res.Turn.ConversationID, Content: "again"}, nil); err != nil {
				t.Fatal(err)
			}
			// 40 bytes per request: this step's 20 bytes and, of the
			// earlier step (read back from the store), the 10-byte one; the
			// 20-byte one no longer fits.
			if got := sentImages(t, r.model.Requests()[3]); strings.Join(got, " ") != "image/png:1x0 image/png:2x0" {
				t.Errorf("second turn: sent %v, want the first turn's 10-byte PNG and this turn's 20-byte one", got)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		r := newRig(t, stores()["memory"](t), llmtest.Sequence(calls(call("i1", "lab__images", `{"sizes":[10]}`)), llmtest.Reply{Text: "seen"}), nil)
		if _, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "look"}, nil); err != nil {
			t.Fatal(err)
		}
		req := r.model.Requests()[1]
		if got := sentImages(t, req); len(got) != 0 {
			t.Errorf("without vision: sent %v", got)
		}
		if tm := toolMessages(req); len(tm) != 1 || !strings.Contains(tm[0], "[image image/png, 10 bytes]") {
			t.Errorf("without vision the model reads %v; want the placeholder", tm)
		}
	})
}
