package identity

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/schemas"
)

// procRoot is where the acting processes' details are read.
const procRoot = "/proc"

// actor describes process pid from what the kernel record says (uid, comm, cgroup id) and
// what /proc still says about it. A process that is gone by the time its record is read
// (su and sudo often are at session close) has no path or command line: its comm stands
// as the file name.
func (c *Collector) actor(pid, uid uint32, comm string, cgroupID uint64, now time.Time) schemas.Actor {
	a := schemas.Actor{
		PID:      int32(pid),
		User:     schemas.User{UID: int64(uid), Name: c.users.name(uid, now)},
		CgroupID: int64(cgroupID),
		File:     schemas.File{Name: comm},
	}
	dir := procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/"
	if exe, err := os.Readlink(dir + "exe"); err == nil {
		exe = strings.TrimSuffix(exe, " (deleted)")
		a.File = schemas.File{Path: exe, Name: filepath.Base(exe)}
	}
	if b, err := os.ReadFile(dir + "cmdline"); err == nil {
		a.CmdLine = schemas.JoinArgs(splitArgs(b))
	}
	if b, err := os.ReadFile(dir + "cgroup"); err == nil {
		a.SystemdUnit, a.ContainerID = unitOf(cgroupPath(string(b)))
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

// cgroupPath returns the cgroup v2 path of a /proc/<pid>/cgroup file, else the v1
// name=systemd one.
func cgroupPath(content string) string {
	var systemd string
	for line := range strings.SplitSeq(content, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			return f[2]
		}
		if f[1] == "name=systemd" {
			systemd = f[2]
		}
	}
	return systemd
}

// unitOf returns the last *.service or *.scope element of a cgroup path and the last
// container id (64 hex digits, bare or inside a runtime's scope name) in it.
func unitOf(path string) (unit, container string) {
	for el := range strings.SplitSeq(path, "/") {
		if strings.HasSuffix(el, ".service") || strings.HasSuffix(el, ".scope") {
			unit = el
		}
		name := strings.TrimSuffix(el, ".scope")
		if i := strings.LastIndexAny(name, "-:"); i >= 0 {
			name = name[i+1:]
		}
		if isHex64(name) {
			container = name
		}
	}
	return unit, container
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// cstring returns b up to its first NUL.
func cstring[T ~int8 | ~byte](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// userNames maps uids to names from /etc/passwd, re-reading it when its mtime changes,
// checked at most once a second. Used from the reading goroutine only.
type userNames struct {
	path    string
	checked time.Time
	mtime   time.Time
	names   map[uint32]string
}

func (n *userNames) name(uid uint32, now time.Time) string {
	if now.Sub(n.checked) >= time.Second {
		n.checked = now
		n.refresh()
	}
	return n.names[uid]
}

func (n *userNames) refresh() {
	fi, err := os.Stat(n.path)
	if err != nil {
		n.names, n.mtime = nil, time.Time{}
		return
	}
	if n.names != nil && fi.ModTime().Equal(n.mtime) {
		return
	}
	b, err := os.ReadFile(n.path)
	if err != nil {
		return
	}
	n.names, n.mtime = parsePasswd(b), fi.ModTime()
}

// parsePasswd reads "name:x:uid:..." lines; the first name listed for a uid wins.
func parsePasswd(b []byte) map[uint32]string {
	names := make(map[uint32]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.SplitN(sc.Bytes(), []byte(":"), 4)
		if len(f) < 3 || len(f[0]) == 0 || f[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(id)]; !dup {
			names[uint32(id)] = string(f[0])
		}
	}
	return names
}

// findLibPAM returns the path of libpam.so.0 from the dynamic linker's cache, falling back
// to Debian's and Red Hat's library directories.
func findLibPAM() (string, error) {
	if out, err := exec.Command("ldconfig", "-p").Output(); err == nil {
		if p := libFromLdconfig(string(out), "libpam.so.0", ldconfigArch()); p != "" {
			return p, nil
		}
	}
	for _, p := range []string{"/lib/x86_64-linux-gnu/libpam.so.0", "/usr/lib/x86_64-linux-gnu/libpam.so.0", "/usr/lib64/libpam.so.0", "/lib64/libpam.so.0", "/usr/lib/libpam.so.0"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("libpam.so.0 is neither in the ldconfig cache nor in the usual library directories")
}

// ldconfigArch is how ldconfig -p names this machine's ABI.
func ldconfigArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86-64"
	case "arm64":
		return "AArch64"
	}
	return ""
}

// libFromLdconfig picks lib from ldconfig -p output lines such as
// "libpam.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libpam.so.0", preferring arch.
func libFromLdconfig(out, lib, arch string) string {
	var first string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, " ")
		if !ok || name != lib {
			continue
		}
		_, path, ok := strings.Cut(rest, "=> ")
		if !ok {
			continue
		}
		if arch != "" && strings.Contains(rest, arch) {
			return path
		}
		if first == "" {
			first = path
		}
	}
	return first
}

// bootTimeOffset returns wall-clock time minus CLOCK_BOOTTIME (bpf_ktime_get_boot_ns),
// taking the tightest of a few samples.
func bootTimeOffset() (int64, error) {
	best, bestSpan := int64(0), int64(-1)
	for range 5 {
		var before, after unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &before); err != nil {
			return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
		}
		wall := time.Now().UnixNano()
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &after); err != nil {
			return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
		}
		span := after.Nano() - before.Nano()
		if bestSpan < 0 || span < bestSpan {
			best, bestSpan = wall-(before.Nano()+span/2), span
		}
	}
	return best, nil
}
