package identity

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// flipsEnv makes the test binary a helper that changes its effective uid back and forth
// that many times and exits: the collector ignores its own process, so the storm must
// come from another one.
const flipsEnv = "CRUMBS_IDENTITY_TEST_FLIPS"

// rateEnv paces the helper: at most that many changes per second, in bursts every 10ms.
const rateEnv = "CRUMBS_IDENTITY_TEST_RATE"

func TestMain(m *testing.M) {
	if n := os.Getenv(flipsEnv); n != "" {
		rate, _ := strconv.Atoi(os.Getenv(rateEnv))
		os.Exit(flipEUID(n, rate))
	}
	code := m.Run()
	if pamHelperDir != "" {
		os.RemoveAll(pamHelperDir)
	}
	os.Exit(code)
}

// flipEUID switches the calling thread's effective uid between nobody and root n times
// (2n changes), at most rate changes per second when rate > 0, with raw syscalls so that
// only this thread changes (one record per call).
func flipEUID(n string, rate int) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	runtime.LockOSThread()
	const tick = 10 * time.Millisecond
	burst := count
	if rate > 0 {
		burst = max(rate/int(time.Second/tick)/2, 1)
	}
	keep := ^uintptr(0) // -1: leave unchanged
	next := time.Now()
	for done := 0; done < count; {
		for i := 0; i < burst && done < count; i, done = i+1, done+1 {
			for _, euid := range []uintptr{nobody, 0} {
				if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESUID, keep, euid, keep); errno != 0 {
					fmt.Fprintln(os.Stderr, "setresuid:", errno)
					return 1
				}
			}
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	return 0
}

// BenchmarkCredentialStorm has a child process change its effective uid 2*b.N times while
// the collector runs, paced at a target rate (0: as fast as it can), then waits until
// every change was emitted or none arrived for a while. It reports the events emitted per
// second (from the storm's start to the last event), the kernel drops and the changes
// never emitted, at the default ring-buffer size. The highest target rate with zero drops
// is what the collector sustains.
func BenchmarkCredentialStorm(b *testing.B) {
	testenv.RequireBPF(b)
	for _, rate := range []int{10000, 20000, 40000, 0} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { credentialStorm(b, rate) })
	}
}

func credentialStorm(b *testing.B, rate int) {
	c, err := New(DefaultConfig(), testHost, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	var childPID atomic.Int32
	var seen atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.Run(ctx, func(e *schemas.IdentityEvent) {
			if e.Action == schemas.ActionSetUID && e.Process.PID == childPID.Load() {
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
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dropsBefore := c.Stats().KernelDrops
	want := int64(2 * b.N)

	b.ResetTimer()
	start := time.Now()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), flipsEnv+"="+strconv.Itoa(b.N), rateEnv+"="+strconv.Itoa(rate))
	if err := cmd.Start(); err != nil {
		b.Fatalf("start storm: %v", err)
	}
	childPID.Store(int32(cmd.Process.Pid))
	if err := cmd.Wait(); err != nil {
		b.Fatalf("storm: %v", err)
	}
	last := waitDrained(&seen, want)
	b.StopTimer()

	b.ReportMetric(float64(seen.Load())/last.Sub(start).Seconds(), "events/s")
	b.ReportMetric(float64(c.Stats().KernelDrops-dropsBefore), "drops")
	b.ReportMetric(float64(want-seen.Load()), "missing")
}

// waitDrained waits until want events were seen, or none arrived for a while, and returns
// when the last one arrived.
func waitDrained(seen *atomic.Int64, want int64) time.Time {
	const quiet = 2 * time.Second
	last, lastChange := seen.Load(), time.Now()
	for seen.Load() < want && time.Since(lastChange) < quiet {
		time.Sleep(2 * time.Millisecond)
		if n := seen.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	return lastChange
}
