//go:build unix

package mcpclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// The helper's modes for MCP tasks (2025-11-25):
//
//	mcptasks        a server that runs its tools as tasks, scripted per tool
//	                (see taskHelper.call), and declares icons
//	mcptasks-nocap  the same tools, and no tasks capability
//
// It writes to stderr what a test must see arrive: each task created (with
// the task and progress token it was asked for), each tasks/get and
// tasks/cancel.

// taskHelperIcons are the server's icons: two a page may show, and three
// it may not (SVG, a script URL, plain http).
const taskHelperIcons = `[` +
	`{"src":"https://example.com/icon.png","mimeType":"image/png","sizes":["48x48","huge"],"theme":"dark"},` +
	`{"src":"data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=","mimeType":"image/svg+xml"},` +
	`{"src":"javascript:alert(1)"},` +
	`{"src":"http://example.com/icon.png"},` +
	`{"src":"data:image/png;base64,iVBORw0KGgo="}]`

const taskHelperTools = `{"tools":[` +
	`{"name":"research","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"},"icons":[{"src":"data:image/webp;base64,UklGRg=="},{"src":"https://example.com/a.svg"}]},` +
	`{"name":"maybe","inputSchema":{"type":"object"},"execution":{"taskSupport":"optional"}},` +
	`{"name":"stuck","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}},` +
	`{"name":"broken","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}},` +
	`{"name":"pushy","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}},` +
	`{"name":"asks","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}},` +
	`{"name":"late","inputSchema":{"type":"object"},"execution":{"taskSupport":"required"}}` +
	`]}`

// helperTask is one task of the helper.
type helperTask struct {
	id, tool string
	token    string
	steps    int // research: polls before it completes
	polls    int
	status   string
	message  string
	pollMS   int
	progress bool // report progress on each poll, with the call's token
}

type taskHelper struct {
	*helperServer
	mu    sync.Mutex
	tasks map[string]*helperTask
	n     int
	caps  bool
	// methods are the methods of the requests received, by id: what a
	// notifications/cancelled cancels.
	methods map[string]string
}

func runTaskHelper(mode string) {
	h := &taskHelper{helperServer: &helperServer{}, tasks: map[string]*helperTask{}, caps: mode == "mcptasks",
		methods: map[string]string{}}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		h.handle(in.Bytes())
	}
	fmt.Fprintln(os.Stderr, "helper: stdin ended")
}

func (h *taskHelper) handle(line []byte) {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			ProtocolVersion string          `json:"protocolVersion"`
			Name            string          `json:"name"`
			Arguments       json.RawMessage `json:"arguments"`
			Task            json.RawMessage `json:"task"`
			TaskID          string          `json:"taskId"`
			RequestID       json.RawMessage `json:"requestId"`
			Meta            struct {
				ProgressToken any `json:"progressToken"`
			} `json:"_meta"`
		} `json:"params"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		fmt.Fprintf(os.Stderr, "helper: bad line %q\n", line)
		return
	}
	p := msg.Params
	if len(msg.ID) > 0 {
		h.mu.Lock()
		h.methods[string(msg.ID)] = msg.Method
		h.mu.Unlock()
	}
	switch msg.Method {
	case "initialize":
		caps := `{"tools":{}}`
		if h.caps {
			caps = `{"tools":{},"tasks":{"cancel":{},"requests":{"tools":{"call":{}}}}}`
		}
		h.reply(msg.ID, fmt.Sprintf(`{"protocolVersion":%q,"capabilities":%s,"serverInfo":{"name":"task-helper","version":"1.0","icons":%s}}`,
			p.ProtocolVersion, caps, taskHelperIcons))
	case "notifications/initialized":
	case "notifications/cancelled":
		h.mu.Lock()
		method := h.methods[string(p.RequestID)]
		h.mu.Unlock()
		fmt.Fprintf(os.Stderr, "helper: notifications/cancelled of %s\n", method)
	case "tools/list":
		h.reply(msg.ID, taskHelperTools)
	case "tools/call":
		token := fmt.Sprint(p.Meta.ProgressToken)
		if p.Name == "maybe" {
			if len(p.Task) > 0 {
				h.fail(msg.ID, -32600, "maybe was asked to run as a task")
				return
			}
			h.reply(msg.ID, `{"content":[{"type":"text","text":"plain"}]}`)
			return
		}
		if len(p.Task) == 0 {
			h.fail(msg.ID, -32601, p.Name+" can only be called as a task")
			return
		}
		var args struct {
			Steps    int  `json:"steps"`
			PollMS   int  `json:"poll_ms"`
			Progress bool `json:"progress"`
		}
		json.Unmarshal(p.Arguments, &args)
		if p.Name == "late" {
			// The task is created 300ms after the call arrives.
			fmt.Fprintln(os.Stderr, "helper: late call arrived")
			go func() {
				time.Sleep(300 * time.Millisecond)
				h.create(msg.ID, p.Name, token, p.Task, 0, 0, false)
			}()
			return
		}
		h.create(msg.ID, p.Name, token, p.Task, args.Steps, args.PollMS, args.Progress)
	case "tasks/get":
		h.mu.Lock()
		t, ok := h.tasks[p.TaskID]
		if !ok {
			h.mu.Unlock()
			h.fail(msg.ID, -32602, "no task "+p.TaskID)
			return
		}
		t.polls++
		switch t.tool {
		case "research":
			if t.polls < t.steps {
				t.message = fmt.Sprintf("step %d", t.polls)
			} else {
				t.status, t.message = "completed", "done"
			}
		case "stuck":
			t.message = "waiting"
		case "broken":
			t.status, t.message = "failed", "disk full"
		case "asks":
			t.status, t.message = "input_required", "which one?"
		}
		res := h.taskJSON(t)
		polls, token, progress := t.polls, t.token, t.progress
		h.mu.Unlock()
		fmt.Fprintf(os.Stderr, "helper: tasks/get %s %d\n", p.TaskID, polls)
		if progress {
			h.write(fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%q,"progress":%d}}`, token, polls))
		}
		h.reply(msg.ID, res)
	case "tasks/result":
		h.mu.Lock()
		t, ok := h.tasks[p.TaskID]
		h.mu.Unlock()
		if !ok {
			h.fail(msg.ID, -32602, "no task "+p.TaskID)
			return
		}
		fmt.Fprintf(os.Stderr, "helper: tasks/result %s\n", p.TaskID)
		meta := `"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"` + t.id + `"}}`
		switch t.tool {
		case "broken":
			h.fail(msg.ID, -32603, "the disk is full")
		case "asks":
			// Nothing to ask a client that declared no elicitation: the
			// task ends with its default.
			h.mu.Lock()
			t.status = "completed"
			h.mu.Unlock()
			h.reply(msg.ID, `{"content":[{"type":"text","text":"answered by default"}],`+meta+`}`)
		default:
			h.reply(msg.ID, `{"content":[{"type":"text","text":"`+t.tool+` done after `+fmt.Sprint(t.polls)+` polls"}],`+meta+`}`)
		}
	case "tasks/cancel":
		h.mu.Lock()
		t, ok := h.tasks[p.TaskID]
		if ok && (t.status == "completed" || t.status == "failed" || t.status == "cancelled") {
			ok = false
		}
		var res string
		if ok {
			t.status, t.message = "cancelled", "cancelled by request"
			res = h.taskJSON(t)
		}
		h.mu.Unlock()
		fmt.Fprintf(os.Stderr, "helper: tasks/cancel %s\n", p.TaskID)
		if !ok {
			h.fail(msg.ID, -32602, "cannot cancel "+p.TaskID)
			return
		}
		h.reply(msg.ID, res)
	default:
		if msg.ID != nil {
			h.fail(msg.ID, -32601, "method not found: "+msg.Method)
		}
	}
}

// create creates a task of tool and answers the call id with it.
func (h *taskHelper) create(id json.RawMessage, tool, token string, task json.RawMessage, steps, pollMS int, progress bool) {
	h.mu.Lock()
	h.n++
	t := &helperTask{id: fmt.Sprintf("task-%d", h.n), tool: tool, token: token, steps: steps,
		status: "working", message: "started", pollMS: max(pollMS, 10), progress: progress}
	if tool == "pushy" {
		t.pollMS = 3600_000 // an hour: only its notification says it ended
	}
	h.tasks[t.id] = t
	created := h.taskJSON(t)
	h.mu.Unlock()
	fmt.Fprintf(os.Stderr, "helper: task created %s for %s task=%s token=%s\n", t.id, tool, task, token)
	h.reply(id, `{"task":`+created+`}`)
	if tool == "pushy" {
		go func() {
			time.Sleep(200 * time.Millisecond) // after the call has the task
			h.mu.Lock()
			t.status, t.message = "completed", "pushed"
			n := h.taskJSON(t)
			h.mu.Unlock()
			h.write(`{"jsonrpc":"2.0","method":"notifications/tasks/status","params":` + n + `}`)
		}()
	}
}

// taskJSON renders t as MCP's Task. The caller holds h.mu.
func (h *taskHelper) taskJSON(t *helperTask) string {
	return fmt.Sprintf(`{"taskId":%q,"status":%q,"statusMessage":%q,"createdAt":"2025-11-25T10:30:00Z","lastUpdatedAt":"2025-11-25T10:30:00Z","ttl":60000,"pollInterval":%d}`,
		t.id, t.status, t.message, t.pollMS)
}

// hasTaskLine reports whether one of lines contains every one of parts.
func hasTaskLine(lines []string, parts ...string) bool {
	for _, l := range lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
