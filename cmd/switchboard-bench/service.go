package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/metrics"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// serviceStore is what the service needs of a store; store.Memory and
// store.Postgres both provide it.
type serviceStore interface {
	orchestrator.Store
	api.Store
	api.AdminStore
}

// countingStore counts the store's commits: BeginTurn and SaveTurn each
// commit once (for Postgres, one transaction).
type countingStore struct {
	serviceStore
	commits atomic.Int64
}

func (s *countingStore) BeginTurn(ctx context.Context, start *switchboard.TurnStart) ([]switchboard.Message, error) {
	s.commits.Add(1)
	return s.serviceStore.BeginTurn(ctx, start)
}

func (s *countingStore) SaveTurn(ctx context.Context, u *switchboard.TurnUpdate) error {
	s.commits.Add(1)
	return s.serviceStore.SaveTurn(ctx, u)
}

// roundTrips counts the store's round trips to Postgres: the store makes a
// span of every query and every batch, and pgx sends each in one round trip
// once its statements are prepared on the connection (the first use of a
// statement on a connection costs one more, for the prepare; the warm-up
// pays it).
type roundTrips struct {
	noop.Tracer
	n atomic.Int64
}

func (t *roundTrips) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	t.n.Add(1)
	return t.Tracer.Start(ctx, name, opts...)
}

// serviceStats is what the service role reports to the bench.
type serviceStats struct {
	Goroutines int   `json:"goroutines"`
	RSSKB      int64 `json:"rss_kb"`
	PeakRSSKB  int64 `json:"peak_rss_kb"`
	Commits    int64 `json:"commits"`
	RoundTrips int64 `json:"round_trips"`
	// StoreBytes and Evicted are the memory store's count of what it
	// keeps and the conversations it evicted.
	StoreBytes int64 `json:"store_bytes"`
	Evicted    int64 `json:"evicted"`
	// Memory is where the Go runtime's memory is, from runtime/metrics.
	Memory memoryClasses `json:"memory"`
}

// memoryClasses is the split of the service's Go memory, in bytes: what
// the peak RSS consists of.
type memoryClasses struct {
	Objects  uint64 `json:"objects"`  // heap objects, live and not yet swept
	Live     uint64 `json:"live"`     // the heap objects live at the last GC
	Goal     uint64 `json:"goal"`     // the heap size the next GC aims at
	Idle     uint64 `json:"idle"`     // heap memory held, not returned to the OS, holding no object
	Stacks   uint64 `json:"stacks"`   // goroutine stacks
	Other    uint64 `json:"other"`    // the runtime's metadata, buffers, profiling
	Released uint64 `json:"released"` // returned to the OS: not resident
	GCs      uint64 `json:"gcs"`      // GC cycles so far
}

// memoryMetrics are the runtime/metrics that memoryClasses reads.
var memoryMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/goal:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/os-stacks:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/cycles/total:gc-cycles",
}

// readMemory reads the runtime's memory classes.
func readMemory() memoryClasses {
	samples := make([]rtmetrics.Sample, len(memoryMetrics))
	for i, name := range memoryMetrics {
		samples[i].Name = name
	}
	rtmetrics.Read(samples)
	v := make([]uint64, len(samples))
	for i, s := range samples {
		if s.Value.Kind() == rtmetrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	m := memoryClasses{Objects: v[0], Live: v[1], Goal: v[2], Idle: v[3] + v[4], Stacks: v[5] + v[6], Released: v[8], GCs: v[9]}
	m.Other = v[7] - m.Objects - m.Idle - m.Stacks - m.Released
	return m
}

// runService runs the service under test, wired as cmd/switchboard wires it
// (store, MCP fleet, model client, metrics, orchestrator, API, JSON logs),
// plus the bench's endpoints: /debug/pprof/, /bench/stats and
// /bench/idle. It prints "listening URL" on stdout once it serves.
func runService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(roleService, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		storeKind = fs.String("store", "memory", "memory or postgres")
		dbURL     = fs.String("database-url", "", "Postgres URL")
		modelURL  = fs.String("model-url", "", "base URL of the model server")
		echoURL   = fs.String("echo-url", "", "URL of the echo server over streamable HTTP; empty: over stdio")
		secret    = fs.String("secret", "", "HS256 secret of the tokens")
		maxConns  = fs.Int("max-conns", 0, "Postgres pool size; 0: the store's default")
		scope     = fs.String("scope", "shared", "the echo server's scope: shared, user or conversation")
		sessions  = fs.Int("max-sessions", 0, "the echo server's max_sessions; 0: the default")
		memMax    = fs.Int64("memory-max-bytes", 0, "the memory store's bound; 0: the default, below 0: none")
		memLimit  = fs.Int64("memory-limit", 0, "the Go runtime's soft memory limit (memory_limit), bytes; 0: none")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	if *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit)
	}

	rt := &roundTrips{}
	var st serviceStore
	var mem *store.Memory
	switch *storeKind {
	case "memory":
		mem = store.OpenMemory(&store.MemoryOptions{MaxBytes: *memMax, Logger: logger})
		st = mem
	case "postgres":
		pg, err := store.OpenPostgres(ctx, *dbURL, &store.Options{Logger: logger, Tracer: rt, MaxConns: int32(*maxConns)})
		if err != nil {
			return err
		}
		defer pg.Close()
		st = pg
	default:
		return fmt.Errorf("unknown store %q", *storeKind)
	}
	counted := &countingStore{serviceStore: st}

	spec := tools.ServerSpec{Config: mcpclient.Config{Name: "echo", URL: *echoURL}, Required: true,
		Scope: tools.Scope(*scope), MaxSessions: *sessions}
	if *echoURL == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		spec.Config.Command, spec.Config.Args = exe, []string{"-role=" + roleEchoStdio}
	}
	fleet := tools.NewFleet(&tools.FleetOptions{Logger: logger,
		Client: mcpclient.Options{ClientName: "switchboard", ClientVersion: "bench"}})
	defer fleet.Close()
	if err := fleet.Start(ctx, []tools.ServerSpec{spec}); err != nil {
		return err
	}

	model := llm.New(llm.Config{BaseURL: *modelURL, Model: "bench"}, &llm.Options{Logger: logger})
	mx := metrics.New(&metrics.Options{Model: model.Model(), Servers: fleet.Servers})
	orch := orchestrator.New(model, fleet, counted, &orchestrator.Options{Observer: mx, Logger: logger})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = orch.Close(ctx)
	}()
	authn, err := auth.New(ctx, auth.Config{Secret: []byte(*secret)})
	if err != nil {
		return err
	}
	gin.SetMode(gin.ReleaseMode)
	handler := api.NewHandler(api.Deps{Chat: orch, Store: counted, Tools: fleet, Auth: authn, Admin: counted, Servers: fleet},
		&api.Options{Logger: logger, Observer: mx, Metrics: mx.Handler()})

	mux := http.NewServeMux()
	mux.Handle("/", handler)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /bench/stats", func(w http.ResponseWriter, _ *http.Request) {
		rss, peak := memoryKB()
		stats := serviceStats{Goroutines: runtime.NumGoroutine(), RSSKB: rss, PeakRSSKB: peak,
			Commits: counted.commits.Load(), RoundTrips: rt.n.Load(), Memory: readMemory()}
		if mem != nil {
			stats.StoreBytes, stats.Evicted = mem.Bytes(), mem.Evicted()
		}
		_ = json.NewEncoder(w).Encode(stats)
	})
	mux.HandleFunc("POST /bench/idle", func(w http.ResponseWriter, _ *http.Request) {
		// Idle keep-alive connections to the model hold two goroutines
		// each until they time out: close them to compare goroutines.
		if c, ok := any(model).(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		w.WriteHeader(http.StatusNoContent)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// memoryKB reads this process's resident set and its peak, in KiB.
func memoryKB() (rss, peak int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			peak = n
		}
	}
	return rss, peak
}
