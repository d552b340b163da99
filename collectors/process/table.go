package process

import (
	"os"
	"strconv"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// procEntry is what the process table knows of a live (or recently exited) process.
type procEntry struct {
	exe    string
	args   []string // shared between entries: never modified
	exited bool
}

// exitMark schedules the removal of an exited process's entry.
type exitMark struct {
	pid   int32
	at    time.Time
	entry *procEntry
}

// processTable maps pid to executable and argv, for the parent fields of events.
// An exited process stays for exitDelay, so that events read slightly out of order still
// find it. Size is capped: when full, exited entries go first, then arbitrary ones, each
// counted in evictions. Used from the reader goroutine only.
type processTable struct {
	max       int
	exitDelay time.Duration
	entries   map[int32]*procEntry
	exits     []exitMark // oldest first
	evictions uint64
	proc      hostinfo.Proc
}

func newProcessTable(max int, exitDelay time.Duration, proc hostinfo.Proc) *processTable {
	return &processTable{max: max, exitDelay: exitDelay, entries: make(map[int32]*procEntry), proc: proc}
}

// seed adds every process under /proc.
func (t *processTable) seed() error {
	ents, err := os.ReadDir(t.proc.Root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.ParseInt(e.Name(), 10, 32)
		if err != nil || !e.IsDir() {
			continue
		}
		t.lookup(int32(pid))
	}
	return nil
}

// lookup returns pid's entry, reading /proc when the table does not have it. It returns
// nil when the process is unknown and gone.
func (t *processTable) lookup(pid int32) *procEntry {
	if e, ok := t.entries[pid]; ok {
		return e
	}
	exe := t.proc.Exe(int(pid))
	args := t.proc.Args(int(pid))
	if exe == "" && len(args) == 0 {
		return nil
	}
	e := &procEntry{exe: exe, args: args}
	t.put(pid, e)
	return e
}

func (t *processTable) exec(pid int32, exe string, args []string) {
	t.put(pid, &procEntry{exe: exe, args: args})
}

// fork gives child a copy of parent's entry: until it execs, it runs the same image.
func (t *processTable) fork(parent, child int32) {
	if e := t.lookup(parent); e != nil {
		t.put(child, &procEntry{exe: e.exe, args: e.args})
	}
}

func (t *processTable) exit(pid int32, now time.Time) {
	e, ok := t.entries[pid]
	if !ok || e.exited {
		return
	}
	e.exited = true
	if len(t.exits) >= t.max {
		t.remove(t.exits[0])
		t.dropExits(1)
	}
	t.exits = append(t.exits, exitMark{pid: pid, at: now, entry: e})
}

// expire removes the entries of processes that exited more than exitDelay before now.
func (t *processTable) expire(now time.Time) {
	n := 0
	for n < len(t.exits) && now.Sub(t.exits[n].at) >= t.exitDelay {
		t.remove(t.exits[n])
		n++
	}
	t.dropExits(n)
}

func (t *processTable) put(pid int32, e *procEntry) {
	if _, ok := t.entries[pid]; !ok && len(t.entries) >= t.max {
		t.makeRoom()
	}
	t.entries[pid] = e
}

func (t *processTable) makeRoom() {
	if len(t.exits) > 0 {
		t.remove(t.exits[0])
		t.dropExits(1)
		if len(t.entries) < t.max {
			return
		}
	}
	for pid := range t.entries {
		delete(t.entries, pid)
		t.evictions++
		return
	}
}

// remove deletes a mark's entry unless the pid was reused since.
func (t *processTable) remove(m exitMark) {
	if t.entries[m.pid] == m.entry {
		delete(t.entries, m.pid)
	}
}

func (t *processTable) dropExits(n int) {
	if n == 0 {
		return
	}
	t.exits = append(t.exits[:0], t.exits[n:]...)
}
