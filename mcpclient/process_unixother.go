//go:build unix && !linux

package mcpclient

// canWatchExit reports whether waitExit works here: without waitid(2)'s
// WNOWAIT, a child's exit mid-session shows only as the end of its stdout.
const canWatchExit = false

func waitExit(pid int) string { return "exited" }

// groupHasLiveMembers cannot tell zombies apart here; it trusts kill(2).
func groupHasLiveMembers(pgid int) bool { return true }
