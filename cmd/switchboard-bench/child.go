package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is the service under test, running as a child process.
type child struct {
	URL  string
	cmd  *exec.Cmd
	logs *os.File // its stderr
	done chan error
}

// startChild starts this binary in its service role with args and waits
// until it serves. The child leads its own process group, which is
// signalled when ctx ends or Stop is called; the kernel kills it if the
// bench dies first.
func startChild(ctx context.Context, args []string, logPath string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logs, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, append([]string{"-role=" + roleService}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		logs.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, err
	}
	c := &child{cmd: cmd, logs: logs, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- u
			}
		}
		_, _ = io.Copy(io.Discard, out)
		c.done <- cmd.Wait()
	}()
	select {
	case c.URL = <-addr:
		return c, nil
	case err := <-c.done:
		logs.Close()
		return nil, fmt.Errorf("the service exited before serving: %v; its log: %s", err, tail(logPath))
	case <-time.After(60 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("the service did not start within 60s; its log: %s", tail(logPath))
	}
}

// Stop ends the child's process group (SIGTERM, then SIGKILL after 10s) and
// waits for it.
func (c *child) Stop() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	c.logs.Close()
}

// stats reads the child's counters.
func (c *child) stats(ctx context.Context) (serviceStats, error) {
	var s serviceStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/bench/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// settledGoroutines closes the idle connections of the child and of
// client (the load's), and reads the child's goroutines until they stop
// falling (or 3s pass).
func (c *child) settledGoroutines(ctx context.Context, client *http.Client) (int, error) {
	client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/bench/idle", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	last := -1
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		s, err := c.stats(ctx)
		http.DefaultClient.CloseIdleConnections()
		if err != nil {
			return 0, err
		}
		if s.Goroutines == last {
			return last, nil
		}
		last = s.Goroutines
		time.Sleep(300 * time.Millisecond)
	}
	return last, nil
}

// fetch saves what the child serves at path to file.
func (c *child) fetch(ctx context.Context, path, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// tail returns the last lines of a file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

// descendants returns the live processes below pid (their pids), from
// /proc; none where it cannot be read.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 2 && f[0] != "Z" {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
