package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printTable prints the rows as one Markdown table.
func printTable(w io.Writer, rows []row) {
	head := []string{"store", "scenario", "turns/s", "errors", "latency p50", "p95", "p99", "model p50", "tools p50",
		"overhead p50", "overhead p99", "store p50", "seen p50", "round trips/turn", "commits/turn",
		"CPU/turn: service, echo, bench, postgres (its database's backends / all)", "WAL/turn (cluster): bytes, records, FPI, flushes",
		"peak RSS", "goroutines before → after", "notes"}
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(w, "|"+strings.Repeat("---|", len(head)))
	for _, r := range rows {
		rt, commits := "-", fmt.Sprintf("%.2f", r.commits)
		if r.store == "postgres" {
			rt = fmt.Sprintf("%.2f", r.roundTrips)
			commits += fmt.Sprintf(" (pg: %.2f)", r.pgCommits)
		}
		cells := []string{r.store, r.scenario, fmt.Sprintf("%.0f", r.rate), fmt.Sprint(r.errors),
			ms(r.p50), ms(r.p95), ms(r.p99), ms(r.model), ms(r.tools), ms(r.oursP50), ms(r.oursP99), ms(r.storeP50), ms(r.seenP50), rt, commits,
			cpuCell(r), walCell(r),
			fmt.Sprintf("%.0f MB", float64(r.peakRSSKB)/1024), fmt.Sprintf("%d → %d", r.goroutinesBefore, r.after), r.note}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

// us formats d in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func cpuCell(r row) string {
	pg := "-"
	if r.store == "postgres" {
		pg = us(r.pgDBCPU) + " / " + us(r.cpu.postgres)
	}
	return fmt.Sprintf("%s, %s, %s, %s", us(r.cpu.service), us(r.cpu.echo), us(r.cpu.bench), pg)
}

// walCell is the WAL Postgres wrote per turn (the whole cluster's).
func walCell(r row) string {
	if r.store != "postgres" {
		return "-"
	}
	return fmt.Sprintf("%.0f B, %.1f, %.2f, %.2f", r.walBytes, r.walRecords, r.walFPI, r.walSyncs)
}
