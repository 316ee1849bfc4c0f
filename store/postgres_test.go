package store_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

func openPostgres(t testing.TB, url string, opts *store.Options) *store.Postgres {
	t.Helper()
	p, err := store.OpenPostgres(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("OpenPostgres: got error %v, want none", err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openPostgres(t, storetest.PostgresURL(t), &store.Options{SkipMigrate: true, MaxConns: 4})
	})
}

// postgresInstances are stores on one database as several instances.
type postgresInstances struct{ url string }

func (in postgresInstances) Open(t *testing.T, id string) storetest.Store {
	return openPostgres(t, in.url, &store.Options{SkipMigrate: true, MaxConns: 2, Instance: id})
}

func (in postgresInstances) ExpireLeases(t *testing.T) {
	conn, err := pgx.Connect(t.Context(), in.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE turns SET lease_until = now() - interval '1 second' WHERE status = 'running'`); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresInstances(t *testing.T) {
	storetest.RunInstances(t, func(t *testing.T) storetest.Instances { return postgresInstances{storetest.PostgresURL(t)} })
}

// schemaVersion returns the version goose recorded as applied.
// latestVersion is the number of the last embedded migration.
func latestVersion(t *testing.T) int64 {
	entries, err := fs.ReadDir(store.Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var latest int64
	for _, e := range entries {
		var v int64
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

func schemaVersion(t *testing.T, url string) int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var v int64
	if err := conn.QueryRow(t.Context(), `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

func TestPoolSize(t *testing.T) {
	url := storetest.PostgresURL(t)
	for _, tc := range []struct {
		name string
		url  string
		opts *store.Options
		want int32
	}{
		{"default", url, nil, max(store.DefaultMaxConns, int32(runtime.NumCPU()))},
		{"from the URL", url + "&pool_max_conns=3", nil, 3},
		{"from the options", url + "&pool_max_conns=3", &store.Options{MaxConns: 5, SkipMigrate: true}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg, err := store.OpenPostgres(t.Context(), tc.url, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer pg.Close()
			if got := pg.PoolStats().Max; got != tc.want {
				t.Errorf("pool size: got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMigrateIdempotent(t *testing.T) {
	url := storetest.EmptyPostgresURL(t)
	for i := range 2 {
		if err := store.Migrate(t.Context(), url, nil); err != nil {
			t.Fatalf("Migrate, time %d: got error %v, want none", i+1, err)
		}
	}
	if got, want := schemaVersion(t, url), latestVersion(t); got != want {
		t.Errorf("schema version: got %d, want %d", got, want)
	}
	p := openPostgres(t, url, nil) // migrates a third time
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "hi"}}
	if _, err := p.BeginTurn(t.Context(), &ts); err != nil {
		t.Errorf("BeginTurn on the migrated database: got error %v, want none", err)
	}
}

func TestOpenPostgresConcurrently(t *testing.T) {
	url := storetest.EmptyPostgresURL(t)
	const n = 3
	var wg sync.WaitGroup
	stores := make([]*store.Postgres, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = store.OpenPostgres(t.Context(), url, &store.Options{MaxConns: 2}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("OpenPostgres %d: got error %v, want none", i, err)
			continue
		}
		t.Cleanup(stores[i].Close)
		if err := stores[i].Ping(t.Context()); err != nil {
			t.Errorf("Ping %d: got error %v, want none", i, err)
		}
	}
	if got, want := schemaVersion(t, url), latestVersion(t); got != want {
		t.Errorf("schema version: got %d, want %d", got, want)
	}
}

// TestMigrateAdoptsSeed migrates a database made with the seed quickstart's
// statements and reads its rows back.
func TestMigrateAdoptsSeed(t *testing.T) {
	url := storetest.EmptyPostgresURL(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	const conversation = "0b7c5a3e-8d2f-4f6a-9c1e-2d3b4a5c6d7e"
	for _, sql := range []string{
		`CREATE TABLE conversations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id VARCHAR(255) NOT NULL,
    title VARCHAR(255),
    status VARCHAR(50) DEFAULT 'active',
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
)`,
		`CREATE TABLE messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id UUID REFERENCES conversations(id),
    role VARCHAR(20) NOT NULL,
    content TEXT NOT NULL,
    message_type VARCHAR(50) DEFAULT 'text',
    timestamp TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    metadata JSONB
)`,
		`INSERT INTO conversations (id, user_id) VALUES ('` + conversation + `', 'alice')`,
		`INSERT INTO messages (conversation_id, role, content) VALUES ('` + conversation + `', 'user', 'from the seed')`,
		`INSERT INTO messages (conversation_id, role, content, metadata) VALUES ('` + conversation + `', 'assistant', 'hello', '{"tool_calls": 3}')`,
	} {
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("seed: %s: %v", sql, err)
		}
	}
	p := openPostgres(t, url, nil)
	ts := switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: conversation},
		Turn:         switchboard.Turn{UserID: "alice"},
		UserMessage:  switchboard.Message{Content: "from switchboard"},
	}
	history, err := p.BeginTurn(t.Context(), &ts)
	if err != nil {
		t.Fatalf("BeginTurn in the seed's conversation: got error %v, want none", err)
	}
	var contents []string
	for _, m := range history {
		contents = append(contents, m.Content)
	}
	if len(contents) != 3 || contents[0] != "from the seed" || contents[2] != "from switchboard" {
		t.Errorf("history: got %q, want the seed's two messages, then ours", contents)
	}
	if err := p.DeleteConversation(t.Context(), "alice", conversation); err != nil {
		t.Errorf("DeleteConversation of the seed's conversation: got error %v, want none (cascading)", err)
	}
}

func TestPostgresUnavailable(t *testing.T) {
	const url = "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=5"
	if _, err := store.OpenPostgres(t.Context(), url, nil); !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("OpenPostgres of a closed port: got error %v, want %v", err, switchboard.ErrUnavailable)
	}
	if _, err := store.OpenPostgres(t.Context(), url, &store.Options{SkipMigrate: true}); !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("OpenPostgres of a closed port without migrating: got error %v, want %v", err, switchboard.ErrUnavailable)
	}
	if err := store.Migrate(t.Context(), url, nil); !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("Migrate of a closed port: got error %v, want %v", err, switchboard.ErrUnavailable)
	}
	if _, err := store.OpenPostgres(t.Context(), "postgres://[::1", nil); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("OpenPostgres of a malformed URL: got error %v, want %v", err, switchboard.ErrInvalid)
	}

	p := openPostgres(t, storetest.PostgresURL(t), &store.Options{SkipMigrate: true})
	p.Close()
	if _, err := p.GetConversation(t.Context(), "alice", switchboard.NewID()); !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("GetConversation on a closed store: got error %v, want %v", err, switchboard.ErrUnavailable)
	}
}

// TestAbandonedTurn: a running turn whose lease ran out (its instance died)
// is failed by the next turn of its conversation.
func TestAbandonedTurn(t *testing.T) {
	url := storetest.PostgresURL(t)
	pg, err := store.OpenPostgres(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	first := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "one"}}
	if _, err := pg.BeginTurn(t.Context(), &first); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE turns SET lease_until = now() - interval '1 second' WHERE id = $1`, first.Turn.ID); err != nil {
		t.Fatal(err)
	}
	second := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: first.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "two"}}
	if _, err := pg.BeginTurn(t.Context(), &second); err != nil {
		t.Fatalf("a turn after an abandoned one: %v", err)
	}
	got, err := pg.GetTurn(t.Context(), "alice", first.Turn.ID)
	if err != nil || got.Status != switchboard.TurnFailed || got.Error == "" || got.FinishedAt.IsZero() {
		t.Errorf("abandoned turn: got %+v, %v; want failed", got, err)
	}
}

// TestPooledModes: behind a transaction-pooling proxy (PgBouncer, Neon's
// pooled endpoint) prepared statements cannot be cached per connection; the
// store works with pgx's exec and simple-protocol modes, set in the URL.
func TestPooledModes(t *testing.T) {
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Store {
				pg, err := store.OpenPostgres(t.Context(), storetest.PostgresURL(t)+"&default_query_exec_mode="+mode, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pg.Close)
				return pg
			})
		})
	}
}

// TestBeginTurnAsyncCommitStaysInItsTransaction checks that BeginTurn's
// commit without waiting for the flush does not leak to the connection:
// the next transaction on it (a SaveTurn, say) waits for its flush again.
func TestBeginTurnAsyncCommitStaysInItsTransaction(t *testing.T) {
	p := openPostgres(t, storetest.PostgresURL(t), &store.Options{SkipMigrate: true, MaxConns: 1})
	before, err := store.SynchronousCommit(p)
	if err != nil || before == "off" {
		t.Fatalf("synchronous_commit of the pool's one connection: got %q, %v, want a setting that waits", before, err)
	}
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "hello"}}
	if _, err := p.BeginTurn(t.Context(), &ts); err != nil {
		t.Fatalf("BeginTurn: got error %v, want none", err)
	}
	got, err := store.SynchronousCommit(p)
	if err != nil || got != before {
		t.Errorf("synchronous_commit on the pool's one connection after BeginTurn: got %q, %v, want %q as before", got, err, before)
	}
}

// TestListenCancels: a cancel requested through one store reaches a
// listener on the same database, which keeps listening after its
// connection is killed.
func TestListenCancels(t *testing.T) {
	url := storetest.PostgresURL(t)
	p := openPostgres(t, url, &store.Options{SkipMigrate: true, MaxConns: 2})
	heard := make(chan string, 4)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { store.ListenCancels(ctx, url, slog.New(slog.DiscardHandler), func(id string) { heard <- id }) })
	defer wg.Wait()
	defer cancel()

	var earlier []string // turns asked before: their repeated requests may still arrive
	request := func(what string) {
		t.Helper()
		ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: what}}
		if _, err := p.BeginTurn(t.Context(), &ts); err != nil {
			t.Fatal(err)
		}
		// The listener may not be listening yet: ask until it hears.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if _, _, err := p.RequestCancel(t.Context(), "alice", ts.Conversation.ID); err != nil {
				t.Fatalf("RequestCancel: got error %v, want none", err)
			}
			select {
			case id := <-heard:
				if id == ts.Turn.ID {
					earlier = append(earlier, id)
					return
				}
				if !slices.Contains(earlier, id) {
					t.Fatalf("%s: heard %s, want %s", what, id, ts.Turn.ID)
				}
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the listener never heard the cancel", what)
			}
		}
	}
	request("first")
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'switchboard cancel listener' AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating the listener's connection: %d, %v", killed, err)
	}
	request("after the listener's connection was killed")
}
