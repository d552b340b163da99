package file

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// globSet matches paths against globs: a path matches when a glob matches it or one of its
// parent directories, component by component (so "/opt/*/bin" covers
// "/opt/shop/bin/shop" but not "/opt/shop/lib/x").
type globSet struct {
	globs    []string
	patterns [][]string
}

func newGlobSet(globs []string) globSet {
	g := globSet{globs: globs}
	for _, glob := range globs {
		g.patterns = append(g.patterns, components(glob))
	}
	return g
}

// components splits a cleaned absolute path into its names; "/" has none.
func components(path string) []string {
	path = strings.Trim(filepath.Clean(path), "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

// match reports whether path is one of the set's globs or under one.
func (g globSet) match(path string) bool {
	comps := components(path)
	for _, pat := range g.patterns {
		if matchPrefix(pat, comps) {
			return true
		}
	}
	return false
}

func matchPrefix(pat, comps []string) bool {
	if len(comps) < len(pat) {
		return false
	}
	for i, p := range pat {
		if ok, _ := filepath.Match(p, comps[i]); !ok {
			return false
		}
	}
	return true
}

// Values of the kernel's watched_tops map (TOP_WHOLE, TOP_SECONDS in bpf/file.bpf.c).
const (
	topWhole   = 1 // every path under the top is watched
	topSeconds = 2 // only the second components in watched_seconds are
)

// kernelFilter is what the kernel filter holds for a glob set: the first components of the
// globs (topWhole or topSeconds), and for topSeconds tops their second components.
type kernelFilter struct {
	tops    map[string]uint8
	seconds [][2]string
}

// filter returns the kernel filter for the set; ok is false when some glob's first
// component is a pattern or the glob is "/", so that no finite set of names covers it. A top
// is filtered by its second components when every glob under it names a literal one
// (/var/log, /var/spool/cron), so that a busy /var/lib costs the kernel nothing.
func (g globSet) filter() (f kernelFilter, ok bool) {
	f.tops = map[string]uint8{}
	seconds := map[string][]string{}
	for _, pat := range g.patterns {
		if len(pat) == 0 || strings.ContainsAny(pat[0], `*?[\`) {
			return kernelFilter{}, false
		}
		top := pat[0]
		if len(pat) == 1 || strings.ContainsAny(pat[1], `*?[\`) {
			f.tops[top] = topWhole
			continue
		}
		if f.tops[top] != topWhole {
			f.tops[top] = topSeconds
		}
		seconds[top] = append(seconds[top], pat[1])
	}
	for top, names := range seconds {
		if f.tops[top] != topSeconds {
			continue
		}
		seen := map[string]bool{}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				f.seconds = append(f.seconds, [2]string{top, n})
			}
		}
	}
	return f, true
}

// userSet holds excluded users by name or numeric uid.
type userSet map[string]bool

func newUserSet(users []string) userSet {
	s := userSet{}
	for _, u := range users {
		s[strings.TrimSpace(u)] = true
	}
	return s
}

func (s userSet) has(uid int64, name string) bool {
	if len(s) == 0 {
		return false
	}
	return s[name] || s[itoa(uid)]
}

// readNameBytes is the kernel read filter's name size (READ_NAME_BYTES in bpf/include/file.h):
// a name is compared on at most readNameBytes-1 bytes.
const readNameBytes = 32

// readFilterKey is the kernel's read-filter entry for a sensitive-read glob: its last
// directory's name, "/", and its file name up to the first wildcard; exact (with the name's
// terminating NUL) when the name has none. The kernel compares the entry with the parent
// directory's name and the name of each file opened for reading; user space then matches the
// whole glob.
func readFilterKey(glob string) ([]byte, error) {
	comps := components(glob)
	if len(comps) < 2 {
		return nil, errors.New("must name a file in a directory (the kernel filters by both names)")
	}
	dir, name := comps[len(comps)-2], comps[len(comps)-1]
	if strings.ContainsAny(dir, `*?[\`) {
		return nil, fmt.Errorf("the last directory %q must be a literal name (the kernel filters by it)", dir)
	}
	prefix, exact := name, true
	if i := strings.IndexAny(name, `*?[\`); i >= 0 {
		prefix, exact = name[:i], false
	}
	if len(dir) >= readNameBytes || len(prefix) >= readNameBytes {
		return nil, fmt.Errorf("the last directory and the name's literal start must be under %d bytes", readNameBytes)
	}
	key := []byte(dir + "/" + prefix)
	if exact {
		key = append(key, 0)
	}
	return key, nil
}
