package hostinfo

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseIDNames(t *testing.T) {
	passwd, err := os.ReadFile("testdata/passwd")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		want    map[uint32]string
	}{
		{
			name:    "passwd with comments, duplicates and bad lines",
			content: string(passwd),
			want:    map[uint32]string{0: "root", 1: "daemon", 65534: "nobody"},
		},
		{
			name:    "group",
			content: "root:x:0:\nadm:x:4:syslog\nnogroup:x:65534:\n",
			want:    map[uint32]string{0: "root", 4: "adm", 65534: "nogroup"},
		},
		{
			name:    "first name for an id wins",
			content: "root:x:0:0:root:/root:/bin/bash\n# comment\nbad line\ntoor:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\n",
			want:    map[uint32]string{0: "root", 65534: "nobody"},
		},
		{name: "empty", content: "", want: map[uint32]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseIDNames([]byte(tt.content))); diff != "" {
				t.Errorf("ParseIDNames (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIDNamesRefresh rewrites the file and checks when the new names are seen: not before
// the recheck interval, then as soon as the mtime changed; a removed file names nothing.
func TestIDNamesRefresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	write("alice:x:1000:1000::/:/bin/sh\n", mtime)
	n := NewIDNames(path)
	start := time.Now()

	type step struct {
		name   string
		change func()
		at     time.Duration
		want   string
	}
	steps := []step{
		{name: "first read", at: 0, want: "alice"},
		{name: "rewritten, within recheck", change: func() { write("bob:x:1000:1000::/:/bin/sh\n", mtime.Add(time.Minute)) }, at: time.Second / 2, want: "alice"},
		{name: "after recheck", at: time.Second, want: "bob"},
		{name: "removed", change: func() { os.Remove(path) }, at: 2 * time.Second, want: ""},
	}
	var got, want []string
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		got = append(got, n.Name(1000, start.Add(s.at)))
		want = append(want, s.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Name(1000) after each step (-want +got):\n%s", diff)
	}
}
