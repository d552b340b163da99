package privilege

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// systemDirs are directories OwnDir never takes, however the configuration names them: a
// typo must not hand /etc to the crumbs user.
var systemDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
	"/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
	"/usr/local/bin", "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/log", "/var/tmp", "/var/cache", "/var/spool"}

// OwnDir makes dir a private directory (0700) of u, with everything in it: created when
// missing (missing parents are created 0755 and left to root), and taken, with its contents,
// from another owner when it exists (a directory an earlier crumbs wrote as root). Paths under
// skip are left as they are, with what is below them (the root-only credentials directory).
// Symbolic links are neither followed nor changed, and dir itself must not be one; a system
// directory (/etc, /var/lib, ...) is refused.
func OwnDir(dir string, u *User, skip ...string) error {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		dir = abs
	}
	if slices.Contains(systemDirs, dir) {
		return fmt.Errorf("%s: a system directory; refusing to give it to user %s: name a directory of crumbs' own", dir, u.Name)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	if err := reachable(filepath.Dir(dir), u); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory (%s)", dir, fi.Mode().Type())
	}
	skipped := func(p string) bool {
		for _, s := range skip {
			if s != "" && (p == filepath.Clean(s) || strings.HasPrefix(p, filepath.Clean(s)+"/")) {
				return true
			}
		}
		return false
	}
	// The directory itself last: one taken halfway (a crash) is taken again next time.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if skipped(p) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		return chownIfNot(p, d, u)
	})
	if err != nil {
		return fmt.Errorf("give %s to user %s: %w", dir, u.Name, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != u.UID || int(st.Gid) != u.GID {
		if err := os.Lchown(dir, u.UID, u.GID); err != nil {
			return fmt.Errorf("give %s to user %s: %w", dir, u.Name, err)
		}
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make %s private: %w", dir, err)
		}
	}
	return nil
}

func chownIfNot(p string, d fs.DirEntry, u *User) error {
	fi, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == u.UID && int(st.Gid) == u.GID {
		return nil
	}
	if err := os.Lchown(p, u.UID, u.GID); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// reachable fails unless u may search dir and every directory above it: otherwise the
// directory given to u would be out of its reach all the same.
func reachable(dir string, u *User) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: cannot tell its owner", d)
		}
		perm := fi.Mode().Perm()
		var search bool
		switch {
		case int(st.Uid) == u.UID:
			search = perm&0o100 != 0
		case int(st.Gid) == u.GID:
			search = perm&0o010 != 0
		default:
			search = perm&0o001 != 0
		}
		if !search {
			return fmt.Errorf("user %s cannot reach it: %s (mode %04o, uid %d) is closed to it; let it through (chmod o+x %s) or choose a directory under one it may reach",
				u.Name, d, perm, st.Uid, d)
		}
		if d == "/" {
			return nil
		}
	}
}
