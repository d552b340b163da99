package network

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// stormWorkers is the number of goroutines connecting in the storm child.
const stormWorkers = 4

// heldConnections is how many loopback connections stay open through the storm when the
// benchmark compares the ways of the iterator jobs: each is two entries of the connection
// map (its connect and its accept), which the announcing and refreshing chores go through.
const heldConnections = 1000

// BenchmarkConnectStorm runs a loopback connect/close storm of b.N connections in a child
// process, first without the collector and then with it, and reports the ratio of the two
// run times (target at most 1.05), the connection events emitted per second while the
// storm ran and drained (two per connection: its connect and its accept, each carrying the
// close, as the default coalesce window reports short connections), the kernel
// drops at the default ring-buffer size, the connections the kernel map could not take,
// the closes the kernel did not see (those connections are reported when their socket's
// memory is reused), and the connection events never emitted, and the collector process's
// CPU time through the storm and its drain, per connection of the storm. With summarize
// (short only/summarize), a summary counts as the connections it sums, and the storm drains
// at the next summary interval (1s here).
//
// Its other sub-benchmarks force each way of the iterator jobs (collectors.network.iterators: a
// forced iterator the kernel refuses falls back to the walk, and the log says which way
// ran), with heldConnections connections open through both storms (opened once the
// collector runs, so that it tracks them): the ways differ in the collector's own work,
// which its CPU per connection shows where the storm's wall time on a shared host hardly
// does.
func BenchmarkConnectStorm(b *testing.B) {
	testenv.RequireBPF(b)
	b.Run("short only", func(b *testing.B) { connectStorm(b, "", false, 0) })
	b.Run("short only/summarize", func(b *testing.B) { connectStorm(b, "", true, 0) })
	for _, mode := range []string{IteratorsMapElem, IteratorsTCP, IteratorsOff} {
		b.Run(fmt.Sprintf("iterators=%s/held=%d", mode, heldConnections), func(b *testing.B) {
			connectStorm(b, mode, false, heldConnections)
		})
	}
}

func connectStorm(b *testing.B, mode string, summarize bool, held int) {
	var baseline time.Duration
	func() { // without the collector, the same connections held
		if held > 0 {
			defer holdConnections(b, held)()
		}
		baseline = runStorm(b, b.N)
	}()

	cfg := DefaultConfig()
	if mode != "" {
		cfg.Iterators = mode
	}
	if summarize {
		// The summaries of a storm are reported at the next interval: the shortest one.
		cfg.Summarize, cfg.SummaryInterval = true, time.Second
	}
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	if mode != "" {
		b.Logf("iterators: %s: bytes refreshed by the %s, long connections announced by the %s",
			mode, c.ring.Way(FeatureRefresh), c.ring.Way(FeatureAnnounce))
	}
	var stormPID, holderPID atomic.Int32
	var seen, announced atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(e *schemas.NetworkEvent) {
			switch e.Process.PID {
			case stormPID.Load():
				switch e.Action {
				case schemas.ActionListen:
				case schemas.ActionConnectSummary, schemas.ActionAcceptSummary:
					seen.Add(e.Network.Packets) // the connections it sums
				default:
					seen.Add(1)
				}
			case holderPID.Load():
				if e.Action == schemas.ActionConnect || e.Action == schemas.ActionAccept {
					announced.Add(1)
				}
			}
		})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	if held > 0 {
		release := holdConnectionsReporting(b, held, &holderPID)
		defer release()
		// Once the coalesce window has passed, each held connection is announced: from then
		// on the chores only go through them.
		waitSeen(&announced, int64(2*held))
		if n := announced.Load(); n != int64(2*held) {
			b.Fatalf("%d of the %d held connections' connects and accepts announced", n, 2*held)
		}
	}
	before := c.Stats()
	cpuBefore := cpuTime(b)

	b.ResetTimer()
	start := time.Now()
	withCollector := runStormReporting(b, b.N, &stormPID)
	want := int64(2 * b.N)
	waitSeen(&seen, want)
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime(b) - cpuBefore

	b.ReportMetric(float64(withCollector)/float64(baseline), "ratio")
	b.ReportMetric(float64(seen.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "collector-cpu-µs/conn")
	after := c.Stats()
	b.ReportMetric(float64(after.KernelDrops-before.KernelDrops), "drops")
	b.ReportMetric(float64(after.ConnTableFull-before.ConnTableFull), "untracked")
	b.ReportMetric(float64(after.ClosesMissed-before.ClosesMissed), "closes-missed")
	b.ReportMetric(float64(want-seen.Load()), "missing")
}

// cpuTime returns the CPU time this process (the collector's) used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// holdConnections opens n loopback connections in a child and returns what closes them.
func holdConnections(b *testing.B, n int) (release func()) {
	var pid atomic.Int32
	return holdConnectionsReporting(b, n, &pid)
}

// holdConnectionsReporting is holdConnections storing the child's pid before it connects.
func holdConnectionsReporting(b *testing.B, n int, pid *atomic.Int32) (release func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "--", strconv.Itoa(n))
	cmd.Env = append(cmd.Environ(), helperEnv+"=tcp-hold")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start holder: %v", err)
	}
	pid.Store(int32(cmd.Process.Pid))
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("holder: %v", err)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("holder: %v", err)
		}
	}
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
