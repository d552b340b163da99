package network

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// stormWorkers is the number of goroutines connecting in the storm child.
const stormWorkers = 4

// BenchmarkConnectStorm runs a loopback connect/close storm of b.N connections in a child
// process, first without the collector and then with it, and reports the ratio of the two
// run times (target at most 1.05), the connection events emitted per second while the
// storm ran and drained (two per connection: its connect and its accept, each carrying the
// close, as the default coalesce window reports short connections), the kernel
// drops at the default ring-buffer size, the connections the kernel map could not take,
// the closes the kernel did not see (those connections are reported when their socket's
// memory is reused), and the connection events never emitted.
func BenchmarkConnectStorm(b *testing.B) {
	testenv.RequireBPF(b)
	baseline := runStorm(b, b.N)

	c, err := New(DefaultConfig(), testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	var stormPID atomic.Int32
	var seen atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(e *schemas.NetworkEvent) {
			if e.Process.PID == stormPID.Load() && e.Action != schemas.ActionListen {
				seen.Add(1)
			}
		})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	before := c.Stats()

	b.ResetTimer()
	start := time.Now()
	withCollector := runStormReporting(b, b.N, &stormPID)
	want := int64(2 * b.N)
	waitSeen(&seen, want)
	elapsed := time.Since(start)
	b.StopTimer()

	b.ReportMetric(float64(withCollector)/float64(baseline), "ratio")
	b.ReportMetric(float64(seen.Load())/elapsed.Seconds(), "events/s")
	after := c.Stats()
	b.ReportMetric(float64(after.KernelDrops-before.KernelDrops), "drops")
	b.ReportMetric(float64(after.ConnTableFull-before.ConnTableFull), "untracked")
	b.ReportMetric(float64(after.ClosesMissed-before.ClosesMissed), "closes-missed")
	b.ReportMetric(float64(want-seen.Load()), "missing")
}

func runStorm(b *testing.B, n int) time.Duration {
	var pid atomic.Int32
	return runStormReporting(b, n, &pid)
}

// runStormReporting runs the storm child, storing its pid before it starts connecting,
// and returns the storm's duration as the child measured it.
func runStormReporting(b *testing.B, n int, pid *atomic.Int32) time.Duration {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", fmt.Sprintf("%d,%d", n, stormWorkers))
	cmd.Env = append(cmd.Environ(), helperEnv+"=tcp-storm")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		b.Fatalf("start storm: %v", err)
	}
	pid.Store(int32(cmd.Process.Pid))
	if err := cmd.Wait(); err != nil {
		b.Fatalf("storm: %v", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		b.Fatalf("storm output %q: %v", out.String(), err)
	}
	return time.Duration(ns)
}

// waitSeen waits until want events were seen, or until none arrived for a while.
func waitSeen(seen *atomic.Int64, want int64) {
	const quiet = 5 * time.Second
	last, lastChange := seen.Load(), time.Now()
	for seen.Load() < want && time.Since(lastChange) < quiet {
		time.Sleep(5 * time.Millisecond)
		if n := seen.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
}
