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
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/file"
	"github.com/threatcrumbs/crumbs/collectors/identity"
	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
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

// startAll starts the five collectors, the network collector's configuration as configure
// leaves its defaults.
func startAll(b *testing.B, configure func(*network.Config)) *allCollectors {
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
	configure(&ncfg)
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
const (
	stormEnv = "CRUMBS_OVERHEAD_STORM"
	// vethEnv names the network namespace the veth storm's server listens in.
	vethEnv = "CRUMBS_OVERHEAD_VETH"
)

// The storms.
const (
	stormExec     = "exec"    // /bin/true exec'd over and over
	stormLoopback = "connect" // TCP connections over loopback, opened and closed at once
	stormVeth     = "veth"    // the same through a veth pair into a network namespace
	execs         = 1000      // per exec storm
	connects      = 10000     // per connect storm
	stormWorkers  = 4         // goroutines of a storm
)

// TestMain runs a storm when the benchmark starts this binary as its storm child.
func TestMain(m *testing.M) {
	if spec := os.Getenv(stormEnv); spec != "" {
		kind, count, _ := strings.Cut(spec, ":")
		n, _ := strconv.Atoi(count)
		var err error
		elapsed := timed(func() {
			switch kind {
			case stormExec:
				err = execStorm(n)
			case stormLoopback:
				err = connectStorm(n, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
			case stormVeth:
				ns, addr, _ := strings.Cut(os.Getenv(vethEnv), ",")
				err = connectStorm(n, func() (net.Listener, error) {
					return collectortest.ListenIn(ns, net.JoinHostPort(addr, "0"))
				})
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

// stormRun is what one storm took: its wall time as the child measured it (process start-up
// excluded) and the child's CPU time (user and system, all of its threads; the kernel work
// the storm caused in its context, softirqs included, is in it).
type stormRun struct {
	wall, cpu time.Duration
}

func (r stormRun) add(o stormRun) stormRun { return stormRun{r.wall + o.wall, r.cpu + o.cpu} }

// storm runs a storm of kind of n operations in a child process.
func storm(b *testing.B, kind string, n int, env ...string) stormRun {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(append(os.Environ(), fmt.Sprintf("%s=%s:%d", stormEnv, kind, n)), env...)
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
	return stormRun{wall: time.Duration(ns), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
}

// execStorm execs /bin/true n times from stormWorkers goroutines.
func execStorm(n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, stormWorkers)
	for range stormWorkers {
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

// connectStorm opens and closes n TCP connections to a listener of listen from stormWorkers
// goroutines; the server closes each connection it accepts at once.
func connectStorm(n int, listen func() (net.Listener, error)) error {
	ln, err := listen()
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
	errs := make(chan error, stormWorkers)
	for range stormWorkers {
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

// ownCPU returns the CPU time this process (the collectors') used so far, user and system.
func ownCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// overheadVariant is one configuration of the collectors the benchmark measures, and the
// storms it measures it with.
type overheadVariant struct {
	name    string
	network func(*network.Config)
	storms  []string
}

// BenchmarkAllCollectorsOverhead reports, for storms run in a child process (an exec storm,
// a loopback connect/close storm, and the same connect storm through a veth pair into a
// network namespace), the storm's run time with all five collectors collecting divided by
// its run time without them (<storm>-ratio), and the same in CPU time: the child's CPU time
// with them plus the CPU time of the collectors' process over the storm and its drain,
// divided by the child's CPU time without them (<storm>-cpu-ratio). Each is the median of
// the rounds' ratios. It reports the collectors' CPU per operation of the storm as well
// (collectors-<storm>-µs/op, median), the kernel drops while collecting, and the peak RSS of
// this process, which holds the collectors. After the rounds, one storm of each kind runs
// with the kernel counting its BPF programs' run time (kernel-<storm>-µs/op; counting itself
// costs two clock reads a run, which the rounds do not pay).
//
// The collectors start once and are warmed up; "without" is their kernel programs detached
// (Pause), so nothing reaches them, and "with" is them attached again (Resume). This
// machine is shared, and its speed drifts over seconds: so each round runs each storm
// without, twice with and once more without, close together. Each storm with them starts
// once the collectors are done with the previous one. (Detaching takes seconds, as the
// kernel waits for a grace period per syscall tracepoint: it happens once a round, after the
// storms with.) b.N is the number of rounds.
//
// Variants: default (every default, the network collector's iterator jobs as the kernel
// allows them), summarize (collectors.network.summarize on) and iterators=off (the
// user-space walk of the network collector's connection map forced).
func BenchmarkAllCollectorsOverhead(b *testing.B) {
	testenv.RequireBPF(b)
	for _, v := range []overheadVariant{
		{name: "default", network: func(*network.Config) {}, storms: []string{stormExec, stormLoopback, stormVeth}},
		{name: "summarize", network: func(c *network.Config) { c.Summarize = true }, storms: []string{stormLoopback, stormVeth}},
		{name: "iterators=off", network: func(c *network.Config) { c.Iterators = network.IteratorsOff }, storms: []string{stormLoopback}},
	} {
		b.Run(v.name, func(b *testing.B) { allCollectorsOverhead(b, v) })
	}
}

func allCollectorsOverhead(b *testing.B, v overheadVariant) {
	ops := map[string]int{stormExec: execs, stormLoopback: connects, stormVeth: connects}
	var env []string
	if slices.Contains(v.storms, stormVeth) {
		veth := collectortest.NewVeth(b)
		env = append(env, vethEnv+"="+veth.Namespace+","+veth.Addr.String())
	}
	a := startAll(b, v.network)
	defer a.stop()
	// Warm up as an agent that has been running is: the storm child's binary hashed, its
	// /proc entries seen once, and the garbage of loading the programs (the kernel's BTF,
	// parsed) collected.
	for _, kind := range v.storms {
		storm(b, kind, 10, env...)
	}
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	a.pause()

	var drops uint64
	ratios, cpuRatios, ownPerOp := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for range b.N {
		base, with, own := map[string]stormRun{}, map[string]stormRun{}, map[string]time.Duration{}
		for _, kind := range v.storms {
			base[kind] = storm(b, kind, ops[kind], env...)
		}
		a.resume(b)
		d0 := a.drops()
		for range 2 {
			for _, kind := range v.storms {
				a.settle()
				cpu0 := ownCPU(b)
				with[kind] = with[kind].add(storm(b, kind, ops[kind], env...))
				a.settle()
				own[kind] += ownCPU(b) - cpu0
			}
		}
		drops += a.drops() - d0
		a.pause()
		var line []string
		for _, kind := range v.storms {
			base[kind] = base[kind].add(storm(b, kind, ops[kind], env...))
			ratios[kind] = append(ratios[kind], with[kind].wall.Seconds()/base[kind].wall.Seconds())
			cpuRatios[kind] = append(cpuRatios[kind], (with[kind].cpu+own[kind]).Seconds()/base[kind].cpu.Seconds())
			ownPerOp[kind] = append(ownPerOp[kind], float64(own[kind].Microseconds())/float64(2*ops[kind]))
			line = append(line, fmt.Sprintf("%s %v -> %v (cpu %v -> %v + %v)", kind,
				base[kind].wall/2, with[kind].wall/2, base[kind].cpu/2, with[kind].cpu/2, own[kind]/2))
		}
		b.Logf("%s", strings.Join(line, ", "))
	}
	b.StopTimer()
	for _, kind := range v.storms {
		b.ReportMetric(median(ratios[kind]), kind+"-ratio")
		b.ReportMetric(median(cpuRatios[kind]), kind+"-cpu-ratio")
		b.ReportMetric(median(ownPerOp[kind]), "collectors-"+kind+"-µs/op")
	}
	b.ReportMetric(float64(drops), "drops")
	b.ReportMetric(float64(peakRSS()), "peak-RSS-MiB")

	// The kernel programs' share, counted by the kernel through one more storm of each kind.
	a.resume(b)
	stats, err := collectortest.EnableProgramStats()
	if err != nil {
		b.Logf("kernel program statistics: %v", err)
		return
	}
	defer stats.Close()
	for _, kind := range v.storms {
		a.settle()
		before, err := collectortest.OwnPrograms()
		if err != nil {
			b.Fatal(err)
		}
		storm(b, kind, ops[kind], env...)
		a.settle()
		after, err := collectortest.OwnPrograms()
		if err != nil {
			b.Fatal(err)
		}
		var total time.Duration
		var progs []string
		for name, r := range after {
			d := r.Runtime - before[name].Runtime
			if runs := r.Runs - before[name].Runs; runs > 0 {
				total += d
				progs = append(progs, fmt.Sprintf("%s %.2f runs/op %.0f ns/run", name,
					float64(runs)/float64(ops[kind]), float64(d.Nanoseconds())/float64(runs)))
			}
		}
		sort.Strings(progs)
		b.Logf("%s storm, kernel programs: %s", kind, strings.Join(progs, "; "))
		b.ReportMetric(float64(total.Nanoseconds())/1000/float64(ops[kind]), "kernel-"+kind+"-µs/op")
	}
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
