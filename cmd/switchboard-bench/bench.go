package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
)

// config is the bench's flags.
type config struct {
	duration, warmup time.Duration
	rate             float64
	concurrency      int
	inflight         int
	inflightLatency  time.Duration
	long             int
	modelLatency     time.Duration
	toolCalls        int
	stream           bool
	transport        string
	stores           []string
	scenarios        []string
	databaseURL      string
	profileDir       string
	maxConns         int
	users            int
	scope            string
	memoryMaxBytes   int64
	memoryLimit      int64
	explain          bool
	pgLog            string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("switchboard-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long each scenario is measured")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "load sent before each measurement, not counted")
	fs.Float64Var(&c.rate, "rate", 100, "turns per second of the open-loop scenario")
	fs.IntVar(&c.concurrency, "concurrency", 64, "clients of the closed-loop scenario")
	fs.IntVar(&c.inflight, "inflight", 500, "clients of the in-flight scenario")
	fs.DurationVar(&c.inflightLatency, "inflight-model-latency", time.Second, "the model's latency in the in-flight scenario")
	fs.IntVar(&c.long, "long", 1000, "turns of the long-conversation scenario")
	fs.DurationVar(&c.modelLatency, "model-latency", 0, "the model's latency per call (other scenarios)")
	fs.IntVar(&c.toolCalls, "tools", 1, "tool calls the model asks for in a turn (in one step)")
	fs.BoolVar(&c.stream, "stream", false, "stream turns (the AI SDK UI message stream; the model streams too)")
	fs.StringVar(&c.transport, "transport", "stdio", "how the service reaches the MCP echo server: stdio or http")
	storeList := fs.String("store", "memory,postgres", "stores to measure, comma-separated: memory, postgres")
	scenarioList := fs.String("scenarios", "open,closed,inflight,long", "scenarios, comma-separated: open, closed, inflight, long, sessions (each user's first turn, which starts their session, then a closed loop)")
	def := os.Getenv("TEST_DATABASE_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	fs.StringVar(&c.databaseURL, "database-url", def, "a Postgres database the bench may create another database from")
	fs.StringVar(&c.profileDir, "profile", "", "write the service's CPU and allocation profiles of each scenario to `DIR`")
	fs.IntVar(&c.maxConns, "max-conns", 0, "the service's Postgres pool size; 0: the store's default")
	fs.IntVar(&c.users, "users", 64, "users the conversations belong to")
	fs.Int64Var(&c.memoryMaxBytes, "memory-max-bytes", 0, "the memory store's bound (memory_store.max_bytes); 0: its default, 256 MiB; below 0: none")
	fs.Int64Var(&c.memoryLimit, "memory-limit", 0, "the service's soft memory limit (memory_limit, debug.SetMemoryLimit), bytes; 0: none")
	fs.BoolVar(&c.explain, "explain", false, "log every statement's plan with buffers and WAL (auto_explain) and print their sums per statement (Postgres is slower meanwhile)")
	fs.StringVar(&c.pgLog, "pg-log", "/var/log/postgresql/postgresql-15-main.log", "the Postgres server's log, which -explain reads")
	fs.StringVar(&c.scope, "scope", "shared", "the echo server's scope: shared (one session for all), user (one per user) or conversation")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.stores = strings.Split(*storeList, ",")
	c.scenarios = strings.Split(*scenarioList, ",")
	for _, s := range c.stores {
		if s != "memory" && s != "postgres" {
			return nil, fmt.Errorf("unknown store %q", s)
		}
	}
	for _, s := range c.scenarios {
		if s != "open" && s != "closed" && s != "inflight" && s != "long" && s != "sessions" {
			return nil, fmt.Errorf("unknown scenario %q", s)
		}
	}
	if c.transport != "stdio" && c.transport != "http" {
		return nil, fmt.Errorf("unknown transport %q", c.transport)
	}
	if c.scope != "shared" && c.scope != "user" && c.scope != "conversation" {
		return nil, fmt.Errorf("unknown scope %q", c.scope)
	}
	if c.toolCalls < 0 || c.users < 1 || c.rate <= 0 || c.concurrency < 1 || c.inflight < 1 || c.long < 1 {
		return nil, errors.New("-tools, -users, -rate, -concurrency, -inflight and -long must be positive")
	}
	return c, nil
}

// bench is one run: the peers it started and the rows it measured.
type bench struct {
	cfg        *config
	stderr     io.Writer
	model      *llmtest.Server
	modelDelay atomic.Int64
	echo       *echoHTTP
	secret     string
	tokens     []string
	dbURL      string // the bench's own database
	adminURL   string
	tmp        string
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, stderr: stderr}
	b.tmp, err = os.MkdirTemp("", "switchboard-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	b.model = llmtest.NewServerWithOptions(b.respond, &llmtest.Options{Forget: true, Skim: true})
	defer b.model.Close()
	if cfg.transport == "http" {
		if b.echo, err = startEchoHTTP(); err != nil {
			return err
		}
		defer b.echo.Close()
	}
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i*7 + 3)
	}
	b.secret = hex.EncodeToString(secret)
	for i := range cfg.users {
		tok, err := auth.MintToken([]byte(b.secret), fmt.Sprintf("bench-%d", i), 24*time.Hour, false, "", "")
		if err != nil {
			return err
		}
		b.tokens = append(b.tokens, tok)
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}
	pgInfo := ""
	if contains(cfg.stores, "postgres") {
		drop, info, err := b.createDatabase(ctx)
		if err != nil {
			return err
		}
		defer drop()
		pgInfo = info
	}

	fmt.Fprintln(stdout, describeMachine(cfg, pgInfo))
	var rows []row
	for _, st := range cfg.stores {
		for _, sc := range cfg.scenarios {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := b.measure(ctx, st, sc)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", st, sc, err)
			}
			fmt.Fprintf(stderr, "done: %s %s: %.0f turns/s\n", st, r.scenario, r.rate)
			rows = append(rows, r)
		}
	}
	printTable(stdout, rows)
	for _, r := range rows {
		if r.plans != nil {
			printPlans(stdout, r.store+", "+r.scenario, r.plans, r.turns+r.errors)
		}
	}
	return nil
}

// respond is the scripted model: a step asking for the echo tool, then,
// once it has the results, a text answer.
func (b *bench) respond(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
	delay := time.Duration(b.modelDelay.Load())
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == openai.ChatMessageRoleTool || b.cfg.toolCalls == 0 {
		return llmtest.Reply{Text: "Done: the echo answered.", Delay: delay, PromptTokens: 40, CompletionTokens: 6}
	}
	calls := make([]llmtest.Call, b.cfg.toolCalls)
	for i := range calls {
		calls[i] = llmtest.Call{Name: echoTool, Arguments: fmt.Sprintf(`{"text": "hello %d"}`, i)}
	}
	return llmtest.Reply{ToolCalls: calls, Delay: delay, PromptTokens: 30, CompletionTokens: 10}
}

// createDatabase creates the bench's own database (durable commits:
// synchronous_commit on) and migrates it; drop removes it.
func (b *bench) createDatabase(ctx context.Context) (drop func(), info string, err error) {
	u, err := url.Parse(b.cfg.databaseURL)
	if err != nil {
		return nil, "", fmt.Errorf("database url: %w", err)
	}
	b.adminURL = b.cfg.databaseURL
	name := fmt.Sprintf("switchboard_bench_%d", os.Getpid())
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return nil, "", fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, "", err
	}
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, b.adminURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" SET synchronous_commit = on"); err != nil {
		drop()
		return nil, "", err
	}
	u.Path = "/" + name
	b.dbURL = u.String()
	if err := store.Migrate(ctx, b.dbURL, nil); err != nil {
		drop()
		return nil, "", err
	}
	if b.cfg.explain {
		if err := b.enableExplain(ctx); err != nil {
			drop()
			return nil, "", err
		}
	}
	var fsync, version string
	_ = conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('server_version')").Scan(&fsync, &version)
	info = fmt.Sprintf("PostgreSQL %s on this machine, fsync=%s, synchronous_commit=on", version, fsync)
	floor, err := commitFloor(ctx, b.dbURL, b.cfg.rate)
	if err != nil {
		drop()
		return nil, "", fmt.Errorf("measure a commit: %w", err)
	}
	return drop, info + "\n" + floor, nil
}

// commitFloor measures, from Go, what the Postgres overhead target is
// relative to: a round trip and a durable one-row commit, each p50 of 100
// sent at the open loop's rate (an idle machine between them, as in that
// scenario: waking Postgres costs more than the work).
func commitFloor(ctx context.Context, dbURL string, rate float64) (string, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// In the bench's database, dropped with it.
	if _, err := conn.Exec(ctx, "CREATE TABLE bench_commit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)"); err != nil {
		return "", err
	}
	gap := time.Duration(float64(time.Second) / rate)
	p50 := func(sql string) (time.Duration, error) {
		d := make([]time.Duration, 100)
		for i := range d {
			time.Sleep(gap)
			start := time.Now()
			if _, err := conn.Exec(ctx, sql); err != nil {
				return 0, err
			}
			d[i] = time.Since(start)
		}
		slices.Sort(d)
		return d[len(d)/2], nil
	}
	trip, err := p50("SELECT 1")
	if err != nil {
		return "", err
	}
	commit, err := p50("INSERT INTO bench_commit (v) VALUES ('x')")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("from Go at %.0f/s: a round trip p50 %s, a durable one-row commit p50 %s; the Postgres overhead target (one commit + 1 ms) is %s",
		rate, ms(trip), ms(commit), ms(commit+time.Millisecond)), nil
}

// xactCommits reads the committed transactions of the bench's database.
func (b *bench) xactCommits(ctx context.Context) (int64, error) {
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	u, _ := url.Parse(b.dbURL)
	var n int64
	err = conn.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", strings.TrimPrefix(u.Path, "/")).Scan(&n)
	return n, err
}

// row is one line of the table.
type row struct {
	scenario, store                string
	turns, errors                  int
	rate                           float64
	p50, p95, p99                  time.Duration
	model, tools                   time.Duration // p50s
	oursP50, oursP99, storeP50     time.Duration
	seenP50                        time.Duration
	roundTrips, commits, pgCommits float64
	cpu                            cpuSnapshot // per turn
	// Per turn: the WAL Postgres wrote (bytes, records, full-page
	// images, flushes: the cluster's) and the CPU of the backends of the
	// bench's database.
	walBytes, walRecords, walFPI, walSyncs float64
	pgDBCPU                                time.Duration
	plans                                  []*statementCost // with -explain
	peakRSSKB                              int64
	goroutinesBefore, after                int
	note, storeNote                        string
}

// measure runs one scenario on a fresh service.
func (b *bench) measure(ctx context.Context, storeKind, scenario string) (row, error) {
	cfg := b.cfg
	r := row{store: storeKind}
	delay := cfg.modelLatency
	if scenario == "inflight" {
		delay = cfg.inflightLatency
	}
	b.modelDelay.Store(int64(delay))
	switch scenario {
	case "open":
		r.scenario = fmt.Sprintf("open loop %g/s", cfg.rate)
	case "closed":
		r.scenario = fmt.Sprintf("closed loop %d clients", cfg.concurrency)
	case "inflight":
		r.scenario = fmt.Sprintf("%d in flight, model %s", cfg.inflight, delay)
	case "long":
		r.scenario = fmt.Sprintf("1 conversation, %d turns", cfg.long)
	case "sessions":
		r.scenario = fmt.Sprintf("%d users' first turns, then %d clients", cfg.users, cfg.concurrency)
	}
	r.scenario += ", scope " + cfg.scope
	if delay > 0 && scenario != "inflight" {
		r.scenario += fmt.Sprintf(", model %s", delay)
	}

	args := []string{"-store", storeKind, "-model-url", b.model.URL, "-secret", b.secret, "-scope", cfg.scope, "-max-sessions", fmt.Sprint(cfg.users)}
	if storeKind == "postgres" {
		args = append(args, "-database-url", b.dbURL, "-max-conns", fmt.Sprint(cfg.maxConns))
	} else {
		args = append(args, "-memory-max-bytes", fmt.Sprint(cfg.memoryMaxBytes))
	}
	if cfg.memoryLimit > 0 {
		args = append(args, "-memory-limit", fmt.Sprint(cfg.memoryLimit))
	}
	if b.echo != nil {
		args = append(args, "-echo-url", b.echo.URL)
	}
	var xactBefore int64
	if storeKind == "postgres" {
		var err error
		if xactBefore, err = b.xactCommits(ctx); err != nil {
			return r, err
		}
	}
	logPath := filepath.Join(b.tmp, storeKind+"-"+scenario+".log")
	svc, err := startChild(ctx, args, logPath)
	if err != nil {
		return r, err
	}
	stopped := false
	defer func() {
		if !stopped {
			svc.Stop()
		}
	}()
	d := newDriver(svc.URL, b.tokens, cfg.stream)
	if err := d.waitReady(ctx); err != nil {
		return r, fmt.Errorf("%w; its log: %s", err, tail(logPath))
	}
	if r.goroutinesBefore, err = svc.settledGoroutines(ctx, d.client); err != nil {
		return r, err
	}

	run := func(dur time.Duration) ([]sample, time.Duration) {
		switch scenario {
		case "open":
			return d.openLoop(ctx, cfg.rate, dur)
		case "closed":
			return d.closedLoop(ctx, cfg.concurrency, dur)
		case "inflight":
			return d.closedLoop(ctx, cfg.inflight, dur)
		case "sessions":
			return d.closedLoop(ctx, cfg.concurrency, dur)
		}
		return d.sequence(ctx, cfg.long)
	}
	var cold []sample
	switch {
	case scenario == "sessions":
		// Each user's first turn starts their session (scope user); no
		// warm-up, which would start them.
		cold = d.firstTurns(ctx, cfg.users, cfg.concurrency)
	case scenario != "long" && cfg.warmup > 0:
		run(cfg.warmup)
	case scenario == "long":
		d.sequence(ctx, 20) // another conversation: prepares statements, warms caches
	}
	d.peak.Store(0)
	before, err := svc.stats(ctx)
	if err != nil {
		return r, err
	}
	var profiles sync.WaitGroup
	if cfg.profileDir != "" && scenario != "long" {
		secs := max(int(cfg.duration.Seconds())-1, 1)
		profiles.Go(func() {
			file := filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s.cpu.pprof", storeKind, scenario))
			if err := svc.fetch(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), file); err != nil {
				fmt.Fprintln(b.stderr, "cpu profile:", err)
			}
		})
	}
	if cfg.profileDir != "" && scenario != "long" {
		// The bench's own profile: load generator, model server, HTTP echo.
		f, err := os.Create(filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s.bench-cpu.pprof", storeKind, scenario)))
		if err != nil {
			return r, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return r, err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var pg0 pgSnapshot
	var logAt int64
	if storeKind == "postgres" {
		if pg0, err = b.pgSnapshot(ctx); err != nil {
			return r, err
		}
		if cfg.explain {
			if logAt, err = logSize(cfg.pgLog); err != nil {
				return r, err
			}
		}
	}
	// In the in-flight scenario, where the memory is, read every 250 ms:
	// the reading at the highest RSS says what the peak consists of. Only
	// readings with 90% of the clients' turns in flight count: at the end,
	// with the clients gone, the RSS stays where it was while the
	// goroutines and the live heap it is made of went.
	var highest serviceStats
	var sampling sync.WaitGroup
	sampleCtx, stopSampling := context.WithCancel(ctx)
	if scenario == "inflight" {
		sampling.Go(func() {
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-sampleCtx.Done():
					return
				case <-tick.C:
				}
				full := d.inflight.Load() >= int64(cfg.inflight)*9/10
				if s, err := svc.stats(sampleCtx); err == nil && full && s.RSSKB > highest.RSSKB {
					highest = s
				}
			}
		})
	}
	cpu0, m0 := readCPU(svc.cmd.Process.Pid), readMachineCPU()
	samples, elapsed := run(cfg.duration)
	stopSampling()
	sampling.Wait()
	cpu, m1 := readCPU(svc.cmd.Process.Pid).sub(cpu0), readMachineCPU()
	var pgUsed pgUse
	if storeKind == "postgres" {
		pg1, err := b.pgSnapshot(ctx)
		if err != nil {
			return r, err
		}
		pgUsed = pg1.sub(pg0)
		if cfg.explain {
			u, _ := url.Parse(b.dbURL)
			if r.plans, err = readPlans(cfg.pgLog, logAt, strings.TrimPrefix(u.Path, "/")); err != nil {
				return r, fmt.Errorf("explain: %w", err)
			}
		}
	}
	if storeKind == "memory" {
		cpu.postgres = 0 // autovacuum of other databases, not the run's
	}
	usage := cores(cpu, m0, m1, elapsed)
	profiles.Wait()
	after, err := svc.stats(ctx)
	if err != nil {
		return r, err
	}
	if cfg.profileDir != "" && scenario != "long" {
		file := filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s.allocs.pprof", storeKind, scenario))
		if err := svc.fetch(ctx, "/debug/pprof/allocs", file); err != nil {
			fmt.Fprintln(b.stderr, "allocs profile:", err)
		}
	}
	if r.after, err = svc.settledGoroutines(ctx, d.client); err != nil {
		return r, err
	}
	if last, err := svc.stats(ctx); err == nil {
		r.peakRSSKB = last.PeakRSSKB
		if storeKind == "memory" {
			r.storeNote = fmt.Sprintf("; the store keeps %.0f MB, %d conversations evicted", float64(last.StoreBytes)/1e6, last.Evicted)
		}
	}
	processes := len(descendants(svc.cmd.Process.Pid))
	svc.Stop()
	stopped = true
	if storeKind == "postgres" {
		// A backend reports its transactions when its connection ends at
		// the latest: the service has stopped.
		time.Sleep(500 * time.Millisecond)
		if xactAfter, err := b.xactCommits(ctx); err == nil {
			r.pgCommits = float64(xactAfter-xactBefore) / float64(d.sent.Load())
		}
	}

	var lat, ours, st, model, tools, seen []time.Duration
	var firstErr error
	for _, s := range samples {
		if s.err != nil {
			r.errors++
			if firstErr == nil {
				firstErr = s.err
			}
			continue
		}
		lat = append(lat, s.latency)
		ours = append(ours, s.ours())
		st = append(st, s.store)
		model = append(model, s.model)
		tools = append(tools, s.tools)
		seen = append(seen, s.seen())
	}
	if firstErr != nil {
		fmt.Fprintf(b.stderr, "%s %s: %d errors, the first: %v\n", storeKind, r.scenario, r.errors, firstErr)
	}
	r.turns = len(lat)
	r.rate = float64(len(lat)) / elapsed.Seconds()
	r.p50, r.p95, r.p99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
	r.oursP50, r.oursP99, r.storeP50 = percentile(ours, 50), percentile(ours, 99), percentile(st, 50)
	r.model, r.tools, r.seenP50 = percentile(model, 50), percentile(tools, 50), percentile(seen, 50)
	if n := float64(len(samples)); n > 0 {
		r.roundTrips = float64(after.RoundTrips-before.RoundTrips) / n
		r.commits = float64(after.Commits-before.Commits) / n
		per := func(d time.Duration) time.Duration { return time.Duration(float64(d) / n) }
		r.cpu = cpuSnapshot{per(cpu.service), per(cpu.echo), per(cpu.bench), per(cpu.postgres)}
		r.walBytes, r.walRecords = float64(pgUsed.walBytes)/n, float64(pgUsed.walRecords)/n
		r.walFPI, r.walSyncs = float64(pgUsed.walFPI)/n, float64(pgUsed.walSyncs)/n
		r.pgDBCPU = per(pgUsed.dbCPU)
	}
	r.note = usage + r.storeNote
	switch scenario {
	case "inflight":
		r.note += fmt.Sprintf("; peak %d turns in flight", d.peak.Load())
		if m := highest.Memory; highest.RSSKB > 0 {
			mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
			r.note += fmt.Sprintf("; at the highest RSS read (%.0f MB, %d goroutines): heap objects %.0f MB (live at the last GC %.0f, next GC at %.0f), "+
				"heap idle %.0f MB, stacks %.0f MB, runtime other %.0f MB; %d GCs in the run",
				float64(highest.RSSKB)/1024, highest.Goroutines, mb(m.Objects), mb(m.Live), mb(m.Goal), mb(m.Idle), mb(m.Stacks), mb(m.Other),
				after.Memory.GCs-before.Memory.GCs)
		}
	case "sessions":
		var first, firstTools []time.Duration
		for _, c := range cold {
			if c.err == nil {
				first, firstTools = append(first, c.latency), append(firstTools, c.tools)
			}
		}
		r.note += fmt.Sprintf("; first turns (%d, %d failed): latency p50 %s p95 %s, tool call (session start included) p50 %s p95 %s; "+
			"then tool call p50 %s; %d processes under the service at the end",
			len(cold), len(cold)-len(first), ms(percentile(first, 50)), ms(percentile(first, 95)),
			ms(percentile(firstTools, 50)), ms(percentile(firstTools, 95)), ms(percentile(tools, 50)), processes)
	case "long":
		// Windows of 100 turns: the median of 20 moved by ±50% between
		// runs of one binary on this VM.
		if k := min(100, len(ours)/4); len(ours) == len(samples) && k >= 10 {
			first, last := percentile(ours[:k], 50), percentile(ours[len(ours)-k:], 50)
			r.note += fmt.Sprintf("; overhead p50 of turns 1-%d: %s, of turns %d-%d: %s (%+.0f%%)",
				k, ms(first), len(ours)-k+1, len(ours), ms(last), 100*(float64(last)/float64(first)-1))
		}
	}
	return r, nil
}

// waitReady waits until the service offers the echo tool.
func (d *driver) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/api/bench-0/tools", nil)
		req.Header.Set("Authorization", "Bearer "+d.tokens[0])
		if resp, err := d.client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), echoTool) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the service did not offer the echo tool within 30s")
}

func describeMachine(cfg *config, pgInfo string) string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	lines := []string{
		fmt.Sprintf("machine: %d CPUs (%s), %s; the bench, the service, the model server, the MCP echo server and Postgres share them",
			runtime.NumCPU(), cpu, runtime.Version()),
		fmt.Sprintf("turn: %d tool call(s) over %s, model latency %s (in-flight scenario: %s), streamed: %t; each scenario on a fresh service, after a %s warm-up, measured for %s",
			cfg.toolCalls, cfg.transport, cfg.modelLatency, cfg.inflightLatency, cfg.stream, cfg.warmup, cfg.duration),
	}
	if pgInfo != "" {
		lines = append(lines, pgInfo)
	}
	return strings.Join(lines, "\n") + "\n"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
