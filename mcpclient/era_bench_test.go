package mcpclient

import (
	"path/filepath"
	"testing"

	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
)

// BenchmarkConnect measures Dial (start or reach the server, the
// handshake, the first tools/list) with protocol auto and legacy (and
// modern where the server speaks it), over stdio and streamable HTTP,
// against a legacy server and a modern one. "auto-probe" finds the era
// afresh each time (a new Eras); "auto-known" dials with what an earlier
// connection found, as restarts and the other sessions of a fleet do.
// Every connection listens for list changes, as a Supervisor's does.
//
// Servers: stdio legacy, the test binary's helper (initialize only; it
// exits if sent server/discover); stdio modern, the TypeScript SDK v2's
// serveStdio refusing initialize (testdata/tsmodern.mjs: node starts for
// each dial, twice when auto probes); HTTP legacy, server-everything
// (TypeScript SDK v1); HTTP modern, the go-sdk limited to 2026-07-28.
//
//	go test ./mcpclient -run '^$' -bench Connect -benchtime 20x
func BenchmarkConnect(b *testing.B) {
	servers := []struct {
		name  string
		cfg   func(b *testing.B) Config
		modes []string
	}{
		{"stdio/legacy-server", func(b *testing.B) Config { return helperConfig("raw") }, []string{"auto-probe", "auto-known", "legacy"}},
		{"stdio/modern-server", func(b *testing.B) Config {
			nodetest.Module(b, "@modelcontextprotocol/server")
			return Config{Name: "tsmodern", Command: nodetest.Node(b), Args: []string{filepath.Join("testdata", "tsmodern.mjs")}}
		}, []string{"auto-probe", "auto-known", "modern"}},
		{"http/legacy-server", func(b *testing.B) Config {
			return Config{Name: "everything", URL: startEverythingHTTP(b, "streamableHttp").URL()}
		}, []string{"auto-probe", "auto-known", "legacy"}},
		{"http/modern-server", func(b *testing.B) Config {
			return Config{Name: "modern", URL: mcptest.StartModernHTTP(b)}
		}, []string{"auto-probe", "auto-known", "modern"}},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			base := srv.cfg(b)
			for _, mode := range srv.modes {
				b.Run(mode, func(b *testing.B) {
					cfg := base
					cfg.Protocol = mode
					eras := NewEras()
					if mode == "auto-probe" || mode == "auto-known" {
						cfg.Protocol = ProtocolAuto
					}
					if mode == "auto-known" {
						c, err := Dial(b.Context(), cfg, &Options{Eras: eras, OnToolsChanged: func() {}})
						if err != nil {
							b.Fatal(err)
						}
						c.Close()
					}
					var era string
					for b.Loop() {
						if mode == "auto-probe" {
							eras = NewEras()
						}
						c, err := Dial(b.Context(), cfg, &Options{Eras: eras, OnToolsChanged: func() {}})
						if err != nil {
							b.Fatal(err)
						}
						era = c.Protocol().Era
						b.StopTimer()
						c.Close()
						b.StartTimer()
					}
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/connect")
					b.Logf("%s %s: era %s", srv.name, mode, era)
				})
			}
		})
	}
}
