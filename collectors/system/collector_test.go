package system

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/internal/collectortest"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// waitLimit bounds how long a test waits for an event before it fails.
const waitLimit = 15 * time.Second

// testCgroupSeq numbers the test cgroups of this test process.
var testCgroupSeq atomic.Uint64

var testHost = schemas.Host{ID: "test-machine-id", Name: "test-host"}

// runCollector starts a collector with cfg and returns the channel its events arrive on.
// Cleanup stops it and checks that Run returned nil.
func runCollector(t testing.TB, cfg Config, opts ...Option) (*Collector, <-chan *schemas.SystemEvent) {
	t.Helper()
	c, err := New(cfg, testHost, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, collectortest.Run(t, c.Run, 1<<12)
}

// newTestCgroup creates a cgroup for the test below the collector's cgroup root and removes
// it after the test. It returns its path relative to the root and an open descriptor for
// clone3(CLONE_INTO_CGROUP).
func newTestCgroup(t testing.TB, root string) (rel string, fd int) {
	t.Helper()
	rel = fmt.Sprintf("/crumbs-test-%d-%d", os.Getpid(), testCgroupSeq.Add(1))
	dir := filepath.Join(root, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", dir, err)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		os.Remove(dir)
		t.Fatalf("open cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		syscall.Close(fd)
		// The kernel releases an emptied cgroup shortly after its last process is reaped.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return rel, fd
}

func TestCPUBurnerInItsCgroup(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := DefaultConfig()
	cfg.Interval = time.Second
	c, events := runCollector(t, cfg)
	if c.CgroupRoot() == "" {
		t.Fatal("no cgroup v2 hierarchy found")
	}
	rel, fd := newTestCgroup(t, c.CgroupRoot())

	burner := exec.Command("/bin/sh", "-c", "while :; do :; done")
	burner.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := burner.Start(); err != nil {
		t.Fatalf("start CPU burner in %s: %v", rel, err)
	}
	t.Cleanup(func() { burner.Process.Kill(); burner.Wait() })

	limit := time.After(waitLimit)
	var host bool
	for {
		select {
		case e := <-events:
			if e.System.Scope == ScopeHost {
				host = true
				if e.System.IntervalNs <= 0 || e.System.ProcessCount < 1 || e.System.MemoryBytes <= 0 {
					t.Errorf("host event: want a positive interval, processes and memory, got %+v", e.System)
				}
				continue
			}
			if e.System.Unit != rel || e.System.CPUSeconds <= 0 {
				continue
			}
			type summary struct {
				Kind, Scope, Unit string
				Host              schemas.Host
				ProcessCount      int64
				HasCgroupID       bool
			}
			want := summary{Kind: schemas.KindSystem, Scope: ScopeService, Unit: rel, Host: testHost, ProcessCount: 1, HasCgroupID: true}
			got := summary{Kind: e.Kind, Scope: e.System.Scope, Unit: e.System.Unit, Host: e.Host,
				ProcessCount: e.System.ProcessCount, HasCgroupID: e.System.CgroupID > 0}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("service event (-want +got):\n%s", diff)
			}
			if !host {
				t.Error("the interval's host event did not come before its service events")
			}
			return
		case <-limit:
			t.Fatalf("no system event of %s with cpu_seconds > 0 within %v", rel, waitLimit)
		}
	}
}

// fakeNet is a NetTotals whose totals the test sets.
type fakeNet struct {
	totals map[uint64]collectors.NetCounters
}

func (f *fakeNet) ByCgroup() map[uint64]collectors.NetCounters { return f.totals }

func TestNetTotalsAndCap(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"system.slice/a.service", "system.slice/b.service/sub", "plain"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, rel, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ino := func(rel string) uint64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	write("system.slice/a.service", "cpu.stat", "usage_usec 1000000\n")
	write("system.slice/a.service", "memory.current", "4096\n")
	write("system.slice/b.service", "cpu.stat", "usage_usec 5000000\n")
	write("system.slice/b.service", "memory.current", "8192\n")
	write("system.slice/b.service/sub", "cgroup.procs", "")
	write("plain", "cgroup.procs", "") // no processes, not a unit: not a service

	net := &fakeNet{totals: map[uint64]collectors.NetCounters{
		ino("system.slice/b.service"):     {Connections: 2, BytesSent: 100, BytesReceived: 1000},
		ino("system.slice/b.service/sub"): {Connections: 1, BytesSent: 10, BytesReceived: 10},
	}}
	cfg := DefaultConfig()
	cfg.MaxServices = 1
	c, err := New(cfg, testHost, nil, WithNetTotals(net))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.root = root // a plain directory laid out like a cgroup tree
	start := time.Now()
	if evs := c.sample(start); evs != nil {
		t.Fatalf("baseline sample: want no events, got %d", len(evs))
	}
	write("system.slice/a.service", "cpu.stat", "usage_usec 1500000\n")
	write("system.slice/b.service", "cpu.stat", "usage_usec 7000000\n")
	net.totals[ino("system.slice/b.service")] = collectors.NetCounters{Connections: 3, BytesSent: 400, BytesReceived: 3000}
	evs := c.sample(start.Add(10 * time.Second))

	var got []schemas.System
	for _, e := range evs {
		if e.System.Scope == ScopeService {
			got = append(got, e.System)
		}
	}
	want := []schemas.System{{
		Scope: ScopeService, Unit: "b.service", CgroupID: int64(ino("system.slice/b.service")),
		IntervalNs: (10 * time.Second).Nanoseconds(), CPUSeconds: 2, MemoryBytes: 8192,
		Connections: 4, BytesSent: 300, BytesReceived: 2000,
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("service events (-want +got):\n%s", diff)
	}
	if s := c.Stats(); s.ServicesOmitted != 1 || s.Intervals != 1 {
		t.Errorf("stats: want 1 service omitted and 1 interval, got %+v", s)
	}
}

func TestHostParsers(t *testing.T) {
	const stat = "cpu  100 20 30 1000 50 5 5 10 3 0\ncpu0 50 10 15 500 25 2 2 5 1 0\n"
	const meminfo = "MemTotal:        2048 kB\nMemFree:          512 kB\nMemAvailable:    1024 kB\n"
	const dev = "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo:  999 1 0 0 0 0 0 0  999 1 0 0 0 0 0 0\n" +
		"  eth0: 1000 10 0 0 0 0 0 0  200 2 0 0 0 0 0 0\n" +
		"  eth1:   10 1 0 0 0 0 0 0    5 1 0 0 0 0 0 0\n"
	const tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n" +
		"   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1\n" +
		"   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1\n"
	type result struct {
		CPU         float64
		Mem         int64
		Rx, Tx      uint64
		Established int
		PIDs        []int
		Usage       uint64
		CurrEstab   int64
	}
	cpu, _ := hostCPUSeconds([]byte(stat))
	mem, _ := memUsedBytes([]byte(meminfo))
	rx, tx := netDevBytes([]byte(dev))
	set := map[uint64]struct{}{}
	n := establishedInodes([]byte(tcp), set)
	usage, _ := keyValue([]byte("usage_usec 123\nuser_usec 100\n"), "usage_usec")
	const snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs\nTcp: 1 200 120000 -1 10 5 0 0 7 100\n"
	estab, _ := tcpCurrEstab([]byte(snmp))
	got := result{CPU: cpu, Mem: mem, Rx: rx, Tx: tx, Established: n, PIDs: parsePIDs([]byte("1\n22\n\n")), Usage: usage, CurrEstab: estab}
	// busy = user 100 + nice 20 + system 30 + irq 5 + softirq 5 + steal 10 = 170 ticks.
	want := result{CPU: 1.7, Mem: 1024 * 1024, Rx: 1010, Tx: 205, Established: 2, PIDs: []int{1, 22}, Usage: 123, CurrEstab: 7}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsers (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "short interval", change: func(c *Config) { c.Interval = 0 }, wantErr: "collectors.system.interval: 0s: must be at least 1s"},
		{name: "negative cap", change: func(c *Config) { c.MaxServices = -1 }, wantErr: "collectors.system.max_services: -1: must not be negative"},
		{name: "relative root", change: func(c *Config) { c.CgroupRoot = "cgroup" }, wantErr: `collectors.system.cgroup_root: "cgroup": must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate: want error containing %q, got %v", tt.wantErr, err)
			}
		})
	}
}

// TestReport: what the collector says it does here, with and without the network
// collector's totals and a cgroup v2 hierarchy.
func TestReport(t *testing.T) {
	type feature struct{ State, Way, Lost string }
	noCgroup := errors.New("no cgroup v2 mount")
	tests := []struct {
		name     string
		net      collectors.NetTotals
		noCgroup error
		want     map[string]feature
	}{
		{name: "network totals", net: &fakeNet{}, want: map[string]feature{
			FeatureHost: {"full", "/proc", ""}, FeatureServices: {"full", "cgroup v2 at /cg", ""},
			FeatureServiceNet: {"full", "the network collector's totals", ""},
		}},
		{name: "no network totals", want: map[string]feature{
			FeatureHost: {"full", "/proc", ""}, FeatureServices: {"full", "cgroup v2 at /cg", ""},
			FeatureServiceNet: {"fallback", "/proc/net/tcp and the services' sockets", "per-service network bytes, and connections outside crumbs' network namespace"},
		}},
		{name: "no cgroup v2", net: &fakeNet{}, noCgroup: noCgroup, want: map[string]feature{
			FeatureHost: {"full", "/proc", ""}, FeatureServices: {"off", "", "service events (host events go on)"},
			FeatureServiceNet: {"off", "", ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Collector{net: tt.net, root: "/cg"}
			rep := c.newReport(tt.noCgroup)
			got := map[string]feature{}
			for _, f := range rep.Features {
				got[f.Feature] = feature{string(f.State), f.Way, f.Lost}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
			if !rep.Running {
				t.Error("the system collector always runs")
			}
		})
	}
}
