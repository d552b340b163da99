package file

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// runShell runs a shell command (not the test binary: changes made by the test process
// are excluded as crumbs' own) and returns the shell's pid.
func runShell(t testing.TB, script string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
	return cmd.Process.Pid
}

// waitFor returns the first event match accepts, failing the test after waitLimit.
func waitFor(t testing.TB, events <-chan *schemas.FileEvent, what string, match func(*schemas.FileEvent) bool) *schemas.FileEvent {
	t.Helper()
	limit := time.After(waitLimit)
	for {
		select {
		case e := <-events:
			if match(e) {
				return e
			}
		case <-limit:
			t.Fatalf("no %s within %v", what, waitLimit)
			return nil
		}
	}
}

func about(action, path string) func(*schemas.FileEvent) bool {
	return func(e *schemas.FileEvent) bool { return e.Action == action && e.File.Path == path }
}

// TestRedirectedWrites checks that a shell's redirections are writes: appending to an
// existing file with a builtin (the shell opens, dup2s onto stdout, closes the first
// descriptor, writes, restores stdout), and an external command writing to the descriptor
// the shell gave it and exiting without closing it.
func TestRedirectedWrites(t *testing.T) {
	testenv.RequireBPF(t)
	dir := tempDir(t)
	_, events := runCollector(t, testConfig(t, dir))
	for _, c := range []struct{ name, script string }{
		{"builtin append", `echo persist >> %s`},
		{"external command append", `cat /etc/hostname >> %s`},
		{"external command truncate", `/bin/echo again > %s`},
	} {
		path := filepath.Join(dir, "rc-"+filepath.Base(t.Name())+"-"+c.name[:3])
		if err := os.WriteFile(path, []byte("# rc\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		runShell(t, fmt.Sprintf(c.script, path))
		ev := waitFor(t, events, c.name+" write of "+path, about(schemas.ActionWrite, path))
		if ev.File.SHA256 != sha256Of(t, path) {
			t.Errorf("%s: sha256 %s, file now %s", c.name, ev.File.SHA256, sha256Of(t, path))
		}
	}
}

// TestSensitiveReads checks that opening a file of sensitive_reads for reading is one read
// event per process and file, that a file of the same name elsewhere is not, and that the
// kernel filter keys on the directory's name and the name's start.
func TestSensitiveReads(t *testing.T) {
	testenv.RequireBPF(t)
	dir := tempDir(t)
	secrets := filepath.Join(dir, "crumbs-secrets")
	other := filepath.Join(dir, "other")
	for _, d := range []string{secrets, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key, decoy, plain := filepath.Join(secrets, "id_test"), filepath.Join(other, "id_test"), filepath.Join(secrets, "notes")
	for _, p := range []string{key, decoy, plain} {
		if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Watch only a directory of /var nothing writes to: every record user space filters is
	// then a read the kernel should have dropped.
	cfg := testConfig(t, quietVarDir(t))
	cfg.SensitiveReads = []string{filepath.Join(dir, "crumbs-secrets", "id_*")}
	c, events := runCollector(t, cfg)

	runShell(t, fmt.Sprintf("cat %s %s %s %s >/dev/null; true", decoy, plain, key, key))
	first := waitFor(t, events, "read of "+key, about(schemas.ActionRead, key))
	if first.Process.File.Name != "cat" {
		t.Errorf("first read by %q, want cat", first.Process.File.Path)
	}
	// cat opens it twice: one event. No event for the decoy or the other file.
	reads := []string{first.File.Path}
	limit := time.After(2 * time.Second)
wait:
	for {
		select {
		case e := <-events:
			if e.Action == schemas.ActionRead {
				reads = append(reads, e.File.Path)
			}
		case <-limit:
			break wait
		}
	}
	if diff := cmp.Diff([]string{key}, reads); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
	if n := c.Stats().Filtered; n != 0 {
		t.Errorf("%d records filtered in user space: the kernel should have dropped the decoy and the other file", n)
	}
}

// quietVarDir is a fresh directory right under /var: a watch of it lets the kernel drop the
// rest of /var (by its second component), so that nothing else reaches user space.
func quietVarDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/var", "crumbs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// TestCapabilitiesAndTimes checks that file capabilities set (the security.capability
// attribute, anywhere) and times set to given values (touch -d; not touch alone) are
// reported, the latter with the file's new modification time.
func TestCapabilitiesAndTimes(t *testing.T) {
	testenv.RequireBPF(t)
	dir := tempDir(t)
	_, events := runCollector(t, testConfig(t, filepath.Join(dir, "watched")))
	watched := filepath.Join(dir, "watched")
	if err := os.Mkdir(watched, 0o755); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "tool")
	stamped := filepath.Join(watched, "stamped")
	for _, p := range []string{elsewhere, stamped} {
		if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runHelperProcess(t, "setcap", elsewhere)
	ev := waitFor(t, events, "setcap of "+elsewhere, about(schemas.ActionSetCap, elsewhere))
	if ev.Process.File.Name == "" {
		t.Errorf("setcap event names no process: %+v", ev.Process)
	}

	runShell(t, "touch "+stamped) // now: not reported
	runShell(t, "touch -d 2001-02-03T04:05:06Z "+stamped)
	ev = waitFor(t, events, "utimes of "+stamped, func(e *schemas.FileEvent) bool {
		return e.Action == schemas.ActionUtimes || e.Action == schemas.ActionCreate && e.File.Path == stamped
	})
	if ev.Action != schemas.ActionUtimes {
		t.Fatalf("first event about %s: %s, want utimes (touch without a time is not one)", stamped, ev.Action)
	}
	want := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC).UnixNano()
	if ev.File.Mtime != want || ev.File.Path != stamped {
		t.Errorf("utimes of %s: mtime %d, want %d", ev.File.Path, ev.File.Mtime, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(stamped, &st); err != nil || st.Mtim.Nano() != want {
		t.Errorf("the file's mtime is %d (%v), the event said %d", st.Mtim.Nano(), err, ev.File.Mtime)
	}
}

// TestSecondLevelFilter checks that watching a directory of /var lets the kernel drop the
// rest of /var: a write elsewhere under it never reaches user space's filter.
func TestSecondLevelFilter(t *testing.T) {
	testenv.RequireBPF(t)
	watched := quietVarDir(t)
	if err := os.MkdirAll("/var/cache", 0o755); err != nil {
		t.Fatal(err)
	}
	unwatched, err := os.MkdirTemp("/var/cache", "crumbs-unwatched-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(unwatched) })
	cfg := testConfig(t, watched)
	cfg.SensitiveReads = nil
	c, events := runCollector(t, cfg)
	marker := filepath.Join(watched, "marker")
	runShell(t, fmt.Sprintf("echo x > %s/a; echo y > %s", unwatched, marker))
	waitFor(t, events, "write of "+marker, about(schemas.ActionWrite, marker))
	if n := c.Stats().Filtered; n != 0 {
		t.Errorf("%d records filtered in user space, want 0: the kernel filter keys /var by its second component", n)
	}
}
