// Package system samples resource use per service and for the whole host.
//
// In: every interval, the cgroup v2 tree (cpu.stat, memory.current, cgroup.procs),
// /proc/stat, /proc/meminfo, /proc/net/dev, /proc/net/snmp and (without NetTotals)
// /proc/net/tcp{,6} with the services' sockets, and, when the network
// collector provides them, per-cgroup network totals (collectors.NetTotals).
// Out: per interval, one *schemas.SystemEvent with scope "host" and one with scope
// "service" for each of the largest max_services services — systemd units, containers
// and other cgroups that hold processes — with the CPU seconds used during the interval,
// memory, process count, open TCP connections and the network bytes of the interval.
// Services left out by the cap are counted in Stats.ServicesOmitted, never silently.
package system

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrAlreadyRun is returned by Run when called a second time: a Collector runs once.
var ErrAlreadyRun = errors.New("system collector already ran")

// Scopes of a system event.
const (
	ScopeHost    = "host"
	ScopeService = "service"
)

// Option changes how New builds the collector.
type Option func(*Collector)

// WithHostRoot says where the host's root directory is (collectors.host_root): the cgroup
// mount is found under it. "" or "/": crumbs runs on the host.
func WithHostRoot(root string) Option { return func(c *Collector) { c.hostRoot = hostinfo.Root(root) } }

// WithNetTotals takes connections and network bytes per service from n. Without it (or
// with a nil n), connections are counted from /proc/net/tcp{,6} and the sockets the
// services' processes hold, in crumbs' network namespace, and service bytes are 0.
func WithNetTotals(n collectors.NetTotals) Option {
	return func(c *Collector) { c.net = n }
}

// Stats counts what the collector did. Every field only grows.
type Stats struct {
	Intervals       uint64 // samples taken after the first (baseline) one
	Events          uint64 // events emitted
	ServicesOmitted uint64 // services left out by max_services, summed over intervals
	WalksTruncated  uint64 // samples that stopped walking the cgroup tree at its limit
	ReadErrors      uint64 // host files (/proc/stat, /proc/meminfo) that could not be read
}

// Collector samples resource use. Create it with New, then call Run once.
type Collector struct {
	cfg      Config
	host     schemas.Host
	log      *slog.Logger
	net      collectors.NetTotals
	root     string // cgroup v2 mount; empty when there is none
	hostRoot hostinfo.Root
	proc     string
	pageSize int64
	report   collectors.Report

	prev sample // the previous sample, read and written by Run's goroutine only

	ran                                               atomic.Bool
	intervals, events, omitted, truncated, readErrors atomic.Uint64
}

// sample is what one interval's deltas are computed against.
type sample struct {
	at      time.Time
	hostCPU float64
	hostRx  uint64
	hostTx  uint64
	cpu     map[uint64]uint64    // usage_usec per service cgroup id
	netIO   map[uint64][2]uint64 // sent, received per service cgroup id (from NetTotals)
}

// New checks cfg and finds the cgroup v2 hierarchy. A host without one still gets host
// events; the report (Report) says what is lost, and a warning too.
func New(cfg Config, host schemas.Host, log *slog.Logger, opts ...Option) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{cfg: cfg, host: host, log: log.With("collector", "system"), proc: "/proc", pageSize: int64(os.Getpagesize())}
	for _, o := range opts {
		o(c)
	}
	root, err := cgroupRoot(c.hostRoot, cfg.CgroupRoot)
	if err != nil && cfg.CgroupRoot != "" {
		return nil, err
	}
	c.root = root
	c.report = c.newReport(err)
	kernel.LogReport(c.log, c.report)
	return c, nil
}

// The system collector's features, as reports and warnings name them.
const (
	FeatureHost       = "host samples"
	FeatureServices   = "service samples"
	FeatureServiceNet = "service connections and network bytes"
)

// newReport says what the collector does here; noCgroup is why there is no cgroup v2
// hierarchy to walk, if there is none.
func (c *Collector) newReport(noCgroup error) collectors.Report {
	rep := collectors.Report{Collector: "system", Running: true, Capabilities: map[kernel.Capability]string{}}
	rep.Features = append(rep.Features, collectors.FeatureReport{Feature: FeatureHost, State: collectors.StateFull, Way: "/proc"})
	services := collectors.FeatureReport{Feature: FeatureServices, State: collectors.StateFull, Way: "cgroup v2 at " + c.root}
	if noCgroup != nil {
		services = collectors.FeatureReport{Feature: FeatureServices, State: collectors.StateOff, Lost: "service events (host events go on)",
			Refused: []collectors.Refusal{{Capability: "cgroup2", Answer: noCgroup.Error()}}}
	}
	rep.Features = append(rep.Features, services)
	net := collectors.FeatureReport{Feature: FeatureServiceNet, State: collectors.StateFull, Way: "the network collector's totals"}
	if c.net == nil {
		net = collectors.FeatureReport{Feature: FeatureServiceNet, State: collectors.StateFallback,
			Way:     "/proc/net/tcp and the services' sockets",
			Lost:    "per-service network bytes, and connections outside crumbs' network namespace",
			Refused: []collectors.Refusal{{Capability: "network collector", Answer: "the network collector is not running here"}}}
	}
	if noCgroup != nil {
		net = collectors.FeatureReport{Feature: FeatureServiceNet, State: collectors.StateOff, Refused: services.Refused}
	}
	rep.Features = append(rep.Features, net)
	return rep
}

// Report says what the collector does on this host: each feature's way, and what is lost.
func (c *Collector) Report() collectors.Report { return c.report }

// Close does nothing: the collector holds nothing between samples. (A collectors.Collector
// that will not run is closed.)
func (c *Collector) Close() {}

// CgroupRoot returns the cgroup v2 mount the collector walks, or "" when there is none.
func (c *Collector) CgroupRoot() string { return c.root }

// cgroupRoot returns configured when it is a cgroup v2 mount, or finds one, under the
// host's root directory.
func cgroupRoot(host hostinfo.Root, configured string) (string, error) {
	candidates := []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
	if configured != "" {
		candidates = []string{configured}
	}
	for _, p := range candidates {
		var st unix.Statfs_t
		if err := unix.Statfs(host.Path(p), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return host.Path(p), nil
		}
	}
	if configured != "" {
		return "", fmt.Errorf("collectors.system.cgroup_root: %s is not a cgroup v2 mount", configured)
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// Stats returns the counters so far.
func (c *Collector) Stats() Stats {
	return Stats{
		Intervals:       c.intervals.Load(),
		Events:          c.events.Load(),
		ServicesOmitted: c.omitted.Load(),
		WalksTruncated:  c.truncated.Load(),
		ReadErrors:      c.readErrors.Load(),
	}
}

// Run takes a baseline sample, then every interval a sample whose events it passes to
// emit, host first, then services by decreasing CPU use. emit is called from Run's
// goroutine; while it blocks, the next sample waits (its interval then covers the wait).
// Run returns nil when ctx is done.
func (c *Collector) Run(ctx context.Context, emit func(*schemas.SystemEvent)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	c.sample(time.Now())
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, ev := range c.sample(time.Now()) {
				emit(ev)
				c.events.Add(1)
			}
		}
	}
}

// sample reads the current state and returns the events of the interval since the
// previous sample; the first sample only sets the baseline.
func (c *Collector) sample(now time.Time) []*schemas.SystemEvent {
	first := c.prev.at.IsZero()
	cur := sample{at: now, cpu: make(map[uint64]uint64), netIO: make(map[uint64][2]uint64)}
	host := c.hostEvent(now, &cur)
	services := c.services(&cur)
	prevAt := c.prev.at
	c.prev = cur
	if first {
		return nil
	}
	c.intervals.Add(1)
	interval := now.Sub(prevAt).Nanoseconds()
	events := make([]*schemas.SystemEvent, 0, 1+len(services))
	host.System.IntervalNs = interval
	events = append(events, host)
	for _, ev := range services {
		ev.System.IntervalNs = interval
		events = append(events, ev)
	}
	return events
}

func (c *Collector) newEvent(now time.Time, sys schemas.System) *schemas.SystemEvent {
	return &schemas.SystemEvent{
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: now.UnixNano(), Host: c.host, Kind: schemas.KindSystem},
		System:   sys,
	}
}

func (c *Collector) hostEvent(now time.Time, cur *sample) *schemas.SystemEvent {
	sys := schemas.System{Scope: ScopeHost, ProcessCount: countProcesses(c.proc)}
	// The TCP MIB counts IPv4 and IPv6 alike, without listing every socket.
	if b, err := os.ReadFile(c.proc + "/net/snmp"); err == nil {
		sys.Connections, _ = tcpCurrEstab(b)
	}
	if b, err := os.ReadFile(c.proc + "/stat"); err == nil {
		cur.hostCPU, _ = hostCPUSeconds(b)
	} else {
		c.readErrors.Add(1)
	}
	if b, err := os.ReadFile(c.proc + "/meminfo"); err == nil {
		sys.MemoryBytes, _ = memUsedBytes(b)
	} else {
		c.readErrors.Add(1)
	}
	if b, err := os.ReadFile(c.proc + "/net/dev"); err == nil {
		cur.hostRx, cur.hostTx = netDevBytes(b)
	}
	sys.CPUSeconds = max(cur.hostCPU-c.prev.hostCPU, 0)
	sys.BytesReceived = int64(delta(cur.hostRx, c.prev.hostRx))
	sys.BytesSent = int64(delta(cur.hostTx, c.prev.hostTx))
	return c.newEvent(now, sys)
}

// delta is the growth of a counter; a counter that went back was reset, and all of its
// value is new.
func delta(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// services samples every service and returns the events of the largest max_services.
func (c *Collector) services(cur *sample) []*schemas.SystemEvent {
	if c.root == "" {
		return nil
	}
	w := cgroupWalk{root: c.root}
	w.walk()
	if w.truncated {
		c.truncated.Add(1)
	}
	var netTotals map[uint64]collectors.NetCounters
	if c.net != nil {
		netTotals = c.net.ByCgroup()
	}
	// A service the previous sample did not see started during the interval: all of its
	// counters' values are new.
	for _, s := range w.services {
		s.readUsage(c.root, c.proc, c.pageSize)
		if s.haveCPU {
			cur.cpu[s.id] = s.cpuUsec
			s.cpuDelta = float64(delta(s.cpuUsec, c.prev.cpu[s.id])) / 1e6
		}
		if netTotals != nil {
			s.sumNet(netTotals)
			cur.netIO[s.id] = [2]uint64{s.sent, s.received}
			prev := c.prev.netIO[s.id]
			s.sentDelta, s.receivedDelta = delta(s.sent, prev[0]), delta(s.received, prev[1])
		}
	}
	slices.SortFunc(w.services, func(a, b *service) int {
		if d := cmp.Compare(b.cpuDelta, a.cpuDelta); d != 0 {
			return d
		}
		return cmp.Compare(b.memory, a.memory)
	})
	reported := w.services
	if len(reported) > c.cfg.MaxServices {
		if !c.prev.at.IsZero() {
			c.omitted.Add(uint64(len(reported) - c.cfg.MaxServices))
		}
		reported = reported[:c.cfg.MaxServices]
	}
	var established map[uint64]struct{}
	if netTotals == nil && len(reported) > 0 {
		established = c.establishedSockets()
	}
	events := make([]*schemas.SystemEvent, 0, len(reported))
	for _, s := range reported {
		sys := schemas.System{Scope: ScopeService, Unit: s.unit, CgroupID: int64(s.id), CPUSeconds: s.cpuDelta,
			MemoryBytes: s.memory, ProcessCount: s.processes}
		if netTotals != nil {
			sys.Connections = s.connections
			sys.BytesSent, sys.BytesReceived = int64(s.sentDelta), int64(s.receivedDelta)
		} else {
			for _, pid := range s.pids {
				sys.Connections += socketsOf(c.proc, pid, established)
			}
		}
		events = append(events, c.newEvent(cur.at, sys))
	}
	return events
}

// establishedSockets returns the inodes of the established TCP sockets of crumbs' network
// namespace. Reading /proc/net/tcp costs in proportion to every socket, TIME_WAIT ones
// included, so it is done only without NetTotals.
func (c *Collector) establishedSockets() map[uint64]struct{} {
	established := make(map[uint64]struct{})
	for _, f := range []string{"/net/tcp", "/net/tcp6"} {
		if b, err := os.ReadFile(c.proc + f); err == nil {
			establishedInodes(b, established)
		}
	}
	return established
}

// sumNet sums the network totals of the cgroups accounted to s.
func (s *service) sumNet(totals map[uint64]collectors.NetCounters) {
	for _, id := range s.members {
		n := totals[id]
		s.connections += n.Connections
		s.sent += n.BytesSent
		s.received += n.BytesReceived
	}
}
