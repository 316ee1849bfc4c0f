// Package auth verifies and mints Switchboard's bearer tokens (JWT,
// golang-jwt/v5): HS256 tokens signed with a configured secret, and tokens
// signed with a key of a JWKS (EdDSA, ES256, RS256, PS256; keyfunc fetches
// and refreshes the keys), such as Better Auth's. It knows nothing of HTTP
// routing: the API's middleware hands it the Authorization header and gets
// back an Identity or a client error.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/switchboard-dev/switchboard"
)

// MinSecretLen is the shortest HS256 secret accepted: shorter ones can be
// brute-forced from a single token.
const MinSecretLen = 32

// Config says which tokens are accepted: HS256 tokens signed with
// Secret, and tokens signed with a key of the JWKS at JWKSURL (EdDSA, ES256,
// RS256, PS256), such as Better Auth's /api/auth/jwks. At least one must be
// configured. HS256 is accepted only with an explicit Secret, never as a
// fallback.
type Config struct {
	// Secret verifies HS256 tokens; at least MinSecretLen bytes.
	Secret []byte
	// JWKSURL serves the public keys of asymmetric tokens; Issuer and
	// Audience are then required.
	JWKSURL string
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string
	Audience string
	// Leeway absorbs clock skew on exp and nbf; 0 means 30s.
	Leeway time.Duration
	// AdminUsers are user ids that hold the admin role whatever their token
	// says.
	AdminUsers []string
	// HTTPClient fetches the JWKS; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger reports JWKS refresh failures; nil means none.
	Logger *slog.Logger
}

// Identity is who a verified token speaks for.
type Identity struct {
	UserID string
	Admin  bool
	// Roles are the token's role and roles claims (a string, a list, or
	// a comma- or space-separated string), with admin for an admin.
	Roles []string
}

// Authenticator verifies bearer tokens.
type Authenticator struct {
	cfg    Config
	parser *jwt.Parser
	jwks   keyfunc.Keyfunc // nil without a JWKS
	admins map[string]bool
}

// asymmetric are the signing methods verified with JWKS keys.
var asymmetric = []string{"EdDSA", "ES256", "RS256", "PS256"}

// New returns an authenticator for cfg. With a JWKS it starts
// a goroutine that refreshes the keys (hourly, and at once for an unknown
// key id, at most every 10s) until ctx ends; an unreachable JWKS does not
// fail start-up, tokens fail until it answers. It returns an error wrapping
// switchboard.ErrInvalid when the configuration is unusable.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if len(cfg.Secret) == 0 && cfg.JWKSURL == "" {
		return nil, fmt.Errorf("auth: configure auth.jwt_secret (HS256) or auth.jwks_url: %w", switchboard.ErrInvalid)
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth.jwt_secret must be at least %d bytes (got %d): %w", MinSecretLen, len(cfg.Secret), switchboard.ErrInvalid)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	a := &Authenticator{cfg: cfg, admins: map[string]bool{}}
	var methods []string
	if len(cfg.Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("auth.jwks_url %q is not an http(s) URL: %w", cfg.JWKSURL, switchboard.ErrInvalid)
		}
		if cfg.Issuer == "" || cfg.Audience == "" {
			return nil, fmt.Errorf("auth.jwks_url needs auth.issuer and auth.audience, which tokens must carry: %w", switchboard.ErrInvalid)
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		logger := cfg.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		jwks, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:            client,
			RefreshInterval:   time.Hour,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(10*time.Second), 1),
			RateLimitWaitMax:  5 * time.Second, // bounds the refresh; a spent allowance fails at once, it is not waited for
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					logger.WarnContext(ctx, "JWKS refresh failed", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("auth.jwks_url: %w", err)
		}
		a.jwks = jwks
		methods = append(methods, asymmetric...)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	for _, u := range cfg.AdminUsers {
		a.admins[u] = true
	}
	return a, nil
}

// key returns the key that verifies t: the secret for HS256, a JWKS key for
// the asymmetric methods, so that a token can never be verified with a key
// of the other kind (HS256 "signed" with a public key fails).
func (a *Authenticator) key(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if t.Method.Alg() == jwt.SigningMethodHS256.Alg() {
			if len(a.cfg.Secret) == 0 {
				return nil, errors.New("HS256 is not accepted")
			}
			return a.cfg.Secret, nil
		}
		if a.jwks == nil {
			return nil, errors.New("no JWKS configured")
		}
		if _, ok := t.Header["kid"].(string); !ok {
			return nil, errors.New("the token has no kid")
		}
		return a.jwks.KeyfuncCtx(ctx)(t)
	}
}

// maxTokenLen bounds the bearer token we try to parse.
const maxTokenLen = 8 << 10

// claims are the token claims we read: the standard ones, the seed's
// user_id, and roles.
type claims struct {
	jwt.RegisteredClaims
	UserID string `json:"user_id,omitempty"`
	Role   string `json:"role,omitempty"`
	Roles  any    `json:"roles,omitempty"`
}

// reservedUserIDs are the user ids no token may sign in as: the literals
// the HTTP API's route table puts where /api/{user_id}/... has a user's id
// (package api tests that they cover it). A user named admin would find
// /api/admin/... to be the admin API, not their own conversations.
var reservedUserIDs = []string{"admin"}

// ReservedUserIDs returns the user ids that no token may sign in as and
// MintToken refuses: admin, which /api/admin/... takes.
func ReservedUserIDs() []string { return slices.Clone(reservedUserIDs) }

// reservedUserID returns the error of a user id that is reserved, or nil.
func reservedUserID(userID string) error {
	if !slices.Contains(reservedUserIDs, userID) {
		return nil
	}
	return switchboard.Errorf(switchboard.ErrForbidden, "reserved_user_id",
		"the user id %q is reserved: /api/%s/... are routes of the API, not this user's; sign the user in under another id", userID, userID)
}

// Verify checks an Authorization header value. Every failure is an error
// wrapping switchboard.ErrUnauthorized whose message says what is wrong
// without echoing the token, but for a valid token of a reserved user id
// (admin, see reservedUserIDs), which wraps switchboard.ErrForbidden with
// code reserved_user_id.
func (a *Authenticator) Verify(ctx context.Context, header string) (Identity, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "missing_token", "an Authorization: Bearer <token> header is required")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the Authorization header must be \"Bearer <token>\"")
	}
	token = strings.TrimSpace(token)
	if len(token) > maxTokenLen || strings.Count(token, ".") != 2 {
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token is not a well-formed JWT")
	}
	var c claims
	_, err := a.parser.ParseWithClaims(token, &c, a.key(ctx))
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "token_expired", "the bearer token has expired")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token lacks a required claim (exp)")
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token is not valid yet")
		case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
			return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token was issued by or for someone else")
		}
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token is not valid")
	}
	id := Identity{UserID: c.Subject}
	if id.UserID == "" {
		id.UserID = c.UserID
	}
	if id.UserID == "" || len(id.UserID) > 255 || strings.ContainsFunc(id.UserID, unicode.IsControl) || strings.Contains(id.UserID, "/") {
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token names no usable user (sub or user_id)")
	}
	if err := reservedUserID(id.UserID); err != nil {
		return Identity{}, err
	}
	id.Admin = a.admins[id.UserID] || c.Role == "admin" || hasRole(c.Roles, "admin")
	id.Roles = rolesOf(c.Role, c.Roles, id.Admin)
	return id, nil
}

// rolesOf lists the roles of a token's role and roles claims; admin is
// one for an admin.
func rolesOf(role string, roles any, admin bool) []string {
	var out []string
	add := func(s string) {
		for _, r := range strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' }) {
			if !slices.Contains(out, r) && len(out) < 64 {
				out = append(out, r)
			}
		}
	}
	add(role)
	switch r := roles.(type) {
	case string:
		add(r)
	case []any:
		for _, s := range r {
			if s, ok := s.(string); ok {
				add(s)
			}
		}
	}
	if admin {
		add("admin")
	}
	return out
}

func hasRole(roles any, want string) bool {
	switch r := roles.(type) {
	case string:
		for _, s := range strings.FieldsFunc(r, func(c rune) bool { return c == ',' || c == ' ' }) {
			if s == want {
				return true
			}
		}
	case []any:
		for _, s := range r {
			if s == want {
				return true
			}
		}
	}
	return false
}

// MintToken returns an HS256 token for userID, valid for ttl, signed with
// secret; for development and tests (`switchboard token`). A reserved user
// id (admin) is refused, as Verify would refuse its token.
func MintToken(secret []byte, userID string, ttl time.Duration, admin bool, issuer, audience string) (string, error) {
	if err := reservedUserID(userID); err != nil {
		return "", fmt.Errorf("mint token: %s", switchboard.ErrorMessage(err))
	}
	now := time.Now()
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer:    issuer,
	}, UserID: userID}
	if audience != "" {
		c.Audience = jwt.ClaimStrings{audience}
	}
	if admin {
		c.Role = "admin"
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
