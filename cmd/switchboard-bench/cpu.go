package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on Linux).
const clockTick = 10 * time.Millisecond

// cpuSnapshot is the CPU time used so far by the processes of a run.
type cpuSnapshot struct {
	service, echo, bench, postgres time.Duration
}

// sub returns the CPU time spent between s0 and s.
func (s cpuSnapshot) sub(s0 cpuSnapshot) cpuSnapshot {
	return cpuSnapshot{s.service - s0.service, s.echo - s0.echo, s.bench - s0.bench, s.postgres - s0.postgres}
}

// readCPU reads the CPU time (user and system) of the service (pid), its
// children (the stdio echo server), this process (load generator, model
// server, HTTP echo server) and every postgres process, from /proc.
func readCPU(service int) cpuSnapshot {
	var s cpuSnapshot
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15); comm may hold
		// spaces and parentheses.
		line := string(b)
		i := strings.LastIndexByte(line, ')')
		j := strings.IndexByte(line, '(')
		if i < 0 || j < 0 {
			continue
		}
		comm := line[j+1 : i]
		f := strings.Fields(line[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		d := time.Duration(ut+st) * clockTick
		switch {
		case pid == service:
			s.service += d
		case ppid == service:
			s.echo += d
		case pid == self:
			s.bench += d
		case comm == "postgres":
			s.postgres += d
		}
	}
	return s
}
