package process

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// waitLimit bounds how long a test waits for an event before it fails.
const waitLimit = 10 * time.Second

var testHost = schemas.Host{ID: "test-machine-id", Name: "test-host"}

// runCollector starts a collector with cfg and returns the channel its events arrive on.
// Cleanup stops it and checks that Run returned nil.
func runCollector(t testing.TB, cfg Config) (*Collector, <-chan *schemas.ProcessEvent) {
	t.Helper()
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, collectortest.Run(t, c.Run, 1<<14)
}

// waitEvent returns the first event that match accepts, failing the test after waitLimit.
func waitEvent(t testing.TB, events <-chan *schemas.ProcessEvent, what string, match func(*schemas.ProcessEvent) bool) *schemas.ProcessEvent {
	t.Helper()
	return collectortest.WaitEvent(t, events, waitLimit, what, match)
}

func isAction(pid int, action string) func(*schemas.ProcessEvent) bool {
	return func(e *schemas.ProcessEvent) bool {
		return e.Action == action && e.Process.PID == int32(pid)
	}
}

// copyExecutable copies src into a fresh directory and returns the copy's path and sha256.
func copyExecutable(t *testing.T, src, name string) (path, sum string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("read %s: %v", src, err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("resolve temp dir: %v", err)
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	h := sha256.Sum256(b)
	return path, hex.EncodeToString(h[:])
}

func marker(t *testing.T) string {
	return fmt.Sprintf("crumbs-test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

// execSummary is what TestExecAndExit checks of an exec event.
type execSummary struct {
	Kind, Action     string
	Host             schemas.Host
	Args             []string
	CmdLine          string
	ArgsTruncated    bool
	CWD              string
	File             schemas.File
	PPID             int32
	ParentPath       string
	UID              int64
	UserName         string
	GID              int64
	GroupName        string
	SystemdUnitKnown bool
}

func TestExecAndExit(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())
	shell, sum := copyExecutable(t, "/bin/sh", "crumbs-sh")
	mark := marker(t)
	testExe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test executable: %v", err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	group, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatalf("current group: %v", err)
	}

	// The shell waits on stdin, so /proc/<pid> is still there when the exec is read.
	cmd := exec.Command(shell, "-c", "read line; exit 7", mark)
	cmd.Dir = filepath.Dir(shell)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", shell, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid

	ev := waitEvent(t, events, "exec", isAction(pid, schemas.ActionExec))
	stdin.Close()
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
		t.Fatalf("shell: want exit status 7, got %v", err)
	}

	args := []string{shell, "-c", "read line; exit 7", mark}
	want := execSummary{
		Kind: schemas.KindProcess, Action: schemas.ActionExec, Host: testHost,
		Args: args, CmdLine: strings.Join(args, " "), CWD: filepath.Dir(shell),
		File: schemas.File{Path: shell, Name: "crumbs-sh", SHA256: sum},
		PPID: int32(os.Getpid()), ParentPath: testExe,
		UID: int64(os.Getuid()), UserName: me.Username, GID: int64(os.Getgid()), GroupName: group.Name,
	}
	p := ev.Process
	got := execSummary{
		Kind: ev.Kind, Action: ev.Action, Host: ev.Host,
		Args: p.Args, CmdLine: p.CmdLine, ArgsTruncated: p.ArgsTruncated, CWD: p.CWD,
		File: p.File, PPID: p.PPID, ParentPath: p.Parent.File.Path,
		UID: p.UID, UserName: p.UserName, GID: p.GID, GroupName: p.GroupName,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exec event (-want +got):\n%s", diff)
	}
	if ev.EventID == "" {
		t.Error("exec event has no event id")
	}
	// The kernel's boot-time clock converted to wall clock lands near the exec.
	if at := time.Unix(0, ev.Time); at.Before(start.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("exec event time %v is far from the exec at %v", at, start)
	}

	exit := waitEvent(t, events, "exit", isAction(pid, schemas.ActionExit))
	if exit.Process.ExitCode != 7 {
		t.Errorf("exit code: want 7, got %d", exit.Process.ExitCode)
	}
	if exit.Process.File.Path != shell {
		t.Errorf("exit event executable: want %s, got %s", shell, exit.Process.File.Path)
	}
}

func TestArgsCaps(t *testing.T) {
	testenv.RequireBPF(t)
	tests := []struct {
		name     string
		config   func(*Config)
		extra    []string
		wantArgs func(mark string) []string
	}{
		{
			name:     "max_args",
			config:   func(c *Config) { c.MaxArgs = 4 },
			extra:    []string{"a", "b", "c", "d", "e"},
			wantArgs: func(mark string) []string { return []string{"/bin/true", mark, "a", "b"} },
		},
		{
			name:   "max_arg_bytes",
			config: func(c *Config) { c.MaxArgBytes = 128 },
			extra:  []string{strings.Repeat("x", 300), "after"},
			wantArgs: func(mark string) []string {
				cut := 128 - len("/bin/true") - 1 - len(mark) - 1
				return []string{"/bin/true", mark, strings.Repeat("x", cut)}
			},
		},
		{
			name:     "under both caps",
			config:   func(c *Config) {},
			extra:    []string{"a", "b"},
			wantArgs: func(mark string) []string { return []string{"/bin/true", mark, "a", "b"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.config(&cfg)
			_, events := runCollector(t, cfg)
			mark := marker(t)
			cmd := exec.Command("/bin/true", append([]string{mark}, tt.extra...)...)
			if err := cmd.Start(); err != nil {
				t.Fatalf("start /bin/true: %v", err)
			}
			pid := cmd.Process.Pid
			if err := cmd.Wait(); err != nil {
				t.Fatalf("/bin/true: %v", err)
			}
			ev := waitEvent(t, events, "exec", isAction(pid, schemas.ActionExec))
			want := tt.wantArgs(mark)
			if diff := cmp.Diff(want, ev.Process.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			wantTrunc := len(want) < 2+len(tt.extra) || !slices.Equal(want[2:], tt.extra)
			if ev.Process.ArgsTruncated != wantTrunc {
				t.Errorf("ArgsTruncated: want %v, got %v", wantTrunc, ev.Process.ArgsTruncated)
			}
		})
	}
}

// TestForkInheritsParentImage: a forked child that runs no new image is reported with its
// parent's image and argv; the same by the tp_btf program and by its raw-tracepoint
// fallback (tp_btf refused by configuration).
func TestForkInheritsParentImage(t *testing.T) {
	testenv.RequireBPF(t)
	for _, tt := range []struct {
		refuse []string
		way    string
	}{
		{way: "tp_btf sched_process_fork"},
		{refuse: []string{"tp_btf"}, way: "raw tracepoint sched_process_fork"},
	} {
		t.Run(tt.way, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Refuse = tt.refuse
			c, events := runCollector(t, cfg)
			if got := c.ring.Way(FeatureFork); got != tt.way {
				t.Fatalf("fork events by %q, want %q (report %+v)", got, tt.way, c.Report())
			}
			mark := marker(t)
			// The shell forks a subshell for the pipeline's first element, which runs no new image.
			cmd := exec.Command("/bin/sh", "-c", "(exit 3) | cat; true", mark)
			if err := cmd.Start(); err != nil {
				t.Fatalf("start /bin/sh: %v", err)
			}
			pid := cmd.Process.Pid
			if err := cmd.Wait(); err != nil {
				t.Fatalf("/bin/sh: %v", err)
			}
			fork := waitEvent(t, events, "fork", func(e *schemas.ProcessEvent) bool {
				return e.Action == schemas.ActionFork && e.Process.PPID == int32(pid)
			})
			type summary struct {
				Path, ParentPath string
				HasMark          bool
				UID              int64
			}
			want := summary{Path: "/bin/sh", ParentPath: "/bin/sh", HasMark: true, UID: int64(os.Getuid())}
			got := summary{Path: fork.Process.File.Path, ParentPath: fork.Process.Parent.File.Path,
				HasMark: slices.Contains(fork.Process.Args, mark), UID: fork.Process.UID}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("forked child (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHashCache(t *testing.T) {
	key := func(ino uint64) fileKey { return fileKey{Dev: 1, Ino: ino, CtimeNs: 10, Size: 100} }
	type op struct {
		put bool
		ino uint64
		sum string
	}
	tests := []struct {
		name string
		max  int
		ops  []op
		want map[uint64]string // ino -> sum expected by get afterwards ("" = miss)
	}{
		{
			name: "hit",
			max:  2,
			ops:  []op{{put: true, ino: 1, sum: "a"}},
			want: map[uint64]string{1: "a", 2: ""},
		},
		{
			name: "evicts least recently used",
			max:  2,
			ops:  []op{{put: true, ino: 1, sum: "a"}, {put: true, ino: 2, sum: "b"}, {ino: 1}, {put: true, ino: 3, sum: "c"}},
			want: map[uint64]string{1: "a", 2: "", 3: "c"},
		},
		{
			name: "overwrite keeps one entry",
			max:  1,
			ops:  []op{{put: true, ino: 1, sum: "a"}, {put: true, ino: 1, sum: "b"}},
			want: map[uint64]string{1: "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newHashCache(tt.max)
			for _, o := range tt.ops {
				if o.put {
					c.put(key(o.ino), o.sum)
				} else {
					c.get(key(o.ino))
				}
			}
			got := make(map[uint64]string)
			for ino := range tt.want {
				got[ino], _ = c.get(key(ino))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("cache contents (-want +got):\n%s", diff)
			}
			if c.len() > tt.max {
				t.Errorf("cache holds %d entries, max %d", c.len(), tt.max)
			}
		})
	}
}

// TestExecHashedByKernelIdentity checks that an executable hashed once is not opened again
// at its next exec, the kernel's identity of it (device, inode, size and change time) finding
// its sum, and that a change to it is hashed again even when its size and modification time
// are put back.
func TestExecHashedByKernelIdentity(t *testing.T) {
	testenv.RequireBPF(t)
	c, events := runCollector(t, DefaultConfig())
	path, sum := copyExecutable(t, "/bin/true", "crumbs-true")
	run := func(what string) *schemas.ProcessEvent {
		t.Helper()
		cmd := exec.Command(path)
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: start %s: %v", what, path, err)
		}
		pid := cmd.Process.Pid
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: %s: %v", what, path, err)
		}
		return waitEvent(t, events, what, isAction(pid, schemas.ActionExec))
	}

	if got := run("first exec").Process.File.SHA256; got != sum {
		t.Fatalf("first exec: want sha256 %s, got %q", sum, got)
	}
	// Jobs for this executable only: the host's other execs (builds, other tests) make theirs.
	var jobs atomic.Int64
	seen := func(p string) {
		if p == path {
			jobs.Add(1)
		}
	}
	c.hasher.jobSeen.Store(&seen)
	defer c.hasher.jobSeen.Store(nil)
	if got := run("second exec").Process.File.SHA256; got != sum {
		t.Errorf("second exec: want sha256 %s, got %q", sum, got)
	}
	if n := jobs.Load(); n != 0 {
		t.Errorf("second exec of an unchanged executable: want it served from the cache, got %d hashing jobs", n)
	}

	// The same size, the same modification time, another last byte (in the section headers,
	// which exec does not read).
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	changed := sha256.Sum256(b)
	for ctime := ctimeOf(t, path); ctimeOf(t, path) == ctime; {
		if err := os.WriteFile(path, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := run("exec after a change").Process.File.SHA256, hex.EncodeToString(changed[:]); got != want {
		t.Errorf("exec after a change that kept size and mtime: want sha256 %s, got %q", want, got)
	}
}

// ctimeOf returns path's change time (ns).
func ctimeOf(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ctim.Nano()
}

func TestFileHasher(t *testing.T) {
	const wantSum = "6ddeb0c3468d88160a6f59a663700524aff00273383ca9ea85df10fd0efe043a"
	path, err := filepath.Abs("testdata/hashme")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Sum                          string
		Errors, TooLarge, Hits, Miss uint64
	}
	tests := []struct {
		name     string
		maxBytes int64
		runs     int
		want     result
	}{
		{name: "computed then cached", maxBytes: 1 << 20, runs: 2, want: result{Sum: wantSum, Hits: 1, Miss: 1}},
		{name: "too large", maxBytes: 4, runs: 1, want: result{TooLarge: 1, Miss: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var counters hashCounters
			h := &fileHasher{cache: newHashCache(8), maxBytes: tt.maxBytes, counters: &counters}
			jobs := make(chan *hashJob, tt.runs)
			var last *hashJob
			for range tt.runs {
				// pid 0 has no /proc entry: the hasher falls back to the path.
				last = newHashJob(0, path, true, fileKey{})
				jobs <- last
			}
			close(jobs)
			h.work(jobs)
			<-last.done
			got := result{Sum: last.sum, Errors: counters.errors.Load(), TooLarge: counters.tooLarge.Load(),
				Hits: counters.cacheHits.Load(), Miss: counters.cacheMisses.Load()}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("hash (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveExecPath(t *testing.T) {
	tests := []struct {
		filename, exe, cwd, want string
	}{
		{filename: "/usr/bin/ls", exe: "/usr/bin/ls", cwd: "/tmp", want: "/usr/bin/ls"},
		{filename: "/usr/bin/../bin/ls", want: "/usr/bin/ls"},
		{filename: "./run.sh", exe: "/usr/bin/bash", cwd: "/opt/app", want: "/opt/app/run.sh"},
		{filename: "bin/tool", exe: "/srv/bin/tool", want: "/srv/bin/tool"},
		{filename: "tool", want: "tool"},
		{filename: "/dev/fd/3", exe: "/memfd:payload", want: "/memfd:payload"},
		{filename: "/dev/fd/3", want: "/dev/fd/3"},
	}
	for _, tt := range tests {
		t.Run(tt.filename, func(t *testing.T) {
			if got := resolveExecPath(tt.filename, tt.exe, tt.cwd); got != tt.want {
				t.Errorf("resolveExecPath(%q, %q, %q): want %q, got %q", tt.filename, tt.exe, tt.cwd, tt.want, got)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		status uint32
		want   int32
	}{
		{status: 0, want: 0},
		{status: 7 << 8, want: 7},
		{status: 9, want: 137},         // SIGKILL
		{status: 11 | 0x80, want: 139}, // SIGSEGV with core dump
		{status: 255 << 8, want: 255},
	}
	for _, tt := range tests {
		if got := exitCode(tt.status); got != tt.want {
			t.Errorf("exitCode(%#x): want %d, got %d", tt.status, tt.want, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Config)
		wantKey string // "" = valid
	}{
		{name: "defaults", modify: func(*Config) {}},
		{name: "ring not power of two", modify: func(c *Config) { c.RingBufferBytes = 3 << 20 }, wantKey: "ring_buffer_bytes"},
		{name: "ring under a page", modify: func(c *Config) { c.RingBufferBytes = 1024 }, wantKey: "ring_buffer_bytes"},
		{name: "max args", modify: func(c *Config) { c.MaxArgs = 0 }, wantKey: "max_args"},
		{name: "max arg bytes over kernel buffer", modify: func(c *Config) { c.MaxArgBytes = maxArgBytesLimit + 1 }, wantKey: "max_arg_bytes"},
		{name: "hash workers", modify: func(c *Config) { c.HashWorkers = 0 }, wantKey: "hash_workers"},
		{name: "hash cache", modify: func(c *Config) { c.HashCacheEntries = 0 }, wantKey: "hash_cache_entries"},
		{name: "exclude glob", modify: func(c *Config) { c.ExcludeExecutables = []string{"/usr/[bin"} }, wantKey: "collectors.process.exclude_executables"},
		{name: "exclude user", modify: func(c *Config) { c.ExcludeUsers = []string{""} }, wantKey: "collectors.process.exclude_users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantKey == "" && err != nil:
				t.Errorf("Validate: want nil, got %v", err)
			case tt.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tt.wantKey)):
				t.Errorf("Validate: want an error naming %s, got %v", tt.wantKey, err)
			}
		})
	}
}

// TestPauseResume: while the collector is paused, an exec is not collected; once resumed,
// the next one is.
func TestPauseResume(t *testing.T) {
	testenv.RequireBPF(t)
	c, events := runCollector(t, DefaultConfig())
	run := func() int {
		t.Helper()
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatalf("run /bin/true: %v", err)
		}
		return cmd.Process.Pid
	}
	c.Pause()
	paused := run()
	if err := c.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	resumed := run()
	// Events come in order: the paused exec's, had there been one, before the resumed one's.
	e := waitEvent(t, events, "exec after Resume", func(e *schemas.ProcessEvent) bool {
		return e.Action == schemas.ActionExec && (e.Process.PID == int32(paused) || e.Process.PID == int32(resumed))
	})
	if e.Process.PID != int32(resumed) {
		t.Errorf("exec of pid %d collected while paused", paused)
	}
}
