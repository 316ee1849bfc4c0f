package api

import (
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
)

// The authentication middleware: package auth checks the token, these
// keep its identity on the request and let through whom a route allows.

// authenticate verifies the bearer token and keeps the identity.
func (h *Handler) authenticate(c *gin.Context) {
	id, err := h.Auth.Verify(c.Request.Context(), c.GetHeader("Authorization"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.Set(ctxIdentity, id)
}

// refuseToken answers the error of a bearer token sent to an /api/ path
// that no route serves, and reports whether it did: a token that could not
// sign in (a reserved user id such as admin, whose own routes collide with
// /api/admin/...) hears why, rather than a 404 or 405 of the routing.
func (h *Handler) refuseToken(c *gin.Context) bool {
	if h.Auth == nil || c.GetHeader("Authorization") == "" || !strings.HasPrefix(c.Request.URL.Path, "/api/") {
		return false
	}
	if _, err := h.Auth.Verify(c.Request.Context(), c.GetHeader("Authorization")); err != nil {
		h.writeError(c, err)
		return true
	}
	return false
}

// requireSelf lets a user act only under their own id in the path.
func (h *Handler) requireSelf(c *gin.Context) {
	if identity(c).UserID != c.Param("user_id") {
		h.writeError(c, switchboard.Errorf(switchboard.ErrForbidden, "wrong_user", "the token's user does not match the user in the path"))
		return
	}
}

func identity(c *gin.Context) auth.Identity {
	id, _ := c.Get(ctxIdentity)
	v, _ := id.(auth.Identity)
	return v
}

// requireAdmin lets only admins through.
func (h *Handler) requireAdmin(c *gin.Context) {
	if !identity(c).Admin {
		h.writeError(c, switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeAdminOnly, "this route is for admins"))
	}
}
