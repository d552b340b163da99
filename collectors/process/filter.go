package process

import (
	"path/filepath"
	"strconv"

	"github.com/threatcrumbs/crumbs/schemas"
)

// eventFilter drops the events the exclude_* settings name. crumbs' own events are dropped
// in the kernel (self_tgid); its children are not, so a shell crumbs was tricked into
// starting is still seen.
type eventFilter struct {
	exes  []string
	users map[string]bool // names and decimal uids
}

func newEventFilter(cfg Config) eventFilter {
	f := eventFilter{exes: cfg.ExcludeExecutables, users: make(map[string]bool, len(cfg.ExcludeUsers))}
	for _, u := range cfg.ExcludeUsers {
		f.users[u] = true
	}
	return f
}

// excludes reports whether ev is to be dropped.
func (f eventFilter) excludes(ev *schemas.ProcessEvent) bool {
	p := &ev.Process
	if len(f.users) > 0 && (f.users[p.UserName] || f.users[strconv.FormatInt(p.UID, 10)]) {
		return true
	}
	if p.File.Path == "" {
		return false
	}
	for _, pat := range f.exes {
		if ok, _ := filepath.Match(pat, p.File.Path); ok {
			return true
		}
	}
	return false
}
