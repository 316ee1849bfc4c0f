package mcpclient

import (
	"bytes"
	"strings"
	"sync"
)

// maxLineLen bounds one stored stderr line; the rest of a longer line is
// dropped.
const maxLineLen = 4096

// lineRing keeps the last lines written to it. Write never blocks beyond a
// short mutex and never fails, so a chatty child can never stall on its
// stderr.
type lineRing struct {
	mu      sync.Mutex
	lines   []string // circular once full
	next    int      // where the next line goes once full
	full    bool
	partial []byte // the unfinished last line
	pushed  int    // lines stored ever
}

func newLineRing(n int) *lineRing {
	return &lineRing{lines: make([]string, 0, n)}
}

// Write stores p's complete lines and keeps an unfinished one for later.
func (r *lineRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.appendPartial(p)
			break
		}
		r.appendPartial(p[:i])
		r.push(string(bytes.TrimSuffix(r.partial, []byte("\r"))))
		r.partial = r.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (r *lineRing) appendPartial(p []byte) {
	if room := maxLineLen - len(r.partial); room < len(p) {
		p = p[:max(room, 0)]
	}
	r.partial = append(r.partial, p...)
}

func (r *lineRing) push(line string) {
	r.pushed++
	line = strings.ToValidUTF8(line, "\uFFFD")
	if !r.full {
		r.lines = append(r.lines, line)
		r.full = len(r.lines) == cap(r.lines)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
}

// Mark returns a mark for LinesSince: the count of lines stored so far.
func (r *lineRing) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pushed
}

// LinesSince returns what Lines does, without the lines stored before mark
// was taken (a previous process's, in a ring shared across restarts).
func (r *lineRing) LinesSince(mark int) []string {
	lines := r.Lines()
	r.mu.Lock()
	newer := r.pushed - mark
	if len(r.partial) > 0 {
		newer++
	}
	r.mu.Unlock()
	if newer < len(lines) {
		lines = lines[len(lines)-max(newer, 0):]
	}
	return lines
}

// Lines returns the stored lines, oldest first, with the unfinished last
// line, if any, at the end.
func (r *lineRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.lines)+1)
	out = append(out, r.lines[r.next:]...)
	out = append(out, r.lines[:r.next]...)
	if len(r.partial) > 0 {
		out = append(out, strings.ToValidUTF8(string(r.partial), "\uFFFD"))
		if len(out) > cap(r.lines) {
			out = out[1:]
		}
	}
	return out
}

// Note stores a line of our own (a restart, say) among the child's lines,
// ending an unfinished line first.
func (r *lineRing) Note(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.partial) > 0 {
		r.push(string(r.partial))
		r.partial = r.partial[:0]
	}
	r.push(line)
}
