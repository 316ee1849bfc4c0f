package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
)

// jwks is a JWKS endpoint, as Better Auth serves at /api/auth/jwks, whose
// keys a test may rotate.
type jwks struct {
	mu      sync.Mutex
	keys    []jwkset.JWKMarshal
	fetches atomic.Int32
	srv     *httptest.Server
}

func newJWKS(t *testing.T) *jwks {
	j := &jwks{}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: j.keys})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwks) add(t *testing.T, kid string, alg jwkset.ALG, pub crypto.PublicKey) {
	k, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	j.keys = append(j.keys, k.Marshal())
	j.mu.Unlock()
}

const (
	issuer   = "https://app.example.com"
	audience = "https://app.example.com"
)

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "iss": issuer, "aud": audience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWT(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := newJWKS(t)
	keys.add(t, "ed", jwkset.AlgEdDSA, edKey.Public())
	keys.add(t, "ec", jwkset.AlgES256, ecKey.Public())
	keys.add(t, "rsa", jwkset.AlgRS256, rsaKey.Public())
	keys.add(t, "ps", "", rsaKey.Public()) // no alg: PS256 and RS256 both verify

	secret := []byte("an-hs256-secret-that-is-long-enough!!")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	authn, err := auth.New(ctx, auth.Config{JWKSURL: keys.srv.URL, Issuer: issuer, Audience: audience, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	jwksOnly, err := auth.New(ctx, auth.Config{JWKSURL: keys.srv.URL, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}

	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(rsaKey.Public()))})
	good := sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64([]byte(`{"sub":"mallory","iss":"`+issuer+`","aud":"`+audience+`","exp":9999999999}`)) + "." + parts[2]
	unsigned := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"sub":"alice","iss":"`+issuer+`","aud":"`+audience+`","exp":9999999999}`)) + "."

	accepted := []struct {
		name string
		tok  string
		want string
	}{
		{"EdDSA (Better Auth's default)", good, "alice"},
		{"ES256", sign(t, jwt.SigningMethodES256, "ec", ecKey, claims(nil)), "alice"},
		{"RS256", sign(t, jwt.SigningMethodRS256, "rsa", rsaKey, claims(nil)), "alice"},
		{"PS256", sign(t, jwt.SigningMethodPS256, "ps", rsaKey, claims(nil)), "alice"},
		{"HS256 with the configured secret", sign(t, jwt.SigningMethodHS256, "", secret, claims(nil)), "alice"},
		{"seed's user_id claim", sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { delete(c, "sub"); c["user_id"] = "bob" })), "bob"},
		{"expired within the 30s leeway", sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })), "alice"},
	}
	for _, tt := range accepted {
		t.Run("accepts "+tt.name, func(t *testing.T) {
			id, err := authn.Verify(ctx, "Bearer "+tt.tok)
			if err != nil || id.UserID != tt.want {
				t.Fatalf("got %+v, %v; want user %s", id, err, tt.want)
			}
		})
	}

	rejected := []struct {
		name  string
		authn *auth.Authenticator
		hdr   string
	}{
		{"no header", authn, ""},
		{"another scheme", authn, "Basic YWxpY2U6cHc="},
		{"empty bearer", authn, "Bearer "},
		{"alg none", authn, "Bearer " + unsigned},
		{"HS256 signed with the RSA public key (key confusion)", authn, "Bearer " + sign(t, jwt.SigningMethodHS256, "rsa", pubPEM, claims(nil))},
		{"HS256 with no secret configured", jwksOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, "", secret, claims(nil))},
		{"expired", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))},
		{"not yet valid", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }))},
		{"wrong issuer", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }))},
		{"wrong audience", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { c["aud"] = "another-app" }))},
		{"no exp", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"unknown kid", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "nope", edKey, claims(nil))},
		{"no kid", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "", edKey, claims(nil))},
		{"signed by another key under a known kid", authn, "Bearer " + sign(t, jwt.SigningMethodRS256, "rsa", otherRSA, claims(nil))},
		{"alg differs from the key's alg", authn, "Bearer " + sign(t, jwt.SigningMethodPS256, "rsa", rsaKey, claims(nil))},
		{"tampered payload", authn, "Bearer " + tampered},
		{"a header of 10,000 dots", authn, "Bearer " + strings.Repeat(".", 10000)},
		{"not base64", authn, "Bearer a!b.c$d.e%f"},
		{"too long", authn, "Bearer " + good + strings.Repeat("A", 10000)},
		{"no user", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { delete(c, "sub") }))},
		{"a user id with a slash", authn, "Bearer " + sign(t, jwt.SigningMethodEdDSA, "ed", edKey, claims(func(c jwt.MapClaims) { c["sub"] = "../admin" }))},
	}
	for _, tt := range rejected {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			id, err := tt.authn.Verify(ctx, tt.hdr)
			if !errors.Is(err, switchboard.ErrUnauthorized) {
				t.Fatalf("got %+v, %v; want ErrUnauthorized", id, err)
			}
			if m := switchboard.ErrorMessage(err); m == "" || len(tt.hdr) > 20 && strings.Contains(m, tt.hdr[7:20]) {
				t.Errorf("message %q: empty or echoes the token", m)
			}
		})
	}

	// A key added to the JWKS (rotation) is fetched when a token names it.
	// (A fresh authenticator: the unknown kid above spent this one's refresh
	// allowance, one per 10s.)
	authn, err = auth.New(ctx, auth.Config{JWKSURL: keys.srv.URL, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authn.Verify(ctx, "Bearer "+good); err != nil {
		t.Fatal(err)
	}
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	keys.add(t, "ed-2", jwkset.AlgEdDSA, newKey.Public())
	before := keys.fetches.Load()
	if id, err := authn.Verify(ctx, "Bearer "+sign(t, jwt.SigningMethodEdDSA, "ed-2", newKey, claims(nil))); err != nil || id.UserID != "alice" {
		t.Errorf("rotated key: got %+v, %v", id, err)
	}
	if keys.fetches.Load() != before+1 {
		t.Errorf("JWKS fetches for the rotated key: got %d, want 1", keys.fetches.Load()-before)
	}
}

func TestAuthenticatorConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []auth.Config{
		{},
		{Secret: []byte("short")},
		{JWKSURL: "https://app.example.com/api/auth/jwks"},            // no issuer, no audience
		{JWKSURL: "ftp://x/jwks", Issuer: issuer, Audience: audience}, // not http
	} {
		if _, err := auth.New(ctx, cfg); !errors.Is(err, switchboard.ErrInvalid) {
			t.Errorf("New(%+v): got %v, want ErrInvalid", cfg, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestMintToken: what MintToken signs, Verify accepts as the user and role
// it was minted for, with the issuer and audience it names; a reserved user
// id is refused on both sides.
func TestMintToken(t *testing.T) {
	ctx := context.Background()
	secret := []byte("an-hs256-secret-that-is-long-enough!!")
	plain, err := auth.New(ctx, auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := auth.New(ctx, auth.Config{Secret: secret, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		verifier         *auth.Authenticator
		user             string
		ttl              time.Duration
		admin            bool
		issuer, audience string
		want             auth.Identity
		wantCode         string
	}{
		{name: "a user", verifier: plain, user: "alice", ttl: time.Hour, want: auth.Identity{UserID: "alice"}},
		{name: "an admin", verifier: plain, user: "root", ttl: time.Hour, admin: true, want: auth.Identity{UserID: "root", Admin: true, Roles: []string{"admin"}}},
		{name: "issuer and audience", verifier: strict, user: "alice", ttl: time.Hour, issuer: issuer, audience: audience, want: auth.Identity{UserID: "alice"}},
		{name: "no issuer where one is required", verifier: strict, user: "alice", ttl: time.Hour, wantCode: "invalid_token"},
		{name: "expired", verifier: plain, user: "alice", ttl: -time.Hour, wantCode: "token_expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := auth.MintToken(secret, tt.user, tt.ttl, tt.admin, tt.issuer, tt.audience)
			if err != nil {
				t.Fatal(err)
			}
			id, err := tt.verifier.Verify(ctx, "Bearer "+tok)
			if tt.wantCode != "" {
				if !errors.Is(err, switchboard.ErrUnauthorized) || switchboard.ErrorCode(err) != tt.wantCode {
					t.Fatalf("got %+v, %v (code %q); want ErrUnauthorized with code %s", id, err, switchboard.ErrorCode(err), tt.wantCode)
				}
				return
			}
			if err != nil || !cmp.Equal(id, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", id, err, tt.want)
			}
		})
	}

	for _, user := range auth.ReservedUserIDs() {
		if _, err := auth.MintToken(secret, user, time.Hour, false, "", ""); err == nil || !strings.Contains(err.Error(), `"`+user+`" is reserved`) {
			t.Errorf("MintToken for user %s: got %v, want an error saying it is reserved", user, err)
		}
		// As an identity provider would sign it.
		tok := sign(t, jwt.SigningMethodHS256, "", secret, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
		if id, err := plain.Verify(ctx, "Bearer "+tok); !errors.Is(err, switchboard.ErrForbidden) || switchboard.ErrorCode(err) != "reserved_user_id" {
			t.Errorf("Verify a token for user %s: got %+v, %v; want ErrForbidden with code reserved_user_id", user, id, err)
		}
	}
}

// TestRoles: a token's role and roles claims, in any of their forms, are
// the identity's roles (agents' roles: read them), admin among them for
// an admin.
func TestRoles(t *testing.T) {
	secret := []byte(strings.Repeat("r", 32))
	a, err := auth.New(context.Background(), auth.Config{Secret: secret, AdminUsers: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	tests := []struct {
		claims jwt.MapClaims
		want   []string
	}{
		{jwt.MapClaims{"sub": "alice", "exp": exp}, nil},
		{jwt.MapClaims{"sub": "alice", "exp": exp, "role": "support"}, []string{"support"}},
		{jwt.MapClaims{"sub": "alice", "exp": exp, "roles": "support, billing"}, []string{"support", "billing"}},
		{jwt.MapClaims{"sub": "alice", "exp": exp, "role": "ops", "roles": []any{"support", 7, "ops"}}, []string{"ops", "support"}},
		{jwt.MapClaims{"sub": "root", "exp": exp}, []string{"admin"}},
	}
	for _, tt := range tests {
		id, err := a.Verify(context.Background(), "Bearer "+sign(t, jwt.SigningMethodHS256, "", secret, tt.claims))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, id.Roles); diff != "" {
			t.Errorf("roles of %v (-want +got):\n%s", tt.claims, diff)
		}
	}
}
