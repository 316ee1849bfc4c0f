//go:build unix && !linux

package mcpclient

import "syscall"

// canWatchExit reports whether waitExit works here: without waitid(2)'s
// WNOWAIT, a child's exit mid-session shows only as the end of its stdout.
const canWatchExit = false

func waitExit(pid int) string { return "exited" }

// sysProcAttr makes a stdio child lead its own process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// groupHasLiveMembers cannot tell zombies apart here; it trusts kill(2).
func groupHasLiveMembers(pgid int) bool { return true }
