package identity

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/schemas"
)

// actor describes process pid from what the kernel record says (uid, comm, cgroup id) and
// what /proc still says about it. A process that is gone by the time its record is read
// (su and sudo often are at session close) has no path or command line: its comm stands
// as the file name.
func (c *Collector) actor(pid, uid uint32, comm string, cgroupID uint64, now time.Time) schemas.Actor {
	a := schemas.Actor{
		PID:      int32(pid),
		User:     schemas.User{UID: int64(uid), Name: c.users.Name(uid, now)},
		CgroupID: int64(cgroupID),
		File:     schemas.File{Name: comm},
		CmdLine:  schemas.JoinArgs(c.proc.Args(int(pid))),
	}
	if exe := c.proc.Exe(int(pid)); exe != "" {
		a.File = schemas.File{Path: exe, Name: filepath.Base(exe)}
	}
	cg := c.cgroups.Lookup(cgroupID, int(pid))
	a.SystemdUnit, a.ContainerID = cg.SystemdUnit, cg.ContainerID
	return a
}

// FindLibPAM returns the host's path of libpam.so.0 from the dynamic linker's cache,
// falling back to Debian's and Red Hat's library directories. hostRoot is where the host's
// root directory is (collectors.host_root; "" on the host): its cache and directories are
// read there.
func FindLibPAM(hostRoot string) (string, error) {
	root := hostinfo.Root(hostRoot)
	if out, err := exec.Command("ldconfig", "-p", "-C", root.Path("/etc/ld.so.cache")).Output(); err == nil {
		if p := libFromLdconfig(string(out), "libpam.so.0", ldconfigArch()); p != "" {
			return p, nil
		}
	}
	for _, p := range []string{"/lib/x86_64-linux-gnu/libpam.so.0", "/usr/lib/x86_64-linux-gnu/libpam.so.0",
		"/lib/aarch64-linux-gnu/libpam.so.0", "/usr/lib/aarch64-linux-gnu/libpam.so.0",
		"/usr/lib64/libpam.so.0", "/lib64/libpam.so.0", "/usr/lib/libpam.so.0"} {
		if f, err := root.Open(p, unix.O_PATH); err == nil {
			f.Close()
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
