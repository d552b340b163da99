package process

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

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

// deletedSuffix is what the kernel appends to the path of a file no directory names any
// more (/proc/<pid>/exe of a deleted executable or a memfd).
const deletedSuffix = " (deleted)"

// unlinkedPath names an executable the kernel found unlinked (a memfd, or a file deleted
// before it was executed through a descriptor) as /proc/<pid>/exe would: its path with
// " (deleted)" appended, a memfd as "/memfd:name (deleted)". exe is the walked path or
// /proc's; walked is what the kernel walked of it, leaf first, possibly cut short (a
// memfd's walk ends at its own mount's root), for when the process was gone before /proc
// could be read.
func unlinkedPath(path, exe string, walked []byte) string {
	if strings.HasSuffix(exe, deletedSuffix) {
		return exe
	}
	if leaf, _, _ := bytes.Cut(walked, []byte{0}); bytes.HasPrefix(leaf, []byte("memfd:")) {
		return "/" + string(leaf) + deletedSuffix
	}
	if exe != "" {
		path = exe
	}
	return path + deletedSuffix
}
