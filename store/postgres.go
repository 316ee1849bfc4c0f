package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/switchboard-dev/switchboard"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded SQL migrations, goose-annotated, that
// OpenPostgres and Migrate apply.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded: this cannot happen
	}
	return sub
}

// Postgres stores conversations, turns and the tool-call ledger in
// PostgreSQL, through a pgx connection pool. BeginTurn and SaveTurn each
// commit one transaction in one round trip (a pgx batch); a start in a
// conversation with a turn running or waiting, or a call awaiting an
// approval, takes a second (see BeginTurn). It is safe for
// concurrent use, also by several processes on one database. It implements
// [Store].
type Postgres struct {
	pool    *pgxpool.Pool
	history *historyCache // nil: off
	open    openTracker   // the turns with calls open on their rows
	// instance and boot name the holder of the leases this store takes
	// (see orphaned): Options.Instance, and an id new at every open.
	instance, boot string
}

// DefaultMaxConns is the least size of the connection pool. pgxpool's own
// default, the number of CPUs (at least 4), queues concurrent turns behind
// few connections while Postgres waits for disk flushes: a turn holds a
// connection for one round trip per commit, and a flush lets other
// connections' commits join it.
const DefaultMaxConns = 16

// Options configure OpenPostgres; nil means the defaults.
type Options struct {
	// Logger receives the migrations applied; nil discards them.
	Logger *slog.Logger
	// MaxConns caps the connection pool; 0 means the URL's pool_max_conns,
	// else DefaultMaxConns or the number of CPUs, whichever is greater.
	MaxConns int32
	// SkipMigrate skips migrating at open: for a database migrated by
	// Migrate over a direct connection, as is needed behind a
	// transaction-pooling proxy (Neon's pooled endpoint, PgBouncer), where
	// the migration lock cannot be held.
	SkipMigrate bool
	// Tracer, when set, makes a span of every query and batch.
	Tracer trace.Tracer
	// HistoryCacheBytes bounds the history windows kept in memory, per
	// conversation, so that a turn's start reads only the messages stored
	// since the last one's; 0 means DefaultHistoryCacheBytes, below 0 no
	// cache.
	HistoryCacheBytes int
	// Instance names this process among the instances sharing the
	// database, and stays the same when it starts again: the leases of the
	// turns it runs name it, and a boot id new at every OpenPostgres, so
	// that once restarted it knows the turns its earlier boots left
	// running for dead (RecoverTurns), and so does a new turn or a cancel
	// of their conversations through it. Two live processes must never
	// share it. Empty means an identity of this process alone: its turns
	// are known for dead only when their leases run out.
	Instance string
}

// OpenPostgres connects to the database at url (a postgres:// URL or a
// libpq key=value string; pgx's pool_* parameters apply), checks the
// connection and, unless opts.SkipMigrate, applies pending migrations as
// Migrate does. It returns an error wrapping switchboard.ErrInvalid if url
// does not parse, and one wrapping switchboard.ErrUnavailable if the database
// cannot be reached. Close the store when done.
func OpenPostgres(ctx context.Context, url string, opts *Options) (*Postgres, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w: %w", switchboard.ErrInvalid, err)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = max(DefaultMaxConns, int32(runtime.NumCPU()))
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "switchboard"
	}
	if opts.Tracer != nil {
		cfg.ConnConfig.Tracer = &queryTracer{tracer: opts.Tracer}
	}
	if !opts.SkipMigrate {
		if err := migrate(ctx, cfg.ConnConfig.Copy(), opts.Logger); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", dbError(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", dbError(err))
	}
	return &Postgres{pool: pool, history: newHistoryCache(opts.HistoryCacheBytes), instance: opts.Instance, boot: switchboard.NewID()}, nil
}

// PoolStats describes the connection pool, for metrics.
func (p *Postgres) PoolStats() switchboard.PoolStats {
	s := p.pool.Stat()
	return switchboard.PoolStats{Total: s.TotalConns(), Idle: s.IdleConns(), Acquired: s.AcquiredConns(), Max: s.MaxConns(),
		AcquireCount: s.AcquireCount(), EmptyAcquireCount: s.EmptyAcquireCount(), AcquireDuration: s.AcquireDuration()}
}

// Migrate applies the pending migrations to the database at url, under a
// Postgres advisory lock so that instances starting together take turns; it
// does nothing on an up-to-date database. It needs a session-level lock, so
// url must be a direct connection, not one through a transaction-pooling
// proxy. A database made with the seed quickstart's tables is adopted with
// its data. logger receives the migrations applied; nil discards them.
//
// It returns an error wrapping switchboard.ErrInvalid if url does not parse,
// and one wrapping switchboard.ErrUnavailable if the database cannot be
// reached.
func Migrate(ctx context.Context, url string, logger *slog.Logger) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w: %w", switchboard.ErrInvalid, err)
	}
	return migrate(ctx, cfg, logger)
}

func migrate(ctx context.Context, cfg *pgx.ConnConfig, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	// Poll the lock every second (goose's default is 5s), for up to 5 minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300), lock.WithUnlockTimeout(1, 60))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, Migrations(),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := provider.Up(ctx)
	for _, r := range results {
		logger.InfoContext(ctx, "applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", dbError(err))
	}
	return nil
}

// Close closes the connection pool, waiting for connections in use to be
// returned.
func (p *Postgres) Close() { p.pool.Close() }

// Ping checks that the database answers. It returns an error wrapping
// switchboard.ErrUnavailable if it does not.
func (p *Postgres) Ping(ctx context.Context) error {
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", dbError(err))
	}
	return nil
}

// dbError translates a pgx error into the root package's sentinels.
func dbError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return switchboard.ErrNotFound
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return fmt.Errorf("%w: %w", switchboard.ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "23505" && pgErr.ConstraintName == "turns_user_idempotency_key":
			return fmt.Errorf("%w: %w", errIdempotencyKey(), err)
		case code == "23505" && pgErr.ConstraintName == "turns_one_running":
			return fmt.Errorf("%w: %w", errTurnRunning(), err)
		case code == "23505" && pgErr.ConstraintName == "conversations_user_external":
			return fmt.Errorf("%w: %w", errExternalIDTaken(), err)
		case code == "40P01", code == "40001": // deadlock, serialization failure: nothing was stored
			return fmt.Errorf("%w: the database aborted a transaction that conflicted with another; try again: %w", switchboard.ErrUnavailable, err)
		case code == "23505": // unique_violation
			return fmt.Errorf("%w: %w", switchboard.ErrConflict, err)
		case code == "23503": // foreign_key_violation: what the row refers to is gone
			return fmt.Errorf("%w: %w", switchboard.ErrNotFound, err)
		case code == "23502", code == "23514", code[:2] == "22": // not null, check, data exception
			return fmt.Errorf("%w: %w", switchboard.ErrInvalid, err)
		case code[:2] == "08", code[:2] == "53", code == "57P01", code == "57P02", code == "57P03":
			// connection exception, insufficient resources, shutting down
			return fmt.Errorf("%w: %w", switchboard.ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	if errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: %w", switchboard.ErrUnavailable, err)
	}
	return err
}

// Nullable parameters and scans.

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullJSON(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

func fromTimestamptz(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}
