//go:build unix

package mcpclient

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// Stopping a stdio child: stdin EOF, then closeGrace, SIGTERM to the group,
// termWait, SIGKILL, killWait. Then survivors of the group (a grandchild that
// outlived the leader) get SIGTERM and, after sweepWait, SIGKILL. The sum
// stays within closeTimeout.
const (
	closeGrace = 1 * time.Second
	termWait   = 1500 * time.Millisecond
	killWait   = 1 * time.Second
	sweepWait  = 1 * time.Second
	// waitDelay bounds how long exec.Cmd.Wait waits for the child's stderr
	// after the child exited: a grandchild may hold the pipe open.
	waitDelay = 500 * time.Millisecond
)

// process is the stdio child of a Conn.
type process struct {
	cmd    *exec.Cmd
	pgid   int // the child's process group (its pid); 0 until started
	exited atomic.Bool
	stdout *os.File // our end of the child's stdout

	waitOnce sync.Once
	waitErr  error
}

// start starts the child and returns its stdin and stdout for mcp-go's
// transport (transport.NewIO): we start it, not mcp-go, so that what it
// writes is read through a frame filter (see lineFilter).
//
// Not exec.CommandContext: the child must live until Close, not until the
// context given to Dial. It leads its own process group, so that Close can
// signal its grandchildren too, and keyboard interrupts meant for us do not
// reach it; on Linux it is also killed if we die without closing it
// (sysProcAttr). Its stderr goes to stderr through a pipe that os/exec
// drains, so Wait returns only once every line is stored. Its stdout is a
// pipe of ours that Wait does not close under a reader.
func (p *process) start(cfg Config, stderr io.Writer) (stdin io.WriteCloser, stdout io.Reader, err error) {
	cmd := exec.Command(cfg.Command, cfg.Args...)
	cmd.Env = append(inheritedEnv(os.Environ()), envList(cfg.Env)...)
	cmd.Dir = cfg.Dir
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = sysProcAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		in.Close()
		r.Close()
		w.Close()
		return nil, nil, err
	}
	w.Close() // the child has its copy
	p.cmd, p.stdout = cmd, r
	p.pgid = cmd.Process.Pid
	return in, r, nil
}

// wait reaps the child, once, and closes our end of its stdout.
func (p *process) wait() error {
	p.waitOnce.Do(func() {
		if p.cmd == nil {
			return
		}
		p.waitErr = p.cmd.Wait()
		p.stdout.Close()
	})
	return p.waitErr
}

// inheritedVars are the variables of our own environment a stdio child
// gets, besides its configured env: what programs need to run (paths,
// locale, home, proxies, toolchain caches), never our secrets (API keys,
// JWT secrets, database URLs), which a server could read or log.
var inheritedVars = map[string]bool{
	"HOME": true, "LOGNAME": true, "USER": true, "PATH": true, "SHELL": true, "TERM": true, "TZ": true,
	"LANG": true, "LC_ALL": true, "LC_CTYPE": true, "TMPDIR": true,
	"XDG_CACHE_HOME": true, "XDG_CONFIG_HOME": true, "XDG_DATA_HOME": true, "XDG_RUNTIME_DIR": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "http_proxy": true, "https_proxy": true, "no_proxy": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "NODE_EXTRA_CA_CERTS": true,
	"GOPATH": true, "GOCACHE": true, "GOMODCACHE": true, "GOPROXY": true, "GOFLAGS": true, "GOTOOLCHAIN": true,
	"GORACE": true,
}

// inheritedEnv keeps the entries of environ named in inheritedVars.
func inheritedEnv(environ []string) []string {
	out := make([]string, 0, len(inheritedVars))
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && inheritedVars[k] {
			out = append(out, kv)
		}
	}
	return out
}

// envList renders env as KEY=value entries, in a stable order.
func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	slices.Sort(list)
	return list
}

// pid returns the child's pid, which is also its process group id; 0 until
// started.
func (p *process) pid() int { return p.pgid }

// started watches for the child's exit, which ends the Conn: requests in
// flight fail at once instead of waiting for their timeout (a grandchild
// holding stdout open would otherwise hide the exit from mcp-go).
func (p *process) started(c *Conn) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	if !canWatchExit {
		return
	}
	pid := p.pgid
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		how := waitExit(pid)
		p.exited.Store(true)
		if c.ctx.Err() == nil {
			c.log.Warn("mcp server process exited", "pid", pid, "how", how)
		}
		c.kill(withKind(switchboard.ErrUnavailable, fmt.Errorf("server process exited (%s)", how)))
	}()
}

// stop ends the child once closed, the result of closing mcp-go's client
// (which closes the child's stdin) and reaping the child, is ready,
// escalating to signals as the child takes its time. It returns an error
// only if the child could not be stopped.
func (p *process) stop(closed <-chan error, log *slog.Logger) error {
	if p.exited.Load() {
		// The child is gone (it crashed, or was killed): what is left of its
		// group may hold its stderr open, and os/exec would wait for that
		// (waitDelay). Nobody is left to stop gracefully.
		p.sweep()
	}
	var exit error
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case exit = <-closed:
			return true
		case <-t.C:
			return false
		}
	}
	if !wait(closeGrace) {
		p.signal(syscall.SIGTERM)
		if !wait(termWait) {
			p.signal(syscall.SIGKILL)
			if !wait(killWait) {
				return fmt.Errorf("server process %d did not exit", p.pgid)
			}
		}
	}
	if exit != nil && !errors.Is(exit, exec.ErrWaitDelay) {
		log.Debug("mcp server process ended", "pid", p.pgid, "exit", exit.Error())
	}
	p.sweep()
	return nil
}

// sweep stops what is left of the child's process group after the child
// itself exited: npx, uvx and go run leave their own children behind.
func (p *process) sweep() {
	if p.pgid == 0 || !groupAlive(p.pgid) {
		return
	}
	p.signal(syscall.SIGTERM)
	deadline := time.Now().Add(sweepWait)
	for groupAlive(p.pgid) {
		if time.Now().After(deadline) {
			p.signal(syscall.SIGKILL)
			return
		}
		// Nothing notifies us when a grandchild (not our child) exits.
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the child's whole process group.
func (p *process) signal(sig syscall.Signal) {
	if p.pgid > 0 {
		_ = syscall.Kill(-p.pgid, sig) // ESRCH: nobody left
	}
}

// groupAlive reports whether process group pgid has a live member.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	// kill(2) also counts zombies: an orphaned grandchild that init has
	// not reaped yet (or never will, in a container without an init).
	return groupHasLiveMembers(pgid)
}
