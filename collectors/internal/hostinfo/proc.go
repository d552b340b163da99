package hostinfo

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Proc reads /proc/<pid> files below Root. Every read may fail because the process is gone;
// failures give empty values.
type Proc struct {
	Root string // "/proc"
}

func (p Proc) path(pid int, name string) string {
	return p.Root + "/" + strconv.Itoa(pid) + "/" + name
}

// Exe returns the target of /proc/<pid>/exe, with the " (deleted)" suffix the kernel adds
// for an unlinked file removed.
func (p Proc) Exe(pid int) string {
	return p.link(pid, "exe")
}

// Cwd returns the target of /proc/<pid>/cwd, with a " (deleted)" suffix removed.
func (p Proc) Cwd(pid int) string {
	return p.link(pid, "cwd")
}

func (p Proc) link(pid int, name string) string {
	s, err := os.Readlink(p.path(pid, name))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(s, " (deleted)")
}

// Args returns the argv in /proc/<pid>/cmdline.
func (p Proc) Args(pid int) []string {
	b, err := os.ReadFile(p.path(pid, "cmdline"))
	if err != nil {
		return nil
	}
	args, _ := SplitArgs(b, 0)
	return args
}

// Cgroup returns what /proc/<pid>/cgroup says about who runs the process.
func (p Proc) Cgroup(pid int) Cgroup {
	return ParseCgroup(p.cgroupFile(pid))
}

// CgroupPath returns the process's cgroup path (see CgroupPath).
func (p Proc) CgroupPath(pid int) string {
	return CgroupPath(p.cgroupFile(pid))
}

func (p Proc) cgroupFile(pid int) string {
	b, err := os.ReadFile(p.path(pid, "cgroup"))
	if err != nil {
		return ""
	}
	return string(b)
}

// SplitArgs splits NUL-separated argv. max > 0 keeps at most max elements and reports
// whether some were left out.
func SplitArgs(b []byte, max int) (args []string, truncated bool) {
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
