package collectors_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/registry"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// TestEveryCollectorDeclaresItsRunCapabilities: a collector without a line in the table
// would run with none after loading, and lose what it reads from /proc and the files.
func TestEveryCollectorDeclaresItsRunCapabilities(t *testing.T) {
	for _, f := range registry.Factories() {
		if len(collectors.RunCapabilities(f.Name)) == 0 {
			t.Errorf("collector %s: no run-time capabilities in collectors/privileges.go", f.Name)
		}
	}
}

// TestNeedsBPFAtRunTime: kernels from 6.5 on let a process without CAP_BPF use the BPF
// objects it holds; older ones refuse it while unprivileged BPF is disabled.
func TestNeedsBPFAtRunTime(t *testing.T) {
	testenv.RequireBPF(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	major, minor := kernelVersion(t, release)
	disabled, err := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled")
	if err != nil {
		t.Fatal(err)
	}
	want := (major < 6 || major == 6 && minor < 5) && strings.TrimSpace(string(disabled)) != "0"
	if got := collectors.NeedsBPFAtRunTime(); got != want {
		t.Errorf("NeedsBPFAtRunTime on %s (unprivileged_bpf_disabled %s) = %v, want %v", release, strings.TrimSpace(string(disabled)), got, want)
	}
	all := []string{"process", "network", "file", "identity", "system"}
	wantCaps := []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}
	if want {
		wantCaps = []string{"CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}
	}
	if d := cmp.Diff(wantCaps, privilege.Names(collectors.RunCapabilities(all...))); d != "" {
		t.Errorf("every collector's run-time capabilities (-want +got):\n%s", d)
	}
}

func kernelVersion(t *testing.T, release string) (major, minor int) {
	t.Helper()
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		t.Fatalf("kernel release %q", release)
	}
	major, _ = strconv.Atoi(f[0])
	minor, _ = strconv.Atoi(f[1])
	return major, minor
}
