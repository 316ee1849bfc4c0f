package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/store"
)

// DefaultURL is the database PostgresURL uses when TEST_DATABASE_URL is not
// set: its server hosts the test databases.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// template is this process's migrated template database, made once.
var template struct {
	mu   sync.Mutex
	name string
	skip string // why Postgres cannot be used, once known
}

// PostgresURL returns the URL of a new database for t, migrated to the
// current schema: a clone of a template database that is built once per
// migration set and shared by test binaries. The database is dropped when t
// ends.
//
// The server is the one of TEST_DATABASE_URL (default DefaultURL), a
// postgres:// URL whose user may create databases. If it cannot be reached,
// t is skipped, or fails when the environment has CI=true.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := adminURL(t)
	return createDatabase(t, admin, templateName(t, admin))
}

// EmptyPostgresURL is like PostgresURL but the database is empty: no schema,
// for tests of migrations.
func EmptyPostgresURL(t testing.TB) string {
	t.Helper()
	admin := adminURL(t)
	return createDatabase(t, admin, "template0")
}

func adminURL(t testing.TB) *url.URL {
	t.Helper()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: TEST_DATABASE_URL must be a postgres:// URL, got %q", raw)
	}
	return u
}

func unreachable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// connect returns a connection to the admin database, or ends t if the
// server cannot be reached.
func connect(t testing.TB, ctx context.Context, admin *url.URL) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		reason := fmt.Sprintf("storetest: cannot reach Postgres at %s (set TEST_DATABASE_URL): %v", admin.Redacted(), err)
		template.mu.Lock()
		template.skip = reason
		template.mu.Unlock()
		unreachable(t, reason)
	}
	return conn
}

func withDatabase(u *url.URL, name string) string {
	c := *u
	c.Path = "/" + name
	return c.String()
}

// templateName returns the name of the migrated template database, building
// it if needed. Its name holds a hash of the migrations, so that changing
// them builds a new one; an advisory lock keeps concurrent test binaries
// from building it twice.
func templateName(t testing.TB, admin *url.URL) string {
	t.Helper()
	template.mu.Lock()
	name, skip := template.name, template.skip
	template.mu.Unlock()
	if skip != "" {
		unreachable(t, skip)
	}
	if name != "" {
		return name
	}

	sum, err := migrationsHash()
	if err != nil {
		t.Fatalf("storetest: hash migrations: %v", err)
	}
	name = "switchboard_template_" + hex.EncodeToString(sum[:8])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := connect(t, ctx, admin)
	defer conn.Close(ctx)
	lockID := int64(binary.BigEndian.Uint64(sum[8:16]))
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockID); err != nil {
		t.Fatalf("storetest: lock template %s: %v", name, err)
	}
	defer conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockID)

	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatalf("storetest: look for template %s: %v", name, err)
	}
	if !exists {
		// Build under another name and rename when done, so that a build
		// that dies half way is never used.
		build := name + "_build"
		for _, sql := range []string{
			`DROP DATABASE IF EXISTS ` + build + ` WITH (FORCE)`,
			`CREATE DATABASE ` + build + ` TEMPLATE template0`,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("storetest: build template: %s: %v", sql, err)
			}
		}
		if err := store.Migrate(ctx, withDatabase(admin, build), nil); err != nil {
			t.Fatalf("storetest: migrate template %s: %v", build, err)
		}
		for _, sql := range []string{
			`ALTER DATABASE ` + build + ` RENAME TO ` + name,
			`ALTER DATABASE ` + name + ` IS_TEMPLATE true`,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("storetest: build template: %s: %v", sql, err)
			}
		}
	}
	template.mu.Lock()
	template.name = name
	template.mu.Unlock()
	return name
}

func migrationsHash() ([sha256.Size]byte, error) {
	h := sha256.New()
	fsys := store.Migrations()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum, err
}

// createDatabase creates a database for t from the template and drops it
// when t ends.
func createDatabase(t testing.TB, admin *url.URL, template string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := connect(t, ctx, admin)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+template); err != nil {
		t.Fatalf("storetest: create database from %s: %v", template, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin.String())
		if err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}
