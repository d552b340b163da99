package atomics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cleanEnv is the environment a simulation's shell starts with: a root login's, nothing of
// the evaluator's.
var cleanEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh", "LANG=C.UTF-8", "TERM=dumb",
}

// harnessMark is in the command line of the waiting shell that becomes a simulation's shell:
// its one exec event before it becomes the simulation is the harness's, not the simulation's.
const harnessMark = "CRUMBS_EVAL_WAIT"

// waitScript runs as /bin/sh in the process that becomes the simulation's shell. It waits,
// with builtins only (nothing is started), until its parent (the spawning shell, whose pid
// CRUMBS_EVAL_PARENT carries: $PPID is read at start, and the parent may be gone by then)
// has exited and it was re-parented, then drops the variables that carried the simulation
// and becomes its shell. It gives up after 200000 turns (seconds).
const waitScript = `i=0; while :; do read -r s </proc/self/stat; set -- $s; [ "$4" != "$CRUMBS_EVAL_PARENT" ] && break; i=$((i+1)); [ $i -gt 200000 ] && exit 125; done
set -- "$CRUMBS_EVAL_SHELL" "$CRUMBS_EVAL_SCRIPT"; unset i s CRUMBS_EVAL_SHELL CRUMBS_EVAL_SCRIPT CRUMBS_EVAL_PARENT ` + harnessMark + `; exec "$1" -c "$2"`

// spawnScript runs as /bin/sh, the leader of a new session: it starts the waiting shell in the
// background, its input /dev/null and its output in a file, prints its pid and exits.
const spawnScript = `CRUMBS_EVAL_PARENT=$$ /bin/sh -c "$` + harnessMark + `" </dev/null >"$CRUMBS_EVAL_OUT" 2>&1 & echo $!`

// shellPath is the shell of an executor.
func shellPath(executor string) string {
	if executor == "bash" {
		return "/bin/bash"
	}
	return "/bin/sh"
}

// detached is a simulation's shell, started apart from the evaluator.
type detached struct {
	pid     int
	session int // the session (and process group) it runs in
	started time.Time
}

// launch starts script with the executor's shell in dir as a detached shell: in a session of
// its own, re-parented (to init, or the nearest subreaper) before it runs anything, with a
// clean environment, its output going to out.
func launch(ctx context.Context, dir, executor, script, out string) (*detached, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", spawnScript)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), cleanEnv...),
		harnessMark+"="+waitScript, "CRUMBS_EVAL_SHELL="+shellPath(executor), "CRUMBS_EVAL_SCRIPT="+script,
		"CRUMBS_EVAL_OUT="+out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	started := time.Now()
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("start the simulation's shell: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("start the simulation's shell: no pid in %q", b)
	}
	return &detached{pid: pid, session: cmd.Process.Pid, started: started}, nil
}

// wait waits until the shell exits or limit passes; it reports whether it exited. A shell
// already gone when waiting starts has exited.
func (d *detached) wait(ctx context.Context, limit time.Duration) (bool, error) {
	fd, err := unix.PidfdOpen(d.pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("watch pid %d: %w", d.pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(limit)
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false, ctx.Err()
		}
		// Poll in short steps, so that a cancelled context is noticed.
		ms := int(min(left, 200*time.Millisecond) / time.Millisecond)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, max(ms, 1))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("watch pid %d: %w", d.pid, err)
		}
		if n > 0 {
			return true, nil
		}
	}
}

// kill ends what is left of the simulation's process group (what it started and left
// running, or itself when it overran).
func (d *detached) kill() {
	_ = unix.Kill(-d.session, unix.SIGKILL)
}

// runApart runs a setup, prerequisite or cleanup script in dir, apart from the simulation
// (its events are not the simulation's), bounded by limit; it returns the output and the
// error of a failed run.
func runApart(ctx context.Context, dir, executor, script string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, shellPath(executor), "-c", script)
	cmd.Dir = dir
	cmd.Env = cleanEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 2 * time.Second
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// scratchDir makes a fresh directory under root, which must not be under /tmp (rules watch
// executions from there: the simulations would be judged by where the evaluator put them).
func scratchDir(root, name string) (string, error) {
	if root == "/tmp" || strings.HasPrefix(root, "/tmp/") {
		return "", fmt.Errorf("scratch directory %s: must not be under /tmp", root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("make scratch directory: %w", err)
	}
	d, err := os.MkdirTemp(root, name)
	if err != nil {
		return "", fmt.Errorf("make scratch directory: %w", err)
	}
	return d, nil
}
