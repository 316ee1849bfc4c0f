//go:build linux

package mcpclient

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// canWatchExit reports whether waitExit works here.
const canWatchExit = true

// sysProcAttr makes a stdio child lead its own process group, and die with
// us (SIGKILL) if we end without closing it: kill -9, a crash. (Pdeathsig
// fires when the thread that started the child ends; Go's threads live as
// long as the process, unless a goroutine locked to one exits.) A grandchild
// is not covered: it gets stdin EOF when its parent dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitExit blocks until the child pid exits and says how. It leaves the
// child unreaped (WNOWAIT), so exec.Cmd.Wait still reaps it in Close.
func waitExit(pid int) string {
	const (
		pPID    = 1         // idtype P_PID
		wNOWAIT = 0x1000000 // WNOWAIT
	)
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 { // ECHILD: Close reaped it already
			return "exited"
		}
		break
	}
	// siginfo_t starts with three ints (signo, errno, code), then a union
	// aligned to a pointer: pid, uid, status.
	code := int32(binary.NativeEndian.Uint32(info[8:]))
	union := 12
	if unsafe.Sizeof(uintptr(0)) == 8 {
		union = 16
	}
	status := int32(binary.NativeEndian.Uint32(info[union+8:]))
	switch code {
	case 1: // CLD_EXITED
		return fmt.Sprintf("exit status %d", status)
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return fmt.Sprintf("killed by signal %d: %s", status, syscall.Signal(status))
	}
	return "exited"
}

// groupHasLiveMembers reports whether a process other than a zombie is in
// process group pgid, by reading /proc; if it cannot, it says yes.
func groupHasLiveMembers(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	want := strconv.Itoa(pgid)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[2] == want && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}
