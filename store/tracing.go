package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// queryTracer makes a span of each query and batch: pgx calls it around
// every round trip. Spans carry the statement's first words, never its
// arguments (they hold users' data).
type queryTracer struct {
	tracer trace.Tracer
}

var (
	_ pgx.QueryTracer = (*queryTracer)(nil)
	_ pgx.BatchTracer = (*queryTracer)(nil)
)

func (t *queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	ctx, _ = t.tracer.Start(ctx, "db.query", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.operation", operation(d.SQL))))
	return ctx
}

func (t *queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	end(ctx, d.Err)
}

func (t *queryTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	ctx, _ = t.tracer.Start(ctx, "db.batch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.Int("db.batch.size", d.Batch.Len())))
	return ctx
}

func (t *queryTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	end(ctx, d.Err)
}

func end(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}

// operation is a statement's first keyword, with its table where cheap:
// "SELECT", "INSERT INTO turns".
func operation(sql string) string {
	f := strings.Fields(sql)
	switch {
	case len(f) == 0:
		return ""
	case len(f) >= 3 && strings.EqualFold(f[0], "INSERT") && strings.EqualFold(f[1], "INTO"):
		return "INSERT INTO " + f[2]
	case len(f) >= 2 && strings.EqualFold(f[0], "UPDATE"):
		return "UPDATE " + f[1]
	}
	return strings.ToUpper(f[0])
}
