package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-dev/switchboard/internal/redact"
)

// TestSpansAreScrubbed: a secret in a span's attributes, events, error and
// status never reaches the exporter.
func TestSpansAreScrubbed(t *testing.T) {
	const secret = "canary-span-secret-77aa"
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(scrubExporter{next: mem, s: redact.New(secret)}))
	_, span := tp.Tracer("t").Start(context.Background(), "call "+secret)
	span.SetAttributes(attribute.String("url", "http://h/mcp?k="+secret), attribute.StringSlice("list", []string{"a", secret}), attribute.Int("n", 3))
	span.RecordError(errors.New("dial failed: " + secret))
	span.SetStatus(codes.Error, "failed with "+secret)
	span.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := mem.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("got %d spans", len(spans))
	}
	s := spans[0]
	all := s.Name + s.Status.Description
	for _, a := range s.Attributes {
		all += a.Value.Emit()
	}
	for _, e := range s.Events {
		all += e.Name
		for _, a := range e.Attributes {
			all += a.Value.Emit()
		}
	}
	if strings.Contains(all, secret) {
		t.Errorf("the exported span holds the secret: %s", all)
	}
	if !strings.Contains(all, redact.Mask) {
		t.Errorf("nothing was masked: %s", all)
	}
}
