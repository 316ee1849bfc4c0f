package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// The OAuth 2.1 client of the MCP authorization spec (2025-11-25): discovery
// through protected resource metadata (RFC 9728) and authorization server
// metadata (RFC 8414, then OpenID discovery), a client that is configured,
// a Client ID Metadata Document, or registered dynamically (RFC 7591), the
// authorization code grant with PKCE S256, the resource parameter (RFC
// 8707), the iss check on the callback (RFC 9207), refresh and revocation
// (RFC 7009).
//
// mcp-go's transport.OAuthHandler does much of this, but its authorization
// transaction cannot be persisted (its fields are unexported and it says it
// does not survive a restart): a callback that reaches another instance
// behind a load balancer, or this one after a restart, could not be
// completed, and its refresh is serialised only within one process. Here
// every step's state is data the store keeps.

// maxMetadataBytes bounds a metadata document or a token endpoint's answer.
const maxMetadataBytes = 1 << 20

// ResourceMetadata is an MCP server's protected resource metadata (RFC
// 9728).
type ResourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// ServerMetadata is an authorization server's metadata (RFC 8414).
type ServerMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported,omitempty"`
}

// Discovery is what discovery found for one MCP server.
type Discovery struct {
	// Resource is the value of the resource parameter: the MCP server's
	// canonical URI.
	Resource string
	Scopes   []string // the resource's scopes_supported
	Server   ServerMetadata
}

// httpClient does the OAuth requests: bounded, and never following a
// redirect to another scheme or host for a token request.
func (o *OAuth) get(ctx context.Context, rawURL string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataBytes))
		return resp.StatusCode, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s: not JSON metadata: %w", redactURL(rawURL), err)
	}
	return resp.StatusCode, nil
}

// Discover finds how to authorize against the MCP server at serverURL:
// its protected resource metadata (from the WWW-Authenticate header of a
// 401, when given, else the well-known paths), then its authorization
// server's metadata. A server that publishes no resource metadata is taken
// to be its own authorization server, as the 2025-03-26 revision had it.
func (o *OAuth) Discover(ctx context.Context, serverURL, wwwAuthenticate string) (Discovery, error) {
	su, err := url.Parse(serverURL)
	if err != nil || su.Host == "" {
		return Discovery{}, fmt.Errorf("server url %s: %w", redactURL(serverURL), switchboard.ErrInvalid)
	}
	d := Discovery{Resource: canonicalResource(su)}
	var prm ResourceMetadata
	found := false
	candidates := []string{}
	if m := authParam(wwwAuthenticate, "resource_metadata"); m != "" {
		candidates = append(candidates, m)
	}
	origin := su.Scheme + "://" + su.Host
	if p := strings.TrimSuffix(su.Path, "/"); p != "" {
		candidates = append(candidates, origin+"/.well-known/oauth-protected-resource"+p)
	}
	candidates = append(candidates, origin+"/.well-known/oauth-protected-resource")
	for _, c := range candidates {
		code, err := o.get(ctx, c, &prm)
		if err != nil {
			return Discovery{}, fmt.Errorf("protected resource metadata: %w", err)
		}
		if code == http.StatusOK {
			found = true
			break
		}
	}
	issuer := origin
	if found {
		if len(prm.AuthorizationServers) == 0 {
			return Discovery{}, errors.New("protected resource metadata names no authorization server")
		}
		issuer = prm.AuthorizationServers[0]
		d.Scopes = prm.ScopesSupported
		if prm.Resource != "" {
			// The resource must be the server the metadata was asked for
			// (RFC 9728 §3.3): another would take tokens meant for it.
			ru, err := url.Parse(prm.Resource)
			if err != nil || canonicalResource(ru) != d.Resource && !strings.HasPrefix(d.Resource, canonicalResource(ru)) {
				return Discovery{}, fmt.Errorf("protected resource metadata is for %s, not %s", redactURL(prm.Resource), redactURL(d.Resource))
			}
			d.Resource = canonicalResource(ru)
		}
	}
	sm, err := o.serverMetadata(ctx, issuer)
	if err != nil {
		return Discovery{}, err
	}
	d.Server = sm
	if d.Server.AuthorizationEndpoint == "" || d.Server.TokenEndpoint == "" {
		return Discovery{}, fmt.Errorf("authorization server %s has no authorization or token endpoint", redactURL(issuer))
	}
	if len(sm.CodeChallengeMethodsSupported) > 0 && !slices.Contains(sm.CodeChallengeMethodsSupported, "S256") {
		return Discovery{}, fmt.Errorf("authorization server %s does not support PKCE S256, which MCP requires", redactURL(issuer))
	}
	return d, nil
}

// serverMetadata reads the metadata of the authorization server issuer:
// RFC 8414's well-known path (with the issuer's path inserted), then
// OpenID Connect discovery both ways. Its issuer must be issuer.
func (o *OAuth) serverMetadata(ctx context.Context, issuer string) (ServerMetadata, error) {
	iu, err := url.Parse(issuer)
	if err != nil || iu.Host == "" {
		return ServerMetadata{}, fmt.Errorf("authorization server %q is not a URL", issuer)
	}
	origin := iu.Scheme + "://" + iu.Host
	p := strings.TrimSuffix(iu.Path, "/")
	candidates := []string{origin + "/.well-known/oauth-authorization-server" + p}
	if p != "" {
		candidates = append(candidates, origin+"/.well-known/openid-configuration"+p, origin+p+"/.well-known/openid-configuration")
	} else {
		candidates = append(candidates, origin+"/.well-known/openid-configuration")
	}
	for _, c := range candidates {
		var m ServerMetadata
		code, err := o.get(ctx, c, &m)
		if err != nil {
			return ServerMetadata{}, fmt.Errorf("authorization server metadata: %w", err)
		}
		if code != http.StatusOK {
			continue
		}
		if strings.TrimSuffix(m.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return ServerMetadata{}, fmt.Errorf("authorization server metadata at %s names issuer %q, not %q", redactURL(c), m.Issuer, issuer)
		}
		return m, nil
	}
	return ServerMetadata{}, fmt.Errorf("authorization server %s publishes no metadata (RFC 8414 or OpenID discovery)", redactURL(issuer))
}

// canonicalResource is u as the resource parameter names it (RFC 8707,
// the MCP spec): scheme and host lower case, no fragment, no trailing
// slash.
func canonicalResource(u *url.URL) string {
	c := *u
	c.Scheme, c.Host = strings.ToLower(c.Scheme), strings.ToLower(c.Host)
	c.Fragment, c.RawFragment = "", ""
	c.Path = strings.TrimSuffix(c.Path, "/")
	c.RawPath = ""
	return c.String()
}

// authParam reads one parameter of a WWW-Authenticate Bearer challenge.
func authParam(header, name string) string {
	for _, part := range splitParams(header) {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if i := strings.LastIndexByte(k, ' '); i >= 0 {
			k = k[i+1:] // "Bearer resource_metadata"
		}
		if strings.EqualFold(k, name) {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// splitParams splits a challenge's parameters on commas outside quotes.
func splitParams(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// Client is an OAuth client of one authorization server.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret,omitempty"`
	// AuthMethod is how it authenticates at the token endpoint: none,
	// client_secret_post or client_secret_basic.
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	Issuer     string `json:"issuer"`
}

// Register registers a client dynamically (RFC 7591), a public client
// (token_endpoint_auth_method none, PKCE) unless the server refuses one.
func (o *OAuth) Register(ctx context.Context, sm ServerMetadata, name, redirectURI string) (Client, error) {
	if sm.RegistrationEndpoint == "" {
		return Client{}, fmt.Errorf("authorization server %s offers no dynamic client registration: configure auth.client_id", redactURL(sm.Issuer))
	}
	body, _ := json.Marshal(map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sm.RegistrationEndpoint, strings.NewReader(string(body)))
	if err != nil {
		return Client{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return Client{}, fmt.Errorf("register a client: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Client{}, fmt.Errorf("register a client: %s: %s", resp.Status, oauthError(raw))
	}
	var c Client
	if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" {
		return Client{}, errors.New("register a client: the answer has no client_id")
	}
	if c.AuthMethod == "" {
		c.AuthMethod = "none"
		if c.Secret != "" {
			c.AuthMethod = "client_secret_basic"
		}
	}
	c.Issuer = sm.Issuer
	return c, nil
}

// PKCE returns a new code verifier and its S256 challenge.
func PKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthorizationURL returns where to send the user's browser.
func AuthorizationURL(d Discovery, c Client, redirectURI, state, challenge string, scopes []string) string {
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", c.ID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	q.Set("code_challenge", challenge)
	q.Set("code_challenge_method", "S256")
	q.Set("resource", d.Resource)
	if len(scopes) > 0 {
		q.Set("scope", strings.Join(scopes, " "))
	}
	sep := "?"
	if strings.Contains(d.Server.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return d.Server.AuthorizationEndpoint + sep + q.Encode()
}

// Token is a grant's tokens, as the store keeps them sealed.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
}

// expiresSoon reports whether t should be refreshed before use: within a
// minute of its expiry.
func (t Token) expiresSoon(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && now.Add(time.Minute).After(t.ExpiresAt)
}

// ErrGrantRefused is a token endpoint's refusal of a code or refresh token
// (invalid_grant and the like): the user must connect again.
var ErrGrantRefused = errors.New("the authorization server refused the grant")

// Exchange trades an authorization code for tokens.
func (o *OAuth) Exchange(ctx context.Context, d Discovery, c Client, redirectURI, code, verifier string) (Token, error) {
	f := url.Values{}
	f.Set("grant_type", "authorization_code")
	f.Set("code", code)
	f.Set("redirect_uri", redirectURI)
	f.Set("code_verifier", verifier)
	f.Set("resource", d.Resource)
	return o.token(ctx, d.Server.TokenEndpoint, c, f)
}

// Refresh trades a refresh token for new tokens; the answer may lack a
// refresh token, then the old one stays.
func (o *OAuth) Refresh(ctx context.Context, tokenEndpoint, resource string, c Client, t Token) (Token, error) {
	if t.RefreshToken == "" {
		return Token{}, fmt.Errorf("no refresh token: %w", ErrGrantRefused)
	}
	f := url.Values{}
	f.Set("grant_type", "refresh_token")
	f.Set("refresh_token", t.RefreshToken)
	f.Set("resource", resource)
	nt, err := o.token(ctx, tokenEndpoint, c, f)
	if err == nil && nt.RefreshToken == "" {
		nt.RefreshToken = t.RefreshToken
	}
	return nt, err
}

func (o *OAuth) token(ctx context.Context, endpoint string, c Client, f url.Values) (Token, error) {
	if c.AuthMethod != "client_secret_basic" {
		f.Set("client_id", c.ID)
	}
	if c.AuthMethod == "client_secret_post" {
		f.Set("client_secret", c.Secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(f.Encode()))
	if err != nil {
		return Token{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.AuthMethod == "client_secret_basic" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("token endpoint: %s: %s", resp.Status, oauthError(raw))
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
			err = fmt.Errorf("%w: %w", ErrGrantRefused, err)
		}
		return Token{}, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && mt != "" {
		return Token{}, fmt.Errorf("token endpoint answered %s, not JSON", mt)
	}
	var tr struct {
		AccessToken  string          `json:"access_token"`
		TokenType    string          `json:"token_type"`
		RefreshToken string          `json:"refresh_token"`
		Scope        string          `json:"scope"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(raw, &tr); err != nil || tr.AccessToken == "" {
		return Token{}, errors.New("token endpoint: the answer has no access_token")
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return Token{}, fmt.Errorf("token endpoint: token type %q, want Bearer", tr.TokenType)
	}
	t := Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: "Bearer", Scope: tr.Scope}
	if secs, err := strconv.ParseInt(strings.Trim(string(tr.ExpiresIn), `"`), 10, 64); err == nil && secs > 0 {
		t.ExpiresAt = o.now().Add(time.Duration(secs) * time.Second)
	}
	return t, nil
}

// Revoke asks the authorization server to revoke the grant's refresh token
// (RFC 7009), or its access token when it has none. A server without a
// revocation endpoint is not asked.
func (o *OAuth) Revoke(ctx context.Context, revocationEndpoint string, c Client, t Token) error {
	if revocationEndpoint == "" {
		return nil
	}
	f := url.Values{}
	if t.RefreshToken != "" {
		f.Set("token", t.RefreshToken)
		f.Set("token_type_hint", "refresh_token")
	} else {
		f.Set("token", t.AccessToken)
		f.Set("token_type_hint", "access_token")
	}
	if c.AuthMethod != "client_secret_basic" {
		f.Set("client_id", c.ID)
	}
	if c.AuthMethod == "client_secret_post" {
		f.Set("client_secret", c.Secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, revocationEndpoint, strings.NewReader(f.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.AuthMethod == "client_secret_basic" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("revocation endpoint: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataBytes))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation endpoint: %s", resp.Status)
	}
	return nil
}

// CheckIssuer applies RFC 9207 to a callback's iss parameter: when present
// it must be the authorization server's issuer, and a server that says it
// sends the parameter must send it.
func CheckIssuer(sm ServerMetadata, iss string) error {
	switch {
	case iss == "" && sm.IssParameterSupported:
		return errors.New("the authorization server sends iss, but the callback has none")
	case iss != "" && iss != sm.Issuer:
		return fmt.Errorf("the callback's iss %q is not the authorization server's %q", iss, sm.Issuer)
	}
	return nil
}

// oauthError renders an OAuth error answer for an error message, bounded.
func oauthError(raw []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		if e.Description != "" {
			return e.Error + ": " + truncate(e.Description, 200)
		}
		return e.Error
	}
	return truncate(strings.TrimSpace(string(raw)), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// redactURL drops what may hold secrets (user info, query) from a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
