package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard/internal/redact"
)

// tracing sets up OpenTelemetry tracing when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: spans go to that OTLP/HTTP
// collector, configured by the standard OTEL_* variables. Otherwise it
// returns nil and nothing is traced. shutdown flushes the spans.
//
// Spans are exported through scrub, which hides the configured secrets.
func tracing(ctx context.Context, getenv env, scrub *redact.Scrubber, logger *slog.Logger) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	endpoint, _ := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if e, _ := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); e != "" {
		endpoint = e
	}
	if endpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	name, _ := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "switchboard"
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(scrubExporter{next: exp, s: scrub}),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name), attribute.String("service.version", version()))))
	logger.Info("tracing to an OTLP collector", "endpoint", endpoint, "service", name)
	return provider, provider.Shutdown, nil
}

// pruner removes tool-call payloads older than the configured age, in
// batches, and the connect flows that expired long ago.
type pruner interface {
	PruneToolCallPayloads(ctx context.Context, before time.Time, batch int) (int, error)
	PruneOAuthStates(ctx context.Context, before time.Time) (int, error)
}

// staleStateAge is how long past its expiry a connect flow that never came
// back is kept: a late callback is told it expired rather than that it is
// unknown.
const staleStateAge = time.Hour

// retention runs, every interval (and once at start) until ctx ends or the
// returned stop is called, the pruning of old tool-call payloads (unless
// cfg keeps them forever) and the deletion of the connect flows that
// expired over staleStateAge ago; stop ends the job (a pruning in progress
// is cancelled) and waits for it, so that serve returns at once from a
// start-up error that follows.
func retention(ctx context.Context, st pruner, cfg RetentionConfig, logger *slog.Logger) (stop func()) {
	age := 90 * 24 * time.Hour
	if cfg.ToolCallPayloads != nil {
		age = time.Duration(*cfg.ToolCallPayloads)
	}
	interval, batch := time.Duration(cfg.Interval), cfg.Batch
	if interval <= 0 {
		interval = time.Hour
	}
	if batch <= 0 {
		batch = 1000
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if age > 0 {
				pruned, err := pruneOnce(ctx, st, time.Now().Add(-age), batch)
				if pruned > 0 {
					logger.Info("retention: pruned tool-call payloads", "rows", pruned, "older_than", age.String())
				}
				if err != nil && ctx.Err() == nil {
					logger.Warn("retention: pruning failed; trying again later", "err", err)
				}
			}
			n, err := st.PruneOAuthStates(ctx, time.Now().Add(-staleStateAge))
			if n > 0 {
				logger.Info("retention: deleted expired oauth states", "rows", n)
			}
			if err != nil && ctx.Err() == nil {
				logger.Warn("retention: deleting expired oauth states failed; trying again later", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// pruneOnce prunes batch after batch until a batch comes back short.
func pruneOnce(ctx context.Context, st pruner, before time.Time, batch int) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := st.PruneToolCallPayloads(ctx, before, batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
	return total, ctx.Err()
}
