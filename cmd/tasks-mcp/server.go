package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// version is reported to clients in the initialize handshake.
const version = "0.1.0"

// Output schemas of the tools, so a client knows the shape of the
// structured content.
const (
	taskSchema = `{
  "type": "object",
  "properties": {
    "id": {"type": "integer", "description": "The task id, used by complete_task, update_task and delete_task."},
    "user_id": {"type": "string"},
    "title": {"type": "string"},
    "description": {"type": "string"},
    "completed": {"type": "boolean"},
    "created_at": {"type": "string", "format": "date-time"}
  },
  "required": ["id", "user_id", "title", "description", "completed", "created_at"]
}`
	listSchema = `{
  "type": "object",
  "properties": {
    "status": {"type": "string", "enum": ["all", "pending", "completed"]},
    "count": {"type": "integer"},
    "tasks": {"type": "array", "items": ` + taskSchema + `}
  },
  "required": ["status", "count", "tasks"]
}`
)

// taskList is the structured result of list_tasks.
type taskList struct {
	Status string `json:"status"`
	Count  int    `json:"count"`
	Tasks  []Task `json:"tasks"`
}

// newServer returns an MCP server with the task tools over st.
func newServer(st *store) *server.MCPServer {
	s := server.NewMCPServer("tasks-mcp", version,
		server.WithToolCapabilities(false),
		server.WithRecovery(),
		server.WithInstructions("A per-user to-do list. Every tool acts only on the tasks of the user named by user_id. "+
			"Call list_tasks to find a task's id before completing, updating or deleting it."),
	)
	userID := mcp.WithString("user_id", mcp.Required(),
		mcp.Description("The id of the user whose tasks to act on."))
	taskID := mcp.WithInteger("task_id", mcp.Required(),
		mcp.Description("The id of the task, as returned by add_task or list_tasks."))
	// Tasks are a closed, local world: no tool reaches outside it.
	closedWorld := mcp.WithOpenWorldHintAnnotation(false)

	s.AddTool(mcp.NewTool("add_task",
		mcp.WithToolTitle("Add task"),
		mcp.WithDescription("Create a new task for the user. Returns the created task, including the id that the other tools take."),
		userID,
		mcp.WithString("title", mcp.Required(), mcp.MinLength(1), mcp.MaxLength(maxTitleLen),
			mcp.Description("A short title, e.g. \"Buy groceries\".")),
		mcp.WithString("description", mcp.MaxLength(maxDescriptionLen),
			mcp.Description("Optional details.")),
		mcp.WithRawOutputSchema(json.RawMessage(taskSchema)),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(false),
		closedWorld,
	), handle(func(_ context.Context, user string, args map[string]any) (*mcp.CallToolResult, error) {
		title, err := stringArg(args, "title", true)
		if err != nil {
			return nil, err
		}
		desc, err := stringArg(args, "description", false)
		if err != nil {
			return nil, err
		}
		t, err := st.add(user, title, desc)
		if err != nil {
			return nil, err
		}
		return mcp.NewToolResultStructured(t, fmt.Sprintf("Created task %d: %s", t.ID, t.Title)), nil
	}))

	s.AddTool(mcp.NewTool("list_tasks",
		mcp.WithToolTitle("List tasks"),
		mcp.WithDescription("List the user's tasks, oldest first. Filter with status: \"all\" (the default), \"pending\" or \"completed\"."),
		userID,
		mcp.WithString("status", mcp.Enum(statusAll, statusPending, statusCompleted), mcp.DefaultString(statusAll),
			mcp.Description("Which tasks to list.")),
		mcp.WithRawOutputSchema(json.RawMessage(listSchema)),
		mcp.WithReadOnlyHintAnnotation(true),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		closedWorld,
	), handle(func(_ context.Context, user string, args map[string]any) (*mcp.CallToolResult, error) {
		status, err := stringArg(args, "status", false)
		if err != nil {
			return nil, err
		}
		if status == "" {
			status = statusAll
		}
		tasks, err := st.list(user, status)
		if err != nil {
			return nil, err
		}
		return mcp.NewToolResultStructured(taskList{Status: status, Count: len(tasks), Tasks: tasks}, listText(status, tasks)), nil
	}))

	s.AddTool(mcp.NewTool("complete_task",
		mcp.WithToolTitle("Complete task"),
		mcp.WithDescription("Mark one of the user's tasks as completed. Completing a task that is already completed changes nothing."),
		userID, taskID,
		mcp.WithRawOutputSchema(json.RawMessage(taskSchema)),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		closedWorld,
	), handle(func(_ context.Context, user string, args map[string]any) (*mcp.CallToolResult, error) {
		id, err := idArg(args)
		if err != nil {
			return nil, err
		}
		t, err := st.update(user, id, func(t *Task) error { t.Completed = true; return nil })
		if err != nil {
			return nil, taskErr(id, err)
		}
		return mcp.NewToolResultStructured(t, fmt.Sprintf("Completed task %d: %s", t.ID, t.Title)), nil
	}))

	s.AddTool(mcp.NewTool("delete_task",
		mcp.WithToolTitle("Delete task"),
		mcp.WithDescription("Permanently delete one of the user's tasks. This cannot be undone; returns the deleted task."),
		userID, taskID,
		mcp.WithRawOutputSchema(json.RawMessage(taskSchema)),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(true),
		mcp.WithIdempotentHintAnnotation(false),
		closedWorld,
	), handle(func(_ context.Context, user string, args map[string]any) (*mcp.CallToolResult, error) {
		id, err := idArg(args)
		if err != nil {
			return nil, err
		}
		t, err := st.remove(user, id)
		if err != nil {
			return nil, taskErr(id, err)
		}
		return mcp.NewToolResultStructured(t, fmt.Sprintf("Deleted task %d: %s", t.ID, t.Title)), nil
	}))

	s.AddTool(mcp.NewTool("update_task",
		mcp.WithToolTitle("Update task"),
		mcp.WithDescription("Change the title and/or the description of one of the user's tasks. Fields left out keep their value; give at least one."),
		userID, taskID,
		mcp.WithString("title", mcp.MinLength(1), mcp.MaxLength(maxTitleLen), mcp.Description("The new title.")),
		mcp.WithString("description", mcp.MaxLength(maxDescriptionLen), mcp.Description("The new description; an empty string clears it.")),
		mcp.WithRawOutputSchema(json.RawMessage(taskSchema)),
		mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithDestructiveHintAnnotation(false),
		mcp.WithIdempotentHintAnnotation(true),
		closedWorld,
	), handle(func(_ context.Context, user string, args map[string]any) (*mcp.CallToolResult, error) {
		id, err := idArg(args)
		if err != nil {
			return nil, err
		}
		_, hasTitle := args["title"]
		_, hasDesc := args["description"]
		if !hasTitle && !hasDesc {
			return nil, errors.New("nothing to update: give a title, a description or both")
		}
		title, err := stringArg(args, "title", false)
		if err != nil {
			return nil, err
		}
		desc, err := stringArg(args, "description", false)
		if err != nil {
			return nil, err
		}
		t, err := st.update(user, id, func(t *Task) error {
			if hasTitle {
				v, err := validateTitle(title)
				if err != nil {
					return err
				}
				t.Title = v
			}
			if hasDesc {
				v, err := validateDescription(desc)
				if err != nil {
					return err
				}
				t.Description = v
			}
			return nil
		})
		if err != nil {
			return nil, taskErr(id, err)
		}
		return mcp.NewToolResultStructured(t, fmt.Sprintf("Updated task %d: %s", t.ID, t.Title)), nil
	}))
	return s
}

// handle adapts a task tool to mcp-go: it reads the required user_id and
// turns the tool's errors into error results (isError), which a model reads
// and can act on, rather than JSON-RPC errors.
func handle(f func(ctx context.Context, user string, args map[string]any) (*mcp.CallToolResult, error)) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args := req.GetArguments()
		if args == nil {
			args = map[string]any{}
		}
		user, err := stringArg(args, "user_id", true)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		if strings.TrimSpace(user) == "" {
			return mcp.NewToolResultError("user_id must not be empty"), nil
		}
		res, err := f(ctx, user, args)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		return res, nil
	}
}

// stringArg returns the string argument key; a missing optional argument is "".
func stringArg(args map[string]any, key string, required bool) (string, error) {
	v, ok := args[key]
	if !ok || v == nil {
		if required {
			return "", fmt.Errorf("%s is required", key)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a string", key)
	}
	return s, nil
}

// idArg returns the task_id argument: a whole number, or a string holding
// one (models sometimes quote numbers).
func idArg(args map[string]any) (int, error) {
	v, ok := args["task_id"]
	if !ok || v == nil {
		return 0, errors.New("task_id is required")
	}
	switch v := v.(type) {
	case float64:
		if v == math.Trunc(v) && v >= 1 && v <= math.MaxInt32 {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 1 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("task_id must be a positive whole number, not %v", v)
}

// taskErr words a store error for the model.
func taskErr(id int, err error) error {
	if errors.Is(err, errTaskNotFound) {
		return fmt.Errorf("task %d not found: the user has no task with this id (list_tasks shows the ids)", id)
	}
	return err
}

// listText is the human text of a list_tasks result.
func listText(status string, tasks []Task) string {
	if len(tasks) == 0 {
		if status == statusAll {
			return "No tasks."
		}
		return fmt.Sprintf("No %s tasks.", status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d task(s):", len(tasks))
	for _, t := range tasks {
		mark := " "
		if t.Completed {
			mark = "x"
		}
		fmt.Fprintf(&b, "\n[%s] %d. %s", mark, t.ID, t.Title)
		if t.Description != "" {
			fmt.Fprintf(&b, " — %s", t.Description)
		}
	}
	return b.String()
}
