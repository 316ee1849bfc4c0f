package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

type credentialKey struct{ userID, server string }

type oauthClientKey struct{ server, issuer string }

// credentialLock is the lock of one credential, as Postgres's row lock:
// held by an update while its function runs, and waited for by the other
// writers of that credential. A channel, so that a wait ends with its
// context. It is kept while anyone holds or waits for it.
type credentialLock struct {
	ch    chan struct{}
	users int // under mu
}

// lockCredential takes the lock of the credential k, waiting for it until
// ctx ends, and returns its release.
func (m *Memory) lockCredential(ctx context.Context, k credentialKey) (unlock func(), err error) {
	m.mu.Lock()
	if m.credentialLocks == nil {
		m.credentialLocks = map[credentialKey]*credentialLock{}
	}
	l := m.credentialLocks[k]
	if l == nil {
		l = &credentialLock{ch: make(chan struct{}, 1)}
		m.credentialLocks[k] = l
	}
	l.users++
	m.mu.Unlock()
	done := func() {
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.credentialLocks, k)
		}
		m.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctxErr(ctx)
	}
}

func cloneCredential(c switchboard.Credential) switchboard.Credential {
	c.Sealed, c.Scopes = slices.Clone(c.Sealed), slices.Clone(c.Scopes)
	return c
}

// GetCredential implements [Store.GetCredential].
func (m *Memory) GetCredential(ctx context.Context, userID, server string) (switchboard.Credential, error) {
	if err := ctx.Err(); err != nil {
		return switchboard.Credential{}, ctxErr(ctx)
	}
	k := credentialKey{clean(userID), clean(server)}
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.credentials[k]
	if !ok {
		return switchboard.Credential{}, fmt.Errorf("load the credential of %s for %s: %w", userID, server, switchboard.ErrNotFound)
	}
	return cloneCredential(c), nil
}

// PutCredential implements [Store.PutCredential].
func (m *Memory) PutCredential(ctx context.Context, c switchboard.Credential) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	if err := prepareCredential(&c, now()); err != nil {
		return err
	}
	k := credentialKey{c.UserID, c.Server}
	unlock, err := m.lockCredential(ctx, k)
	if err != nil {
		return fmt.Errorf("store the credential of %s for %s: %w", c.UserID, c.Server, err)
	}
	defer unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.credentials == nil {
		m.credentials = map[credentialKey]switchboard.Credential{}
	}
	m.credentials[k] = c
	return nil
}

// UpdateCredential implements [Store.UpdateCredential]. update runs under
// the credential's lock, not the store's: other records stay available.
func (m *Memory) UpdateCredential(ctx context.Context, userID, server string, update func(*switchboard.Credential) error) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	k := credentialKey{clean(userID), clean(server)}
	unlock, err := m.lockCredential(ctx, k)
	if err != nil {
		return fmt.Errorf("update the credential of %s for %s: %w", userID, server, err)
	}
	defer unlock()
	m.mu.RLock()
	c, ok := m.credentials[k]
	m.mu.RUnlock()
	if !ok {
		return fmt.Errorf("update the credential of %s for %s: %w", userID, server, switchboard.ErrNotFound)
	}
	c = cloneCredential(c)
	if err := update(&c); err != nil {
		return err
	}
	c.UserID, c.Server = k.userID, k.server
	if err := prepareCredential(&c, now()); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx) // as Postgres's commit would fail
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.credentials[k] = c
	return nil
}

// DeleteCredential implements [Store.DeleteCredential].
func (m *Memory) DeleteCredential(ctx context.Context, userID, server string) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	k := credentialKey{clean(userID), clean(server)}
	unlock, err := m.lockCredential(ctx, k)
	if err != nil {
		return fmt.Errorf("delete the credential of %s for %s: %w", userID, server, err)
	}
	defer unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.credentials[k]; !ok {
		return fmt.Errorf("delete the credential of %s for %s: %w", userID, server, switchboard.ErrNotFound)
	}
	delete(m.credentials, k)
	return nil
}

// ListCredentials implements [Store.ListCredentials].
func (m *Memory) ListCredentials(ctx context.Context, userID string) ([]switchboard.Credential, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(ctx)
	}
	userID = clean(userID)
	m.mu.RLock()
	out := []switchboard.Credential{}
	for k, c := range m.credentials {
		if userID == "" || k.userID == userID {
			out = append(out, cloneCredential(c))
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b switchboard.Credential) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Server, b.Server))
	})
	return out, nil
}

// PutOAuthState implements [Store.PutOAuthState].
func (m *Memory) PutOAuthState(ctx context.Context, s switchboard.OAuthState) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	if err := prepareOAuthState(&s, now()); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.oauthStates[s.ID]; ok {
		return fmt.Errorf("store oauth state %s: %w", s.ID, switchboard.ErrConflict)
	}
	if m.oauthStates == nil {
		m.oauthStates = map[string]switchboard.OAuthState{}
	}
	m.oauthStates[s.ID] = s
	return nil
}

// TakeOAuthState implements [Store.TakeOAuthState].
func (m *Memory) TakeOAuthState(ctx context.Context, id string) (switchboard.OAuthState, error) {
	if err := ctx.Err(); err != nil {
		return switchboard.OAuthState{}, ctxErr(ctx)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.oauthStates[clean(id)]
	if !ok {
		return switchboard.OAuthState{}, fmt.Errorf("take oauth state %s: %w", id, switchboard.ErrNotFound)
	}
	delete(m.oauthStates, s.ID)
	return s, nil
}

// PruneOAuthStates implements [Store.PruneOAuthStates].
func (m *Memory) PruneOAuthStates(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(ctx)
	}
	before = stamp(before) // as Postgres compares
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.oauthStates {
		if s.ExpiresAt.Before(before) {
			delete(m.oauthStates, id)
			n++
		}
	}
	return n, nil
}

// GetOAuthClient implements [Store.GetOAuthClient].
func (m *Memory) GetOAuthClient(ctx context.Context, server, issuer string) (switchboard.OAuthClient, error) {
	if err := ctx.Err(); err != nil {
		return switchboard.OAuthClient{}, ctxErr(ctx)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.oauthClients[oauthClientKey{clean(server), clean(issuer)}]
	if !ok {
		return switchboard.OAuthClient{}, fmt.Errorf("load the oauth client of %s at %s: %w", server, issuer, switchboard.ErrNotFound)
	}
	c.Sealed = slices.Clone(c.Sealed)
	return c, nil
}

// PutOAuthClient implements [Store.PutOAuthClient].
func (m *Memory) PutOAuthClient(ctx context.Context, c switchboard.OAuthClient) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	if err := prepareOAuthClient(&c, now()); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.oauthClients == nil {
		m.oauthClients = map[oauthClientKey]switchboard.OAuthClient{}
	}
	m.oauthClients[oauthClientKey{c.Server, c.Issuer}] = c
	return nil
}

// ListOAuthClients implements [Store.ListOAuthClients].
func (m *Memory) ListOAuthClients(ctx context.Context) ([]switchboard.OAuthClient, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(ctx)
	}
	m.mu.RLock()
	out := make([]switchboard.OAuthClient, 0, len(m.oauthClients))
	for _, c := range m.oauthClients {
		c.Sealed = slices.Clone(c.Sealed)
		out = append(out, c)
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b switchboard.OAuthClient) int {
		return cmp.Or(cmp.Compare(a.Server, b.Server), cmp.Compare(a.Issuer, b.Issuer))
	})
	return out, nil
}
