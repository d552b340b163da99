package identity

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// waitLimit bounds how long a test waits for an event before it fails.
const waitLimit = 10 * time.Second

// nobody is the unprivileged account the tests switch to (Debian's nobody:nogroup).
const nobody = 65534

var testHost = schemas.Host{ID: "test-machine-id", Name: "test-host"}

// runCollector starts a collector with cfg and returns it and the channel its events
// arrive on. Cleanup stops it and checks that Run returned nil.
func runCollector(t testing.TB, cfg Config) (*Collector, <-chan *schemas.IdentityEvent) {
	t.Helper()
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, collectortest.Run(t, c.Run, 1<<12)
}

// waitEvent returns the first event that match accepts, failing the test after waitLimit.
func waitEvent(t testing.TB, events <-chan *schemas.IdentityEvent, what string, match func(*schemas.IdentityEvent) bool) *schemas.IdentityEvent {
	t.Helper()
	return collectortest.WaitEvent(t, events, waitLimit, what, match)
}

func ofPID(pid int, actions ...string) func(*schemas.IdentityEvent) bool {
	return func(e *schemas.IdentityEvent) bool {
		if e.Process.PID != int32(pid) {
			return false
		}
		for _, a := range actions {
			if e.Action == a {
				return true
			}
		}
		return false
	}
}

// pamHelperDir holds testdata/pamauth once built; TestMain (bench_test.go) removes it.
var (
	pamHelperOnce sync.Once
	pamHelperDir  string
	pamHelper     string
	pamHelperErr  error
)

// buildPAMHelper builds testdata/pamauth, which needs cgo and libpam0g-dev, once for the
// tests that run it.
func buildPAMHelper(t *testing.T) string {
	t.Helper()
	pamHelperOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			pamHelperErr = fmt.Errorf("the go command: %w", err)
			return
		}
		if pamHelperDir, err = os.MkdirTemp("", "crumbs-pamauth"); err != nil {
			pamHelperErr = err
			return
		}
		out := filepath.Join(pamHelperDir, "pamauth")
		cmd := exec.Command(goTool, "build", "-o", out, "./testdata/pamauth")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			pamHelperErr = fmt.Errorf("%w\n%s", err, b)
			return
		}
		pamHelper = out
	})
	if pamHelperErr != nil {
		t.Fatalf("build testdata/pamauth (needs gcc and libpam0g-dev, installed by scripts/ensure-deps.sh): %v", pamHelperErr)
	}
	return pamHelper
}

// pamSummary is what TestPAMAuthentication checks of an event.
type pamSummary struct {
	Action  string
	Kind    string
	Host    schemas.Host
	PID     int32
	Exe     string
	Ident   schemas.Identity
	HasTime bool
}

func summarize(e *schemas.IdentityEvent) pamSummary {
	return pamSummary{
		Action: e.Action, Kind: e.Kind, Host: e.Host, PID: e.Process.PID, Exe: e.Process.File.Path,
		Ident: e.Identity, HasTime: e.EventID != "" && e.Time > 0,
	}
}

func TestPAMAuthentication(t *testing.T) {
	testenv.RequireBPF(t)
	helper := buildPAMHelper(t)
	confdir, err := filepath.Abs("testdata/pam.d")
	if err != nil {
		t.Fatal(err)
	}
	c, events := runCollector(t, DefaultConfig())
	if c.LibPAM() == "" {
		t.Fatal("the collector found no libpam to probe")
	}

	const service, ruser, rhost = "crumbs-test", "alice", "203.0.113.7"
	run := func(user string) int {
		t.Helper()
		cmd := exec.Command(helper, confdir, service, user, ruser, rhost)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pamauth %s: %v", user, err)
		}
		t.Logf("pamauth %s: pam_authenticate returned %s", user, strings.TrimSpace(string(out)))
		return cmd.Process.Pid
	}
	failPID := run("nobody")
	okPID := run("root")

	ident := func(user, result string, code int32) schemas.Identity {
		return schemas.Identity{
			Service: service, User: ruser, TargetUser: user, RemoteHost: rhost, Result: result, Code: code,
			OldUID: -1, NewUID: -1, OldGID: -1, NewGID: -1,
		}
	}
	const pamAuthErr = 7 // PAM_AUTH_ERR
	tests := []struct {
		name   string
		pid    int
		action string
		want   schemas.Identity
	}{
		{"failed authentication", failPID, schemas.ActionAuth, ident("nobody", schemas.ResultFailure, pamAuthErr)},
		{"successful authentication", okPID, schemas.ActionAuth, ident("root", schemas.ResultSuccess, 0)},
		{"session open", okPID, schemas.ActionSessionOpen, ident("root", schemas.ResultSuccess, 0)},
		{"session close", okPID, schemas.ActionSessionClose, ident("root", schemas.ResultSuccess, 0)},
	}
	// Events arrive in ring-buffer order, which is the order of the calls.
	for _, tt := range tests {
		ev := waitEvent(t, events, tt.name, ofPID(tt.pid, schemas.ActionAuth, schemas.ActionSessionOpen, schemas.ActionSessionClose, ActionAccount))
		want := pamSummary{
			Action: tt.action, Kind: schemas.KindIdentity, Host: testHost, PID: int32(tt.pid),
			Exe: "", Ident: tt.want, HasTime: true,
		}
		got := summarize(ev)
		got.Exe = "" // the helper has exited; its comm stands for the file name
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	if s := c.Stats(); s.KernelDrops != 0 || s.DecodeErrors != 0 {
		t.Errorf("stats: want no drops and no decode errors, got %+v", s)
	}
}

func TestCredentialChanges(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())
	if os.Getuid() != 0 || os.Getgid() != 0 {
		t.Fatalf("the test expects to run as uid 0 gid 0, runs as %d/%d", os.Getuid(), os.Getgid())
	}

	// A setuid copy of /bin/true owned by nobody: exec'd by root, it runs as nobody.
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(dir, "crumbs-suid-true")
	if err := os.WriteFile(suid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(suid, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}

	// Go's fork-exec calls setgroups, setgid and setuid in the child before the exec.
	dropped := exec.Command("/bin/true")
	dropped.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := dropped.Run(); err != nil {
		t.Fatalf("/bin/true as nobody: %v", err)
	}
	suidRun := exec.Command(suid)
	if err := suidRun.Run(); err != nil {
		t.Fatalf("%s: %v", suid, err)
	}

	type summary struct {
		Action, User, TargetUser, Result string
		OldUID, NewUID, OldGID, NewGID   int64
		ActorUID                         int64
		Exe                              string
	}
	tests := []struct {
		name   string
		pid    int
		action string
		want   summary
	}{
		{
			name: "setgid", pid: dropped.Process.Pid, action: schemas.ActionSetGID,
			want: summary{Action: schemas.ActionSetGID, User: "root", TargetUser: "root", Result: schemas.ResultSuccess,
				OldUID: 0, NewUID: 0, OldGID: 0, NewGID: nobody},
		},
		{
			name: "setuid", pid: dropped.Process.Pid, action: schemas.ActionSetUID,
			want: summary{Action: schemas.ActionSetUID, User: "root", TargetUser: "nobody", Result: schemas.ResultSuccess,
				OldUID: 0, NewUID: nobody, OldGID: nobody, NewGID: nobody},
		},
		{
			name: "setuid exec", pid: suidRun.Process.Pid, action: schemas.ActionSetUIDExec,
			want: summary{Action: schemas.ActionSetUIDExec, User: "root", TargetUser: "nobody", Result: schemas.ResultSuccess,
				OldUID: 0, NewUID: nobody, OldGID: 0, NewGID: 0, Exe: suid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := waitEvent(t, events, tt.name, ofPID(tt.pid, tt.action))
			id := ev.Identity
			got := summary{Action: ev.Action, User: id.User, TargetUser: id.TargetUser, Result: id.Result,
				OldUID: id.OldUID, NewUID: id.NewUID, OldGID: id.OldGID, NewGID: id.NewGID,
				ActorUID: ev.Process.User.UID}
			if tt.action == schemas.ActionSetUIDExec {
				got.Exe = ev.Process.File.Path
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s event (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestExcludeUsers(t *testing.T) {
	testenv.RequireBPF(t)
	cfg := DefaultConfig()
	cfg.ExcludeUsers = []string{"root"}
	c, events := runCollector(t, cfg)
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := cmd.Run(); err != nil {
		t.Fatalf("/bin/true as nobody: %v", err)
	}
	// root's setgid and setuid are filtered; wait for them to be counted.
	deadline := time.Now().Add(waitLimit)
	for c.Stats().Filtered < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.Stats().Filtered; n < 2 {
		t.Fatalf("Filtered: want at least 2, got %d", n)
	}
	for {
		select {
		case e := <-events:
			if e.Process.PID == int32(cmd.Process.Pid) {
				t.Errorf("event of excluded user root reported: %s %+v", e.Action, e.Identity)
			}
		default:
			return
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "ring buffer not a power of two", change: func(c *Config) { c.RingBufferBytes = 3 << 12 },
			wantErr: "collectors.identity.ring_buffer_bytes: 12288: must be a power of two"},
		{name: "relative libpam", change: func(c *Config) { c.LibPAMPath = "libpam.so.0" },
			wantErr: `collectors.identity.libpam_path: "libpam.so.0": must be an absolute path`},
		{name: "empty excluded user", change: func(c *Config) { c.ExcludeUsers = []string{"svc", " "} },
			wantErr: "collectors.identity.exclude_users: entry 1 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate: want error containing %q, got %v", tt.wantErr, err)
			}
		})
	}
}

// TestFactoryEnabled: the collect stage builds the collector only when its configuration
// enables it.
func TestFactoryEnabled(t *testing.T) {
	f := Factory()
	on, off := DefaultConfig(), DefaultConfig()
	off.Enabled = false
	if got := []bool{f.Enabled(on), f.Enabled(off)}; !slices.Equal(got, []bool{true, false}) {
		t.Errorf("Factory().Enabled(default, disabled) = %v, want [true false]", got)
	}
}

func TestThreadRepeats(t *testing.T) {
	at := time.Unix(1000, 0)
	change := func(pid, tid uint32, euid uint32) identityCredsEvent {
		return identityCredsEvent{Pid: pid, Tid: tid, SyscallNr: 105, Old: identityCredIds{Euid: 0}, New: identityCredIds{Euid: euid}}
	}
	type step struct {
		rec   identityCredsEvent
		after time.Duration
	}
	tests := []struct {
		name  string
		steps []step
		want  []bool
	}{
		{"other thread, same change", []step{{change(1, 1, 65534), 0}, {change(1, 2, 65534), time.Millisecond}}, []bool{false, true}},
		{"same thread again", []step{{change(1, 1, 65534), 0}, {change(1, 1, 65534), time.Millisecond}}, []bool{false, false}},
		{"other thread, other change", []step{{change(1, 1, 65534), 0}, {change(1, 2, 1000), time.Millisecond}}, []bool{false, false}},
		{"other process", []step{{change(1, 1, 65534), 0}, {change(2, 2, 65534), time.Millisecond}}, []bool{false, false}},
		{"after the window", []step{{change(1, 1, 65534), 0}, {change(1, 2, 65534), 2 * threadRepeatWindow}}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newThreadRepeats(threadRepeatWindow, 16)
			var got []bool
			for _, s := range tt.steps {
				got = append(got, r.seen(s.rec, at.Add(s.after)))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("seen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPAMIdentity(t *testing.T) {
	tests := []struct {
		name  string
		items pamItems
		rc    int32
		want  schemas.Identity
	}{
		{
			name:  "sshd login",
			items: pamItems{Service: "sshd", User: "alice", RHost: "198.51.100.4"},
			want:  schemas.Identity{Service: "sshd", User: "alice", TargetUser: "alice", RemoteHost: "198.51.100.4", Result: schemas.ResultSuccess},
		},
		{
			name:  "su to root fails",
			items: pamItems{Service: "su", User: "root", RUser: "bob"},
			rc:    7,
			want:  schemas.Identity{Service: "su", User: "bob", TargetUser: "root", Result: schemas.ResultFailure, Code: 7},
		},
		{
			name:  "handle without items",
			items: pamItems{},
			want:  schemas.Identity{User: "proc-user", Result: schemas.ResultSuccess},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.OldUID, tt.want.NewUID, tt.want.OldGID, tt.want.NewGID = -1, -1, -1, -1
			if diff := cmp.Diff(tt.want, pamIdentity(tt.items, tt.rc, "proc-user")); diff != "" {
				t.Errorf("pamIdentity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredsIdentity(t *testing.T) {
	root := identityCredIds{}
	user := identityCredIds{Uid: 1000, Euid: 1000, Suid: 1000, Fsuid: 1000, Gid: 1000, Egid: 1000, Sgid: 1000, Fsgid: 1000}
	suidRoot := user
	suidRoot.Euid, suidRoot.Fsuid = 0, 0
	tests := []struct {
		name     string
		old, new identityCredIds
		ret      int64
		want     schemas.Identity
	}{
		{"root drops to user", root, user, 0, schemas.Identity{Result: schemas.ResultSuccess, OldUID: 0, NewUID: 1000, OldGID: 0, NewGID: 1000}},
		{"setuid binary takes real root", suidRoot, root, 0, schemas.Identity{Result: schemas.ResultSuccess, OldUID: 1000, NewUID: 0, OldGID: 1000, NewGID: 0}},
		{"denied", user, user, -1, schemas.Identity{Result: schemas.ResultFailure, Code: 1, OldUID: 1000, NewUID: 1000, OldGID: 1000, NewGID: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, credsIdentity(tt.old, tt.new, tt.ret)); diff != "" {
				t.Errorf("credsIdentity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLibFromLdconfig(t *testing.T) {
	const out = "1234 libs found in cache `/etc/ld.so.cache'\n" +
		"\tlibpamc.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libpamc.so.0\n" +
		"\tlibpam.so.0 (libc6) => /lib/i386-linux-gnu/libpam.so.0\n" +
		"\tlibpam.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libpam.so.0\n"
	tests := []struct{ arch, want string }{
		{"x86-64", "/lib/x86_64-linux-gnu/libpam.so.0"},
		{"", "/lib/i386-linux-gnu/libpam.so.0"},
		{"AArch64", "/lib/i386-linux-gnu/libpam.so.0"},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			if got := libFromLdconfig(out, "libpam.so.0", tt.arch); got != tt.want {
				t.Errorf("libFromLdconfig(%q): want %q, got %q", tt.arch, tt.want, got)
			}
		})
	}
}

// TestUprobesRefused: with uprobes refused (here by configuration, as a kernel that refuses
// them would), PAM results are not collected, the report says so, and credential changes
// still are: a PAM authentication followed by a setuid yields the setuid event and no
// authentication before it (the ring buffer keeps the order the kernel wrote them in).
func TestUprobesRefused(t *testing.T) {
	testenv.RequireBPF(t)
	helper := buildPAMHelper(t)
	confdir, err := filepath.Abs("testdata/pam.d")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Refuse = []string{"uprobe"}
	c, events := runCollector(t, cfg)
	var pam kernel.FeatureReport
	for _, f := range c.Report().Features {
		if f.Feature == FeaturePAM {
			pam = f
		}
	}
	if pam.State != kernel.Off || len(pam.Refused) == 0 || pam.Refused[0].Capability != kernel.Uprobe || !pam.Refused[0].ByConfig || c.LibPAM() != "" {
		t.Fatalf("PAM feature %+v, libpam %q: want off, uprobe refused by configuration", pam, c.LibPAM())
	}
	if out, err := exec.Command(helper, confdir, "crumbs-test", "nobody", "alice", "203.0.113.7").CombinedOutput(); err != nil {
		t.Fatalf("pamauth: %v\n%s", err, out)
	}
	dropped := exec.Command("/bin/true")
	dropped.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := dropped.Run(); err != nil {
		t.Fatalf("/bin/true as nobody: %v", err)
	}
	var auths []string
	waitEvent(t, events, "the setuid after the authentication", func(e *schemas.IdentityEvent) bool {
		if e.Action == schemas.ActionAuth {
			auths = append(auths, e.Identity.TargetUser)
		}
		return e.Action == schemas.ActionSetUID && e.Process.PID == int32(dropped.Process.Pid)
	})
	if len(auths) != 0 {
		t.Errorf("authentication events with uprobes refused: %v", auths)
	}
}
