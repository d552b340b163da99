package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
)

// crumbsUser returns the system user crumbs' processes become (creating it, as crumbs up does).
func crumbsUser(t testing.TB) *privilege.User {
	t.Helper()
	u, err := privilege.EnsureUser(privilege.ServiceUser, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// forCrumbs gives dir to the crumbs user: the stages write there as it.
func forCrumbs(t testing.TB, dir string) {
	t.Helper()
	u := crumbsUser(t)
	if err := os.Chown(dir, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
}

// TestUpRunsEachProcessWithOnlyItsPrivileges: under crumbs up, the process that runs the
// collectors is the crumbs user with exactly the capabilities they need once loaded, and
// the stages process the crumbs user with none at all; both have no_new_privs. The stages
// process gets the roles' credentials neither in its environment nor as an open file, and
// its user cannot read them. The status line still shows every stage in one line, and the
// stages process dies with crumbs up when it is killed.
func TestUpRunsEachProcessWithOnlyItsPrivileges(t *testing.T) {
	p := newPipeline(t)
	p.start()
	sup := p.cmd.Process.Pid
	stages := childrenOf(t, sup)
	if len(stages) != 1 {
		t.Fatalf("crumbs up (pid %d) has children %v, want its stages process alone", sup, stages)
	}
	u := crumbsUser(t)
	ids, gids := [4]int{u.UID, u.UID, u.UID, u.UID}, [4]int{u.GID, u.GID, u.GID, u.GID}
	collect := privilege.Names(collectors.RunCapabilities("process", "network", "file", "identity", "system"))
	for _, tc := range []struct {
		name string
		pid  int
		want privilege.Status
	}{
		{"collectors (crumbs up)", sup, privilege.Status{UID: ids, GID: gids, Permitted: collect, Effective: collect, Bounding: collect, NoNewPrivs: true}},
		{"stages process", stages[0], privilege.Status{UID: ids, GID: gids, NoNewPrivs: true}},
	} {
		got, err := privilege.ReadStatus(tc.pid)
		if err != nil {
			t.Fatal(err)
		}
		if tc.pid == sup {
			got = collectorThreads(t, sup)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s, pid %d: /proc status (-want +got):\n%s", tc.name, tc.pid, d)
		}
	}
	t.Logf("collectors: %s; stages process: none", strings.Join(collect, ", "))

	credDir := filepath.Join(p.dataDir, "credentials")
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(stages[0]) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range kafka.Roles() {
		c, err := kafka.ReadCredentials(credDir, r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(environ), c.Password) {
			t.Errorf("the stages process's environment holds the %s role's password", r)
		}
	}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(stages[0]) + "/fd")
	for _, fd := range fds {
		if target, _ := os.Readlink("/proc/" + strconv.Itoa(stages[0]) + "/fd/" + fd.Name()); strings.HasPrefix(target, credDir) {
			t.Errorf("the stages process holds %s open", target)
		}
	}
	out := &strings.Builder{}
	cat := exec.Command("cat", kafka.CredentialsFile(credDir, kafka.RoleAdmin))
	cat.Stdout, cat.Stderr = out, out
	wait, err := privilege.Start(cat, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil || !strings.Contains(out.String(), "Permission denied") {
		t.Errorf("the crumbs user read the admin role's credentials: %v\n%s", err, out)
	}

	p.eventually(30*time.Second, "a status line with every stage", func() (bool, string) {
		for _, l := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(l, "enrich in") && strings.Contains(l, "sink in") && strings.Contains(l, "process in") && strings.Contains(l, "system in") {
				return true, l
			}
		}
		return false, "none"
	})

	p.stop(syscall.SIGKILL)
	p.eventually(10*time.Second, "the stages process gone with crumbs up", func() (bool, string) {
		return !running(stages[0]), "still running"
	})
}

// childrenOf returns the processes pid started.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children")
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// running reports whether pid runs (a zombie, killed and not yet reaped, does not).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// readableByCrumbs returns dir when the crumbs user may read it, else a copy in a directory it
// may: the stages read configured files as that user, and a checkout may be closed to it.
func readableByCrumbs(t *testing.T, dir string) string {
	t.Helper()
	u := crumbsUser(t)
	probe := exec.Command("find", dir, "-maxdepth", "2", "!", "-readable", "-print", "-quit")
	out := &strings.Builder{}
	probe.Stdout, probe.Stderr = out, out
	wait, err := privilege.Start(probe, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil && out.Len() == 0 {
		return dir
	}
	cp := filepath.Join(publicTempDir(t), filepath.Base(dir))
	if b, err := exec.Command("cp", "-r", dir, cp).CombinedOutput(); err != nil {
		t.Fatalf("copy %s for the crumbs user: %v\n%s", dir, err, b)
	}
	if b, err := exec.Command("chmod", "-R", "a+rX", cp).CombinedOutput(); err != nil {
		t.Fatalf("chmod %s: %v\n%s", cp, err, b)
	}
	return cp
}

// collectorThreads reads the status of every thread of crumbs up and returns that of the
// threads that run it: all alike but the one that launched the stages process, which
// privilege.Start keeps with an empty bounding set for as long as that process lives (it may
// be the main thread, whose status /proc/<pid>/status shows). Exactly one such thread is
// expected; any other difference between threads fails the test.
func collectorThreads(t *testing.T, pid int) privilege.Status {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var common *privilege.Status
	launchers := 0
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		st, err := privilege.ReadStatus(tid)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread has exited since
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Bounding) == 0 {
			launchers++
			st.Bounding = nil
		}
		if len(st.Bounding) == 0 {
			continue
		}
		if common == nil {
			common = &st
		} else if d := cmp.Diff(*common, st); d != "" {
			t.Errorf("crumbs up thread %d differs from its others (-others +thread):\n%s", tid, d)
		}
	}
	if launchers != 1 {
		t.Errorf("crumbs up has %d threads with an empty bounding set, want 1 (the stages process's launcher)", launchers)
	}
	if common == nil {
		t.Fatalf("crumbs up (pid %d): no thread with a bounding set", pid)
	}
	return *common
}
