package hostinfo

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// hostTree makes a small host root: /etc/passwd, /usr/bin/crumbs-host-tool, /bin -> usr/bin (relative),
// /etc/alt -> /usr/bin/crumbs-host-tool (absolute, as update-alternatives makes them) and
// /tmp/escape -> ../../.. (climbing above the root).
func hostTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"etc/passwd": "host passwd\n", "usr/bin/crumbs-host-tool": "host tool\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"bin": "usr/bin", "etc/alt": "/usr/bin/crumbs-host-tool", "tmp/escape": "../../..", "etc/abs-etc": "/etc"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRootPathAndHost(t *testing.T) {
	for _, tc := range []struct {
		root      Root
		host, own string
	}{
		{Here, "/etc/passwd", "/etc/passwd"},
		{"/", "/etc/passwd", "/etc/passwd"},
		{"/host", "/etc/passwd", "/host/etc/passwd"},
		{"/host/", "/usr/bin/../bin/ls", "/host/usr/bin/ls"},
		{"/host", "/", "/host"},
		{"/host", "/../../etc/shadow", "/host/etc/shadow"}, // never above the root
	} {
		if got := tc.root.Path(tc.host); got != tc.own {
			t.Errorf("Root(%q).Path(%q) = %q, want %q", tc.root, tc.host, got, tc.own)
		}
	}
	for _, tc := range []struct {
		root      Root
		own, host string
	}{
		{Here, "/etc/passwd", "/etc/passwd"},
		{"/host", "/host/etc/passwd", "/etc/passwd"},
		{"/host/", "/host", "/"},
		{"/host", "/hostile/x", "/hostile/x"}, // not under the root: as it is
		{"/host", "/proc/1/exe", "/proc/1/exe"},
	} {
		if got := tc.root.Host(tc.own); got != tc.host {
			t.Errorf("Root(%q).Host(%q) = %q, want %q", tc.root, tc.own, got, tc.host)
		}
	}
}

// TestRootOpenStaysInRoot: links are followed as the host would follow them. An absolute
// link reaches the host's file, not this process's, and ".." stops at the root.
func TestRootOpenStaysInRoot(t *testing.T) {
	dir := hostTree(t)
	root := Root(dir)
	read := func(p string) string {
		f, err := root.Open(p, os.O_RDONLY)
		if err != nil {
			return "error: " + errors.Unwrap(err).Error()
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	got := map[string]string{}
	for _, p := range []string{"/etc/passwd", "/bin/crumbs-host-tool", "/etc/alt", "/tmp/escape/etc/passwd", "/etc/abs-etc/passwd", "/../../etc/passwd", "/etc/missing"} {
		got[p] = read(p)
	}
	want := map[string]string{
		"/etc/passwd":            "host passwd\n",
		"/bin/crumbs-host-tool":  "host tool\n",
		"/etc/alt":               "host tool\n",
		"/tmp/escape/etc/passwd": "host passwd\n",
		"/etc/abs-etc/passwd":    "host passwd\n",
		"/../../etc/passwd":      "host passwd\n",
		"/etc/missing":           "error: no such file or directory",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Root.Open (-want +got):\n%s", diff)
	}

	// O_NOFOLLOW refuses a link in the last place, as on the host.
	if _, err := root.Open("/etc/alt", os.O_RDONLY|unix.O_NOFOLLOW); !errors.Is(err, unix.ELOOP) {
		t.Errorf("Open(/etc/alt, O_NOFOLLOW) = %v, want ELOOP", err)
	}
	fi, err := root.Lstat("/etc/alt")
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(/etc/alt) = %v, %v; want the link itself", fi, err)
	}
	fi, err = root.Lstat("/bin/crumbs-host-tool")
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len("host tool\n")) {
		t.Errorf("Lstat(/bin/crumbs-host-tool) = %v, %v; want the regular file under usr/bin", fi, err)
	}
	for p, want := range map[string]string{"/bin": "/usr/bin", "/etc/alt": "/usr/bin/crumbs-host-tool", "/tmp/escape": "/"} {
		if got, err := root.Resolve(p); err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", p, got, err, want)
		}
	}
}

// TestRootHere: on the host, Open and Lstat are the os package's.
func TestRootHere(t *testing.T) {
	dir := hostTree(t)
	f, err := Here.Open(filepath.Join(dir, "etc/alt"), os.O_RDONLY)
	if err == nil {
		f.Close()
		t.Errorf("Here.Open followed %s/etc/alt to this machine's /usr/bin/crumbs-host-tool; there is none", dir)
	}
	fi, err := Here.Lstat(filepath.Join(dir, "bin"))
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Here.Lstat = %v, %v", fi, err)
	}
}
