package api

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard"
)

// MinSecretLen is the shortest HS256 secret accepted: shorter ones can be
// brute-forced from a single token.
const MinSecretLen = 32

// AuthConfig says which tokens are accepted.
type AuthConfig struct {
	// Secret verifies HS256 tokens; at least MinSecretLen bytes.
	Secret []byte
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string
	Audience string
	// Leeway absorbs clock skew on exp and nbf; 0 means 30s.
	Leeway time.Duration
	// AdminUsers are user ids that hold the admin role whatever their token
	// says.
	AdminUsers []string
}

// Identity is who a verified token speaks for.
type Identity struct {
	UserID string
	Admin  bool
}

// Authenticator verifies bearer tokens.
type Authenticator struct {
	cfg    AuthConfig
	parser *jwt.Parser
	admins map[string]bool
}

// NewAuthenticator returns an authenticator for cfg. It returns an error
// wrapping switchboard.ErrInvalid when the configuration is unusable.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth.jwt_secret must be at least %d bytes (got %d): %w", MinSecretLen, len(cfg.Secret), switchboard.ErrInvalid)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a := &Authenticator{cfg: cfg, parser: jwt.NewParser(opts...), admins: map[string]bool{}}
	for _, u := range cfg.AdminUsers {
		a.admins[u] = true
	}
	return a, nil
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

// Verify checks an Authorization header value. Every failure is an error
// wrapping switchboard.ErrUnauthorized whose message says what is wrong
// without echoing the token.
func (a *Authenticator) Verify(header string) (Identity, error) {
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
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil })
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "token_expired", "the bearer token has expired")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token lacks a required claim (exp)")
		}
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token is not valid")
	}
	id := Identity{UserID: c.Subject}
	if id.UserID == "" {
		id.UserID = c.UserID
	}
	if id.UserID == "" {
		return Identity{}, switchboard.Errorf(switchboard.ErrUnauthorized, "invalid_token", "the bearer token names no user (sub or user_id)")
	}
	id.Admin = a.admins[id.UserID] || c.Role == "admin" || hasRole(c.Roles, "admin")
	return id, nil
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
// secret; for development and tests (`switchboard token`).
func MintToken(secret []byte, userID string, ttl time.Duration, admin bool, issuer, audience string) (string, error) {
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
