package file

import (
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

// tops returns the distinct first components of the globs, for the kernel filter; ok is
// false when some glob's first component is a pattern or the glob is "/", so that no finite
// set of names covers it.
func (g globSet) tops() (names []string, ok bool) {
	seen := map[string]bool{}
	for _, pat := range g.patterns {
		if len(pat) == 0 || strings.ContainsAny(pat[0], `*?[\`) {
			return nil, false
		}
		if !seen[pat[0]] {
			seen[pat[0]] = true
			names = append(names, pat[0])
		}
	}
	return names, true
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
