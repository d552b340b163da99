package atomics

import (
	"sort"
)

// procEvent is what lineage needs of a process event.
type procEvent struct {
	ID          string
	Time        int64 // ns since the epoch
	Action      string
	PID, PPID   int32
	Start       int64 // the process's start, ns since the epoch
	ParentStart int64
	ExitCode    int32
	Harness     bool // the evaluator's own exec (the shell waiting to become the simulation)
}

// kindEvent is an event of another kind: the process behind it, by pid only.
type kindEvent struct {
	ID   string
	Kind string
	Time int64
	PID  int32
}

// proc names one process: a pid and its start.
type proc struct {
	pid   int32
	start int64
}

// member is a process of a simulation's tree and when it exited (0: not seen to).
type member struct {
	proc
	exit int64
}

// tree is a simulation's process tree: its shell and every process descending from it by
// pid and start time, as fork and exec events tell.
type tree struct {
	root     proc
	members  map[proc]*member
	byPID    map[int32][]*member
	exitCode int32
	exited   bool
	first    int64 // time of its first event (the shell's exec); 0 when none
}

// startSlack is how far a process's start, as the kernel records it, may be from the
// evaluator's clock readings around the launch.
const startSlack = int64(2e9)

// buildTree finds the shell of pid started between from and to (ns) among events (in time
// order) and every process descending from it. ok is false when no event names that shell.
func buildTree(events []procEvent, pid int, from, to int64) (t *tree, ok bool) {
	t = &tree{members: map[proc]*member{}, byPID: map[int32][]*member{}}
	add := func(p proc) {
		if _, ok := t.members[p]; ok {
			return
		}
		m := &member{proc: p}
		t.members[p] = m
		t.byPID[p.pid] = append(t.byPID[p.pid], m)
	}
	for _, e := range events {
		if e.PID == int32(pid) && e.Start >= from-startSlack && e.Start <= to+startSlack {
			t.root = proc{e.PID, e.Start}
			add(t.root)
			break
		}
	}
	if len(t.members) == 0 {
		return t, false
	}
	for _, e := range events {
		self := proc{e.PID, e.Start}
		switch e.Action {
		case "fork", "exec":
			if _, in := t.members[proc{e.PPID, e.ParentStart}]; in && self != t.root {
				add(self)
			}
		}
		m, in := t.members[self]
		if !in {
			continue
		}
		if t.first == 0 && !e.Harness {
			t.first = e.Time
		}
		if e.Action == "exit" {
			m.exit = e.Time
			if self == t.root {
				t.exitCode, t.exited = e.ExitCode, true
			}
		}
	}
	return t, true
}

// ownsProcessEvent tells whether a process event is of the tree (and not the harness's).
func (t *tree) ownsProcessEvent(e procEvent) bool {
	_, in := t.members[proc{e.PID, e.Start}]
	return in && !e.Harness
}

// ownsAt tells whether a process of the tree with pid was alive at time t: an event of
// another kind naming that pid is the tree's.
func (t *tree) ownsAt(pid int32, at int64) bool {
	for _, m := range t.byPID[pid] {
		if m.start <= at && (m.exit == 0 || at <= m.exit) {
			return true
		}
	}
	return false
}

// pids are the pids of the tree's processes, in order.
func (t *tree) pids() []int32 {
	out := make([]int32, 0, len(t.byPID))
	for p := range t.byPID {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
