package collectors_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/file"
	"github.com/threatcrumbs/crumbs/collectors/identity"
	"github.com/threatcrumbs/crumbs/collectors/network"
	"github.com/threatcrumbs/crumbs/collectors/process"
	"github.com/threatcrumbs/crumbs/collectors/system"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// allCollectors runs the five collectors with their default configuration (the file
// collector's scan state in a temporary folder, no scan on start), counting what they emit.
type allCollectors struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events atomic.Int64
	drops  func() uint64
	// kernel holds the collectors with kernel programs, which pause and resume detach and
	// attach again. (The system collector has none: it reads /proc every 10 s.)
	kernel []pausable
}

type pausable interface {
	Pause()
	Resume() error
}

func (a *allCollectors) pause() {
	for _, c := range a.kernel {
		c.Pause()
	}
}

func (a *allCollectors) resume(b *testing.B) {
	for _, c := range a.kernel {
		if err := c.Resume(); err != nil {
			b.Fatal(err)
		}
	}
}

// startAll starts the five collectors, the network collector's iterator jobs as iterators
// says (collectors.network.iterators).
func startAll(b *testing.B, iterators string) *allCollectors {
	b.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	host := schemas.Host{ID: "bench", Name: "bench"}
	ctx, cancel := context.WithCancel(context.Background())
	a := &allCollectors{cancel: cancel}
	count := func() { a.events.Add(1) }

	pc, err := process.New(process.DefaultConfig(), host, log)
	if err != nil {
		b.Fatal(err)
	}
	ncfg := network.DefaultConfig()
	ncfg.Iterators = iterators
	nc, err := network.New(ncfg, host, log)
	if err != nil {
		b.Fatal(err)
	}
	fcfg := file.DefaultConfig()
	fcfg.StateDir = b.TempDir()
	fcfg.ScanOnStart = false
	fc, err := file.New(fcfg, host, log)
	if err != nil {
		b.Fatal(err)
	}
	ic, err := identity.New(identity.DefaultConfig(), host, log)
	if err != nil {
		b.Fatal(err)
	}
	// As crumbs up wires them: the system collector takes connections and bytes per cgroup
	// from the network collector instead of reading /proc/net/tcp.
	sc, err := system.New(system.DefaultConfig(), host, log, system.WithNetTotals(nc))
	if err != nil {
		b.Fatal(err)
	}
	a.kernel = []pausable{pc, nc, fc, ic}
	a.drops = func() uint64 {
		return pc.Stats().KernelDrops + nc.Stats().KernelDrops + fc.Stats().KernelDrops + ic.Stats().KernelDrops
	}
	runs := []func() error{
		func() error { return pc.Run(ctx, func(*schemas.ProcessEvent) { count() }) },
		func() error { return nc.Run(ctx, func(*schemas.NetworkEvent) { count() }) },
		func() error { return fc.Run(ctx, func(*schemas.FileEvent) { count() }) },
		func() error { return ic.Run(ctx, func(*schemas.IdentityEvent) { count() }) },
		func() error { return sc.Run(ctx, func(*schemas.SystemEvent) { count() }) },
	}
	for _, run := range runs {
		a.wg.Go(func() {
			if err := run(); err != nil {
				b.Errorf("collector: %v", err)
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // attached in New; let Run start reading
	return a
}

func (a *allCollectors) stop() { a.cancel(); a.wg.Wait() }

// settle waits until the collectors have emitted nothing for 100 ms (at most 3 s), so that
// the work one storm left them does not weigh on the next.
func (a *allCollectors) settle() {
	const quiet, limit = 100 * time.Millisecond, 3 * time.Second
	deadline := time.Now().Add(limit)
	last := a.events.Load()
	for time.Now().Before(deadline) {
		time.Sleep(quiet)
		n := a.events.Load()
		if n == last {
			return
		}
		last = n
	}
}

// The storms run in a child process (this test binary again, see TestMain), as workloads run
// beside the collector agent: sharing the benchmark's Go runtime would add the collectors'
// scheduling and garbage collection to the storm, which a real workload never sees.
const stormEnv = "CRUMBS_OVERHEAD_STORM"

// TestMain runs a storm when the benchmark starts this binary as its storm child.
func TestMain(m *testing.M) {
	if spec := os.Getenv(stormEnv); spec != "" {
		kind, count, _ := strings.Cut(spec, ":")
		n, _ := strconv.Atoi(count)
		var err error
		elapsed := timed(func() {
			switch kind {
			case "exec":
				err = execStorm(n)
			case "connect":
				err = connectStorm(n)
			default:
				err = fmt.Errorf("unknown storm %q", kind)
			}
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(elapsed.Nanoseconds())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// storm runs a storm of kind (exec or connect) of n operations in a child process and returns
// its duration as the child measured it (process start-up excluded).
func storm(b *testing.B, kind string, n int) time.Duration {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", stormEnv, kind, n))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s storm: %v\n%s", kind, err, stderr.String())
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("%s storm printed %q: %v", kind, out, err)
	}
	return time.Duration(ns)
}

// execStorm execs /bin/true n times from 4 goroutines.
func execStorm(n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := exec.Command("/bin/true").Run(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// connectStorm opens and closes n loopback TCP connections from 4 goroutines.
func connectStorm(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					errs <- err
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func median(ds []float64) float64 {
	sort.Float64s(ds)
	return ds[len(ds)/2]
}

// BenchmarkAllCollectorsOverhead reports, for an exec storm and a loopback connect/close
// storm run in a child process, the storm's run time with all five collectors collecting
// divided by its run time without them (target: at most 1.05), the kernel drops while
// collecting, and the peak RSS of this process, which holds the collectors.
//
// The collectors start once and are warmed up; "without" is their kernel programs
// detached (Pause), so nothing reaches them, and "with" is them attached again (Resume).
// This machine is shared, and its speed drifts over seconds: so each round runs each storm
// without, twice with and once more without, close together, and the figures are the
// medians of the rounds' ratios. Each storm with them starts once the collectors are done
// with the previous one. (Detaching takes seconds, as the kernel waits for a grace
// period per syscall tracepoint: it happens once a round, after the storms with.) b.N is
// the number of rounds. It runs with the network collector's iterator jobs as the kernel
// allows them (auto) and with the user-space walk of its connection map forced (off).
func BenchmarkAllCollectorsOverhead(b *testing.B) {
	testenv.RequireBPF(b)
	for _, iterators := range []string{network.IteratorsAuto, network.IteratorsOff} {
		b.Run("iterators="+iterators, func(b *testing.B) { allCollectorsOverhead(b, iterators) })
	}
}

func allCollectorsOverhead(b *testing.B, iterators string) {
	const execs, connects = 1000, 10000
	a := startAll(b, iterators)
	defer a.stop()
	// Warm up as an agent that has been running is: the storm child's binary hashed, its
	// /proc entries seen once, and the garbage of loading the programs (the kernel's BTF,
	// parsed) collected.
	storm(b, "exec", 10)
	storm(b, "connect", 10)
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	a.pause()

	var drops uint64
	var execRatios, connRatios []float64
	for range b.N {
		execBase, connBase := storm(b, "exec", execs), storm(b, "connect", connects)
		a.resume(b)
		d0 := a.drops()
		with := func(kind string, n int) time.Duration {
			a.settle()
			return storm(b, kind, n)
		}
		execWith, connWith := with("exec", execs), with("connect", connects)
		execWith += with("exec", execs)
		connWith += with("connect", connects)
		a.settle()
		drops += a.drops() - d0
		a.pause()
		execBase += storm(b, "exec", execs)
		connBase += storm(b, "connect", connects)
		b.Logf("exec %v -> %v, connect %v -> %v", execBase/2, execWith/2, connBase/2, connWith/2)
		execRatios = append(execRatios, execWith.Seconds()/execBase.Seconds())
		connRatios = append(connRatios, connWith.Seconds()/connBase.Seconds())
	}
	b.ReportMetric(median(execRatios), "exec-ratio")
	b.ReportMetric(median(connRatios), "connect-ratio")
	b.ReportMetric(float64(drops), "drops")
	b.ReportMetric(float64(peakRSS()), "peak-RSS-MiB")
}

// peakRSS returns this process's peak resident set size (VmHWM) in MiB.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
