package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// procFS reads what the kernel record does not carry from /proc/<pid>. Every read may fail
// because the process is gone; failures give empty values.
type procFS struct {
	root string // "/proc"
}

func (p procFS) path(pid int32, name string) string {
	return p.root + "/" + strconv.Itoa(int(pid)) + "/" + name
}

// exe returns the target of /proc/<pid>/exe, with the " (deleted)" suffix the kernel adds
// for an unlinked file removed.
func (p procFS) exe(pid int32) string {
	s, err := os.Readlink(p.path(pid, "exe"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(s, " (deleted)")
}

func (p procFS) cwd(pid int32) string {
	s, err := os.Readlink(p.path(pid, "cwd"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(s, " (deleted)")
}

func (p procFS) args(pid int32) []string {
	b, err := os.ReadFile(p.path(pid, "cmdline"))
	if err != nil {
		return nil
	}
	args, _ := splitArgs(b, 0)
	return args
}

func (p procFS) cgroup(pid int32) cgroupInfo {
	b, err := os.ReadFile(p.path(pid, "cgroup"))
	if err != nil {
		return cgroupInfo{}
	}
	return parseCgroup(string(b))
}

// splitArgs splits NUL-separated argv. max > 0 keeps at most max elements and reports
// whether some were left out.
func splitArgs(b []byte, max int) (args []string, truncated bool) {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil, false
	}
	for len(b) > 0 {
		if max > 0 && len(args) == max {
			return args, true
		}
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			args = append(args, string(b))
			break
		}
		args = append(args, string(b[:i]))
		b = b[i+1:]
	}
	return args, false
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

// splitData cuts a record's data into consecutive parts of the given lengths.
func splitData(data []byte, lens []int) ([][]byte, error) {
	parts := make([][]byte, len(lens))
	for i, n := range lens {
		if n > len(data) {
			return nil, fmt.Errorf("part %d of %d bytes overruns the %d bytes left", i, n, len(data))
		}
		parts[i], data = data[:n], data[n:]
	}
	return parts, nil
}

// walkedPath turns a path the kernel walked (components leaf first, each NUL terminated;
// none for the root) into an absolute path.
func walkedPath(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return "/"
	}
	names := strings.Split(string(b), "\x00")
	slices.Reverse(names)
	return "/" + strings.Join(names, "/")
}

// resolveExecPath makes the exec's filename absolute. A relative filename was resolved by
// the kernel against the working directory at exec, which cwd is (walked in the kernel at
// that moment, or read from /proc); exe, the walked executable or /proc/<pid>/exe, is the
// fallback (it names the interpreter, not the script, for
// a script). fexecve's /dev/fd/N names nothing useful, so exe wins there too.
func resolveExecPath(filename, exe, cwd string) string {
	switch {
	case strings.HasPrefix(filename, "/dev/fd/") || strings.HasPrefix(filename, "/proc/self/fd/"):
		if exe != "" {
			return exe
		}
		return filename
	case filepath.IsAbs(filename):
		return filepath.Clean(filename)
	case cwd != "":
		return filepath.Join(cwd, filename)
	case exe != "":
		return exe
	}
	return filename
}

// cgroupInfo is what a process's cgroup path says about who runs it.
type cgroupInfo struct {
	Path        string
	SystemdUnit string
	ContainerID string
}

// parseCgroup reads /proc/<pid>/cgroup. It uses the cgroup v2 line ("0::/path") when there
// is one, else the v1 name=systemd hierarchy. The unit is the last path element that is a
// *.service or *.scope; the container id is the last element that is 64 hex digits, bare
// or inside a runtime's scope name (docker-<id>.scope, cri-containerd-<id>.scope, ...).
func parseCgroup(content string) cgroupInfo {
	path := cgroupPath(content)
	info := cgroupInfo{Path: path}
	for _, el := range strings.Split(path, "/") {
		if strings.HasSuffix(el, ".service") || strings.HasSuffix(el, ".scope") {
			info.SystemdUnit = el
		}
		if id := containerID(el); id != "" {
			info.ContainerID = id
		}
	}
	return info
}

func cgroupPath(content string) string {
	var systemd string
	for _, line := range strings.Split(content, "\n") {
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

// Prefixes container runtimes give their systemd scopes (and cgroupfs directories).
var containerScopePrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-"}

func containerID(el string) string {
	if isContainerID(el) {
		return el
	}
	name, ok := strings.CutSuffix(el, ".scope")
	if !ok {
		return ""
	}
	for _, prefix := range containerScopePrefixes {
		if id, ok := strings.CutPrefix(name, prefix); ok && isContainerID(id) {
			return id
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
