package file

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// stormEventsPerOp is what one storm iteration yields: create, write, rename.
const stormEventsPerOp = 3

// storm runs the helper process's write and rename storm of n iterations in dir and returns
// its pid and run time.
func storm(b *testing.B, dir string, n int) (int, time.Duration) {
	b.Helper()
	cmd := stormCmd(dir, n)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("storm: %v\n%s", err, out)
	}
	return cmd.Process.Pid, time.Since(start)
}

func stormCmd(dir string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "storm", dir, strconv.Itoa(n))
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	return cmd
}

// BenchmarkWriteRenameStorm runs a storm of b.N create-write-rename iterations under a
// watched directory and reports the events per second the collector emitted (bounded by
// how fast one helper process makes changes), the kernel drops at the default ring-buffer
// size, and the events never emitted.
func BenchmarkWriteRenameStorm(b *testing.B) {
	testenv.RequireBPF(b)
	dir := tempDir(b)
	c, events := runCollector(b, testConfig(b, dir))
	dropsBefore := c.Stats().KernelDrops
	want := int64(b.N) * stormEventsPerOp

	b.ResetTimer()
	start := time.Now()
	cmd := stormCmd(dir, b.N)
	if err := cmd.Start(); err != nil {
		b.Fatalf("storm: %v", err)
	}
	seen := drain(events, cmd.Process.Pid, want) // while the storm runs
	elapsed := time.Since(start)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("storm: %v", err)
	}
	b.StopTimer()

	b.ReportMetric(float64(seen)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(c.Stats().KernelDrops-dropsBefore), "drops")
	b.ReportMetric(float64(want-seen), "missing")
}

// drain counts pid's events until want arrived or none arrived for a while.
func drain(events <-chan *schemas.FileEvent, pid int, want int64) int64 {
	const quiet = 2 * time.Second
	var seen int64
	for seen < want {
		select {
		case e := <-events:
			if e.Process.PID == int32(pid) {
				seen++
			}
		case <-time.After(quiet):
			return seen
		}
	}
	return seen
}

// BenchmarkStormOverhead reports the run time of a write and rename storm under a watched
// directory with the collector running, divided by its run time without (ratio), and the
// same for a storm outside the watched paths (unwatched_ratio), which the kernel filter
// should make close to 1.
func BenchmarkStormOverhead(b *testing.B) {
	testenv.RequireBPF(b)
	watched, unwatched := tempDir(b), b.TempDir()
	if err := os.MkdirAll("/var/tmp", 0o755); err != nil {
		b.Fatal(err)
	}
	unwatched, err := os.MkdirTemp("/var/tmp", "crumbs-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(unwatched) })
	n := max(b.N, 2000)
	_, baseW := storm(b, watched, n)
	_, baseU := storm(b, unwatched, n)

	c, err := New(testConfig(b, watched), testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	stop := runDiscarding(b, c)
	b.ResetTimer()
	_, withW := storm(b, watched, n)
	_, withU := storm(b, unwatched, n)
	b.StopTimer()
	stop()

	b.ReportMetric(withW.Seconds()/baseW.Seconds(), "ratio")
	b.ReportMetric(withU.Seconds()/baseU.Seconds(), "unwatched_ratio")
}

// runDiscarding runs c, discarding its events, until the returned stop is called.
func runDiscarding(b *testing.B, c *Collector) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(*schemas.FileEvent) {}) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	}
}
