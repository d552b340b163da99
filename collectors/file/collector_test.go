package file

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// waitLimit bounds how long a test waits for an event before it fails.
const waitLimit = 10 * time.Second

var testHost = schemas.Host{ID: "test-machine-id", Name: "test-host"}

// testConfig watches dirs only, with no scans and a state dir of the test's own.
func testConfig(t testing.TB, dirs ...string) Config {
	cfg := DefaultConfig()
	cfg.Paths = dirs
	cfg.ChangeOnlyPaths = nil
	cfg.ScanOnStart = false
	cfg.ScanInterval = 0
	cfg.StateDir = t.TempDir()
	return cfg
}

// tempDir returns a fresh directory by its real path, as the kernel names it.
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("resolve temp dir: %v", err)
	}
	return dir
}

// runCollector starts a collector with cfg and returns the channel its events arrive on.
// Cleanup stops it and checks that Run returned nil.
func runCollector(t testing.TB, cfg Config) (*Collector, <-chan *schemas.FileEvent) {
	t.Helper()
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, collectortest.Run(t, c.Run, 1<<14)
}

// runHelperProcess runs the test binary as a helper doing ops and returns its pid.
func runHelperProcess(t testing.TB, ops ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], ops...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %v: %v\n%s", ops, err, out)
	}
	return cmd.Process.Pid
}

// collect returns the events of pid until one matches last, failing after waitLimit.
func collect(t testing.TB, events <-chan *schemas.FileEvent, pid int, last func(*schemas.FileEvent) bool) []*schemas.FileEvent {
	t.Helper()
	var got []*schemas.FileEvent
	limit := time.After(waitLimit)
	for {
		select {
		case e := <-events:
			if e.Process.PID != int32(pid) {
				continue
			}
			got = append(got, e)
			if last(e) {
				return got
			}
		case <-limit:
			t.Fatalf("no final event from pid %d within %v; got %d events", pid, waitLimit, len(got))
			return nil
		}
	}
}

// changeSummary is what the tests check of a change event.
type changeSummary struct {
	Action, Path, NewPath string
	SHA256                string
	Size                  int64
	UID, GID              int64
	Owner, Group, Mode    string
	PID                   int32
	Exe, UserName         string
	CmdLine               string
}

func summarize(e *schemas.FileEvent) changeSummary {
	return changeSummary{
		Action: e.Action, Path: e.File.Path, NewPath: e.File.NewPath, SHA256: e.File.SHA256,
		Size: e.File.Size, UID: e.File.UID, GID: e.File.GID, Owner: e.File.Owner, Group: e.File.Group,
		Mode: e.File.Mode, PID: e.Process.PID, Exe: e.Process.File.Path, UserName: e.Process.User.Name,
		CmdLine: e.Process.CmdLine,
	}
}

func sha256Of(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func lookupNames(t testing.TB, uid, gid uint32) (string, string) {
	t.Helper()
	u, err := user.LookupId(strconv.Itoa(int(uid)))
	if err != nil {
		t.Fatalf("look up uid %d: %v", uid, err)
	}
	g, err := user.LookupGroupId(strconv.Itoa(int(gid)))
	if err != nil {
		t.Fatalf("look up gid %d: %v", gid, err)
	}
	return u.Username, g.Name
}

// expect is the summary of an event about path as it is now (after the change).
func expect(t testing.TB, action, path, newPath string, pid int, ops []string) changeSummary {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("executable: %v", err)
	}
	me, _ := lookupNames(t, uint32(os.Getuid()), uint32(os.Getgid()))
	s := changeSummary{Action: action, Path: path, NewPath: newPath, PID: int32(pid), Exe: self, UserName: me,
		CmdLine: strings.Join(append([]string{os.Args[0]}, ops...), " ")}
	if action == schemas.ActionDelete {
		return s
	}
	cur := path
	if newPath != "" {
		cur = newPath
	}
	a, err := lstatAttrs(hostinfo.Here, cur)
	if err != nil {
		t.Fatalf("stat %s: %v", cur, err)
	}
	s.UID, s.GID, s.Mode = int64(a.UID), int64(a.GID), modeString(a.Mode)
	s.Owner, s.Group = lookupNames(t, a.UID, a.GID)
	if action != schemas.ActionCreate {
		s.Size = a.Size
	}
	if action == schemas.ActionWrite || action == schemas.ActionRename {
		s.SHA256 = sha256Of(t, cur)
	}
	return s
}

// TestChanges has helper processes write a file with many write calls, rename, chmod,
// chown and delete it, one step at a time, and checks each step's events: they name the
// helper's pid, executable, command line and user, the file, and its resulting owner, group
// and mode. A write of many write calls is one write event.
func TestChanges(t *testing.T) {
	testenv.RequireBPF(t)
	dir := tempDir(t)
	_, events := runCollector(t, testConfig(t, dir))
	a, b := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
	sentinel := filepath.Join(dir, "sentinel")
	if err := os.WriteFile(sentinel, nil, 0o600); err != nil {
		t.Fatalf("write sentinel: %v", err)
	}
	type want struct{ action, path, newPath string }
	steps := []struct {
		name string
		ops  []string
		want []want
	}{
		{"create and write", []string{"write", a, "500"}, []want{{schemas.ActionCreate, a, ""}, {schemas.ActionWrite, a, ""}}},
		{"rewrite", []string{"write", a, "50"}, []want{{schemas.ActionWrite, a, ""}}},
		{"rename", []string{"rename", a, b}, []want{{schemas.ActionRename, a, b}}},
		{"chmod", []string{"chmod", b, "0750"}, []want{{schemas.ActionChmod, b, ""}}},
		{"chown", []string{"chown", b, "65534", "65534"}, []want{{schemas.ActionChown, b, ""}}},
		{"delete", []string{"remove", b}, []want{{schemas.ActionDelete, b, ""}}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			// The sentinel's chmod, last in the same process, says all of the step's events are in.
			ops := append(append([]string(nil), step.ops...), "chmod", sentinel, "0600")
			pid := runHelperProcess(t, ops...)
			got := collect(t, events, pid, func(e *schemas.FileEvent) bool { return e.File.Path == sentinel })
			var gotSum, wantSum []changeSummary
			for _, e := range got[:len(got)-1] {
				gotSum = append(gotSum, summarize(e))
			}
			for _, w := range step.want {
				wantSum = append(wantSum, expect(t, w.action, w.path, w.newPath, pid, ops))
			}
			if diff := cmp.Diff(wantSum, gotSum); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTracepointsRefused: with syscall tracepoints refused (here by configuration, as a
// kernel that refuses them would), every kind of change is off and said so, and the
// collector still runs its scans.
func TestTracepointsRefused(t *testing.T) {
	testenv.RequireBPF(t)
	dir := tempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir)
	cfg.ScanOnStart = true
	cfg.Refuse = []string{"tracepoint"}
	c, events := runCollector(t, cfg)
	states := map[string]string{}
	for _, f := range c.Report().Features {
		states[f.Feature] = string(f.State)
		if f.State == "off" && (len(f.Refused) == 0 || !f.Refused[0].ByConfig || f.Refused[0].Capability != "tracepoint") {
			t.Errorf("%s off for %+v, want tracepoint refused by configuration", f.Feature, f.Refused)
		}
	}
	want := map[string]string{FeatureWrites: "off", FeatureRename: "off", FeatureDelete: "off", FeatureChmod: "off", FeatureChown: "off",
		FeatureCapabilities: "off", FeatureTimes: "off", FeatureScans: "full"}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
	ev := collectortest.WaitEvent(t, events, waitLimit, "the scan of the watched directory", func(e *schemas.FileEvent) bool {
		return e.Action == schemas.ActionScanAdded && e.File.Path == filepath.Join(dir, "f")
	})
	if ev.File.Size != 1 {
		t.Errorf("scanned file size %d, want 1", ev.File.Size)
	}
}
