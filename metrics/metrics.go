// Package metrics exposes Switchboard's Prometheus metrics: HTTP requests,
// turns and their time split, tool calls, model token usage, MCP server
// health and the store's connection pool.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-dev/switchboard"
)

// Metrics records and serves the service's metrics. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.HistogramVec
	turns     *prometheus.CounterVec
	turnTime  *prometheus.HistogramVec
	toolCalls *prometheus.CounterVec
	toolTime  *prometheus.HistogramVec
	tokens    *prometheus.CounterVec
	sessions  *prometheus.CounterVec
	samplings *prometheus.CounterVec
	sampTime  *prometheus.HistogramVec
	sampToks  *prometheus.CounterVec
	// agentTurns and handoffs count turns by the agent each ended as
	// (configured agents: a bounded set), when agents are configured.
	agentTurns *prometheus.CounterVec
	handoffs   *prometheus.CounterVec
}

// Options tune the metrics; nil means defaults.
type Options struct {
	// Model names the model in token metrics.
	Model string
	// Servers, when set, reports the MCP servers at each scrape.
	Servers func() []switchboard.ServerStatus
	// Pool, when set, reports the store's connection pool at each scrape.
	Pool func() switchboard.PoolStats
}

// latencyBuckets spans a fast tool call (0.1 ms) to a slow turn (2 min).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// New returns the metrics, with Go runtime and process metrics included.
func New(opts *Options) *Metrics {
	if opts == nil {
		opts = &Options{}
	}
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchboard_http_request_duration_seconds", Help: "HTTP requests by route, method and status.", Buckets: latencyBuckets,
	}, []string{"route", "method", "status"})
	m.turns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_turns_total", Help: "Turns ended, by final status.",
	}, []string{"status"})
	m.turnTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchboard_turn_duration_seconds", Help: "Time of ended turns by phase: model, tools, store, overhead (ours, outside model, tools and store) and total.", Buckets: latencyBuckets,
	}, []string{"phase"})
	m.toolCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_tool_calls_total", Help: "Tool calls ended, by server, tool and status.",
	}, []string{"server", "tool", "status"})
	m.toolTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchboard_tool_call_duration_seconds", Help: "Tool call latency by server and tool.", Buckets: latencyBuckets,
	}, []string{"server", "tool"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_model_tokens_total", Help: "Model tokens used, by kind (prompt, completion).", ConstLabels: prometheus.Labels{"model": opts.Model},
	}, []string{"kind"})
	m.sessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_mcp_session_events_total", Help: "Sessions of MCP servers of scope user or conversation, by event: started, evicted (at the cap, idle, reset or closed by an admin), crashed (a connection that ended by itself).",
	}, []string{"server", "event"})
	m.samplings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_sampling_requests_total", Help: "MCP servers' sampling requests answered or refused, by server and status (succeeded, failed, denied).",
	}, []string{"server", "status"})
	m.sampTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "switchboard_sampling_duration_seconds", Help: "Time of MCP servers' sampling requests by server, the user's approval included.", Buckets: latencyBuckets,
	}, []string{"server"})
	m.sampToks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_sampling_tokens_total", Help: "Model tokens used by MCP servers' sampling requests, by server and kind (prompt, completion).",
	}, []string{"server", "kind"})
	m.agentTurns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_agent_turns_total", Help: "Turns ended, by the agent each ended as and final status (only with agents configured).",
	}, []string{"agent", "status"})
	m.handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_agent_handoffs_total", Help: "Handoffs of ended turns, by the agent each turn ended as.",
	}, []string{"agent"})
	m.reg.MustRegister(m.requests, m.turns, m.turnTime, m.toolCalls, m.toolTime, m.tokens, m.sessions, m.samplings, m.sampTime, m.sampToks, m.agentTurns, m.handoffs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Servers != nil {
		m.reg.MustRegister(&serverCollector{servers: opts.Servers})
	}
	if opts.Pool != nil {
		m.reg.MustRegister(&poolCollector{pool: opts.Pool})
	}
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Request records one HTTP request; route is the route pattern, not the
// path, so that ids do not make a series each.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// TurnEnded records a turn that ended (or stopped awaiting approval).
func (m *Metrics) TurnEnded(t switchboard.Turn) {
	m.turns.WithLabelValues(string(t.Status)).Inc()
	if t.Agent != "" {
		m.agentTurns.WithLabelValues(t.Agent, string(t.Status)).Inc()
		m.handoffs.WithLabelValues(t.Agent).Add(float64(t.Handoffs))
	}
	tm := t.Timing
	m.turnTime.WithLabelValues("model").Observe(tm.LLM.Seconds())
	m.turnTime.WithLabelValues("tools").Observe(tm.Tools.Seconds())
	m.turnTime.WithLabelValues("store").Observe(tm.Store.Seconds())
	m.turnTime.WithLabelValues("overhead").Observe(tm.Overhead.Seconds())
	m.turnTime.WithLabelValues("total").Observe((tm.LLM + tm.Tools + tm.Store + tm.Overhead).Seconds())
}

// ModelUsage records the tokens of one model call.
func (m *Metrics) ModelUsage(prompt, completion int) {
	m.tokens.WithLabelValues("prompt").Add(float64(prompt))
	m.tokens.WithLabelValues("completion").Add(float64(completion))
}

// ToolCallEnded records a tool call that reached a final status.
func (m *Metrics) ToolCallEnded(c switchboard.ToolCall) {
	m.toolCalls.WithLabelValues(c.Server, c.Tool, string(c.Status)).Inc()
	// A call denied, or cancelled before it ran, took no tool time.
	if c.Status != switchboard.CallDenied && !(c.Status == switchboard.CallCancelled && c.Duration == 0) {
		m.toolTime.WithLabelValues(c.Server, c.Tool).Observe(c.Duration.Seconds())
	}
}

// SamplingEnded records a server's sampling request that ended.
func (m *Metrics) SamplingEnded(s switchboard.Sampling) {
	m.samplings.WithLabelValues(s.Server, string(s.Status)).Inc()
	m.sampTime.WithLabelValues(s.Server).Observe(s.Duration.Seconds())
	m.sampToks.WithLabelValues(s.Server, "prompt").Add(float64(s.PromptTokens))
	m.sampToks.WithLabelValues(s.Server, "completion").Add(float64(s.CompletionTokens))
}

// SessionEvent records an event of a session of an MCP server of scope
// user or conversation.
func (m *Metrics) SessionEvent(server, event string) {
	m.sessions.WithLabelValues(server, event).Inc()
}

var serverStates = []switchboard.ServerState{switchboard.ServerStarting, switchboard.ServerReady,
	switchboard.ServerDegraded, switchboard.ServerCrashLooping, switchboard.ServerStopped}

var (
	serverStateDesc = prometheus.NewDesc("switchboard_mcp_server_state",
		"1 for the state each MCP server is in, 0 for the others.", []string{"server", "state"}, nil)
	serverRestartsDesc = prometheus.NewDesc("switchboard_mcp_server_restarts_total",
		"Restarts of each MCP server since the service started.", []string{"server"}, nil)
	serverToolsDesc = prometheus.NewDesc("switchboard_mcp_server_tools",
		"Tools each MCP server exposes, and those quarantined.", []string{"server", "kind"}, nil)
	serverSessionsDesc = prometheus.NewDesc("switchboard_mcp_sessions",
		"Sessions open of each MCP server of scope user or conversation.", []string{"server"}, nil)
)

// serverCollector reads the MCP servers' status at scrape time.
type serverCollector struct {
	servers func() []switchboard.ServerStatus
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- serverStateDesc
	ch <- serverRestartsDesc
	ch <- serverToolsDesc
	ch <- serverSessionsDesc
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.servers() {
		for _, st := range serverStates {
			v := 0.0
			if s.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(serverStateDesc, prometheus.GaugeValue, v, s.Name, string(st))
		}
		ch <- prometheus.MustNewConstMetric(serverRestartsDesc, prometheus.CounterValue, float64(s.Restarts), s.Name)
		ch <- prometheus.MustNewConstMetric(serverToolsDesc, prometheus.GaugeValue, float64(len(s.Tools)), s.Name, "exposed")
		ch <- prometheus.MustNewConstMetric(serverToolsDesc, prometheus.GaugeValue, float64(len(s.Quarantined)), s.Name, "quarantined")
		if s.Scope != "" && s.Scope != "shared" {
			ch <- prometheus.MustNewConstMetric(serverSessionsDesc, prometheus.GaugeValue, float64(len(s.Sessions)), s.Name)
		}
	}
}

var (
	poolConnsDesc = prometheus.NewDesc("switchboard_store_pool_connections",
		"Store pool connections by state (acquired, idle, total, max).", []string{"state"}, nil)
	poolAcquiresDesc = prometheus.NewDesc("switchboard_store_pool_acquires_total",
		"Connections acquired from the store pool.", nil, nil)
	poolWaitsDesc = prometheus.NewDesc("switchboard_store_pool_empty_acquires_total",
		"Acquisitions that waited because the pool had no idle connection.", nil, nil)
	poolWaitTimeDesc = prometheus.NewDesc("switchboard_store_pool_acquire_seconds_total",
		"Time spent acquiring connections from the store pool.", nil, nil)
)

// poolCollector reads the store pool's stats at scrape time.
type poolCollector struct {
	pool func() switchboard.PoolStats
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConnsDesc
	ch <- poolAcquiresDesc
	ch <- poolWaitsDesc
	ch <- poolWaitTimeDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool()
	for state, v := range map[string]int32{"acquired": s.Acquired, "idle": s.Idle, "total": s.Total, "max": s.Max} {
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(v), state)
	}
	ch <- prometheus.MustNewConstMetric(poolAcquiresDesc, prometheus.CounterValue, float64(s.AcquireCount))
	ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(s.EmptyAcquireCount))
	ch <- prometheus.MustNewConstMetric(poolWaitTimeDesc, prometheus.CounterValue, s.AcquireDuration.Seconds())
}
