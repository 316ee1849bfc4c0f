package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
)

// FuzzAuthorizationHeader: any header is either a valid token or a 401, and
// never a panic.
func FuzzAuthorizationHeader(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, err := auth.New(context.Background(), auth.Config{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := auth.MintToken(secret, "alice", time.Hour, false, "", "")
	for _, s := range []string{"", "Bearer", "Bearer " + good, "bearer " + good, "Basic abc", "Bearer a.b.c",
		"Bearer " + strings.Repeat(".", 100), "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "Bearer " + good[:len(good)-2]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, err := a.Verify(context.Background(), header)
		if err != nil {
			if !errors.Is(err, switchboard.ErrUnauthorized) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			return
		}
		if id.UserID == "" {
			t.Fatal("accepted a token without a user")
		}
	})
}
