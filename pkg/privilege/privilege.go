// Package privilege takes away what crumbs' processes may do once they no longer need it.
//
// Linux keeps credentials (user and group ids, capability sets, no_new_privs) per thread, and
// the Go runtime moves goroutines between threads, so a change made on one thread alone would
// hold only by chance. Drop changes every thread of the process at once (libcap's psx, which
// works with and without cgo), and checks each thread afterwards. Start runs a child process
// that never holds a privilege: its credentials are set on a thread locked for it, which
// lives as long as the child so that the child dies with its parent (Pdeathsig).
//
// In: the user to become (the crumbs system user, created by EnsureUser when missing) and the
// capabilities to keep. Out: processes whose /proc/<pid>/status shows exactly those
// (ReadStatus).
package privilege

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Capability is a Linux capability (cap.BPF, cap.PERFMON, ...).
type Capability = cap.Value

// Name is the capability's name as the kernel's headers and capabilities(7) spell it:
// CAP_BPF.
func Name(c Capability) string { return strings.ToUpper(c.String()) }

// Names returns the names of cs, sorted.
func Names(cs []Capability) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, Name(c))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Parse returns the capability named s (CAP_BPF or cap_bpf).
func Parse(s string) (Capability, error) {
	c, err := cap.FromName(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return 0, fmt.Errorf("capability %q: no such capability", s)
	}
	return c, nil
}

// Drop leaves every thread of this process with the capabilities keep and no other: keep is
// its permitted, effective and (when this process may change it, as root may) bounding set;
// nothing is inheritable or ambient; no_new_privs is set, so no exec gives anything back.
// With to set, the process first becomes that user and its group (no supplementary groups),
// keeping keep across the change. A capability in keep that the process does not hold is an
// error, as is a thread that does not show the result afterwards.
func Drop(to *User, keep ...Capability) error {
	keep = slices.Clone(keep)
	slices.Sort(keep)
	keep = slices.Compact(keep)
	have := cap.GetProc()
	for _, c := range keep {
		if ok, _ := have.GetFlag(cap.Permitted, c); !ok {
			return fmt.Errorf("drop privileges: cannot keep %s: this process does not have it", Name(c))
		}
	}
	if ok, _ := have.GetFlag(cap.Effective, cap.SETPCAP); ok {
		var drop []Capability
		for c := Capability(0); c < cap.MaxBits(); c++ {
			if in, err := cap.GetBound(c); err == nil && in && !slices.Contains(keep, c) {
				drop = append(drop, c)
			}
		}
		if len(drop) > 0 {
			if err := cap.DropBound(drop...); err != nil {
				return fmt.Errorf("drop privileges: empty the bounding set: %w", err)
			}
		}
	}
	if to != nil {
		if os.Getgid() != to.GID || os.Getegid() != to.GID || hasGroups() {
			if err := cap.SetGroups(to.GID); err != nil {
				return fmt.Errorf("drop privileges: become group %d (%s): %w", to.GID, to.Name, err)
			}
		}
		if os.Getuid() != to.UID || os.Geteuid() != to.UID {
			if err := cap.SetUID(to.UID); err != nil {
				return fmt.Errorf("drop privileges: become user %d (%s): %w", to.UID, to.Name, err)
			}
		}
	}
	want := cap.NewSet()
	if err := errors.Join(want.SetFlag(cap.Permitted, true, keep...), want.SetFlag(cap.Effective, true, keep...)); err != nil {
		return fmt.Errorf("drop privileges: %w", err)
	}
	if err := want.SetProc(); err != nil {
		return fmt.Errorf("drop privileges: set capabilities %s: %w", strings.Join(Names(keep), ","), err)
	}
	if err := cap.ResetAmbient(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("drop privileges: clear the ambient set: %w", err)
	}
	if _, err := cap.Prctlw(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("drop privileges: set no_new_privs: %w", err)
	}
	return checkThreads(to, keep)
}

// hasGroups reports whether the process has supplementary groups.
func hasGroups() bool {
	gs, err := os.Getgroups()
	return err != nil || len(gs) > 0
}

// checkThreads reads every thread's status and fails unless each shows what Drop set: a thread
// the change missed would run some goroutines with the old privileges.
func checkThreads(to *User, keep []Capability) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("drop privileges: check the threads: %w", err)
	}
	want := Names(keep)
	for _, t := range tasks {
		st, err := readStatusFile(filepath.Join("/proc/self/task", t.Name(), "status"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread has exited since
		}
		if err != nil {
			return fmt.Errorf("drop privileges: check thread %s: %w", t.Name(), err)
		}
		switch {
		case to != nil && (st.UID != [4]int{to.UID, to.UID, to.UID, to.UID} || st.GID != [4]int{to.GID, to.GID, to.GID, to.GID}):
			return fmt.Errorf("drop privileges: thread %s still runs as uid %v gid %v", t.Name(), st.UID, st.GID)
		case !slices.Equal(st.Effective, want) || !slices.Equal(st.Permitted, want) || len(st.Ambient) > 0 || len(st.Inheritable) > 0:
			return fmt.Errorf("drop privileges: thread %s holds effective %v permitted %v, want %v", t.Name(), st.Effective, st.Permitted, want)
		case !st.NoNewPrivs:
			return fmt.Errorf("drop privileges: thread %s without no_new_privs", t.Name())
		}
	}
	return nil
}
