package process

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// BenchmarkExecStorm execs /bin/true b.N times from several goroutines while the collector
// runs, then waits until every exec was emitted or stopped arriving. It reports the exec
// events emitted per second, the kernel drops (of any process's records), the execs never
// emitted and the mean run time of the exec program in the kernel (kernel.bpf_stats, over
// every exec on the host during the run), which the host's load does not blur as much.
func BenchmarkExecStorm(b *testing.B) {
	testenv.RequireBPF(b)
	c, err := New(DefaultConfig(), testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	self := int32(os.Getpid())
	var seen atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(e *schemas.ProcessEvent) {
			if e.Action == schemas.ActionExec && e.Process.PPID == self && e.Process.File.Path == "/bin/true" {
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
	dropsBefore := c.Stats().KernelDrops
	if stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		b.Cleanup(func() { stats.Close() })
	}
	progBefore := progRuntime(c.objs.HandleExec)

	b.ResetTimer()
	start := time.Now()
	execStorm(b, b.N, 2*runtime.GOMAXPROCS(0))
	drops := waitDrained(c, &seen, int64(b.N), dropsBefore)
	elapsed := time.Since(start)
	b.StopTimer()

	b.ReportMetric(float64(seen.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(drops), "drops")
	b.ReportMetric(float64(int64(b.N)-seen.Load()), "missing")
	if prog := progRuntime(c.objs.HandleExec); prog.runs > progBefore.runs {
		b.ReportMetric(float64(prog.ns-progBefore.ns)/float64(prog.runs-progBefore.runs), "ns/exec-prog")
	}
}

// progStats is a program's cumulated run time and run count (zero when stats are off).
type progStats struct {
	ns, runs uint64
}

func progRuntime(p *ebpf.Program) progStats {
	st, err := p.Stats()
	if err != nil {
		return progStats{}
	}
	return progStats{ns: uint64(st.Runtime.Nanoseconds()), runs: st.RunCount}
}

// execStorm runs /bin/true n times from workers goroutines.
func execStorm(b *testing.B, n, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := exec.Command("/bin/true").Run(); err != nil {
					b.Errorf("/bin/true: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// waitDrained waits until want exec events were seen, or until none arrived for a while
// (the rest were dropped), and returns the kernel drops counted since dropsBefore.
func waitDrained(c *Collector, seen *atomic.Int64, want int64, dropsBefore uint64) uint64 {
	const quiet = 2 * time.Second
	last, lastChange := seen.Load(), time.Now()
	for seen.Load() < want && time.Since(lastChange) < quiet {
		time.Sleep(5 * time.Millisecond)
		if n := seen.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	return c.Stats().KernelDrops - dropsBefore
}
