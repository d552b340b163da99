package file

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// procCacheEntries bounds the per-process cache; it is emptied when full.
	procCacheEntries = 4096
	// procCacheTTL is how long a process's cgroup is reused; short, because a pid is reused.
	procCacheTTL = 2 * time.Second
)

// procInfo is what /proc says about a process that changed a file.
type procInfo struct {
	unit, container string
	at              time.Time
}

// procCache reads /proc/<pid>/cgroup for the actors of events. Used from the reading
// goroutine only.
type procCache struct {
	root    string
	entries map[uint32]procInfo
}

func newProcCache(root string) *procCache {
	return &procCache{root: root, entries: make(map[uint32]procInfo)}
}

// lookup returns the process's systemd unit and container id; empty when it is gone.
func (p *procCache) lookup(pid uint32, now time.Time) procInfo {
	if e, ok := p.entries[pid]; ok && now.Sub(e.at) < procCacheTTL {
		return e
	}
	e := procInfo{at: now}
	if b, err := os.ReadFile(filepath.Join(p.root, strconv.FormatUint(uint64(pid), 10), "cgroup")); err == nil {
		e.unit, e.container = parseCgroup(string(b))
	}
	if len(p.entries) >= procCacheEntries {
		clear(p.entries)
	}
	p.entries[pid] = e
	return e
}

// parseCgroup returns the systemd unit and the container id named by a cgroup v2 path.
func parseCgroup(s string) (unit, container string) {
	for line := range strings.Lines(s) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, part := range strings.Split(f[2], "/") {
			switch {
			case strings.HasSuffix(part, ".service") || strings.HasSuffix(part, ".scope"):
				if id := containerID(part); id != "" {
					container = id
				} else {
					unit = part
				}
			case len(part) == 64 && isHex(part):
				container = part
			}
		}
	}
	return unit, container
}

// containerID extracts the id of "docker-<id>.scope" and similar runtime scopes.
func containerID(part string) string {
	base := strings.TrimSuffix(part, ".scope")
	if i := strings.LastIndexByte(base, '-'); i >= 0 && len(base)-i-1 == 64 && isHex(base[i+1:]) {
		return base[i+1:]
	}
	return ""
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
