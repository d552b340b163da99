package hostinfo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is the host's root directory as this process sees it (collectors.host_root): "" or
// "/" when crumbs runs on the host, "/host" in a container that mounts the host's root
// read-only there (the DaemonSet and docker-compose.yml do). The kernel reports paths as the
// host sees them (an executable, a changed file, a library, a cgroup); Root turns them into
// what this process can open, and back.
type Root string

// Here is the root of a collector that runs on the host itself.
const Here Root = ""

// onHost reports whether the root is this process's own.
func (r Root) onHost() bool { return r == "" || r == "/" }

// Path returns the host path p as this process reaches it: p under the root. It resolves no
// symbolic link, and an absolute link on the way would be followed in this process's own
// tree, not the host's: a file the host's processes named is opened with Open or Lstat.
// Path serves what is not a link in practice (the cgroup mount, /etc/passwd, the linker's
// cache) and what the kernel resolves itself (a uprobe's library).
func (r Root) Path(p string) string {
	if r.onHost() {
		return p
	}
	return filepath.Join(string(r), filepath.Clean("/"+p))
}

// Host returns the host's path of a path under the root (Path's inverse); a path outside it
// is returned as it is.
func (r Root) Host(p string) string {
	if r.onHost() {
		return p
	}
	root := filepath.Clean(string(r))
	if p == root {
		return "/"
	}
	if rest, ok := strings.CutPrefix(p, root+"/"); ok {
		return "/" + rest
	}
	return p
}

// Open opens the host path p with flags (O_RDONLY and O_CLOEXEC are implied), resolving
// every symbolic link on the way as the host would: an absolute target or ".." never
// leaves the root (openat2 with RESOLVE_IN_ROOT), so a link a local user planted cannot make
// the collector read or report this container's files for the host's. On the host itself
// it is os.OpenFile.
func (r Root) Open(p string, flags int) (*os.File, error) {
	if r.onHost() {
		return os.OpenFile(p, flags, 0)
	}
	dir, err := unix.Open(string(r), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: string(r), Err: err}
	}
	defer unix.Close(dir)
	how := unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	var fd int
	for {
		fd, err = unix.Openat2(dir, strings.TrimLeft(p, "/"), &how)
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6: no openat2. Links are then followed in this process's tree.
		return os.OpenFile(r.Path(p), flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), r.Path(p)), nil
}

// Lstat is os.Lstat of the host path p: the links on the way are resolved as Open does, the
// last component is not followed.
func (r Root) Lstat(p string) (os.FileInfo, error) {
	if r.onHost() {
		return os.Lstat(p)
	}
	f, err := r.Open(p, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	return fi, nil
}

// Resolve returns the host path p with every symbolic link resolved as Open does
// (filepath.EvalSymlinks within the root).
func (r Root) Resolve(p string) (string, error) {
	if r.onHost() {
		return filepath.EvalSymlinks(p)
	}
	f, err := r.Open(p, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer f.Close()
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	return r.Host(real), nil
}
