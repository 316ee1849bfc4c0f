package api_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// stepsModel calls server-everything's trigger-long-running-operation with
// as many steps as the user's message says ("steps 3"), then answers.
func stepsModel(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
	last := req.Messages[len(req.Messages)-1]
	if last.Role == openai.ChatMessageRoleTool {
		return llmtest.Reply{Text: "Done."}
	}
	n := regexp.MustCompile(`steps (\d+)`).FindStringSubmatch(last.Content)
	if n == nil {
		return llmtest.Reply{Text: "no steps in " + strconv.Quote(last.Content)}
	}
	steps, _ := strconv.Atoi(n[1])
	return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "everything__trigger-long-running-operation",
		Arguments: fmt.Sprintf(`{"duration":%.2f,"steps":%d}`, 0.15*float64(steps), steps)}}}
}

// TestToolProgressReachesTheStreams: an MCP server's progress reports of
// a call reach the stream of the user whose call it is, in order, between
// the call's start and its end: as ChatKit progress_update events (valid
// by chatkit-python's schema) and as the call's data-tool-call part of
// the UI message stream. Alice (ChatKit, 3 steps) and bob (AI SDK, 4
// steps) call the one shared server at once; neither sees the other's.
func TestToolProgressReachesTheStreams(t *testing.T) {
	st := store.NewMemory()
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(everythingServer(t))}}, stepsModel,
		nil, nil, nil, api.Deps{Admin: st})
	var (
		wg  sync.WaitGroup
		evs ckEvents
		ps  parts
	)
	k := newChatKit(t, svc, "alice")
	wg.Go(func() { evs = k.stream(ckCreate("steps 3")) })
	wg.Go(func() {
		ps = streamParts(t, svc.url+"/api/bob/chat", token(t, "bob"),
			`{"messages":[{"id":"m1","role":"user","parts":[{"type":"text","text":"steps 4"}]}]}`)
	})
	wg.Wait()

	// ChatKit: progress_update after the task was added, before it was
	// updated as complete.
	var shape, texts []string
	for _, ev := range evs {
		switch ev["type"] {
		case "progress_update":
			shape = append(shape, "progress")
			texts = append(texts, ev["text"].(string))
		case "thread.item.updated":
			shape = append(shape, ev["update"].(map[string]any)["type"].(string))
		}
	}
	shape = slices.DeleteFunc(shape, func(s string) bool {
		return !slices.Contains([]string{"progress", "workflow.task.added", "workflow.task.updated"}, s)
	})
	if diff := cmp.Diff([]string{"workflow.task.added", "progress", "progress", "progress", "workflow.task.updated"}, shape); diff != "" {
		t.Errorf("alice's ChatKit events (-want +got):\n%s", diff)
	}
	want := []string{"everything · trigger-long-running-operation (1/3)", "everything · trigger-long-running-operation (2/3)",
		"everything · trigger-long-running-operation (3/3)"}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Errorf("alice's progress_update texts (-want +got):\n%s", diff)
	}

	// UI message stream: the call's data part, running with each report,
	// then its output.
	var got []string
	for _, p := range ps {
		switch p["type"] {
		case "data-tool-call":
			d := p["data"].(map[string]any)
			if pr, ok := d["progress"].(map[string]any); ok {
				got = append(got, fmt.Sprintf("%s %v/%v", d["status"], pr["progress"], pr["total"]))
			} else {
				got = append(got, fmt.Sprint(d["status"]))
			}
		case "tool-output-available":
			got = append(got, "output")
		}
	}
	if diff := cmp.Diff([]string{"running", "running 1/4", "running 2/4", "running 3/4", "running 4/4", "output", "succeeded"}, got); diff != "" {
		t.Errorf("bob's stream (-want +got):\n%s", diff)
	}
}
