package api

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// contentDTO lists one binary part of a call's result, with the URL that
// serves its bytes to whoever may read them.
type contentDTO struct {
	Index    int    `json:"index"`
	Kind     string `json:"kind"`
	MIMEType string `json:"mime_type"`
	Size     int    `json:"size"`
	SHA256   string `json:"sha256"`
	URI      string `json:"uri,omitempty"`
	URL      string `json:"url"`
}

// contentURL is where the owner of call c reads its part index.
func contentURL(c switchboard.ToolCall, index int) string {
	return fmt.Sprintf("/api/%s/conversations/%s/tool-calls/%s/content/%d",
		url.PathEscape(c.UserID), url.PathEscape(c.ConversationID), url.PathEscape(c.ID), index)
}

// adminContentURL is where admins read part index of call id.
func adminContentURL(id string, index int) string {
	return fmt.Sprintf("/api/admin/tool-calls/%s/content/%d", url.PathEscape(id), index)
}

// contentDTOs lists c's parts with the URLs that link gives.
func contentDTOs(c switchboard.ToolCall, link func(index int) string) []contentDTO {
	if len(c.Content) == 0 {
		return nil
	}
	out := make([]contentDTO, len(c.Content))
	for i, p := range c.Content {
		out[i] = contentDTO{Index: p.Index, Kind: string(p.Kind), MIMEType: p.MIMEType, Size: p.Size, SHA256: p.SHA256,
			URI: p.URI, URL: link(p.Index)}
	}
	return out
}

// ownContent lists c's parts with their owner's URLs.
func ownContent(c switchboard.ToolCall) []contentDTO {
	return contentDTOs(c, func(i int) string { return contentURL(c, i) })
}

// getContent serves GET
// /api/{user_id}/conversations/{id}/tool-calls/{call_id}/content/{index}:
// the bytes of a binary part of one of the user's calls (see serveContent).
// Another user's call, or a call of another conversation, is absent (404).
func (h *Handler) getContent(c *gin.Context) {
	index, ok := h.contentIndex(c)
	if !ok {
		return
	}
	user, callID := identity(c).UserID, c.Param("call_id")
	ctx := c.Request.Context()
	tc, err := h.Store.GetToolCall(ctx, user, callID)
	if err == nil && tc.ConversationID != c.Param("id") {
		err = switchboard.ErrNotFound
	}
	if err != nil {
		if isNotFound(err) {
			err = switchboard.Errorf(switchboard.ErrNotFound, switchboard.CodeToolCallNotFound, "tool call %q not found", clip(callID))
		}
		h.writeError(c, err)
		return
	}
	h.serveContent(c, user, callID, index)
}

// getAdminContent serves GET /api/admin/tool-calls/{id}/content/{index}:
// the bytes of a binary part of any user's call.
func (h *Handler) getAdminContent(c *gin.Context) {
	index, ok := h.contentIndex(c)
	if !ok {
		return
	}
	tc, ok := h.adminToolCall(c)
	if !ok {
		return
	}
	h.serveContent(c, tc.UserID, tc.ID, index)
}

func (h *Handler) contentIndex(c *gin.Context) (int, bool) {
	s := c.Param("index")
	index, err := strconv.Atoi(s)
	if err != nil || index < 0 || strconv.Itoa(index) != s {
		h.writeError(c, switchboard.Errorf(switchboard.ErrInvalid, "invalid_index", "the content index must be a number from 0, got %q", clip(s)))
		return 0, false
	}
	return index, true
}

// serveContent writes the part's bytes with their type, never as active
// content: nosniff, a sandbox that runs nothing, and types a browser would
// render actively (HTML, SVG, XML, scripts, anything unknown) as a download.
func (h *Handler) serveContent(c *gin.Context, user, callID string, index int) {
	p, err := h.Store.GetToolCallContent(c.Request.Context(), user, callID, index)
	if err != nil {
		if isNotFound(err) && switchboard.ErrorCode(err) == "" {
			err = switchboard.Errorf(switchboard.ErrNotFound, "content_not_found", "tool call %q has no content %d", clip(callID), index)
		}
		h.writeError(c, err)
		return
	}
	mediaType, inline := servedType(p.MIMEType)
	name := fmt.Sprintf("%s-%d%s", callID, index, extension(mediaType))
	disposition := "attachment"
	if inline {
		disposition = "inline"
	}
	c.Header("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Content-Security-Policy", "default-src 'none'; sandbox")
	c.Header("Cache-Control", "private, max-age=3600, immutable")
	c.Header("ETag", `"`+p.SHA256+`"`)
	if c.GetHeader("If-None-Match") == `"`+p.SHA256+`"` {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, mediaType, p.Data)
}

// inlineTypes are the media types a browser shows without running
// anything: raster images, audio, video, plain text, PDF (in its own
// viewer, under the sandbox).
func inlineType(mt string) bool {
	switch mt {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
		"text/plain", "application/pdf":
		return true
	}
	return strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")
}

// servedType returns the Content-Type to serve a part of the server's
// mimeType with (its parameters dropped but a text's charset;
// application/octet-stream if it does not parse), and whether it may be
// shown inline.
func servedType(mimeType string) (string, bool) {
	mt, params, err := mime.ParseMediaType(mimeType)
	if err != nil {
		return "application/octet-stream", false
	}
	served := mt
	if cs := params["charset"]; cs != "" && strings.HasPrefix(mt, "text/") {
		served = mime.FormatMediaType(mt, map[string]string{"charset": cs})
	}
	if served == "" {
		return "application/octet-stream", false
	}
	return served, inlineType(mt)
}

// extension returns a file name extension for a media type, or "".
func extension(mediaType string) string {
	mt, _, _ := mime.ParseMediaType(mediaType)
	switch mt {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "text/plain":
		return ".txt"
	}
	if exts, err := mime.ExtensionsByType(mt); err == nil && len(exts) > 0 {
		return exts[0]
	}
	return ""
}
