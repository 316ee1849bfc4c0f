package main

import (
	"fmt"
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

// machineCPU is the CPU time of the whole machine, from /proc/stat.
type machineCPU struct {
	busy, irq, idle, steal time.Duration // busy includes irq
}

func readMachineCPU() machineCPU {
	var m machineCPU
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return m
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * clockTick
	}
	m.irq = tick(6) + tick(7) // interrupts and softirqs: loopback TCP, mostly
	m.busy = tick(1) + tick(2) + tick(3) + m.irq
	m.idle = tick(4) + tick(5)
	m.steal = tick(8)
	return m
}

// cores describes how the machine's CPUs were used over elapsed: by the
// run's processes, by the kernel's interrupt and softirq work (loopback
// TCP between them), by anything else, taken by the hypervisor (steal),
// idle.
func cores(run cpuSnapshot, m0, m1 machineCPU, elapsed time.Duration) string {
	per := func(d time.Duration) float64 { return float64(d) / float64(elapsed) }
	ours, irq := run.service+run.echo+run.bench+run.postgres, m1.irq-m0.irq
	return fmt.Sprintf("cores: processes %.2f, softirq %.2f, other %.2f, steal %.2f, idle %.2f",
		per(ours), per(irq), max(per(m1.busy-m0.busy-ours-irq), 0), per(m1.steal-m0.steal), per(m1.idle-m0.idle))
}
