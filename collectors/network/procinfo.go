package network

import (
	"path/filepath"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/schemas"
)

// procDetail is what /proc says about a process that the kernel record does not carry.
type procDetail struct {
	comm        string // the kernel's comm when the detail was read: a change means an exec
	exe         string
	cmdLine     string
	systemdUnit string
	containerID string
	readAt      time.Time
}

// procCache reads executables, command lines and cgroups from /proc, keeping a bounded
// number of processes for a while. A process already gone keeps only its comm. Used from
// the reader goroutine only.
type procCache struct {
	proc    hostinfo.Proc
	max     int
	maxAge  time.Duration
	entries map[uint32]*procDetail
}

func newProcCache(root string, max int, maxAge time.Duration) *procCache {
	return &procCache{proc: hostinfo.Proc{Root: root}, max: max, maxAge: maxAge, entries: make(map[uint32]*procDetail)}
}

// lookup returns pid's details, reading /proc when they are missing, old, or were read
// before the process changed its comm (an exec). comm is the kernel's, NUL-terminated unless
// it fills the array; it is copied into a string only when /proc is read.
func (p *procCache) lookup(pid uint32, comm *[16]int8, now time.Time) *procDetail {
	var b [16]byte
	n := 0
	for ; n < len(comm) && comm[n] != 0; n++ {
		b[n] = byte(comm[n])
	}
	if d, ok := p.entries[pid]; ok && d.comm == string(b[:n]) && now.Sub(d.readAt) < p.maxAge {
		return d
	}
	d := p.read(pid, string(b[:n]), now)
	if _, ok := p.entries[pid]; !ok && len(p.entries) >= p.max {
		for victim := range p.entries { // any one: the cache only saves /proc reads
			delete(p.entries, victim)
			break
		}
	}
	p.entries[pid] = d
	return d
}

func (p *procCache) read(pid uint32, comm string, now time.Time) *procDetail {
	n := int(pid)
	cg := p.proc.Cgroup(n)
	return &procDetail{
		comm:        comm,
		exe:         p.proc.Exe(n),
		cmdLine:     schemas.JoinArgs(p.proc.Args(n)),
		systemdUnit: cg.SystemdUnit,
		containerID: cg.ContainerID,
		readAt:      now,
	}
}

// actor builds the event's process from the kernel's record and /proc.
func (p *procCache) actor(pid, uid uint32, comm *[16]int8, cgroupID uint64, users *hostinfo.IDNames, now time.Time) schemas.Actor {
	d := p.lookup(pid, comm, now)
	a := schemas.Actor{
		PID:         int32(pid),
		CmdLine:     d.cmdLine,
		User:        schemas.User{UID: int64(uid), Name: users.Name(uid, now)},
		CgroupID:    int64(cgroupID),
		SystemdUnit: d.systemdUnit,
		ContainerID: d.containerID,
	}
	if d.exe != "" {
		a.File = schemas.File{Path: d.exe, Name: filepath.Base(d.exe)}
	} else {
		a.File = schemas.File{Name: d.comm}
	}
	if a.CmdLine == "" {
		a.CmdLine = d.comm
	}
	return a
}

// matchPath reports whether an executable path matches a filepath.Match pattern; an empty
// path (the process was gone) matches nothing.
func matchPath(pattern, path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	return filepath.Match(pattern, path)
}
