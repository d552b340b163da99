package process

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// shortLivedRuns is how many times each short-lived exec runs; every run must carry its cwd.
const shortLivedRuns = 50

// execWhere is what TestShortLivedCWD checks of an exec event.
type execWhere struct {
	CWD  string
	Path string
}

// TestShortLivedCWD runs processes that exit at once, too soon for /proc/<pid>/cwd to be
// read, and checks that every exec event carries the working directory the kernel walked.
func TestShortLivedCWD(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())
	trueCopy, _ := copyExecutable(t, "/bin/true", "crumbs-true")
	dir := filepath.Dir(trueCopy)
	mounted := tmpfsDir(t)
	spaced := filepath.Join(mounted, "a dir", "b")
	if err := os.MkdirAll(spaced, 0o755); err != nil {
		t.Fatalf("create %s: %v", spaced, err)
	}

	tests := []struct {
		name, dir, file string
		want            execWhere
	}{
		{name: "absolute filename", dir: dir, file: "/bin/true", want: execWhere{CWD: dir, Path: "/bin/true"}},
		{name: "relative filename", dir: dir, file: "./crumbs-true", want: execWhere{CWD: dir, Path: trueCopy}},
		{name: "root", dir: "/", file: "/bin/true", want: execWhere{CWD: "/", Path: "/bin/true"}},
		{name: "across a mount", dir: spaced, file: "/bin/true", want: execWhere{CWD: spaced, Path: "/bin/true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every run first, then their events: each exec event is read within the ring's
			// poll interval, and the runs need not wait for it one by one.
			pids := make(map[int32]int)
			for i := range shortLivedRuns {
				cmd := exec.Command(tt.file)
				cmd.Dir = tt.dir
				if err := cmd.Run(); err != nil {
					t.Fatalf("run %s in %s: %v", tt.file, tt.dir, err)
				}
				pids[int32(cmd.Process.Pid)] = i
			}
			var bad []string
			for len(pids) > 0 {
				ev := waitEvent(t, events, "exec", func(e *schemas.ProcessEvent) bool {
					_, ok := pids[e.Process.PID]
					return ok && e.Action == schemas.ActionExec
				})
				i := pids[ev.Process.PID]
				delete(pids, ev.Process.PID)
				got := execWhere{CWD: ev.Process.CWD, Path: ev.Process.File.Path}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					bad = append(bad, diff)
					t.Errorf("run %d: exec event (-want +got):\n%s", i, diff)
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d of %d runs lacked the cwd or path", len(bad), shortLivedRuns)
			}
		})
	}
}

// TestLongCWDFallsBackToProc checks that a working directory longer than the kernel walks
// is read from /proc instead (the process waits on stdin, so /proc/<pid> is there).
func TestLongCWDFallsBackToProc(t *testing.T) {
	testenv.RequireBPF(t)
	c, events := runCollector(t, DefaultConfig())
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("resolve temp dir: %v", err)
	}
	long := filepath.Join(base, strings.Repeat("d", 200), strings.Repeat("e", 200), strings.Repeat("f", 200))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatalf("create %s: %v", long, err)
	}
	before := c.Stats().CWDFallbacks

	cmd := exec.Command("/bin/sh", "-c", "read line", marker(t))
	cmd.Dir = long
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start /bin/sh: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ev := waitEvent(t, events, "exec", isAction(cmd.Process.Pid, schemas.ActionExec))
	stdin.Close()

	if ev.Process.CWD != long {
		t.Errorf("cwd: want %s, got %s", long, ev.Process.CWD)
	}
	if after := c.Stats().CWDFallbacks; after <= before {
		t.Errorf("CWDFallbacks: want more than %d, got %d", before, after)
	}
}

// tmpfsDir mounts a tmpfs on a fresh directory and unmounts it in cleanup.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("resolve temp dir: %v", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestWalkedPath(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "root", raw: "", want: "/"},
		{name: "one component", raw: "tmp\x00", want: "/tmp"},
		{name: "leaf first", raw: "c\x00b b\x00a\x00", want: "/a/b b/c"},
		{name: "trailing padding", raw: "bin\x00usr\x00\x00\x00", want: "/usr/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, walkedPath([]byte(tt.raw))); diff != "" {
				t.Errorf("walkedPath(%q) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestSplitData(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		lens    []int
		want    []string
		wantErr bool
	}{
		{name: "exact", data: "abcdef", lens: []int{1, 2, 3}, want: []string{"a", "bc", "def"}},
		{name: "empty parts", data: "ab", lens: []int{0, 2, 0}, want: []string{"", "ab", ""}},
		{name: "trailing bytes", data: "abcd", lens: []int{1, 1}, want: []string{"a", "b"}},
		{name: "overrun", data: "abc", lens: []int{2, 2}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, err := splitData([]byte(tt.data), tt.lens)
			if (err != nil) != tt.wantErr {
				t.Fatalf("splitData: want error %v, got %v", tt.wantErr, err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, string(p))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parts (-want +got):\n%s", diff)
			}
		})
	}
}
