package api

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
)

// errorKinds is the one table from domain errors to HTTP: status, default
// code and default message (used when the error carries none).
var errorKinds = []struct {
	kind    error
	status  int
	code    string
	message string
}{
	{switchboard.ErrInvalid, http.StatusBadRequest, "invalid_request", "the request is not valid"},
	{switchboard.ErrUnauthorized, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required"},
	{switchboard.ErrForbidden, http.StatusForbidden, "forbidden", "you may not do this"},
	{switchboard.ErrNotFound, http.StatusNotFound, "not_found", "not found"},
	{switchboard.ErrConflict, http.StatusConflict, "conflict", "the request conflicts with the current state"},
	{switchboard.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large", "the request is too large"},
	{switchboard.ErrUnprocessable, http.StatusUnprocessableEntity, "unprocessable", "the request cannot be processed as sent"},
	{switchboard.ErrRateLimited, http.StatusTooManyRequests, "rate_limited", "too many requests; slow down"},
	{switchboard.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "the service is temporarily unavailable; try again shortly"},
	{switchboard.ErrUpstream, http.StatusBadGateway, "upstream_error", "the model or a tool server failed"},
	{switchboard.ErrUpstreamTimeout, http.StatusGatewayTimeout, "upstream_timeout", "the model or a tool server did not answer in time"},
}

// errorBody is the JSON of every error reply.
type errorBody struct {
	Success bool        `json:"success"`
	Error   errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// describe maps err to its status, code and message. Errors of no known kind
// are internal: 500 with a message that reveals nothing.
func describe(err error) (int, errorDetail) {
	for _, k := range errorKinds {
		if errors.Is(err, k.kind) {
			d := errorDetail{Code: switchboard.ErrorCode(err), Message: switchboard.ErrorMessage(err)}
			if d.Code == "" {
				d.Code = k.code
			}
			if d.Message == "" {
				d.Message = k.message
			}
			return k.status, d
		}
	}
	return http.StatusInternalServerError, errorDetail{Code: "internal_error", Message: "something went wrong on our side; it has been logged"}
}

// writeError answers with err as JSON, with Retry-After when err says
// when to try again. A 5xx is logged here, once.
func (h *Handler) writeError(c *gin.Context, err error) {
	status, d := describe(err)
	if wait := switchboard.RetryAfter(err); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	if h.opts.Scrub != nil {
		d.Message = h.opts.Scrub.String(d.Message)
	}
	if status >= 500 {
		h.logger.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
			slog.String("request_id", requestID(c)), slog.String("route", c.FullPath()),
			slog.Int("status", status), slog.String("code", d.Code), slog.Any("err", err))
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	// A body nobody will read (the request is refused before it is, or it
	// stalled): answer now and close, rather than have net/http read up
	// to 256 KiB of it first, for as long as read_timeout allows.
	if unread(c.Request) {
		c.Header("Connection", "close")
	}
	c.AbortWithStatusJSON(status, errorBody{Success: false, Error: d})
}
