package privilege

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// Start starts cmd as a process that holds no privilege and cannot gain one: running as to
// (nil: as this process's user), no supplementary groups, every capability set empty (the
// bounding set too, when this process may empty it, as root may), no_new_privs set. The child
// is killed (SIGKILL) when this process dies, however it dies. Wait for the child with the
// returned function, not cmd.Wait.
//
// The credentials are set on an OS thread locked for this launch only: the child is forked
// from it and inherits them, while this process's other threads keep theirs. The thread lives
// until the child has exited, since the kernel sends the parent-death signal when the forking
// thread ends, not the process (golang/go#27505); then the runtime discards it.
func Start(cmd *exec.Cmd, to *User) (wait func() error, err error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread's credentials are the child's
		if err := unprivilegeThread(); err != nil {
			started <- err
			return
		}
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		if to != nil && (to.UID != unix.Getuid() || to.GID != unix.Getgid()) {
			// Set in the child between fork and exec; from root to another user, the kernel
			// clears the permitted, effective and ambient sets.
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(to.UID), Gid: uint32(to.GID), Groups: []uint32{}}
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s unprivileged: %w", cmd.Path, err)
	}
	return func() error { return <-exited }, nil
}

// unprivilegeThread takes from the calling thread alone what an exec would otherwise keep or
// give: the bounding set (which limits what a set-user-ID or file-capability exec could
// grant), the ambient and inheritable sets (which an exec keeps), and, with no_new_privs,
// every gain at exec. The permitted and effective sets stay, so that the child can still
// change its user between fork and exec, and so that later changes made on every thread
// (Drop) succeed on this one too; an exec by a user other than root keeps neither.
func unprivilegeThread() error {
	if ok, _ := cap.GetProc().GetFlag(cap.Effective, cap.SETPCAP); ok {
		for c := Capability(0); c < cap.MaxBits(); c++ {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
				return fmt.Errorf("drop %s from the bounding set: %w", Name(c), err)
			}
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear the ambient set: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read the thread's capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear the inheritable set: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}
