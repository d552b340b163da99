package process

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/schemas"
)

func TestEventFilter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExcludeExecutables = []string{"/usr/lib/systemd/*", "/usr/bin/true"}
	cfg.ExcludeUsers = []string{"backup", "1001"}
	f := newEventFilter(cfg)
	ev := func(path string, uid int64, user string) *schemas.ProcessEvent {
		return &schemas.ProcessEvent{Process: schemas.Process{File: schemas.File{Path: path}, UID: uid, UserName: user}}
	}
	for _, tc := range []struct {
		name string
		ev   *schemas.ProcessEvent
		want bool
	}{
		{"kept", ev("/usr/bin/bash", 0, "root"), false},
		{"glob", ev("/usr/lib/systemd/systemd-journald", 0, "root"), true},
		{"glob is one level", ev("/usr/lib/systemd/sub/x", 0, "root"), false},
		{"exact", ev("/usr/bin/true", 0, "root"), true},
		{"user name", ev("/usr/bin/tar", 34, "backup"), true},
		{"uid", ev("/usr/bin/tar", 1001, ""), true},
		{"no path", ev("", 0, "root"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, f.excludes(tc.ev)); diff != "" {
				t.Errorf("excludes (-want +got):\n%s", diff)
			}
		})
	}
}
