package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// What a ChatKit thread shows of a conversation: its items are the
// transcript's typed messages. A user's message is a user_message; the
// model's text an assistant_message with one output_text part; the calls a
// step asked for one workflow item of custom tasks (from the ledger: server,
// tool, status, result); a call awaiting approval a widget item, a Card
// with Approve and Deny buttons; a server's question still waiting for the
// user a widget item after the workflow of the call that asked (a form, or
// a link). Tool results are in their calls' tasks.
//
// Item ids are ours and name what the stream knew when it sent them, so
// that a thread read later has the ids the stream used: a turn's user
// message is user-{turn}, the text of its step s msg-{turn}-{s} (the
// answer is the text of the step after its last step of tools), the calls
// of step s wf-{turn}-{s}, a call awaiting approval approval-{call}, a
// server's question input-{input}.

// Defaults and bounds of ChatKit's pages.
const (
	chatkitPageSize = 20  // chatkit-python's DEFAULT_PAGE_SIZE
	chatkitMaxPage  = 100 // a larger limit is cut to this
	// maxThreads is how many of a user's conversations threads.list
	// pages through: the most recently updated (the store's largest
	// page).
	maxThreads = 500
)

func userItemID(turnID string) string { return "user-" + turnID }

func textItemID(turnID string, step int) string { return "msg-" + turnID + "-" + strconv.Itoa(step) }

func workflowItemID(turnID string, step int) string { return "wf-" + turnID + "-" + strconv.Itoa(step) }

func approvalItemID(callID string) string { return "approval-" + callID }

// chatkitThreadDTO is a Thread (chatkit/types.py).
type chatkitThreadDTO struct {
	ID        string           `json:"id"`
	Title     string           `json:"title,omitempty"`
	CreatedAt string           `json:"created_at"`
	Status    chatkitStatus    `json:"status"`
	Metadata  map[string]any   `json:"metadata"`
	Items     chatkitPage[any] `json:"items"`
}

type chatkitStatus struct {
	Type string `json:"type"`
}

// chatkitPage is a Page: a slice of a keyset-paged list, with the cursor
// of the next page.
type chatkitPage[T any] struct {
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	After   string `json:"after,omitempty"`
}

// toThread is a conversation as a thread, without its items. Every thread
// is active: a conversation takes messages whatever its status, which is
// in the metadata.
func toThread(c switchboard.Conversation) chatkitThreadDTO {
	return chatkitThreadDTO{ID: c.ID, Title: c.Title, CreatedAt: timestamp(c.CreatedAt), Status: chatkitStatus{Type: "active"},
		Metadata: map[string]any{"status": c.Status}, Items: chatkitPage[any]{Data: []any{}}}
}

// Thread items (chatkit/types.py's ThreadItem variants).
type (
	ckUserMessage struct {
		ID               string          `json:"id"`
		ThreadID         string          `json:"thread_id"`
		CreatedAt        string          `json:"created_at"`
		Type             string          `json:"type"`
		Content          []ckInputText   `json:"content"`
		Attachments      []any           `json:"attachments"`
		InferenceOptions json.RawMessage `json:"inference_options"`
	}
	ckInputText struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	ckAssistantMessage struct {
		ID        string         `json:"id"`
		ThreadID  string         `json:"thread_id"`
		CreatedAt string         `json:"created_at"`
		Type      string         `json:"type"`
		Content   []ckOutputText `json:"content"`
	}
	ckOutputText struct {
		Annotations []any  `json:"annotations"`
		Text        string `json:"text"`
		Type        string `json:"type"`
	}
	ckWorkflowItem struct {
		ID        string     `json:"id"`
		ThreadID  string     `json:"thread_id"`
		CreatedAt string     `json:"created_at"`
		Type      string     `json:"type"`
		Workflow  ckWorkflow `json:"workflow"`
	}
	ckWorkflow struct {
		Type     string     `json:"type"`
		Tasks    []ckTask   `json:"tasks"`
		Summary  *ckSummary `json:"summary,omitempty"`
		Expanded bool       `json:"expanded"`
	}
	ckTask struct {
		StatusIndicator string `json:"status_indicator"`
		Type            string `json:"type"`
		Title           string `json:"title"`
		Icon            string `json:"icon"`
		Content         string `json:"content"`
	}
	ckSummary struct {
		Title string `json:"title"`
		Icon  string `json:"icon"`
	}
	ckWidgetItem struct {
		ID        string `json:"id"`
		ThreadID  string `json:"thread_id"`
		CreatedAt string `json:"created_at"`
		Type      string `json:"type"`
		Widget    widget `json:"widget"`
		CopyText  string `json:"copy_text,omitempty"`
	}
)

func userMessageItem(id, threadID, created, text string) ckUserMessage {
	return ckUserMessage{ID: id, ThreadID: threadID, CreatedAt: created, Type: "user_message",
		Content: []ckInputText{{Type: "input_text", Text: text}}, Attachments: []any{}, InferenceOptions: json.RawMessage("{}")}
}

func outputText(text string) ckOutputText {
	return ckOutputText{Annotations: []any{}, Text: text, Type: "output_text"}
}

func assistantMessageItem(id, threadID, created string, content []ckOutputText) ckAssistantMessage {
	return ckAssistantMessage{ID: id, ThreadID: threadID, CreatedAt: created, Type: "assistant_message", Content: content}
}

func workflowItem(id, threadID, created string, wf ckWorkflow) ckWorkflowItem {
	return ckWorkflowItem{ID: id, ThreadID: threadID, CreatedAt: created, Type: "workflow", Workflow: wf}
}

// task is a call as a workflow task: loading with its arguments while it
// runs, complete with its result (or what went wrong) once it ended.
func task(c switchboard.ToolCall) ckTask {
	t := ckTask{StatusIndicator: "complete", Type: "custom", Title: c.Server + " · " + c.Tool, Icon: "bolt"}
	switch c.Status {
	case switchboard.CallRunning, switchboard.CallAwaitingApproval:
		t.StatusIndicator = "loading"
		t.Content = compactArguments(c.Arguments)
	case switchboard.CallSucceeded:
		p := previewOf(c)
		t.Content = p.Result
		if t.Content == "" {
			t.Content = string(p.Structured)
		}
	default:
		t.Content = string(c.Status) + ": " + callError(c)
	}
	return t
}

// callError is what went wrong with a call, in words.
func callError(c switchboard.ToolCall) string {
	if c.Error != "" {
		return c.Error
	}
	return strings.TrimPrefix(c.Result, "error: ")
}

func compactArguments(args json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, args) != nil {
		return "{}"
	}
	return b.String()
}

// summary sums up a workflow's tasks.
func summary(calls []switchboard.ToolCall) *ckSummary {
	failed := 0
	for _, c := range calls {
		if c.Status != switchboard.CallSucceeded {
			failed++
		}
	}
	running := 0
	for _, c := range calls {
		if c.Status == switchboard.CallRunning {
			running++ // one that waits for the user's answer to its server
		}
	}
	failed -= running
	title := fmt.Sprintf("Used %d tools", len(calls))
	if len(calls) == 1 {
		title = "Used 1 tool"
	}
	if failed > 0 {
		title += fmt.Sprintf(", %d did not succeed", failed)
	}
	if running > 0 {
		title += fmt.Sprintf(", %d still running", running)
	}
	return &ckSummary{Title: title, Icon: "bolt"}
}

// threadItem is an item of a thread with what the adapter needs to know
// of it: the message it shows (feedback rates it) and, for a user
// message, its text (retry_after_item answers it again).
type threadItem struct {
	id        string
	value     any
	messageID string
	user      *string
	// turn is the turn the item is of; calls the ledger ids of the calls
	// a workflow shows.
	turn  string
	calls []string
}

// threadItems reads a conversation's items, in the transcript's order:
// its messages (Store) and its calls (the ledger, for each call's server,
// tool and outcome).
func (h *Handler) threadItems(c *gin.Context, conv switchboard.Conversation) ([]threadItem, error) {
	items, _, err := h.threadItemsAndCalls(c, conv)
	return items, err
}

// threadItemsAndCalls reads a conversation's items and the calls of its
// ledger they were made from.
func (h *Handler) threadItemsAndCalls(c *gin.Context, conv switchboard.Conversation) ([]threadItem, []switchboard.ToolCall, error) {
	if h.Admin == nil {
		return nil, nil, switchboard.Errorf(switchboard.ErrUnavailable, "not_available", "threads' items need the tool-call log, which is not available on this server")
	}
	msgs, err := h.Store.ListMessages(c.Request.Context(), conv.UserID, conv.ID)
	if err != nil {
		return nil, nil, err
	}
	calls, err := h.conversationCalls(c, conv.ID)
	if err != nil {
		return nil, nil, err
	}
	var inputs []switchboard.Input
	if il, ok := h.Store.(inputLister); ok {
		if inputs, err = il.ListInputs(c.Request.Context(), conv.UserID, conv.ID, true); err != nil {
			return nil, nil, err
		}
	}
	return buildItems(conv.ID, msgs, calls, inputs), calls, nil
}

// buildItems makes the items of a transcript whose calls are calls and
// whose pending questions of servers are inputs. A pending input is a
// widget after the workflow of the call that asked (or, for a call of an
// agent used as a tool, of the call it runs under); one whose call no
// message shows comes last.
func buildItems(threadID string, msgs []switchboard.Message, calls []switchboard.ToolCall, inputs []switchboard.Input) []threadItem {
	type callKey struct{ turn, call string }
	byCall := make(map[callKey]switchboard.ToolCall, len(calls))
	lastStep := map[string]int{} // a turn's last step that asked for tools
	for _, c := range calls {
		byCall[callKey{c.TurnID, c.CallID}] = c
		lastStep[c.TurnID] = max(lastStep[c.TurnID], c.Step)
	}
	parent := make(map[string]string, len(calls))
	for _, c := range calls {
		if c.ParentID != "" {
			parent[c.ID] = c.ParentID
		}
	}
	asking := map[string][]switchboard.Input{} // by the call of the transcript that holds the asking call
	holders := map[string]bool{}
	for _, m := range msgs {
		for _, rc := range m.ToolCalls {
			if c, ok := byCall[callKey{m.TurnID, rc.ID}]; ok {
				holders[c.ID] = true
			}
		}
	}
	var unplaced []switchboard.Input
	for _, in := range inputs {
		holder := in.ToolCallID
		for i := 0; i < 8 && !holders[holder] && parent[holder] != ""; i++ {
			holder = parent[holder]
		}
		if holders[holder] {
			asking[holder] = append(asking[holder], in)
		} else {
			unplaced = append(unplaced, in)
		}
	}
	inputItem := func(in switchboard.Input, messageID string) threadItem {
		id := inputItemID(in.ID)
		return threadItem{id: id, value: widgetItem(id, threadID, timestamp(in.CreatedAt), inputCard(in)), messageID: messageID, turn: in.TurnID}
	}
	var items []threadItem
	seen := map[string]bool{}
	add := func(it threadItem) {
		if seen[it.id] { // not expected; keep ids unique all the same
			it.id += "-" + it.messageID
		}
		seen[it.id] = true
		items = append(items, it)
	}
	for _, m := range msgs {
		created := timestamp(m.Timestamp)
		switch {
		case m.Role == switchboard.RoleUser:
			id := "user-" + m.ID
			if m.TurnID != "" {
				id = userItemID(m.TurnID)
			}
			text := m.Content
			add(threadItem{id: id, value: userMessageItem(id, threadID, created, m.Content), messageID: m.ID, user: &text, turn: m.TurnID})
		case m.Role == switchboard.RoleAssistant && m.Type == switchboard.MessageToolCall:
			step := 0
			var ran, waiting []switchboard.ToolCall
			for _, rc := range m.ToolCalls {
				c, ok := byCall[callKey{m.TurnID, rc.ID}]
				if !ok { // not in the ledger (a transcript adopted from elsewhere)
					c = switchboard.ToolCall{ID: rc.ID, Tool: rc.Name, Server: "?", Status: switchboard.CallFailed,
						Error: "not in the tool-call log", Arguments: json.RawMessage(rc.Arguments), StartedAt: m.Timestamp}
				}
				step = max(step, c.Step)
				if c.Status == switchboard.CallAwaitingApproval {
					waiting = append(waiting, c)
				} else {
					ran = append(ran, c)
				}
			}
			if m.Content != "" {
				id := textItemID(m.TurnID, step)
				add(threadItem{id: id, value: assistantMessageItem(id, threadID, created, []ckOutputText{outputText(m.Content)}), messageID: m.ID, turn: m.TurnID})
			}
			if len(ran) > 0 {
				wf := ckWorkflow{Type: "custom", Tasks: make([]ckTask, len(ran)), Summary: summary(ran)}
				ids := make([]string, len(ran))
				for i, c := range ran {
					wf.Tasks[i] = task(c)
					ids[i] = c.ID
				}
				id := workflowItemID(m.TurnID, step)
				add(threadItem{id: id, value: workflowItem(id, threadID, created, wf), messageID: m.ID, turn: m.TurnID, calls: ids})
			}
			for _, c := range waiting {
				id := approvalItemID(c.ID)
				add(threadItem{id: id, value: widgetItem(id, threadID, timestamp(c.StartedAt), approvalCard(c, "")), messageID: m.ID, turn: m.TurnID})
			}
			for _, c := range ran {
				for _, in := range asking[c.ID] {
					add(inputItem(in, m.ID))
				}
			}
		case m.Role == switchboard.RoleAssistant && m.Content != "":
			// The turn's answer, or the note of how it ended.
			id := textItemID(m.TurnID, lastStep[m.TurnID]+1)
			if m.TurnID == "" {
				id = "msg-" + m.ID
			}
			add(threadItem{id: id, value: assistantMessageItem(id, threadID, created, []ckOutputText{outputText(m.Content)}), messageID: m.ID, turn: m.TurnID})
		}
	}
	for _, in := range unplaced {
		add(inputItem(in, ""))
	}
	return items
}

// page is a page of a list, with the cursor of the next.
type page[T any] struct {
	data    []T
	hasMore bool
	after   string
}

// pageOf pages list (in ascending order of key) by keyset: the page after
// the element whose key is after (exclusive), in order asc or desc. When
// sorted, keys order the list, and a cursor whose element is gone (a thread
// deleted meanwhile) still says where the page starts; otherwise a cursor
// that names no element is refused (invalid_cursor).
func pageOf[T any](list []T, key func(T) string, after *string, limit int, order string, sorted bool) (page[T], error) {
	ordered := list
	if order == "desc" {
		ordered = make([]T, len(list))
		for i, v := range list {
			ordered[len(list)-1-i] = v
		}
	}
	start := 0
	if after != nil && *after != "" {
		start = -1
		for i, v := range ordered {
			k := key(v)
			if k == *after {
				start = i + 1
				break
			}
			if sorted && (order == "desc" && k < *after || order != "desc" && k > *after) {
				start = i
				break
			}
		}
		if start < 0 && sorted {
			start = len(ordered)
		}
		if start < 0 {
			return page[T]{}, switchboard.Errorf(switchboard.ErrInvalid, "invalid_cursor", "after %q names no item of this thread: start again without it", clip(*after))
		}
	}
	end := min(len(ordered), start+limit)
	p := page[T]{data: ordered[start:end], hasMore: end < len(ordered)}
	if p.hasMore && len(p.data) > 0 {
		p.after = key(p.data[len(p.data)-1])
	}
	return p, nil
}

func itemsPage(p page[threadItem]) chatkitPage[any] {
	out := chatkitPage[any]{Data: make([]any, len(p.data)), HasMore: p.hasMore, After: p.after}
	for i, it := range p.data {
		out.Data[i] = it.value
	}
	return out
}

// limitOf is a page's size: chatkit-python's default for none (or 0), at
// most chatkitMaxPage.
func limitOf(limit *int) int {
	if limit == nil || *limit <= 0 {
		return chatkitPageSize
	}
	return min(*limit, chatkitMaxPage)
}

// orderOf is a page's order: desc (the schema's default) unless asc.
func orderOf(order string) string {
	if order == "asc" {
		return "asc"
	}
	return "desc"
}
