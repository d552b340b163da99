package hostinfo

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCgroupCache reads a process's cgroup from a /proc and a cgroup tree laid out in a
// temporary directory: a cgroup whose id matches its directory's inode is remembered (its
// /proc file can go); one whose id does not is read every time; a gone process gives nothing.
func TestCgroupCache(t *testing.T) {
	root := t.TempDir()
	proc, cgroups := filepath.Join(root, "proc"), filepath.Join(root, "cgroup")
	unitDir := filepath.Join(cgroups, "system.slice", "shop.service")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(unitDir)
	if err != nil {
		t.Fatal(err)
	}
	id := fi.Sys().(*syscall.Stat_t).Ino
	writeCgroup := func(pid string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte("0::/system.slice/shop.service\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCgroup("10")
	writeCgroup("11")
	shop := Cgroup{Path: "/system.slice/shop.service", SystemdUnit: "shop.service"}
	c := &CgroupCache{Proc: Proc{Root: proc}, CgroupRoot: cgroups, Max: 8}

	steps := []struct {
		what   string
		id     uint64
		pid    int
		remove string // /proc/<remove> goes before the lookup
		want   Cgroup
	}{
		{"first lookup reads /proc", id, 10, "", shop},
		{"remembered: the process is gone", id, 10, "10", shop},
		{"remembered for another process of the cgroup", id, 12, "", shop},
		{"an id that is not the directory's is read, not remembered", id + 1, 11, "", shop},
		{"so once the process is gone it gives nothing", id + 1, 11, "11", Cgroup{}},
	}
	for _, st := range steps {
		if st.remove != "" {
			if err := os.RemoveAll(filepath.Join(proc, st.remove)); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(st.want, c.Lookup(st.id, st.pid)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", st.what, diff)
		}
	}
}
