package network

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	root    string // "/proc"
	max     int
	maxAge  time.Duration
	entries map[uint32]*procDetail
}

func newProcCache(root string, max int, maxAge time.Duration) *procCache {
	return &procCache{root: root, max: max, maxAge: maxAge, entries: make(map[uint32]*procDetail)}
}

// lookup returns pid's details, reading /proc when they are missing, old, or were read
// before the process changed its comm (an exec).
func (p *procCache) lookup(pid uint32, comm string, now time.Time) *procDetail {
	if d, ok := p.entries[pid]; ok && d.comm == comm && now.Sub(d.readAt) < p.maxAge {
		return d
	}
	d := p.read(pid, comm, now)
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
	dir := p.root + "/" + strconv.FormatUint(uint64(pid), 10) + "/"
	d := &procDetail{comm: comm, readAt: now}
	if exe, err := os.Readlink(dir + "exe"); err == nil {
		d.exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if b, err := os.ReadFile(dir + "cmdline"); err == nil {
		d.cmdLine = schemas.JoinArgs(splitArgs(b))
	}
	if b, err := os.ReadFile(dir + "cgroup"); err == nil {
		d.systemdUnit, d.containerID = parseCgroup(string(b))
	}
	return d
}

// actor builds the event's process from the kernel's record and /proc.
func (p *procCache) actor(pid, uid uint32, comm string, cgroupID uint64, users *userNames, now time.Time) schemas.Actor {
	d := p.lookup(pid, comm, now)
	a := schemas.Actor{
		PID:         int32(pid),
		CmdLine:     d.cmdLine,
		User:        schemas.User{UID: int64(uid), Name: users.name(uid, now)},
		CgroupID:    int64(cgroupID),
		SystemdUnit: d.systemdUnit,
		ContainerID: d.containerID,
	}
	if d.exe != "" {
		a.File = schemas.File{Path: d.exe, Name: filepath.Base(d.exe)}
	} else {
		a.File = schemas.File{Name: comm}
	}
	if a.CmdLine == "" {
		a.CmdLine = comm
	}
	return a
}

func splitArgs(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// Prefixes container runtimes give their systemd scopes (and cgroupfs directories).
var containerScopePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"}

// parseCgroup returns the systemd unit and container id /proc/<pid>/cgroup names: the
// last *.service or *.scope element of the cgroup v2 path (else of the v1 name=systemd
// one), and the last element that is, or is a runtime's scope around, 64 hex digits.
func parseCgroup(content string) (unit, container string) {
	var path string
	for _, line := range strings.Split(content, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			path = f[2]
			break
		}
		if f[1] == "name=systemd" {
			path = f[2]
		}
	}
	for _, el := range strings.Split(path, "/") {
		if strings.HasSuffix(el, ".service") || strings.HasSuffix(el, ".scope") {
			unit = el
		}
		if id := containerID(el); id != "" {
			container = id
		}
	}
	return unit, container
}

func containerID(el string) string {
	if isHex64(el) {
		return el
	}
	name, ok := strings.CutSuffix(el, ".scope")
	if !ok {
		return ""
	}
	for _, prefix := range containerScopePrefixes {
		if id, ok := strings.CutPrefix(name, prefix); ok && isHex64(id) {
			return id
		}
	}
	return ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// userNames maps uids to names from /etc/passwd, re-reading it when its mtime changes,
// checking at most once a second. Used from the reader goroutine only.
type userNames struct {
	path    string
	checked time.Time
	mtime   time.Time
	names   map[uint32]string
}

func (u *userNames) name(uid uint32, now time.Time) string {
	if now.Sub(u.checked) >= time.Second {
		u.checked = now
		u.refresh()
	}
	return u.names[uid]
}

func (u *userNames) refresh() {
	fi, err := os.Stat(u.path)
	if err != nil {
		u.names, u.mtime = nil, time.Time{}
		return
	}
	if u.names != nil && fi.ModTime().Equal(u.mtime) {
		return
	}
	b, err := os.ReadFile(u.path)
	if err != nil {
		return
	}
	u.names, u.mtime = parsePasswd(b), fi.ModTime()
}

// parsePasswd reads "name:x:uid:..." lines; the first name listed for a uid wins.
func parsePasswd(b []byte) map[uint32]string {
	names := make(map[uint32]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 4)
		if len(f) < 3 || f[0] == "" || f[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(id)]; !dup {
			names[uint32(id)] = f[0]
		}
	}
	return names
}

// matchPath reports whether an executable path matches a filepath.Match pattern; an empty
// path (the process was gone) matches nothing.
func matchPath(pattern, path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	return filepath.Match(pattern, path)
}
