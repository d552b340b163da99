package system

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// walkLimit caps the cgroup directories visited per sample, so that a host with an
// unusual number of cgroups costs a bounded amount per interval.
const walkLimit = 1 << 14

// service is one reported unit of the cgroup tree: a systemd service or scope, a
// container, or another cgroup that holds processes itself.
type service struct {
	rel     string   // path below the cgroup root, "/system.slice/ssh.service"
	unit    string   // what the event's unit says
	id      uint64   // cgroup id: the inode of its directory
	grouped bool     // a unit or container: every cgroup below belongs to it
	members []uint64 // cgroup ids accounted to it: its own and those below that are not services
	pids    []int    // processes in it and in its members

	cpuUsec   uint64
	haveCPU   bool
	memory    int64
	processes int64
	cpuDelta  float64

	sent, received           uint64 // network totals, when NetTotals gives them
	sentDelta, receivedDelta uint64
	connections              int64
}

// cgroupWalk finds the services below root.
type cgroupWalk struct {
	root      string
	visited   int
	truncated bool
	services  []*service
}

type walkItem struct {
	rel   string
	owner *service
}

// walk visits the tree breadth first, up to walkLimit directories. A directory becomes a
// service when its name is a systemd unit (*.service, *.scope) or holds a container id,
// or when it holds processes and no unit above it claims it. Every other directory is
// accounted to the nearest service above it, if any. The root is the host, not a service.
func (w *cgroupWalk) walk() {
	queue := []walkItem{{rel: "/"}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		entries, err := os.ReadDir(filepath.Join(w.root, it.rel))
		if err != nil {
			continue // removed meanwhile
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			if w.visited >= walkLimit {
				w.truncated = true
				return
			}
			w.visited++
			rel := filepath.Join(it.rel, e.Name())
			queue = append(queue, walkItem{rel: rel, owner: w.visit(rel, e, it.owner)})
		}
	}
}

// visit accounts one directory and returns the service that owns what is below it.
func (w *cgroupWalk) visit(rel string, e os.DirEntry, owner *service) *service {
	dir := filepath.Join(w.root, rel)
	id := inodeOf(e)
	pids := readPIDs(dir)
	name := e.Name()
	unitLike := hostinfo.IsUnitName(name) || hostinfo.ContainerIDIn(name) != ""
	claimed := owner != nil && owner.grouped
	if !claimed && (unitLike || len(pids) > 0) {
		s := &service{rel: rel, unit: unitOf(rel, name, unitLike), id: id, grouped: unitLike,
			members: []uint64{id}, pids: pids}
		w.services = append(w.services, s)
		return s
	}
	if owner != nil {
		owner.members = append(owner.members, id)
		owner.pids = append(owner.pids, pids...)
	}
	return owner
}

func inodeOf(e os.DirEntry) uint64 {
	fi, err := e.Info()
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func readPIDs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	return parsePIDs(b)
}

// unitOf names a service: a container by its id, a systemd unit by its name, any other
// cgroup by its path.
func unitOf(rel, name string, unitLike bool) string {
	if id := hostinfo.ContainerIDIn(name); id != "" {
		return id
	}
	if unitLike {
		return name
	}
	return rel
}

// readUsage fills s's CPU, memory and process count from its cgroup files. Without the
// memory controller (a hybrid hierarchy binds it to v1), memory is the sum of its
// processes' resident sets.
func (s *service) readUsage(root, proc string, pageSize int64) {
	dir := filepath.Join(root, s.rel)
	if b, err := os.ReadFile(filepath.Join(dir, "cpu.stat")); err == nil {
		s.cpuUsec, s.haveCPU = keyValue(b, "usage_usec")
	}
	if n, ok := readInt(filepath.Join(dir, "memory.current")); ok {
		s.memory = n
	} else {
		for _, pid := range s.pids {
			s.memory += rssBytes(proc, pid, pageSize)
		}
	}
	// pids.current counts threads; the cgroup.procs files list processes.
	s.processes = int64(len(s.pids))
}

func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	var n int64
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + int64(r-'0')
	}
	return n, true
}
