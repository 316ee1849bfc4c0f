package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-dev/switchboard"
)

const credentialColumns = `user_id, server, kind, key_id, sealed, scopes, expires_at, created_at, updated_at, last_used_at`

func scanCredential(row pgx.Row) (switchboard.Credential, error) {
	var (
		c                   switchboard.Credential
		expiresAt, lastUsed pgtype.Timestamptz
	)
	err := row.Scan(&c.UserID, &c.Server, &c.Kind, &c.KeyID, &c.Sealed, &c.Scopes, &expiresAt, &c.CreatedAt, &c.UpdatedAt, &lastUsed)
	if err != nil {
		return switchboard.Credential{}, err
	}
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	c.ExpiresAt, c.LastUsedAt = fromTimestamptz(expiresAt), fromTimestamptz(lastUsed)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// scopesArg is c's scopes as the NOT NULL column takes them: pgx sends a
// nil slice as NULL.
func scopesArg(scopes []string) []string {
	if scopes == nil {
		return []string{}
	}
	return scopes
}

// GetCredential implements [Store.GetCredential].
func (p *Postgres) GetCredential(ctx context.Context, userID, server string) (switchboard.Credential, error) {
	c, err := scanCredential(p.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE user_id = $1 AND server = $2`,
		clean(userID), clean(server)))
	if err != nil {
		return switchboard.Credential{}, fmt.Errorf("load the credential of %s for %s: %w", userID, server, dbError(err))
	}
	return c, nil
}

// PutCredential implements [Store.PutCredential].
func (p *Postgres) PutCredential(ctx context.Context, c switchboard.Credential) error {
	if err := prepareCredential(&c, now()); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO credentials (`+credentialColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (user_id, server) DO UPDATE SET kind = EXCLUDED.kind, key_id = EXCLUDED.key_id, sealed = EXCLUDED.sealed,
    scopes = EXCLUDED.scopes, expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, last_used_at = EXCLUDED.last_used_at`,
		c.UserID, c.Server, c.Kind, c.KeyID, c.Sealed, scopesArg(c.Scopes), nullTime(c.ExpiresAt), c.CreatedAt, c.UpdatedAt, nullTime(c.LastUsedAt))
	if err != nil {
		return fmt.Errorf("store the credential of %s for %s: %w", c.UserID, c.Server, dbError(err))
	}
	return nil
}

// UpdateCredential implements [Store.UpdateCredential]: the row is locked
// (SELECT ... FOR UPDATE) in a transaction that stays open while update
// runs, holding one of the pool's connections.
func (p *Postgres) UpdateCredential(ctx context.Context, userID, server string, update func(*switchboard.Credential) error) error {
	userID, server = clean(userID), clean(server)
	var updateErr error // update's own, returned as it is
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		c, err := scanCredential(tx.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE user_id = $1 AND server = $2 FOR UPDATE`,
			userID, server))
		if err != nil {
			return err
		}
		if updateErr = update(&c); updateErr != nil {
			return updateErr
		}
		c.UserID, c.Server = userID, server
		if updateErr = prepareCredential(&c, now()); updateErr != nil {
			return updateErr
		}
		_, err = tx.Exec(ctx, `UPDATE credentials SET kind = $3, key_id = $4, sealed = $5, scopes = $6, expires_at = $7,
    created_at = $8, updated_at = $9, last_used_at = $10
WHERE user_id = $1 AND server = $2`,
			c.UserID, c.Server, c.Kind, c.KeyID, c.Sealed, scopesArg(c.Scopes), nullTime(c.ExpiresAt), c.CreatedAt, c.UpdatedAt, nullTime(c.LastUsedAt))
		return err
	})
	if updateErr != nil {
		return updateErr
	}
	if err != nil {
		return fmt.Errorf("update the credential of %s for %s: %w", userID, server, dbError(err))
	}
	return nil
}

// DeleteCredential implements [Store.DeleteCredential].
func (p *Postgres) DeleteCredential(ctx context.Context, userID, server string) error {
	tag, err := p.pool.Exec(ctx, `DELETE FROM credentials WHERE user_id = $1 AND server = $2`, clean(userID), clean(server))
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return fmt.Errorf("delete the credential of %s for %s: %w", userID, server, dbError(err))
	}
	return nil
}

// ListCredentials implements [Store.ListCredentials].
func (p *Postgres) ListCredentials(ctx context.Context, userID string) ([]switchboard.Credential, error) {
	// COLLATE "C" orders by bytes, as Go compares strings.
	rows, err := p.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE $1 = '' OR user_id = $1
ORDER BY user_id COLLATE "C", server COLLATE "C"`, clean(userID))
	if err != nil {
		return nil, fmt.Errorf("list the credentials of %q: %w", userID, dbError(err))
	}
	creds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (switchboard.Credential, error) { return scanCredential(row) })
	if err != nil {
		return nil, fmt.Errorf("list the credentials of %q: %w", userID, dbError(err))
	}
	if creds == nil {
		creds = []switchboard.Credential{}
	}
	return creds, nil
}

const oauthStateColumns = `id, user_id, server, key_id, sealed, created_at, expires_at`

// PutOAuthState implements [Store.PutOAuthState].
func (p *Postgres) PutOAuthState(ctx context.Context, s switchboard.OAuthState) error {
	if err := prepareOAuthState(&s, now()); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO oauth_states (`+oauthStateColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		s.ID, s.UserID, s.Server, s.KeyID, s.Sealed, s.CreatedAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store oauth state %s: %w", s.ID, dbError(err))
	}
	return nil
}

// TakeOAuthState implements [Store.TakeOAuthState]: one DELETE ...
// RETURNING, of which a concurrent second waits for the first and then
// finds nothing.
func (p *Postgres) TakeOAuthState(ctx context.Context, id string) (switchboard.OAuthState, error) {
	var s switchboard.OAuthState
	err := p.pool.QueryRow(ctx, `DELETE FROM oauth_states WHERE id = $1 RETURNING `+oauthStateColumns, clean(id)).
		Scan(&s.ID, &s.UserID, &s.Server, &s.KeyID, &s.Sealed, &s.CreatedAt, &s.ExpiresAt)
	if err != nil {
		return switchboard.OAuthState{}, fmt.Errorf("take oauth state %s: %w", id, dbError(err))
	}
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	return s, nil
}

// PruneOAuthStates implements [Store.PruneOAuthStates].
func (p *Postgres) PruneOAuthStates(ctx context.Context, before time.Time) (int, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM oauth_states WHERE expires_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune oauth states: %w", dbError(err))
	}
	return int(tag.RowsAffected()), nil
}

const oauthClientColumns = `server, issuer, client_id, key_id, sealed, created_at`

func scanOAuthClient(row pgx.Row) (switchboard.OAuthClient, error) {
	var c switchboard.OAuthClient
	if err := row.Scan(&c.Server, &c.Issuer, &c.ClientID, &c.KeyID, &c.Sealed, &c.CreatedAt); err != nil {
		return switchboard.OAuthClient{}, err
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// GetOAuthClient implements [Store.GetOAuthClient].
func (p *Postgres) GetOAuthClient(ctx context.Context, server, issuer string) (switchboard.OAuthClient, error) {
	c, err := scanOAuthClient(p.pool.QueryRow(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients WHERE server = $1 AND issuer = $2`,
		clean(server), clean(issuer)))
	if err != nil {
		return switchboard.OAuthClient{}, fmt.Errorf("load the oauth client of %s at %s: %w", server, issuer, dbError(err))
	}
	return c, nil
}

// PutOAuthClient implements [Store.PutOAuthClient].
func (p *Postgres) PutOAuthClient(ctx context.Context, c switchboard.OAuthClient) error {
	if err := prepareOAuthClient(&c, now()); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO oauth_clients (`+oauthClientColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (server, issuer) DO UPDATE SET client_id = EXCLUDED.client_id, key_id = EXCLUDED.key_id,
    sealed = EXCLUDED.sealed, created_at = EXCLUDED.created_at`,
		c.Server, c.Issuer, c.ClientID, c.KeyID, c.Sealed, c.CreatedAt)
	if err != nil {
		return fmt.Errorf("store the oauth client of %s at %s: %w", c.Server, c.Issuer, dbError(err))
	}
	return nil
}

// ListOAuthClients implements [Store.ListOAuthClients].
func (p *Postgres) ListOAuthClients(ctx context.Context) ([]switchboard.OAuthClient, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+oauthClientColumns+` FROM oauth_clients ORDER BY server COLLATE "C", issuer COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list oauth clients: %w", dbError(err))
	}
	clients, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (switchboard.OAuthClient, error) { return scanOAuthClient(row) })
	if err != nil {
		return nil, fmt.Errorf("list oauth clients: %w", dbError(err))
	}
	if clients == nil {
		clients = []switchboard.OAuthClient{}
	}
	return clients, nil
}
