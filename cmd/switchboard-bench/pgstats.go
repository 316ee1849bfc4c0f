package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgSnapshot is what Postgres has done so far: its WAL (pg_stat_wal, the
// whole cluster's: other databases' writes count too), and the CPU time
// of the backends serving the bench's database, by pid.
type pgSnapshot struct {
	walRecords, walFPI, walBytes, walSyncs int64
	backends                               map[int]time.Duration
}

// pgSnapshot reads Postgres's WAL counters and the CPU time of the backends
// connected to the bench's database.
func (b *bench) pgSnapshot(ctx context.Context) (pgSnapshot, error) {
	s := pgSnapshot{backends: map[int]time.Duration{}}
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return s, err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT wal_records, wal_fpi, wal_bytes::bigint, wal_sync FROM pg_stat_wal`).
		Scan(&s.walRecords, &s.walFPI, &s.walBytes, &s.walSyncs); err != nil {
		return s, fmt.Errorf("read pg_stat_wal: %w", err)
	}
	u, _ := url.Parse(b.dbURL)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return s, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return s, err
	}
	for _, pid := range pids {
		if d, ok := processCPU(int(pid)); ok {
			s.backends[int(pid)] = d
		}
	}
	return s, nil
}

// pgUse is what Postgres did between two snapshots.
type pgUse struct {
	walRecords, walFPI, walBytes, walSyncs int64
	dbCPU                                  time.Duration // the bench's database's backends
}

func (s pgSnapshot) sub(s0 pgSnapshot) pgUse {
	u := pgUse{walRecords: s.walRecords - s0.walRecords, walFPI: s.walFPI - s0.walFPI,
		walBytes: s.walBytes - s0.walBytes, walSyncs: s.walSyncs - s0.walSyncs}
	for pid, d := range s.backends {
		u.dbCPU += d - s0.backends[pid] // a backend started since counts whole
	}
	return u
}

// processCPU reads the CPU time (user and system) of a process.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	line := string(b)
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(line[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick, true
}
