package api

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// previewBytes bounds what a reply carries of one tool result (the chat's
// JSON, the stream's parts, the admin detail): a result may be as large as
// its server's max_result_bytes (8 MiB), and a turn has many. The whole
// stays in the ledger: GET /api/admin/tool-calls/{id}/result, and the
// model's read_tool_result.
const previewBytes = 64 << 10

// preview is what a reply shows of a call's result.
type preview struct {
	Result     string
	Structured json.RawMessage
	// Truncated reports that Result or Structured was left short (a
	// structured result over the bound is left out whole: cut JSON is not
	// JSON); Size is the whole result's size in bytes.
	Truncated bool
	Size      int
}

func previewOf(c switchboard.ToolCall) preview {
	p := preview{Result: c.Result, Structured: c.StructuredResult, Size: max(c.ResultSize, len(c.Result)+len(c.StructuredResult))}
	if len(p.Result) > previewBytes {
		cut := previewBytes
		for cut > 0 && !utf8.RuneStart(p.Result[cut]) {
			cut--
		}
		p.Result, p.Truncated = p.Result[:cut], true
	}
	if len(p.Structured) > previewBytes {
		p.Structured, p.Truncated = nil, true
	}
	return p
}

// getToolCallResult serves GET /api/admin/tool-calls/{id}/result: the
// call's whole result as the ledger keeps it, text/plain; with
// ?part=structured its structured content, application/json.
func (h *Handler) getToolCallResult(c *gin.Context) {
	if h.Admin == nil {
		h.unavailable(c, "the tool-call log")
		return
	}
	q, err := query(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	part := q.Get("part")
	if part != "" && part != "text" && part != "structured" {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_part", "part must be text or structured, got %q", clip(part)))
		return
	}
	id := c.Param("id")
	tc, err := h.Admin.AdminToolCall(c.Request.Context(), id)
	if err != nil {
		if isNotFound(err) {
			err = switchboard.Errorf(switchboard.ErrNotFound, "tool_call_not_found", "tool call %q not found", clip(id))
		}
		h.writeError(c, err)
		return
	}
	c.Header("X-Content-Type-Options", "nosniff")
	if part == "structured" {
		body := tc.StructuredResult
		if len(body) == 0 {
			body = json.RawMessage("null")
		}
		c.Data(http.StatusOK, "application/json", body)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(tc.Result))
}
