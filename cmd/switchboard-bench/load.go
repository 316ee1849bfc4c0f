package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sample is one turn as the bench saw it.
type sample struct {
	latency time.Duration // from its scheduled (open loop) or actual (closed loop) send time to the end of the reply
	rtt     time.Duration // from its actual send time to the end of the reply
	// The service's split of the turn, from its Server-Timing header (or
	// trailer, when streamed).
	model, tools, store, overhead time.Duration
	err                           error
}

// ours is the turn's wall time minus model and tool time: what the service
// itself spent, store included.
func (s sample) ours() time.Duration { return s.store + s.overhead }

// seen is the turn's round trip as the bench saw it minus model and tool
// time: the service's overhead plus HTTP, auth and JSON on both sides.
func (s sample) seen() time.Duration { return s.rtt - s.model - s.tools }

// driver sends chat turns to the service.
type driver struct {
	client *http.Client
	base   string
	tokens []string // by user number
	stream bool

	free     chan conversation // conversations no turn runs in
	users    atomic.Int64      // users handed out
	inflight atomic.Int64
	peak     atomic.Int64 // most turns in flight at once
	sent     atomic.Int64 // turns sent in all
}

// conversation is a user's conversation; id is empty until its first turn.
type conversation struct {
	user int
	id   string
}

func newDriver(base string, tokens []string, stream bool) *driver {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, 4096 // one connection per client, reused
	tr.DisableCompression = true
	return &driver{client: &http.Client{Transport: tr}, base: base, tokens: tokens, stream: stream,
		free: make(chan conversation, 1<<16)}
}

// take returns a conversation no turn runs in: a free one, or a new one.
func (d *driver) take() conversation {
	select {
	case c := <-d.free:
		return c
	default:
		return conversation{user: int(d.users.Add(1)-1) % len(d.tokens)}
	}
}

func (d *driver) give(c conversation) {
	select {
	case d.free <- c:
	default:
	}
}

var chatBody = []byte(`{"message": {"content": "Echo hello, please."}}`)

// turn sends one chat turn in c (starting it when c.id is empty) and reads
// the whole reply.
func (d *driver) turn(ctx context.Context, c *conversation) sample {
	n := d.inflight.Add(1)
	for p := d.peak.Load(); n > p && !d.peak.CompareAndSwap(p, n); p = d.peak.Load() {
	}
	defer d.inflight.Add(-1)
	d.sent.Add(1)
	start := time.Now()
	s := d.send(ctx, c)
	s.rtt = time.Since(start)
	s.latency = s.rtt
	return s
}

func (d *driver) send(ctx context.Context, c *conversation) sample {
	url := fmt.Sprintf("%s/api/bench-%d/chat", d.base, c.user)
	if c.id != "" {
		url += "?conversation_id=" + c.id
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(chatBody))
	if err != nil {
		return sample{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+d.tokens[c.user])
	req.Header.Set("Content-Type", "application/json")
	if d.stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusNotFound {
			// Gone: evicted by a bounded memory store. The client starts
			// another, as a user would.
			c.id = ""
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return sample{err: fmt.Errorf("%s: %s", resp.Status, b)}
	}
	var out struct {
		ConversationID string `json:"conversation_id"`
		Status         string `json:"status"`
	}
	if d.stream {
		// The finish part names the conversation and the turn's status.
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.Contains(line, []byte(`"type":"finish"`)) {
				continue
			}
			var part struct {
				Meta struct {
					ConversationID string `json:"conversationId"`
					Status         string `json:"status"`
				} `json:"messageMetadata"`
			}
			if err := json.Unmarshal(bytes.TrimPrefix(line, []byte("data: ")), &part); err != nil {
				return sample{err: err}
			}
			out.ConversationID, out.Status = part.Meta.ConversationID, part.Meta.Status
		}
		if err := sc.Err(); err != nil {
			return sample{err: err}
		}
	} else if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return sample{err: err}
	}
	_, _ = io.Copy(io.Discard, resp.Body) // the trailer comes after the body
	if out.Status != "completed" {
		return sample{err: fmt.Errorf("turn ended %q", out.Status)}
	}
	c.id = out.ConversationID
	timing := resp.Header.Get("Server-Timing")
	if timing == "" {
		timing = resp.Trailer.Get("Server-Timing")
	}
	s, err := parseServerTiming(timing)
	if err != nil {
		return sample{err: err}
	}
	return s
}

// parseServerTiming reads "model;dur=1.2, tools;dur=0.3, ..." (ms).
func parseServerTiming(h string) (sample, error) {
	var s sample
	if h == "" {
		return s, fmt.Errorf("no Server-Timing in the reply")
	}
	for _, m := range strings.Split(h, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(m), ";dur=")
		if !ok {
			continue
		}
		ms, err := strconv.ParseFloat(dur, 64)
		if err != nil {
			return s, fmt.Errorf("Server-Timing %q: %w", h, err)
		}
		d := time.Duration(ms * float64(time.Millisecond))
		switch name {
		case "model":
			s.model = d
		case "tools":
			s.tools = d
		case "store":
			s.store = d
		case "overhead":
			s.overhead = d
		}
	}
	return s, nil
}

// openLoop sends turns at rate per second for dur, each at its scheduled
// time whatever the service's pace, in conversations that are free at
// that moment. Latency counts from the scheduled time.
func (d *driver) openLoop(ctx context.Context, rate float64, dur time.Duration) ([]sample, time.Duration) {
	n := int(rate * dur.Seconds())
	samples := make([]sample, n)
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				wg.Wait()
				return samples[:i], time.Since(start)
			case <-timer.C:
			}
		}
		wg.Go(func() {
			c := d.take()
			s := d.turn(ctx, &c)
			s.latency = time.Since(at)
			samples[i] = s
			if s.err == nil {
				d.give(c)
			}
		})
	}
	wg.Wait()
	return samples, time.Since(start)
}

// closedLoop runs clients that each send a turn as soon as their last one
// ended, in a conversation of their own, for dur.
func (d *driver) closedLoop(ctx context.Context, clients int, dur time.Duration) ([]sample, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	per := make([][]sample, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			c := d.take()
			for ctx.Err() == nil {
				s := d.turn(context.WithoutCancel(ctx), &c)
				per[i] = append(per[i], s)
			}
			d.give(c)
		})
	}
	wg.Wait()
	return slices.Concat(per...), time.Since(start)
}

// firstTurns sends one turn for each of users users, clients at a time, in
// a new conversation each, and leaves the conversations free for the
// turns that follow.
func (d *driver) firstTurns(ctx context.Context, users, clients int) []sample {
	samples := make([]sample, users)
	next := make(chan int, users)
	for u := range users {
		next <- u
	}
	close(next)
	var wg sync.WaitGroup
	for range min(clients, users) {
		wg.Go(func() {
			for u := range next {
				c := conversation{user: u % len(d.tokens)}
				samples[u] = d.turn(ctx, &c)
				if samples[u].err == nil {
					d.give(c)
				}
			}
		})
	}
	wg.Wait()
	d.users.Store(int64(users))
	return samples
}

// sequence sends n turns one after the other in one new conversation.
func (d *driver) sequence(ctx context.Context, n int) ([]sample, time.Duration) {
	c := conversation{user: int(d.users.Add(1)-1) % len(d.tokens)}
	samples := make([]sample, 0, n)
	start := time.Now()
	for range n {
		if ctx.Err() != nil {
			break
		}
		samples = append(samples, d.turn(ctx, &c))
	}
	return samples, time.Since(start)
}

// percentile returns the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
