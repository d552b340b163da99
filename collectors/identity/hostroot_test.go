package identity

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFindLibPAMUnderHostRoot: with the host's root mounted at collectors.host_root, libpam
// is found in the host's linker cache (ldconfig -C <root>/etc/ld.so.cache), not this
// container's, and named by its host path; without a cache entry, in the host's library
// directories.
func TestFindLibPAMUnderHostRoot(t *testing.T) {
	real, err := FindLibPAM("")
	if err != nil {
		t.Fatalf("this machine's libpam: %v", err)
	}
	lib, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// A directory no distribution uses, so only the host root's cache can name it.
	dir := filepath.Join(root, "opt/hostpam/lib")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "libpam.so.0"), lib, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ld.so.conf"), []byte("/opt/hostpam/lib\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ldconfig", "-r", root).CombinedOutput(); err != nil {
		t.Fatalf("ldconfig -r %s: %v\n%s", root, err, out)
	}
	if got, err := FindLibPAM(root); err != nil || got != "/opt/hostpam/lib/libpam.so.0" {
		t.Errorf("FindLibPAM(%s) = %q, %v; want the host's /opt/hostpam/lib/libpam.so.0", root, got, err)
	}

	// No cache: the host's library directories.
	if err := os.Remove(filepath.Join(root, "etc/ld.so.cache")); err != nil {
		t.Fatal(err)
	}
	usr := filepath.Join(root, "usr/lib64")
	if err := os.MkdirAll(usr, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/opt/hostpam/lib/libpam.so.0", filepath.Join(usr, "libpam.so.0")); err != nil {
		t.Fatal(err)
	}
	if got, err := FindLibPAM(root); err != nil || got != "/usr/lib64/libpam.so.0" {
		t.Errorf("FindLibPAM(%s) without a cache = %q, %v; want /usr/lib64/libpam.so.0", root, got, err)
	}
}
