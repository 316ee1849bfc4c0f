package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/keyring"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestCredentialRowsHoldNoPlaintext reads the rows of a credential, a
// connect flow and a registered client as Postgres holds them: each sealed
// column holds exactly the bytes the store was given (every byte value,
// not decoded, encoded or transformed), and no column holds the sealed
// plaintext in any common encoding.
func TestCredentialRowsHoldNoPlaintext(t *testing.T) {
	ctx := t.Context()
	url := storetest.PostgresURL(t)
	p := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2})
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	const canary = "gho_CANARYaccessTOKEN0123456789abcdef"
	ring := keyring.Generate()
	keyID, sealed := ring.Seal([]byte(`{"access_token":"`+canary+`"}`), []byte("alice\x00github"))
	if bytes.Contains(sealed, []byte(canary)) {
		t.Fatal("the keyring's output holds the plaintext")
	}
	now := time.Now()

	for _, tt := range []struct {
		name   string
		put    func(sealed []byte) error
		rowSQL string // the row, sealed first, then the whole row as text
	}{
		{"credential", func(b []byte) error {
			return p.PutCredential(ctx, switchboard.Credential{UserID: "alice", Server: "github", Kind: "oauth", KeyID: keyID,
				Sealed: b, Scopes: []string{"repo"}, ExpiresAt: now.Add(time.Hour)})
		}, `SELECT sealed, key_id, t::text FROM credentials t WHERE user_id = 'alice' AND server = 'github'`},
		{"oauth state", func(b []byte) error {
			if _, err := conn.Exec(ctx, `DELETE FROM oauth_states`); err != nil {
				return err
			}
			return p.PutOAuthState(ctx, switchboard.OAuthState{ID: "h", UserID: "alice", Server: "github", KeyID: keyID,
				Sealed: b, ExpiresAt: now.Add(10 * time.Minute)})
		}, `SELECT sealed, key_id, t::text FROM oauth_states t WHERE id = 'h'`},
		{"oauth client", func(b []byte) error {
			return p.PutOAuthClient(ctx, switchboard.OAuthClient{Server: "github", Issuer: "https://github.com", ClientID: "c1",
				KeyID: keyID, Sealed: b})
		}, `SELECT sealed, key_id, t::text FROM oauth_clients t WHERE server = 'github'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, want := range [][]byte{every, sealed} {
				if err := tt.put(want); err != nil {
					t.Fatalf("put: got error %v, want none", err)
				}
				var (
					got       []byte
					gotKey    string
					rowAsText string
				)
				if err := conn.QueryRow(ctx, tt.rowSQL).Scan(&got, &gotKey, &rowAsText); err != nil {
					t.Fatalf("read the raw row: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("the sealed column: got %x, want exactly %x", got, want)
				}
				if gotKey != keyID {
					t.Errorf("the key id beside it: got %q, want %q", gotKey, keyID)
				}
				for _, enc := range []string{canary, hex.EncodeToString([]byte(canary)), base64.StdEncoding.EncodeToString([]byte(canary))[:32]} {
					if strings.Contains(rowAsText, enc) {
						t.Errorf("the row holds the plaintext (%s): %s", enc, rowAsText)
					}
				}
			}
			// What the row holds opens with the key, to the plaintext.
			var got []byte
			if err := conn.QueryRow(ctx, tt.rowSQL).Scan(&got, new(string), new(string)); err != nil {
				t.Fatal(err)
			}
			plain, err := ring.Open(keyID, got, []byte("alice\x00github"))
			if err != nil || !strings.Contains(string(plain), canary) {
				t.Errorf("the stored sealed value: opens to %q, %v; want the plaintext", plain, err)
			}
		})
	}
}
