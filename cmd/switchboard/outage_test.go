package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// tcpProxy stands between the service and Postgres, so that a test can take
// "Postgres" away (close every connection, refuse new ones) and bring it back
// without stopping the server other tests use.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(up, c) })
			p.wg.Go(func() { pipe(c, up) })
		}
	})
}

// down closes the listener and every connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// up listens again on the same address.
func (p *tcpProxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("relisten on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestPostgresOutageUnderLoad takes Postgres away for 1.5s under a load of
// concurrent turns: requests fail fast with 503 (never 500), /readyz says
// so, the service recovers, and no turn is left half written.
func TestPostgresOutageUnderLoad(t *testing.T) {
	url := storetest.PostgresURL(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	model := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		time.Sleep(10 * time.Millisecond)
		return llmtest.Reply{Text: "ok"}
	})
	defer model.Close()
	base := startProcess(t, buildSwitchboard(t), fmt.Sprintf("database_url: %q\nauth: {jwt_secret: %q}\nllm: {base_url: %q}\nmcpServers: {}\n",
		u.String(), testSecret, model.URL))
	token, _ := auth.MintToken([]byte(testSecret), "alice", time.Hour, false, "", "")

	type outcome struct {
		code    int
		took    time.Duration
		turn    string
		started time.Time
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(4 * time.Second)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				s := time.Now()
				code, r, err := postChat(base, token, "", "hello")
				if err != nil {
					t.Errorf("request failed outright: %v", err)
					return
				}
				mu.Lock()
				outcomes = append(outcomes, outcome{code, time.Since(s), r.TurnID, s})
				mu.Unlock()
				if code != 200 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(time.Second)
	proxy.down()
	downAt := time.Now()
	// Probes during the outage: /readyz, and new turns (the workers may all
	// be waiting for the store to finish theirs).
	var readyDuring, probes, probe503 int
	var slowestProbe time.Duration
	for time.Since(downAt) < 1500*time.Millisecond {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				readyDuring++
			}
		}
		s := time.Now()
		code, _, err := postChat(base, token, "", "during the outage")
		if err != nil {
			t.Errorf("probe: %v", err)
		}
		probes++
		if code == http.StatusServiceUnavailable {
			probe503++
			slowestProbe = max(slowestProbe, time.Since(s))
		} else if code != 200 {
			t.Errorf("a new turn during the outage: got %d, want 503", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	proxy.up(t)
	wg.Wait()

	counts := map[int]int{}
	var slowest503 time.Duration
	var answered []string
	for _, o := range outcomes {
		counts[o.code]++
		switch o.code {
		case 200:
			answered = append(answered, o.turn)
		case 503:
			slowest503 = max(slowest503, o.took)
		}
	}
	t.Logf("requested %d: answered %d, 503 %d, other %v; slowest 503 %s; /readyz said 503 %d times during the outage",
		len(outcomes), counts[200], counts[503], counts, slowest503.Round(time.Millisecond), readyDuring)
	for code, n := range counts {
		if code != 200 && code != 503 {
			t.Errorf("%d requests answered %d, want only 200 or 503", n, code)
		}
	}
	t.Logf("during the outage: %d of %d new turns answered 503, the slowest in %s", probe503, probes, slowestProbe.Round(time.Millisecond))
	if probe503 == 0 || counts[200] == 0 || readyDuring == 0 {
		t.Errorf("the outage did not show: %v, probes 503 x%d, readyz 503 x%d", counts, probe503, readyDuring)
	}
	if slowest503 > 3*time.Second || slowestProbe > 3*time.Second {
		t.Errorf("a 503 took %s / %s: requests must fail fast", slowest503, slowestProbe)
	}
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz after the outage: %v %v", resp, err)
	}

	// Every answered turn is stored whole; no turn is left half written. A
	// turn whose start committed as its connection broke (the client heard
	// 503) is marked failed once the store is back: give that a moment.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored, completed, partial int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err = conn.QueryRow(context.Background(), `
SELECT count(*),
       count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status = 'running' OR status = 'completed' AND
           (SELECT count(*) FROM messages m WHERE m.turn_id = t.id) <> 2)
FROM turns t`).Scan(&stored, &completed, &partial)
		if err != nil {
			t.Fatal(err)
		}
		if partial == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("stored %d turns: %d completed, %d partial", stored, completed, partial)
	if partial != 0 {
		t.Errorf("%d turns are half written", partial)
	}
	for _, id := range answered {
		var status string
		if err := conn.QueryRow(context.Background(), `SELECT status FROM turns WHERE id = $1`, id).Scan(&status); err != nil || status != "completed" {
			t.Errorf("answered turn %s: stored %q, %v", id, status, err)
		}
	}
}
