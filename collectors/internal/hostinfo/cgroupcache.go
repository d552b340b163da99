package hostinfo

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// CgroupCache remembers what each cgroup says about who runs its processes (unit, container),
// by the kernel's cgroup id, which every collector record carries: a process's cgroup then
// costs a map lookup instead of reading /proc/<pid>/cgroup for every event. A cgroup is
// remembered only when its id is checked: on cgroup v2 the id is the inode of the cgroup's
// directory, so the path /proc gives is looked up under CgroupRoot and its inode compared
// (a process that moved since its record, or cgroup v1, is read from /proc every time, as
// before). Bounded: emptied when full. Safe for concurrent use.
type CgroupCache struct {
	Proc       Proc
	CgroupRoot string // "/sys/fs/cgroup"
	Max        int

	mu sync.Mutex
	m  map[uint64]Cgroup
}

// CgroupCacheEntries is the collectors' bound on the cgroups they remember.
const CgroupCacheEntries = 4096

// NewCgroupCache returns a cache of at most max cgroups for the host's /proc and the cgroup2
// mount under root.
func NewCgroupCache(root Root, max int) *CgroupCache {
	return &CgroupCache{Proc: Proc{Root: "/proc"}, CgroupRoot: root.Path("/sys/fs/cgroup"), Max: max}
}

// Lookup returns the cgroup with the kernel's id, read from /proc/<pid>/cgroup the first time.
func (c *CgroupCache) Lookup(id uint64, pid int) Cgroup {
	c.mu.Lock()
	cg, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return cg
	}
	cg = c.Proc.Cgroup(pid)
	if id == 0 || cg.Path == "" || !c.is(cg.Path, id) {
		return cg
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.Max {
		c.m = make(map[uint64]Cgroup)
	}
	c.m[id] = cg
	return cg
}

// is reports whether the cgroup directory of path has the inode id.
func (c *CgroupCache) is(path string, id uint64) bool {
	fi, err := os.Stat(filepath.Join(c.CgroupRoot, path))
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Ino == id
}
