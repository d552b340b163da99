package privilege

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// helperEnv makes the test binary run one of the helpers below instead of the tests: a
// process that drops privileges must be one of its own.
const helperEnv = "CRUMBS_TEST_PRIVILEGE_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "drop":
		helperDrop()
	case "start":
		helperStart()
	}
	os.Exit(0)
}

// helperDrop spreads over several threads, drops to the crumbs user with CAP_DAC_READ_SEARCH,
// then prints every thread's status and what it could still do.
func helperDrop() {
	var wg sync.WaitGroup
	hold := make(chan struct{})
	for range 8 { // threads of their own, which Drop must reach too
		wg.Go(func() { runtime.LockOSThread(); <-hold })
	}
	u, err := LookupUser(ServiceUser)
	if err == nil {
		err = Drop(u, cap.DAC_READ_SEARCH)
	}
	out := map[string]any{"drop_error": fmt.Sprint(err)}
	threads := map[string]Status{}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		if st, err := readStatusFile("/proc/self/task/" + t.Name() + "/status"); err == nil {
			threads[t.Name()] = st
		}
	}
	out["threads"] = threads
	_, rerr := os.ReadFile(os.Getenv("CRUMBS_TEST_SECRET"))
	out["read_root_only_file"] = fmt.Sprint(rerr)
	werr := os.WriteFile(filepath.Join(os.Getenv("CRUMBS_TEST_ROOT_DIR"), "x"), nil, 0o600)
	out["write_root_dir"] = fmt.Sprint(errors.Is(werr, fs.ErrPermission))
	close(hold)
	wg.Wait()
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

// helperStart starts `sleep 600` with Start, prints its pid and waits to be killed.
func helperStart() {
	cmd := exec.Command("sleep", "600")
	u, err := LookupUser(ServiceUser)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := Start(cmd, u); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(10 * time.Minute)
}

func serviceUser(t *testing.T) *User {
	t.Helper()
	testenv.RequireRoot(t)
	u, err := EnsureUser(ServiceUser, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMaskNames(t *testing.T) {
	for _, tc := range []struct {
		mask string
		want []string
	}{
		{"0000000000000000", nil},
		{"0000000000080004", []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}},
		{"000000c000200000", []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"}},
		{"8000000000000001", []string{"CAP_63", "CAP_CHOWN"}},
	} {
		got, err := MaskNames(tc.mask)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("MaskNames(%s) (-want +got):\n%s", tc.mask, d)
		}
	}
	if _, err := MaskNames("zz"); err == nil {
		t.Error("MaskNames(zz): no error")
	}
}

// TestDropReachesEveryThread: a process spread over threads drops to the crumbs user with one
// capability; every thread shows exactly that, and the process can do what it allows (read a
// file only root may read) and nothing more (write into root's directory).
func TestDropReachesEveryThread(t *testing.T) {
	u := serviceUser(t)
	dir := t.TempDir() // root's, 0700
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=drop", "CRUMBS_TEST_SECRET="+secret, "CRUMBS_TEST_ROOT_DIR="+dir)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	var got struct {
		DropError   string            `json:"drop_error"`
		Threads     map[string]Status `json:"threads"`
		ReadSecret  string            `json:"read_root_only_file"`
		WriteDenied string            `json:"write_root_dir"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if got.DropError != "<nil>" {
		t.Fatalf("Drop: %s", got.DropError)
	}
	if len(got.Threads) < 9 {
		t.Errorf("%d threads, want at least 9", len(got.Threads))
	}
	ids := [4]int{u.UID, u.UID, u.UID, u.UID}
	gids := [4]int{u.GID, u.GID, u.GID, u.GID}
	want := Status{UID: ids, GID: gids, Permitted: []string{"CAP_DAC_READ_SEARCH"}, Effective: []string{"CAP_DAC_READ_SEARCH"},
		Bounding: []string{"CAP_DAC_READ_SEARCH"}, NoNewPrivs: true}
	for tid, st := range got.Threads {
		if d := cmp.Diff(want, st); d != "" {
			t.Errorf("thread %s (-want +got):\n%s", tid, d)
		}
	}
	if got.ReadSecret != "<nil>" {
		t.Errorf("reading a root-only file with CAP_DAC_READ_SEARCH: %s", got.ReadSecret)
	}
	if got.WriteDenied != "true" {
		t.Errorf("writing into root's directory was not refused")
	}
}

// TestStartHoldsNothingAndDiesWithItsParent: a child started by Start runs as the crumbs
// user with every capability set empty and no_new_privs; killing its parent with SIGKILL kills it.
func TestStartHoldsNothingAndDiesWithItsParent(t *testing.T) {
	u := serviceUser(t)
	cmd := exec.Command("cat", "/proc/self/status")
	out := &strings.Builder{}
	cmd.Stdout = out
	wait, err := Start(cmd, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(f, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := readStatusFile(f)
	if err != nil {
		t.Fatal(err)
	}
	ids, gids := [4]int{u.UID, u.UID, u.UID, u.UID}, [4]int{u.GID, u.GID, u.GID, u.GID}
	if d := cmp.Diff(Status{UID: ids, GID: gids, NoNewPrivs: true}, st); d != "" {
		t.Errorf("child's status (-want +got):\n%s", d)
	}

	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), helperEnv+"=start")
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(stdout, &pid); err != nil {
		_ = parent.Process.Kill()
		t.Fatalf("helper printed no pid: %v", err)
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("child %d still runs after its parent was killed", pid)
	}
}

// alive reports whether pid runs (a zombie, killed and not yet reaped, does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestOwnDir: a directory an earlier run wrote as root is taken with what is in it, except the
// credentials below it; a symbolic link is not followed; system directories and directories
// the user cannot reach are refused, saying why.
func TestOwnDir(t *testing.T) {
	u := serviceUser(t)
	base, err := os.MkdirTemp("", "ownDir") // in /tmp, which the user may pass through
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "data")
	creds := filepath.Join(data, "credentials")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(data, "partitions", "t-0"), creds} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(data, "partitions", "t-0", "seg"), filepath.Join(creds, "admin.credentials"), outside} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	if err := OwnDir(data, u, creds); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) string {
		fi, err := os.Lstat(p)
		if err != nil {
			return err.Error()
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("%d:%d %04o", st.Uid, st.Gid, fi.Mode().Perm())
	}
	mine := fmt.Sprintf("%d:%d", u.UID, u.GID)
	want := map[string]string{
		"data":                               mine + " 0700",
		"data/partitions/t-0/seg":            mine + " 0600",
		"data/credentials":                   "0:0 0700",
		"data/credentials/admin.credentials": "0:0 0600",
		"data/link":                          mine + " 0777",
		"outside":                            "0:0 0600",
	}
	got := map[string]string{}
	for p := range want {
		got[p] = owner(filepath.Join(base, p))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("owners after OwnDir (-want +got):\n%s", d)
	}

	closed := filepath.Join(t.TempDir(), "spool") // below a 0700 directory of root's
	for _, tc := range []struct{ dir, want string }{
		{"/etc", "a system directory"},
		{"/var/lib/", "a system directory"},
		{closed, "cannot reach it"},
		{filepath.Join(data, "partitions", "t-0", "seg"), "not a directory"},
	} {
		if err := OwnDir(tc.dir, u); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OwnDir(%s) = %v, want an error saying %q", tc.dir, err, tc.want)
		}
	}
}
