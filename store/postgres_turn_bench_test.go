//go:build linux

package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// BenchmarkTurnOnPostgres runs the store's part of the bench's turn
// (cmd/switchboard-bench: one tool call) — BeginTurn, the step's SaveTurn
// with the assistant's request and the started call, the end's with the
// finished call, its result and the answer — one turn after another over
// a single connection, round robin over 16 conversations of two users
// whose history is past the 50-message window. Besides the Go side's time
// per turn (ns/op, commit waits included) it reports what Postgres spent:
//
//   - pg-cpu-µs/turn: the CPU of the connection's backend (from
//     /proc/PID/stat: Postgres on this machine), every statement and
//     commit of the turn, what auto_explain cannot see (executor start-up,
//     locks, protocol) included;
//   - wal-B/turn: WAL written (pg_current_wal_lsn), which is the cluster's:
//     run it on a quiet one;
//   - go-cpu-µs/turn: the CPU of this process (getrusage: the store's Go
//     side, pgx, the garbage collector, the waits' scheduling), and B/op,
//     allocs/op: what it allocated. BenchmarkTurnOnMemory is the same turn
//     on the memory store, the path the Postgres one is to come close to.
//
// With pg_walinspect (Postgres's contrib, created in the test database) it
// logs what the turns' WAL was made of, per relation and record type.
//
// Unlike the bench's, these figures do not move with what else runs on
// the machine's two cores (only with the CPU's speed), so a change to the
// store's statements shows in them alone.
func BenchmarkTurnOnPostgres(b *testing.B) {
	ctx := context.Background()
	url := storetest.PostgresURL(b)
	p := openPostgres(b, url, &store.Options{SkipMigrate: true, MaxConns: 1, Instance: "bench"})
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	users := []string{"alice", "bob"}
	convs := make([]string, 16)
	for i := range convs {
		convs[i], _ = fillTurn(b, p, users[i%2], "", 0)
		for range 15 { // 4 messages a turn: past the 50-message window
			fillTurn(b, p, users[i%2], convs[i], 0)
		}
	}
	pid, err := store.BackendPID(ctx, p)
	if err != nil {
		b.Fatal(err)
	}
	_, inspectErr := admin.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`)
	cpu0, cpuErr := processCPU(pid)
	lsn0 := walLSN(b, admin)
	i := runTurns(b, p, users, convs)
	if inspectErr == nil {
		logWAL(b, admin, lsn0, i)
	} else {
		b.Logf("no WAL per relation (pg_walinspect: %v)", inspectErr)
	}
	if pid2, err := store.BackendPID(ctx, p); err != nil || pid2 != pid {
		b.Fatalf("the store's connection changed (backend %d, then %d, %v): its CPU cannot be read", pid, pid2, err)
	}
	reportBackend(b, admin, pid, cpu0, cpuErr, lsn0, i)
}

// logWAL logs, per turn of turns, the WAL records written since lsn0 by
// relation (table or index) and record type, the largest first: where a
// turn's WAL goes. The cluster's, as wal-B/turn.
func logWAL(b *testing.B, admin *pgx.Conn, lsn0 int64, turns int) {
	ctx := context.Background()
	rows, err := admin.Query(ctx, `
WITH r AS (
    SELECT resource_manager || ' ' || record_type AS kind, record_length AS len,
        substring(block_ref FROM 'rel \d+/\d+/(\d+)')::oid AS node
    FROM pg_get_wal_records_info(('0/0'::pg_lsn + $1::numeric), pg_current_wal_lsn()))
SELECT COALESCE(c.relname, '-'), kind, count(*)::float8 / $2, sum(len)::float8 / $2
FROM r LEFT JOIN pg_class c ON c.relfilenode = r.node
GROUP BY 1, 2 ORDER BY 4 DESC`, lsn0, turns)
	if err != nil {
		b.Logf("no WAL per relation: %v", err)
		return
	}
	type line struct {
		rel, kind      string
		records, bytes float64
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (l line, err error) {
		return l, row.Scan(&l.rel, &l.kind, &l.records, &l.bytes)
	})
	if err != nil {
		b.Logf("no WAL per relation: %v", err)
		return
	}
	var records, bytes float64
	for _, l := range lines {
		records, bytes = records+l.records, bytes+l.bytes
	}
	var out strings.Builder
	fmt.Fprintf(&out, "WAL per turn: %.1f records, %.0f bytes (records' length, full-page images included); by relation and record:\n", records, bytes)
	other := line{rel: "the rest"}
	for _, l := range lines {
		if l.bytes < bytes/100 {
			other.records, other.bytes = other.records+l.records, other.bytes+l.bytes
			continue
		}
		fmt.Fprintf(&out, "  %-28s %-24s %5.2f records %6.0f B\n", l.rel, l.kind, l.records, l.bytes)
	}
	fmt.Fprintf(&out, "  %-28s %-24s %5.2f records %6.0f B", other.rel, "", other.records, other.bytes)
	b.Log(out.String())
}

// BenchmarkTurnOnMemory is BenchmarkTurnOnPostgres's turn on the memory
// store: its go-cpu-µs/turn, B/op and allocs/op are what the Postgres
// path's are to be compared with.
func BenchmarkTurnOnMemory(b *testing.B) {
	m := store.OpenMemory(nil)
	users := []string{"alice", "bob"}
	convs := make([]string, 16)
	for i := range convs {
		convs[i], _ = fillTurn(b, m, users[i%2], "", 0)
		for range 15 {
			fillTurn(b, m, users[i%2], convs[i], 0)
		}
	}
	runTurns(b, m, users, convs)
}

// runTurns runs the benchmark's turns round robin over convs (of users in
// turn) and reports this process's CPU per turn; it returns the turns run.
func runTurns(b *testing.B, s turnWriter, users, convs []string) int {
	b.ReportAllocs()
	var r0, r1 syscall.Rusage
	rusageErr := syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	i := 0
	for b.Loop() {
		fillTurn(b, s, users[i%len(convs)%len(users)], convs[i%len(convs)], 0)
		i++
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r1); rusageErr == nil && err == nil && i > 0 {
		used := time.Duration(r1.Utime.Nano() - r0.Utime.Nano() + r1.Stime.Nano() - r0.Stime.Nano())
		b.ReportMetric(float64(used.Microseconds())/float64(i), "go-cpu-µs/turn")
	}
	return i
}

// reportBackend reports, per turn of turns, the WAL written since lsn0 and
// backend pid's CPU since cpu0 (read with cpuErr).
func reportBackend(b *testing.B, admin *pgx.Conn, pid int, cpu0 cpuTimes, cpuErr error, lsn0 int64, turns int) {
	b.ReportMetric(float64(walLSN(b, admin)-lsn0)/float64(turns), "wal-B/turn")
	if cpu1, err := processCPU(pid); cpuErr == nil && err == nil {
		b.ReportMetric(float64((cpu1.user-cpu0.user).Microseconds())/float64(turns), "pg-user-µs/turn")
		b.ReportMetric(float64((cpu1.system-cpu0.system).Microseconds())/float64(turns), "pg-sys-µs/turn")
	} else {
		b.Logf("the backend's CPU is not readable (Postgres on another machine?): %v %v", cpuErr, err)
	}
}

// cpuTimes is the CPU a process has used, in user mode and in the kernel.
type cpuTimes struct{ user, system time.Duration }

// processCPU reads a process's CPU times from /proc/PID/stat.
func processCPU(pid int) (cpuTimes, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return cpuTimes{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTimes{}, fmt.Errorf("/proc/%d/stat: %q %q", pid, fields[11], fields[12])
	}
	const tick = 10 * time.Millisecond // USER_HZ, 100 on Linux
	return cpuTimes{time.Duration(utime) * tick, time.Duration(stime) * tick}, nil
}

// walLSN returns the cluster's current WAL position, in bytes.
func walLSN(b *testing.B, conn *pgx.Conn) int64 {
	var lsn int64
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&lsn); err != nil {
		b.Fatal(err)
	}
	return lsn
}

// BenchmarkTransactionFloor is BenchmarkTurnOnPostgres's floor: per op,
// the three transactions of a turn with a one-row insert each into a
// table with only its primary key, sent as the store sends them (a pgx
// batch each, the first with the start's asynchronous commit, the other
// two waiting for the flush), over one connection. What it reports is
// what a turn's transactions cost Postgres before the turn's own writes:
//
//	go test ./store -run '^$' -bench 'TransactionFloor|TurnOnPostgres' -benchtime 4000x
func BenchmarkTransactionFloor(b *testing.B) {
	ctx := context.Background()
	url := storetest.PostgresURL(b)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE floor_bench (id bigserial PRIMARY KEY, v integer NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	send := func(async bool, v int) {
		batch := &pgx.Batch{}
		if async {
			batch.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		}
		batch.Queue(`INSERT INTO floor_bench (v) VALUES ($1)`, v)
		if err := conn.SendBatch(ctx, batch).Close(); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100 { // prepare the statements, as the store's connections have
		send(true, i)
	}
	cpu0, cpuErr := processCPU(pid)
	lsn0 := walLSN(b, admin)
	n := 0
	for b.Loop() {
		send(true, 1)
		send(false, 2)
		send(false, 3)
		n++
	}
	reportBackend(b, admin, pid, cpu0, cpuErr, lsn0, n)
}
