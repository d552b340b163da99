package process

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// procStart is a process's start as /proc/<pid>/stat says it (clock ticks since boot),
// converted to ns since the epoch with the kernel's boot time.
func procStart(t *testing.T, pid int) int64 {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("read stat of %d: %v", pid, err)
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ticks, err := strconv.ParseInt(fields[19], 10, 64) // field 22, starttime
	if err != nil {
		t.Fatalf("parse starttime of %d: %v", pid, err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	boot := time.Now().UnixNano() - ts.Nano()
	return boot + ticks*int64(time.Second)/100 // USER_HZ is 100 on Linux
}

// near reports whether two times (ns) are within the resolution of /proc's start times
// (a clock tick) plus the error of converting between clocks.
func near(a, b int64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d < int64(50*time.Millisecond)
}

// TestExecLineage checks that exec and fork events name their process and its parent by
// pid and start time, as /proc does, and carry the session: a fork's child is the process
// that execs next, with the same start time.
func TestExecLineage(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())
	mark := marker(t)
	// The shell is a session leader (setsid) that forks a child running sleep.
	cmd := exec.Command("/bin/sh", "-c", "/bin/sleep 0.3; read line", mark)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	shell := cmd.Process.Pid

	exe := waitEvent(t, events, "the shell's exec", isAction(shell, schemas.ActionExec))
	fork := waitEvent(t, events, "the shell's fork", func(e *schemas.ProcessEvent) bool {
		return e.Action == schemas.ActionFork && e.Process.PPID == int32(shell)
	})
	child := waitEvent(t, events, "sleep's exec", isAction(int(fork.Process.PID), schemas.ActionExec))
	shellStart := procStart(t, shell)
	stdin.Close()
	_ = cmd.Wait()

	if !near(exe.Process.StartTime, shellStart) {
		t.Errorf("shell's start time %d, /proc says %d", exe.Process.StartTime, shellStart)
	}
	if self := procStart(t, os.Getpid()); !near(exe.Process.Parent.StartTime, self) {
		t.Errorf("shell's parent start time %d, /proc says the test's is %d", exe.Process.Parent.StartTime, self)
	}
	type ids struct {
		Start, ParentStart int64
		Session            int32
	}
	want := ids{Start: fork.Process.StartTime, ParentStart: exe.Process.StartTime, Session: int32(shell)}
	if diff := cmp.Diff(want, ids{child.Process.StartTime, child.Process.Parent.StartTime, child.Process.SessionID}); diff != "" {
		t.Errorf("sleep's exec: pid %d start and session (-want +got):\n%s", child.Process.PID, diff)
	}
	if diff := cmp.Diff(want, ids{fork.Process.StartTime, fork.Process.Parent.StartTime, fork.Process.SessionID}); diff != "" {
		t.Errorf("the shell's fork (-want +got):\n%s", diff)
	}
	if fork.Process.StartTime <= exe.Process.StartTime {
		t.Errorf("the child started at %d, not after its parent (%d)", fork.Process.StartTime, exe.Process.StartTime)
	}
	if exe.Process.SessionID != int32(shell) {
		t.Errorf("the shell's session: want %d (it called setsid), got %d", shell, exe.Process.SessionID)
	}
}

// TestExecEffectiveIDs checks that an exec of a setuid and setgid executable reports the
// effective ids it gave, beside the real ones.
func TestExecEffectiveIDs(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())
	path, _ := copyExecutable(t, "/bin/sh", "crumbs-setid-sh")
	const nobody = 65534
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "-p", "-c", "exit 0", marker(t))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Wait()
	ev := waitEvent(t, events, "the setuid shell's exec", isAction(pid, schemas.ActionExec))
	type creds struct{ UID, GID, EUID, EGID int64 }
	want := creds{int64(os.Getuid()), int64(os.Getgid()), nobody, nobody}
	got := creds{ev.Process.UID, ev.Process.GID, ev.Process.EUID, ev.Process.EGID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids of %s (-want +got):\n%s", path, diff)
	}
}

// TestExecStdioTypes checks what fd 0 and 1 are said to be at exec: a TCP socket and a
// unix socket (a reverse shell's shape), then /dev/null and a pipe.
func TestExecStdioTypes(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tcp, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	us, peer := os.NewFile(uintptr(pair[0]), "unix"), os.NewFile(uintptr(pair[1]), "peer")
	defer us.Close()
	defer peer.Close()

	run := func(stdin, stdout *os.File) int {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", "exit 0", marker(t))
		cmd.Stdin, cmd.Stdout = stdin, stdout
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return cmd.Process.Pid
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	for _, c := range []struct {
		name            string
		stdin, out      *os.File
		wantIn, wantOut string
	}{
		{"tcp socket in, unix socket out", tcp, us, schemas.FDSocketInet, schemas.FDSocketUnix},
		{"null device in, pipe out", devNull, w, schemas.FDChar, schemas.FDPipe},
	} {
		pid := run(c.stdin, c.out)
		ev := waitEvent(t, events, c.name, isAction(pid, schemas.ActionExec))
		if diff := cmp.Diff([2]string{c.wantIn, c.wantOut}, [2]string{ev.Process.StdinType, ev.Process.StdoutType}); diff != "" {
			t.Errorf("%s: stdin and stdout types (-want +got):\n%s", c.name, diff)
		}
	}
}

// TestExecUnlinked checks that an executable no directory names (a memfd, a file deleted
// before its exec through a descriptor) is reported as /proc/<pid>/exe names it.
func TestExecUnlinked(t *testing.T) {
	testenv.RequireBPF(t)
	_, events := runCollector(t, DefaultConfig())
	image, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}

	fd, err := unix.MemfdCreate("crumbs-memfd", 0)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(fd), "memfd")
	defer memfd.Close()
	if _, err := memfd.Write(image); err != nil {
		t.Fatal(err)
	}

	path, _ := copyExecutable(t, "/bin/sh", "crumbs-deleted-sh")
	deleted, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer deleted.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		f    *os.File
		want string
	}{
		{"memfd", memfd, "/memfd:crumbs-memfd (deleted)"},
		{"deleted file", deleted, path + " (deleted)"},
	} {
		// The child gets the file as fd 3 and executes it through /proc/self/fd/3.
		cmd := exec.Command("/proc/self/fd/3", "-c", "exit 0", marker(t))
		cmd.ExtraFiles = []*os.File{c.f}
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: run: %v", c.name, err)
		}
		ev := waitEvent(t, events, c.name, isAction(cmd.Process.Pid, schemas.ActionExec))
		if ev.Process.File.Path != c.want || ev.Process.File.Name != filepath.Base(c.want) {
			t.Errorf("%s: executable %q (name %q), want %q", c.name, ev.Process.File.Path, ev.Process.File.Name, c.want)
		}
	}
}
