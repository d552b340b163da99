package system

import (
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// BenchmarkSample measures one interval's work on this host's real cgroup tree and /proc
// with a number of extra services (test cgroups holding one sleeping process each): the
// walk, every service's files, the host files, and connection counting from
// /proc/net/tcp{,6} (no NetTotals). It reports the services found per sample.
func BenchmarkSample(b *testing.B) {
	testenv.RequireRoot(b)
	for _, extra := range []int{0, 50} {
		b.Run(fmt.Sprintf("extra_services=%d", extra), func(b *testing.B) {
			c, err := New(DefaultConfig(), testHost, nil)
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			if c.CgroupRoot() == "" {
				b.Fatal("no cgroup v2 hierarchy found")
			}
			for range extra {
				startSleeper(b, c.CgroupRoot())
			}
			now := time.Now()
			c.sample(now)
			var events int
			b.ResetTimer()
			for i := range b.N {
				events = len(c.sample(now.Add(time.Duration(i+1) * time.Second)))
			}
			b.ReportMetric(float64(events-1), "services/interval")
		})
	}
}

// startSleeper starts a sleeping process in a new cgroup, both removed after b.
func startSleeper(b *testing.B, root string) {
	b.Helper()
	_, fd := newTestCgroup(b, root)
	cmd := exec.Command("/bin/sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start sleeper: %v", err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}
