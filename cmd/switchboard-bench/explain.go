package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// With -explain, the bench's database loads auto_explain in every session
// (session_preload_libraries: pg_stat_statements would need the server's
// shared_preload_libraries and a restart) and logs every statement's plan
// with its buffers and WAL (EXPLAIN (ANALYZE, BUFFERS, WAL), timing off),
// nested statements (foreign-key checks) included. The bench reads what the
// server's log gained during a scenario and sums it per statement. Postgres
// runs slower with it: compare its figures with each other, not with runs
// without it.

// explainSettings are the bench database's settings with -explain.
var explainSettings = []string{
	"session_preload_libraries = 'auto_explain'",
	"auto_explain.log_min_duration = 0",
	"auto_explain.log_analyze = on",
	"auto_explain.log_buffers = on",
	"auto_explain.log_wal = on",
	"auto_explain.log_timing = off",
	"auto_explain.log_nested_statements = on",
	"auto_explain.log_format = json",
}

// enableExplain sets explainSettings on the bench's database: sessions
// opened from then on log their plans.
func (b *bench) enableExplain(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	u, _ := url.Parse(b.dbURL)
	name := strings.TrimPrefix(u.Path, "/")
	for _, s := range explainSettings {
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" SET "+s); err != nil {
			return fmt.Errorf("explain: %w", err)
		}
	}
	return nil
}

// logSize returns the size of the server's log, where a scenario's plans
// start.
func logSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("explain: the server's log: %w", err)
	}
	return fi.Size(), nil
}

// statementCost is what the plans logged of one statement add up to.
type statementCost struct {
	query                        string
	calls                        int
	micros                       float64
	hit, read, dirtied, written  int64
	walRecords, walFPI, walBytes int64
}

var planEntry = regexp.MustCompile(`@(\S+) LOG:  duration: ([0-9.]+) ms  plan:$`)

// readPlans sums, per statement, the plans the server's log at path gained
// from offset on for database db.
func readPlans(path string, offset int64, db string) ([]*statementCost, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	costs := map[string]*statementCost{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var (
		in     bool
		dur    float64
		buf    strings.Builder
		finish = func() {
			if !in {
				return
			}
			in = false
			var p struct {
				Query string         `json:"Query Text"`
				Plan  map[string]any `json:"Plan"`
			}
			if json.Unmarshal([]byte(buf.String()), &p) != nil {
				return
			}
			q := strings.Join(strings.Fields(p.Query), " ")
			c := costs[q]
			if c == nil {
				c = &statementCost{query: q}
				costs[q] = c
			}
			num := func(k string) int64 { v, _ := p.Plan[k].(float64); return int64(v) }
			c.calls++
			c.micros += dur * 1000
			c.hit += num("Shared Hit Blocks")
			c.read += num("Shared Read Blocks")
			c.dirtied += num("Shared Dirtied Blocks")
			c.written += num("Shared Written Blocks")
			c.walRecords += num("WAL Records")
			c.walFPI += num("WAL FPI")
			c.walBytes += num("WAL Bytes")
		}
	)
	for sc.Scan() {
		line := sc.Text()
		if in && strings.HasPrefix(line, "\t") {
			buf.WriteString(line)
			buf.WriteByte('\n')
			continue
		}
		finish()
		if m := planEntry.FindStringSubmatch(line); m != nil && m[1] == db {
			in, buf = true, strings.Builder{}
			dur, _ = strconv.ParseFloat(m[2], 64)
		}
	}
	finish()
	out := make([]*statementCost, 0, len(costs))
	for _, c := range costs {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *statementCost) int { return cmp.Compare(b.micros, a.micros) })
	return out, sc.Err()
}

// printPlans prints the statements' costs per turn of a scenario.
func printPlans(w io.Writer, title string, costs []*statementCost, turns int) {
	if turns == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s: per statement (auto_explain: EXPLAIN (ANALYZE, BUFFERS, WAL), timing off), over %d turns\n\n", title, turns)
	fmt.Fprintln(w, "| statement | calls/turn | µs/call | buffers hit/call | dirtied/call | WAL records/call | WAL bytes/call | FPI/call |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	var total statementCost
	for _, c := range costs {
		n := float64(c.calls)
		q := c.query
		if len(q) > 110 {
			q = q[:110] + "…"
		}
		fmt.Fprintf(w, "| `%s` | %.2f | %.0f | %.1f | %.1f | %.1f | %.0f | %.2f |\n", strings.ReplaceAll(q, "|", "\\|"),
			n/float64(turns), c.micros/n, float64(c.hit+c.read)/n, float64(c.dirtied)/n,
			float64(c.walRecords)/n, float64(c.walBytes)/n, float64(c.walFPI)/n)
		total.calls += c.calls
		total.micros += c.micros
		total.walRecords += c.walRecords
		total.walBytes += c.walBytes
		total.hit += c.hit + c.read
	}
	t := float64(turns)
	fmt.Fprintf(w, "| **per turn** | %.1f statements | %.0f µs | %.0f buffers | | %.1f records | %.0f bytes | |\n",
		float64(total.calls)/t, total.micros/t, float64(total.hit)/t, float64(total.walRecords)/t, float64(total.walBytes)/t)
}
