package collectors

import (
	"errors"
	"runtime"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/threatcrumbs/crumbs/pkg/privilege"
)

// runCapabilities are the capabilities each collector needs once its kernel programs are
// loaded and attached, measured on Linux 6.18 by running each collector as the crumbs user
// with and without each one (docs/security.md, "Who runs as whom"):
//   - CAP_SYS_PTRACE: /proc/<pid>/exe, cwd and fd of other users' processes: the executable
//     of a process (network, identity, and process for its table seeded from /proc and when
//     the kernel could not walk the path), and the hash of an executable deleted or replaced
//     since its exec, which only /proc/<pid>/exe still opens; the sockets of services
//     (system, when the network collector gives no totals).
//   - CAP_DAC_READ_SEARCH: files and directories only their owner may read: the sha256 of
//     executables (process) and of watched files, scans and the owner and mode of changed
//     files (file); /proc/<pid>/fd (system).
//
// Reading the ring buffers, the maps and the iterators needs none: the kernel checks the
// descriptors crumbs already holds (since Linux 6.5; before, see NeedsBPFAtRunTime).
// Re-attaching programs after a Pause (Resume; tests only) would need CAP_PERFMON, and
// CAP_SYS_ADMIN for uprobes; nothing does so once the collectors run.
var runCapabilities = map[string][]privilege.Capability{
	"process":  {cap.SYS_PTRACE, cap.DAC_READ_SEARCH},
	"network":  {cap.SYS_PTRACE},
	"file":     {cap.DAC_READ_SEARCH},
	"identity": {cap.SYS_PTRACE},
	"system":   {cap.SYS_PTRACE, cap.DAC_READ_SEARCH},
}

// LoadCapabilities are what loading and attaching every collector's programs takes, measured
// the same way: CAP_BPF and CAP_PERFMON (maps, tracepoints, tp_btf, iterators), CAP_SYS_ADMIN
// (the identity collector's uprobes on libpam), CAP_DAC_READ_SEARCH (tracefs, for a user
// other than root) and, on kernels before 5.11, CAP_SYS_RESOURCE (the locked-memory limit).
// A process started with fewer runs what they allow (crumbs doctor says what).
func LoadCapabilities() []privilege.Capability {
	return []privilege.Capability{cap.BPF, cap.PERFMON, cap.SYS_ADMIN, cap.DAC_READ_SEARCH, cap.SYS_RESOURCE}
}

// RunCapabilities returns the capabilities the named collectors need once loaded, with
// CAP_BPF when this kernel still asks for it to use the objects they hold
// (NeedsBPFAtRunTime).
func RunCapabilities(collectors ...string) []privilege.Capability {
	var out []privilege.Capability
	for _, c := range collectors {
		out = append(out, runCapabilities[c]...)
	}
	if len(out) > 0 && NeedsBPFAtRunTime() {
		out = append(out, cap.BPF)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Running returns the names of the collectors the stage runs.
func (s *Stage) Running() []string {
	out := make([]string, 0, len(s.running))
	for _, rc := range s.running {
		out = append(out, rc.name)
	}
	return out
}

// NeedsBPFAtRunTime reports whether this kernel refuses the bpf() system call on objects a
// process already holds (a map lookup) to a process without CAP_BPF, as kernels before 6.5
// do when unprivileged BPF is disabled. It tries: a lookup in a map made for the purpose, from
// a thread of its own that lowered CAP_BPF and CAP_SYS_ADMIN, which the runtime discards
// afterwards. Without CAP_BPF to begin with, it reports false: there is nothing to keep.
func NeedsBPFAtRunTime() bool {
	if ok, _ := cap.GetProc().GetFlag(cap.Effective, cap.BPF); !ok {
		return false
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return true
	}
	defer m.Close()
	refused := make(chan bool)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var set [2]unix.CapUserData
		if err := unix.Capget(&hdr, &set[0]); err != nil {
			refused <- true
			return
		}
		for _, c := range []privilege.Capability{cap.BPF, cap.SYS_ADMIN} {
			set[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &set[0]); err != nil {
			refused <- true
			return
		}
		var v uint32
		refused <- errors.Is(m.Lookup(uint32(0), &v), unix.EPERM)
	}()
	return <-refused
}
