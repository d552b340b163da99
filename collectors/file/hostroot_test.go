package file

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScanUnderHostRoot: in a container with the host's root mounted at collectors.host_root,
// a scan reads the host's files and reports the host's paths, owners named from the host's
// /etc/passwd and /etc/group, and a watched directory that is an absolute link on the host
// is followed to the host's directory, not to this container's.
func TestScanUnderHostRoot(t *testing.T) {
	root := tempDir(t)
	for _, d := range []string{"etc", "srv/app/bin", "opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid := os.Getuid(), os.Getgid()
	files := map[string]string{
		"etc/passwd":       "hostuser:x:" + itoa(int64(uid)) + ":" + itoa(int64(gid)) + "::/:/bin/sh\n",
		"etc/group":        "hostgroup:x:" + itoa(int64(gid)) + ":\n",
		"srv/app/bin/tool": "the host's tool\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// /opt/app -> /srv/app on the host: resolved in this process's tree it would lead to
	// this machine's /srv/app, which has no bin/tool.
	if err := os.Symlink("/srv/app", filepath.Join(root, "opt/app")); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, "/opt/app", "/etc/passwd")
	s, err := NewScanner(cfg, testHost, nil, WithHostRoot(root))
	if err != nil {
		t.Fatalf("NewScanner: %v", err)
	}
	events, err := s.Scan(context.Background(), nil)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	type seen struct{ Action, Path, Owner, Group, SHA256 string }
	var got []seen
	for _, e := range events {
		got = append(got, seen{e.Action, e.File.Path, e.File.Owner, e.File.Group, e.File.SHA256})
	}
	want := []seen{
		{"scan_added", "/etc/passwd", "hostuser", "hostgroup", sha256Of(t, filepath.Join(root, "etc/passwd"))},
		{"scan_added", "/srv/app/bin/tool", "hostuser", "hostgroup", sha256Of(t, filepath.Join(root, "srv/app/bin/tool"))},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scan under host root %s (-want +got):\n%s", root, diff)
	}
}
