package main

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-dev/switchboard/internal/redact"
)

// configSecrets lists the secrets of cfg that must never leave the process
// in text: the model's API key, the JWT secret, the database passwords,
// and every MCP server's header values, environment values and URL
// passwords and query values.
func configSecrets(cfg *Config) []string {
	out := []string{cfg.LLM.APIKey, cfg.Auth.JWTSecret}
	for _, u := range []string{cfg.DatabaseURL, cfg.DatabaseDirectURL, cfg.LLM.BaseURL, cfg.Auth.JWKSURL} {
		out = append(out, redact.URLSecrets(u)...)
	}
	out = append(out, cfg.SecretsKey)
	for _, m := range cfg.LLM.Models {
		out = append(out, m.APIKey)
		out = append(out, redact.URLSecrets(m.BaseURL)...)
	}
	for _, part := range strings.Split(cfg.SecretsKey, ",") {
		_, key, _ := strings.Cut(part, ":")
		out = append(out, strings.TrimSpace(part), key)
	}
	for _, s := range cfg.MCPServers {
		if s.Auth != nil {
			out = append(out, s.Auth.ClientSecret)
		}
		for _, v := range s.Headers {
			out = append(out, redact.HeaderSecrets(v)...)
		}
		for _, v := range s.Env {
			out = append(out, v)
		}
		out = append(out, redact.URLSecrets(s.URL)...)
	}
	return out
}

// scrubExporter hides secrets in spans before they are exported: their
// names, attributes, events and status, whichever library set them.
type scrubExporter struct {
	next sdktrace.SpanExporter
	s    *redact.Scrubber
}

func (e scrubExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	stubs := make(tracetest.SpanStubs, len(spans))
	for i, sp := range spans {
		st := tracetest.SpanStubFromReadOnlySpan(sp)
		st.Name = e.s.String(st.Name)
		st.Attributes = e.attrs(st.Attributes)
		for j := range st.Events {
			st.Events[j].Name = e.s.String(st.Events[j].Name)
			st.Events[j].Attributes = e.attrs(st.Events[j].Attributes)
		}
		for j := range st.Links {
			st.Links[j].Attributes = e.attrs(st.Links[j].Attributes)
		}
		st.Status.Description = e.s.String(st.Status.Description)
		stubs[i] = st
	}
	return e.next.ExportSpans(ctx, stubs.Snapshots())
}

func (e scrubExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

func (e scrubExporter) attrs(kvs []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(kvs))
	for i, kv := range kvs {
		switch kv.Value.Type() {
		case attribute.STRING:
			kv = attribute.String(string(kv.Key), e.s.String(kv.Value.AsString()))
		case attribute.STRINGSLICE:
			vs := kv.Value.AsStringSlice()
			for j := range vs {
				vs[j] = e.s.String(vs[j])
			}
			kv = attribute.StringSlice(string(kv.Key), vs)
		}
		out[i] = kv
	}
	return out
}
