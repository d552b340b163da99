// Package network collects network activity from the kernel: TCP connection lifecycles,
// listening sockets, UDP flow summaries and DNS answers, each with the process behind it.
//
// In: the records that bpf/network.bpf.c writes into a BPF ring buffer (connect, accept,
// close, listen, DNS response payloads), the UDP flows it sums in a BPF map, the byte
// counters of open connections it copies into its connection map when asked, the short
// connections it sums per process and destination (summarize) in a map that user space swaps
// out every summary_interval (a map-element
// iterator, else a tcp iterator, else none: see features), the connect or accept records of
// connections open longer than coalesce_window (a map-element iterator run by the chores,
// else built in user space from a walk of the connection map), and what /proc and
// /etc/passwd say about the processes named in them.
// Out: *schemas.NetworkEvent values, handed to the caller's emit function from one
// goroutine, each valid until emit returns: for a TCP connection that closes within coalesce_window, its connect or accept
// with its bytes and duration; for a longer one, its connect or accept once the window has
// passed, update every update_interval while it stays open, and close with its final byte
// counts; with summarize, instead of an event per connection that closes within the window,
// connect_summary and accept_summary every summary_interval, one per (pid, direction, remote
// address, service port) with how many connections and their bytes; listen once per
// (pid, port), udp_flow per (pid, remote endpoint) every udp_flow_interval, and dns per
// response read by a process. No per-packet events. Per-cgroup totals of open connections
// and bytes are kept for the system collector (Stats.Cgroups).
//
// Endpoints follow OCSF: src_endpoint is the side that initiated (the local socket of an
// outbound connection, the remote one of an inbound connection), dst_endpoint the side
// that was reached; a listen event's dst_endpoint is the listening address. A dns event's
// dst_endpoint is the server that answered, with hostname set to the name asked for and
// dns_answers to the addresses it resolved to.
//
// Records the kernel could not write because the ring buffer was full are counted in
// Stats.KernelDrops and logged; they are never lost silently.
package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrAlreadyRun is returned by Run when called a second time: a Collector runs once.
var ErrAlreadyRun = errors.New("network collector already ran")

const (
	// choreEvery is the reader's housekeeping resolution: drop reports, refreshes, flushes.
	choreEvery = time.Second
	// procCacheEntries and procCacheAge bound the /proc detail cache.
	procCacheEntries = 4096
	procCacheAge     = 30 * time.Second
	// hostnameEntries and hostnameAge bound the address-to-name cache of DNS answers.
	hostnameEntries = 16384
	hostnameAge     = time.Hour
	// addrTextEntries bounds the cache of addresses' text.
	addrTextEntries = 4096
	// listenEntries bounds the (pid, port) pairs remembered as reported.
	listenEntries = 65536
	// maxRefreshEvery caps the period at which open connections' bytes are read, so the
	// per-cgroup totals stay current for the system collector.
	maxRefreshEvery = 10 * time.Second
)

// Stats counts what the collector did. Counters only grow; OpenConnections and Cgroups are
// the state at the time of the call.
type Stats struct {
	Events        uint64 // events emitted
	KernelDrops   uint64 // records the kernel dropped because the ring buffer was full
	DecodeErrors  uint64 // records that could not be decoded
	Filtered      uint64 // events left out by the exclude_* settings
	ConnTableFull uint64 // connections not tracked because max_connections were open
	// ClosesMissed counts connections whose close the kernel did not see (its program was
	// busy on that CPU): each was reported when its socket's memory held a new connection,
	// with the bytes last read.
	ClosesMissed    uint64
	DNSParseErrors  uint64 // datagrams from port 53 that were not DNS responses
	OpenConnections uint64 // TCP connections reported open and not yet closed
	// Summaries counts the connect_summary and accept_summary events, Summarized the
	// connections they summed (summarize).
	Summaries, Summarized uint64
	// Cgroups holds, per cgroup id, its open TCP connections and the bytes its TCP
	// connections and UDP flows sent and received since the collector started.
	Cgroups map[uint64]CgroupTraffic
}

// CgroupTraffic is one cgroup's network use: open TCP connections now, bytes cumulative.
type CgroupTraffic struct {
	Connections   int64
	BytesSent     int64
	BytesReceived int64
}

// Collector reads network events from the kernel. Create it with New, then call Run once.
type Collector struct {
	cfg  Config
	host schemas.Host
	log  *slog.Logger

	objs networkObjects
	ring *kernel.Ring
	// refreshWay and announceWay are the ways Open took for the two iterator jobs.
	refreshWay, announceWay string
	// emitTo is Run's emit, for the connections announced from user space at stop.
	emitTo func(*schemas.NetworkEvent)
	// walkKeys and walkValues are the buffers of the user-space walk of the connection map.
	walkKeys   []uint64
	walkValues []networkConnInfo

	bootOffset int64 // wall clock minus CLOCK_BOOTTIME, ns
	procs      *procCache
	users      *hostinfo.IDNames
	names      *hostnames
	addrs      addrTexts
	filter     eventFilter

	// Reader goroutine only.
	// event is the event every record is built into and handed to emit, which does not
	// keep it: a storm of connections allocates no event.
	event       schemas.NetworkEvent
	ids         schemas.EventIDs
	conns       map[uint64]*openConn // by the kernel's sock address
	listens     map[listenKey]struct{}
	nextRefresh time.Time
	nextFlush   time.Time
	// summaries are the two maps of short connections' sums (summarize) that take turns in
	// the slot of the kernel's tcp_summaries: summaries[summaryCur] is in it; nil when not
	// summarizing.
	summaries        [2]*ebpf.Map
	summaryCur       int
	nextSummaryFlush time.Time
	summaryKeys      []networkTcpSummaryKey
	summaryValues    []networkTcpSummary

	trafficMu sync.Mutex
	traffic   map[uint64]*CgroupTraffic

	ran atomic.Bool

	events, decodeErrors, filtered, dnsErrors atomic.Uint64
	connsFull, openConns, closesMissed        atomic.Uint64
	summaryEvents, summarized                 atomic.Uint64
}

// openConn is a TCP connection reported open: the event it was reported with, and the
// bytes already counted in its cgroup's totals.
type openConn struct {
	ev         *schemas.NetworkEvent
	cgroupID   uint64
	startNs    uint64
	sent, recv uint64
	lastReport time.Time
	missing    bool // absent from the kernel map at the last refresh
}

type listenKey struct {
	pid  uint32
	port uint16
}

// New loads the network programs into the kernel and attaches them: for each feature, the
// first way this kernel and the configuration allow (see features). Records are buffered in
// the ring buffer from then until Run reads them. When the collector cannot run on this
// host, New returns a *kernel.Unavailable (collectors.Unavailable) that says why; on any
// error, everything New opened is released.
func New(cfg Config, host schemas.Host, log *slog.Logger, opts ...Option) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := newCollector(cfg, host, log, opts...)
	dns, summarize := uint8(0), uint8(0)
	if cfg.DNS {
		dns = 1
	}
	if cfg.Summarize {
		summarize = 1
	}
	var summarySpec *ebpf.MapSpec // the maps of short connections' sums, as the kernel reads them
	ring, err := kernel.Open(kernel.Spec{
		Collector: "network",
		Load: func() (*ebpf.CollectionSpec, error) {
			cs, err := loadNetwork()
			if err != nil {
				return nil, err
			}
			if m := cs.Maps[networkMapTcpSummaries]; m != nil && m.InnerMap != nil {
				m.InnerMap.MaxEntries = uint32(cfg.MaxConnections)
				summarySpec = m.InnerMap.Copy()
			}
			return cs, nil
		},
		MaxEntries: map[string]uint32{
			networkMapEvents:   uint32(cfg.RingBufferBytes),
			networkMapConns:    uint32(cfg.MaxConnections),
			networkMapUdpFlows: uint32(cfg.MaxConnections),
		},
		Vars: []kernel.Var{
			{Name: networkVarSelfTgid, Value: uint32(os.Getpid())},
			{Name: networkVarDnsEnabled, Value: dns},
			{Name: networkVarCoalesceNs, Value: uint64(cfg.CoalesceWindow)},
			{Name: networkVarSummarize, Value: summarize},
			kernel.WakeupVar(cfg.RingBufferBytes),
		},
		Objects:  &c.objs,
		Events:   networkMapEvents,
		Drops:    networkMapDrops,
		Features: c.features(),
		Refuse:   cfg.refusals(),
		Ring: kernel.RingConfig{
			Name: "network", Dropped: "network records", RingBufferBytes: cfg.RingBufferBytes, Log: c.log,
			// Connections still within the coalesce window are reported before stopping, and
			// the summaries so far; from then on, each connection by its own record.
			BeforeStop: func() {
				now := time.Now()
				if err := c.flushSummaries(now, c.emitTo, true); err != nil {
					c.log.Warn("report the last tcp summaries", "error", err)
				}
				c.announceOpen(math.MaxUint64, now)
			},
		},
	})
	if err != nil {
		return nil, err
	}
	c.ring = ring
	c.refreshWay, c.announceWay = ring.Way(FeatureRefresh), ring.Way(FeatureAnnounce)
	if cfg.Summarize {
		if err := c.openSummaries(summarySpec); err != nil {
			// Degraded, not dead: every connection is reported by its own event.
			c.log.Warn("tcp connections reported one by one, not summarized", "error", err)
		}
	}
	offset, err := kernel.BootTimeOffset()
	if err != nil {
		c.close()
		return nil, err
	}
	c.bootOffset = offset
	return c, nil
}

// The network collector's features (kernel.Feature), as reports and warnings name them.
const (
	FeatureTCP      = "TCP connection events"
	FeatureUDP      = "UDP flow and DNS events"
	FeatureRefresh  = "bytes of open connections"
	FeatureAnnounce = "long connections reported while open"
)

// The ways of the two iterator jobs (refreshing bytes, announcing open connections), in
// the order they are preferred.
const (
	WayMapElem = "map-element iterator"
	WayTCPIter = "tcp iterator"
	WayWalk    = "user-space walk of the connection map"
)

// features are what the collector does with its programs, each with its ways, preferred
// first. The two iterator jobs prefer the map-element iterator, which sees every connection.
// Byte counters are read from the sockets: without that iterator, by the tcp iterator, which
// sees only the sockets of crumbs' network namespace, and without either they are known only
// at close. Announcing needs no socket: without the map-element iterator, user space does it
// from its walk of the connection map, with the same events (an iterator over every TCP
// socket, TIME_WAIT ones included, would cost more each time for nothing more).
func (c *Collector) features() []kernel.Feature {
	conns := func() *ebpf.Map { return c.objs.Conns }
	return []kernel.Feature{
		{Name: FeatureTCP, Lost: "TCP connect, accept, listen and close events", Ways: []kernel.Way{{
			Name: "tp_btf inet_sock_set_state and accept tracepoints",
			Hooks: []kernel.Hook{
				kernel.TPBTFHook(networkProgHandleSetState),
				kernel.TPBTFHook(networkProgHandleSetStateNested),
				kernel.TracepointHook("syscalls", "sys_exit_accept4", networkProgHandleAccept4),
				kernel.TracepointHook("syscalls", "sys_exit_accept", networkProgHandleAccept),
			},
		}}},
		{Name: FeatureUDP, Lost: "udp_flow and dns events, and host names on connection events", Ways: []kernel.Way{{
			Name: "tp_btf sock_send_length and sock_recv_length, recv tracepoints",
			Hooks: []kernel.Hook{
				kernel.TPBTFHook(networkProgHandleSendLength),
				kernel.TPBTFHook(networkProgHandleRecvLength),
				kernel.TracepointHook("syscalls", "sys_exit_recvfrom", networkProgHandleRecvfromExit),
				kernel.TracepointHook("syscalls", "sys_exit_recvmsg", networkProgHandleRecvmsgExit),
			},
		}}},
		{Name: FeatureRefresh, Lost: "byte counts of open connections", Ways: []kernel.Way{
			{Name: WayMapElem, Hooks: []kernel.Hook{kernel.IterHook(networkProgRefreshBytes, conns)}},
			{Name: WayTCPIter, Hooks: []kernel.Hook{kernel.IterHook(networkProgRefreshBytesTcp, nil)},
				Lost: "byte counts of open connections in other network namespaces (containers) until they close: their update events carry 0 bytes"},
			{Name: WayWalk, Lost: "byte counts of open connections until they close: update events carry 0 bytes, and per-service network bytes grow only when connections close"},
		}},
		{Name: FeatureAnnounce, Lost: "connections open longer than coalesce_window until they close", Ways: []kernel.Way{
			{Name: WayMapElem, Hooks: []kernel.Hook{kernel.IterHook(networkProgAnnounceConns, conns)}},
			{Name: WayWalk},
		}},
	}
}

// newCollector returns a collector's user-space side: what turns records into events.
func newCollector(cfg Config, host schemas.Host, log *slog.Logger, opts ...Option) *Collector {
	o := hostinfo.Apply(opts)
	return &Collector{
		cfg:     cfg,
		host:    host,
		log:     log.With("collector", "network"),
		procs:   newProcCache("/proc", procCacheEntries, procCacheAge),
		users:   hostinfo.NewIDNames(o.Root.Path("/etc/passwd")),
		names:   newHostnames(hostnameEntries, hostnameAge),
		addrs:   addrTexts{max: addrTextEntries},
		filter:  newEventFilter(cfg),
		conns:   make(map[uint64]*openConn),
		listens: make(map[listenKey]struct{}),
		traffic: make(map[uint64]*CgroupTraffic),
	}
}

// close releases the kernel objects; safe to call more than once.
func (c *Collector) close() {
	c.ring.ReadMaps(c.readConnsFull)
	c.ring.Close()
	for i, m := range c.summaries {
		if m != nil {
			m.Close()
			c.summaries[i] = nil
		}
	}
}

// openSummaries creates the two maps of short connections' sums from spec and puts the first
// in the slot of tcp_summaries, where the kernel adds to it.
func (c *Collector) openSummaries(spec *ebpf.MapSpec) error {
	if spec == nil || c.objs.TcpSummaries == nil {
		return errors.New("the network programs have no tcp_summaries map")
	}
	release := func() {
		for i, m := range c.summaries {
			if m != nil {
				m.Close()
				c.summaries[i] = nil
			}
		}
	}
	for i := range c.summaries {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			release()
			return fmt.Errorf("create tcp summaries map: %w", err)
		}
		c.summaries[i] = m
	}
	if err := c.objs.TcpSummaries.Put(uint32(0), c.summaries[0]); err != nil {
		release()
		return fmt.Errorf("install tcp summaries map: %w", err)
	}
	return nil
}

// readConnsFull copies the kernel's count of connections it could not track; call it
// through ring.ReadMaps.
func (c *Collector) readConnsFull() {
	if c.objs.ConnsFull != nil {
		if n, err := kernel.SumPerCPU(c.objs.ConnsFull); err == nil {
			c.connsFull.Store(n)
		}
	}
}

// ByCgroup returns each cgroup's open connections and bytes so far (Stats.Cgroups): the
// collector is a collectors.NetTotals, which the system collector takes.
func (c *Collector) ByCgroup() map[uint64]collectors.NetCounters {
	c.trafficMu.Lock()
	defer c.trafficMu.Unlock()
	out := make(map[uint64]collectors.NetCounters, len(c.traffic))
	for id, t := range c.traffic {
		out[id] = collectors.NetCounters{Connections: t.Connections, BytesSent: uint64(t.BytesSent), BytesReceived: uint64(t.BytesReceived)}
	}
	return out
}

// Report says what the collector does on this host: each feature's way, and what is lost.
func (c *Collector) Report() kernel.Report { return c.ring.Report() }

// Close releases the kernel objects of a collector that will not run (crumbs doctor); Run
// releases them itself when it returns.
func (c *Collector) Close() { c.close() }

// Pause detaches the collector's kernel programs from their hooks: the kernel collects
// nothing for it until Resume, and its Run goes on reading what was collected before. For
// comparing a workload with and without the collector in one process.
func (c *Collector) Pause() { c.ring.Pause() }

// Resume attaches the programs Pause detached again.
func (c *Collector) Resume() error { return c.ring.Resume() }

// Stats returns the counters so far. Kernel counters are read from the kernel while the
// collector is open.
func (c *Collector) Stats() Stats {
	c.ring.ReadMaps(c.readConnsFull)
	kernelDrops := c.ring.Drops()
	c.trafficMu.Lock()
	cgroups := make(map[uint64]CgroupTraffic, len(c.traffic))
	for id, t := range c.traffic {
		cgroups[id] = *t
	}
	c.trafficMu.Unlock()
	return Stats{
		Events:          c.events.Load(),
		KernelDrops:     kernelDrops,
		DecodeErrors:    c.decodeErrors.Load(),
		Filtered:        c.filtered.Load(),
		ConnTableFull:   c.connsFull.Load(),
		ClosesMissed:    c.closesMissed.Load(),
		DNSParseErrors:  c.dnsErrors.Load(),
		Summaries:       c.summaryEvents.Load(),
		Summarized:      c.summarized.Load(),
		OpenConnections: c.openConns.Load(),
		Cgroups:         cgroups,
	}
}

// Run reads the kernel's records and calls emit for each event until ctx is done; then it
// closes the collector and returns nil. emit is called from one goroutine with an event
// that is the collector's until emit returns: emit must copy what it keeps (a shallow
// copy will do), as the next event reuses the memory. While emit blocks, reading stops and the kernel drops (and counts) what no longer fits in the ring
// buffer. Run returns after emit has returned for the last event, so emit should stop
// blocking once ctx is done. Run returns an error only when reading fails for another
// reason than ctx being done.
func (c *Collector) Run(ctx context.Context, emit func(*schemas.NetworkEvent)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	defer c.close()

	c.emitTo = emit
	now := time.Now()
	c.nextRefresh = now.Add(c.refreshEvery())
	c.nextFlush = now.Add(c.cfg.UDPFlowInterval)
	c.nextSummaryFlush = now.Add(c.cfg.SummaryInterval)
	err := c.ring.Read(ctx, c.choreEvery(), func(raw []byte, now time.Time) { c.handle(raw, now, emit) }, func(now time.Time) { c.chores(now, emit) })
	c.ring.ReportDrops()
	return err
}

// choreEvery is the period of the chores: choreEvery, or half the coalesce window when that
// is shorter, so that a connection still open after the window is reported within 1.5 times it.
func (c *Collector) choreEvery() time.Duration {
	if w := c.cfg.CoalesceWindow / 2; w > 0 && w < choreEvery {
		return w
	}
	return choreEvery
}

// refreshEvery is how often open connections' bytes are read from the kernel.
func (c *Collector) refreshEvery() time.Duration {
	return min(c.cfg.UpdateInterval, c.cfg.UDPFlowInterval, maxRefreshEvery)
}

func (c *Collector) chores(now time.Time, emit func(*schemas.NetworkEvent)) {
	c.ring.ReportDrops()
	if c.cfg.CoalesceWindow > 0 {
		// Older than the window by the kernel's own clock (not the wall clock, which may be
		// set), and a millisecond more for a close running while the walk reads: with
		// summarize, the kernel takes a connection closed within the window for one nobody
		// announced, and sums it.
		var boot unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
			c.log.Warn("report open connections", "error", err)
		} else if before := boot.Nano() - int64(c.cfg.CoalesceWindow) - int64(time.Millisecond); before > 0 {
			c.announceOpen(uint64(before), now)
		}
	}
	if !now.Before(c.nextRefresh) {
		if err := c.refresh(now, emit); err != nil {
			c.log.Warn("refresh open connections", "error", err)
		}
		c.nextRefresh = now.Add(c.refreshEvery())
	}
	if !now.Before(c.nextFlush) {
		if err := c.flushUDP(now, emit); err != nil {
			c.log.Warn("flush udp flows", "error", err)
		}
		c.nextFlush = now.Add(c.cfg.UDPFlowInterval)
	}
	if !now.Before(c.nextSummaryFlush) {
		if err := c.flushSummaries(now, emit, false); err != nil {
			c.log.Warn("report tcp summaries", "error", err)
		}
		c.nextSummaryFlush = now.Add(c.cfg.SummaryInterval)
	}
}

func (c *Collector) emit(ev *schemas.NetworkEvent, emit func(*schemas.NetworkEvent)) {
	if c.filter.excludes(ev) {
		c.filtered.Add(1)
		return
	}
	emit(ev)
	c.events.Add(1)
}

// handle decodes one record and emits its event, if any.
func (c *Collector) handle(raw []byte, now time.Time, emit func(*schemas.NetworkEvent)) {
	if len(raw) < 4 {
		c.decodeErrors.Add(1)
		return
	}
	var err error
	switch kind := networkNetEventKind(binary.LittleEndian.Uint32(raw)); kind {
	case networkNetEventKindNET_EVENT_CONNECT, networkNetEventKindNET_EVENT_ACCEPT,
		networkNetEventKindNET_EVENT_CLOSE, networkNetEventKindNET_EVENT_LISTEN:
		err = c.handleConn(raw, now, emit)
	case networkNetEventKindNET_EVENT_DNS:
		err = c.handleDNS(raw, now, emit)
	default:
		err = fmt.Errorf("record of unknown kind %d", kind)
	}
	if err != nil {
		c.decodeErrors.Add(1)
		c.log.Debug("undecodable network record", "error", err)
	}
}

// newEvent starts the next event to emit: the collector's one event, reset. It is valid until
// the next call of newEvent or copyEvent.
func (c *Collector) newEvent(at int64, action string) *schemas.NetworkEvent {
	c.event = schemas.NetworkEvent{
		Envelope: schemas.Envelope{EventID: c.ids.At(at), Time: at, Host: c.host, Kind: schemas.KindNetwork},
		Action:   action,
	}
	return &c.event
}

func (c *Collector) handleConn(raw []byte, now time.Time, emit func(*schemas.NetworkEvent)) error {
	var rec networkConnEvent
	if _, err := kernel.Decode(raw, &rec); err != nil {
		return fmt.Errorf("decode connection record: %w", err)
	}
	if rec.Stale != 0 {
		c.closesMissed.Add(1)
	}
	switch networkNetEventKind(rec.Kind) {
	case networkNetEventKindNET_EVENT_CONNECT, networkNetEventKindNET_EVENT_ACCEPT:
		switch oc := c.conns[rec.SockId]; {
		case rec.Closed != 0 && oc != nil && oc.startNs == rec.StartNs:
			// A connection announced from user space, which the kernel did not mark reported:
			// its last record is this one, and it ends what was announced.
			c.connClosed(&rec, now, emit)
		case rec.Closed != 0:
			c.connShort(&rec, now, emit)
		default:
			c.connOpened(&rec, now, emit)
		}
	case networkNetEventKindNET_EVENT_CLOSE:
		c.connClosed(&rec, now, emit)
	case networkNetEventKindNET_EVENT_LISTEN:
		c.listening(&rec, now, emit)
	}
	return nil
}

// connEvent builds a TCP event from a connection record, at the record's time.
func (c *Collector) connEvent(rec *networkConnEvent, action string, now time.Time) *schemas.NetworkEvent {
	return c.connEventAt(rec, int64(rec.KtimeNs)+c.bootOffset, action, now)
}

// connEventAt builds a TCP event from a connection record, at the time at.
func (c *Collector) connEventAt(rec *networkConnEvent, at int64, action string, now time.Time) *schemas.NetworkEvent {
	ev := c.newEvent(at, action)
	ev.Process = c.procs.actor(rec.Pid, rec.Uid, &rec.Comm, rec.CgroupId, c.users, now)
	local, _ := c.endpoint(rec.T.Family, rec.T.Saddr, rec.T.Sport)
	remote, raddr := c.endpoint(rec.T.Family, rec.T.Daddr, rec.T.Dport)
	remote.Hostname = c.names.lookup(raddr, now)
	n := &ev.Network
	n.Protocol = "tcp"
	n.IPVersion = ipVersion(raddr)
	switch networkNetDirection(rec.Direction) {
	case networkNetDirectionNET_DIR_OUTBOUND:
		n.Direction, n.Src, n.Dst = "outbound", local, remote
	case networkNetDirectionNET_DIR_INBOUND:
		n.Direction, n.Src, n.Dst = "inbound", remote, local
	default:
		n.Direction, n.Dst = "none", local
	}
	return ev
}

// openAction is the action of a connection record's connect or accept.
func openAction(rec *networkConnEvent) string {
	if networkNetEventKind(rec.Kind) == networkNetEventKindNET_EVENT_ACCEPT {
		return schemas.ActionAccept
	}
	return schemas.ActionConnect
}

// connOpened reports a connection still open: established, and either the coalesce window
// is off or the connection outlived it.
func (c *Collector) connOpened(rec *networkConnEvent, now time.Time, emit func(*schemas.NetworkEvent)) {
	ev := c.connEvent(rec, openAction(rec), now)
	if _, dup := c.conns[rec.SockId]; !dup {
		c.openConns.Add(1)
		c.addTraffic(rec.CgroupId, 1, 0, 0)
	}
	kept := *ev // its updates and close are copies of it
	c.conns[rec.SockId] = &openConn{ev: &kept, cgroupID: rec.CgroupId, startNs: rec.StartNs, lastReport: now}
	c.emit(ev, emit)
}

// connShort reports a connection that closed within the coalesce window by one event, its
// connect or accept at the time it was established, with its final bytes and its duration.
func (c *Collector) connShort(rec *networkConnEvent, now time.Time, emit func(*schemas.NetworkEvent)) {
	c.addTraffic(rec.CgroupId, 0, int64(rec.BytesSent), int64(rec.BytesReceived))
	ev := c.connEventAt(rec, int64(rec.StartNs)+c.bootOffset, openAction(rec), now)
	setFinal(ev, rec)
	c.emit(ev, emit)
}

// setFinal gives ev the final bytes of the connection that rec ends, and its duration.
func setFinal(ev *schemas.NetworkEvent, rec *networkConnEvent) {
	ev.Network.BytesSent = int64(rec.BytesSent)
	ev.Network.BytesReceived = int64(rec.BytesReceived)
	if rec.KtimeNs > rec.StartNs {
		ev.Network.DurationNs = int64(rec.KtimeNs - rec.StartNs)
	}
}

// announceOpen reports the connections established before the CLOCK_BOOTTIME time before
// (ns) and not reported yet, by the way Open took: the kernel writes their records (the
// map-element iterator), or user space builds them from its walk of the connection map.
// The kernel does not mark a connection announced from user space reported: its close
// record is then a connect or accept marked closed, which ends what was announced
// (handleConn).
func (c *Collector) announceOpen(before uint64, now time.Time) {
	if c.announceWay == WayMapElem {
		if err := c.objs.AnnounceBefore.Set(before); err != nil {
			c.log.Warn("report open connections", "error", err)
			return
		}
		if err := runIter(c.ring.Iter(networkProgAnnounceConns)); err != nil {
			c.log.Warn("report open connections", "error", err)
		}
		return
	}
	if c.emitTo == nil {
		return // not running: Run announces them
	}
	err := c.walkConns(func(key uint64, ci *networkConnInfo) {
		if ci.Established == 0 || networkNetReport(ci.Reported) != networkNetReportREPORT_NONE || ci.StartNs > before {
			return
		}
		// Known already: announced before, or an earlier connection of the same socket
		// whose stale close is still in the ring buffer (the next walk announces this one).
		if _, known := c.conns[key]; known {
			return
		}
		rec := networkConnEvent{Kind: uint32(networkNetEventKindNET_EVENT_CONNECT), Pid: ci.Pid, KtimeNs: ci.StartNs,
			SockId: key, CgroupId: ci.CgroupId, StartNs: ci.StartNs, Uid: ci.Uid, Direction: ci.Direction, T: ci.T, Comm: ci.Comm}
		if networkNetDirection(ci.Direction) == networkNetDirectionNET_DIR_INBOUND {
			rec.Kind = uint32(networkNetEventKindNET_EVENT_ACCEPT)
		}
		c.connOpened(&rec, now, c.emitTo)
	})
	if err != nil {
		c.log.Warn("report open connections", "error", err)
	}
}

// walkBatch is how many entries of the connection map one system call reads.
const walkBatch = 256

// walkConns calls f with each entry of the kernel's connection map, read from user space in
// batches (entry by entry where the kernel has no batch lookups). An entry may change or go
// while the walk runs; f sees a copy.
func (c *Collector) walkConns(f func(key uint64, ci *networkConnInfo)) error {
	if c.walkKeys == nil {
		c.walkKeys, c.walkValues = make([]uint64, walkBatch), make([]networkConnInfo, walkBatch)
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := c.objs.Conns.BatchLookup(&cursor, c.walkKeys, c.walkValues, nil)
		for i := range n {
			f(c.walkKeys[i], &c.walkValues[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil
		case errors.Is(err, ebpf.ErrNotSupported):
			var (
				key  uint64
				info networkConnInfo
			)
			it := c.objs.Conns.Iterate()
			for it.Next(&key, &info) {
				f(key, &info)
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("walk connection map: %w", err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("walk connection map: %w", err)
		}
	}
}

// connClosed reports a connection's close with its final bytes. A connection whose connect or
// accept record was lost is reported from the close record alone.
func (c *Collector) connClosed(rec *networkConnEvent, now time.Time, emit func(*schemas.NetworkEvent)) {
	oc := c.conns[rec.SockId]
	var ev *schemas.NetworkEvent
	if oc != nil {
		delete(c.conns, rec.SockId)
		c.openConns.Add(^uint64(0))
		c.addTraffic(oc.cgroupID, -1, int64(rec.BytesSent-oc.sent), int64(rec.BytesReceived-oc.recv))
		ev = c.copyEvent(oc.ev, int64(rec.KtimeNs)+c.bootOffset, schemas.ActionClose)
	} else {
		c.addTraffic(rec.CgroupId, 0, int64(rec.BytesSent), int64(rec.BytesReceived))
		ev = c.connEvent(rec, schemas.ActionClose, now)
	}
	setFinal(ev, rec)
	c.emit(ev, emit)
}

// copyEvent starts the next event to emit (as newEvent) as a copy of ev, an event of the same
// connection.
func (c *Collector) copyEvent(ev *schemas.NetworkEvent, at int64, action string) *schemas.NetworkEvent {
	c.event = *ev
	c.event.Envelope.EventID = c.ids.At(at)
	c.event.Envelope.Time = at
	c.event.Action = action
	return &c.event
}

func (c *Collector) listening(rec *networkConnEvent, now time.Time, emit func(*schemas.NetworkEvent)) {
	key := listenKey{pid: rec.Pid, port: rec.T.Sport}
	if _, seen := c.listens[key]; seen {
		return
	}
	if len(c.listens) >= listenEntries {
		clear(c.listens) // a few listeners may be reported again
	}
	c.listens[key] = struct{}{}
	c.emit(c.connEvent(rec, schemas.ActionListen, now), emit)
}

func (c *Collector) addTraffic(cgroupID uint64, conns, sent, recv int64) {
	c.trafficMu.Lock()
	defer c.trafficMu.Unlock()
	t := c.traffic[cgroupID]
	if t == nil {
		t = &CgroupTraffic{}
		c.traffic[cgroupID] = t
	}
	t.Connections += conns
	t.BytesSent += sent
	t.BytesReceived += recv
}

// refresh has the kernel copy open connections' byte counters into its connection map (an
// iterator, where one is allowed), then counts them in their cgroups' totals and emits updates for the connections
// reported more than update_interval ago.
func (c *Collector) refresh(now time.Time, emit func(*schemas.NetworkEvent)) error {
	if len(c.conns) == 0 {
		return nil
	}
	switch c.refreshWay {
	case WayMapElem:
		if err := runIter(c.ring.Iter(networkProgRefreshBytes)); err != nil {
			return err
		}
	case WayTCPIter:
		if err := runIter(c.ring.Iter(networkProgRefreshBytesTcp)); err != nil {
			return err
		}
	}
	var info networkConnInfo
	for id, oc := range c.conns {
		if err := c.objs.Conns.Lookup(id, &info); err != nil {
			// Gone from the kernel without a close record: either it is still in the ring
			// buffer, or it was lost. Forget it at the next refresh.
			if oc.missing {
				delete(c.conns, id)
				c.openConns.Add(^uint64(0))
				c.addTraffic(oc.cgroupID, -1, 0, 0)
			}
			oc.missing = true
			continue
		}
		oc.missing = false
		if info.BytesSent >= oc.sent && info.BytesReceived >= oc.recv {
			c.addTraffic(oc.cgroupID, 0, int64(info.BytesSent-oc.sent), int64(info.BytesReceived-oc.recv))
			oc.sent, oc.recv = info.BytesSent, info.BytesReceived
		}
		if now.Sub(oc.lastReport) >= c.cfg.UpdateInterval {
			oc.lastReport = now
			ev := c.copyEvent(oc.ev, now.UnixNano(), schemas.ActionUpdate)
			ev.Network.BytesSent, ev.Network.BytesReceived = int64(oc.sent), int64(oc.recv)
			ev.Network.DurationNs = now.UnixNano() - (int64(oc.startNs) + c.bootOffset)
			c.emit(ev, emit)
		}
	}
	return nil
}

// runIter runs an iterator program.
func runIter(it *link.Iter) error {
	if it == nil {
		return errors.New("iterator not attached")
	}
	r, err := it.Open()
	if err != nil {
		return fmt.Errorf("open connection map iterator: %w", err)
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("run connection map iterator: %w", err)
	}
	return nil
}

// flushUDP takes the UDP flows summed since the last flush out of the kernel map and emits
// one udp_flow event for each.
func (c *Collector) flushUDP(now time.Time, emit func(*schemas.NetworkEvent)) error {
	var (
		key  networkUdpKey
		keys []networkUdpKey
	)
	it := c.objs.UdpFlows.Iterate()
	var flow networkUdpFlow
	for it.Next(&key, &flow) {
		keys = append(keys, key)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list udp flows: %w", err)
	}
	for _, k := range keys {
		// Taken out one by one, so datagrams counted meanwhile start a new entry.
		if err := c.objs.UdpFlows.LookupAndDelete(&k, &flow); err != nil {
			continue
		}
		c.addTraffic(flow.CgroupId, 0, int64(flow.BytesSent), int64(flow.BytesReceived))
		c.emit(c.udpEvent(&k, &flow, now), emit)
	}
	return nil
}

// summaryBatch is how many summaries one system call takes out of the kernel.
const summaryBatch = 256

// flushSummaries takes the map of short connections' sums out of the kernel's slot, putting
// the other (emptied at the last flush) in its place, or, when final, leaving the slot empty
// so that every connection from then on is reported by its own record. The kernel returns
// from the swap once the programs that could be adding to the map taken out have finished:
// nothing adds to it any more. Then it emits a connect_summary or accept_summary event for
// each entry, and empties it.
func (c *Collector) flushSummaries(now time.Time, emit func(*schemas.NetworkEvent), final bool) error {
	out := c.summaries[c.summaryCur]
	if out == nil || emit == nil {
		return nil
	}
	var err error
	if final {
		err = c.objs.TcpSummaries.Delete(uint32(0))
	} else {
		err = c.objs.TcpSummaries.Put(uint32(0), c.summaries[1-c.summaryCur])
	}
	if err != nil {
		return fmt.Errorf("swap tcp summaries: %w", err)
	}
	c.summaryCur = 1 - c.summaryCur
	if final {
		c.summaries[c.summaryCur] = nil // out of the slot for good: nothing to swap in again
	}
	if c.summaryKeys == nil {
		c.summaryKeys, c.summaryValues = make([]networkTcpSummaryKey, summaryBatch), make([]networkTcpSummary, summaryBatch)
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := out.BatchLookupAndDelete(&cursor, c.summaryKeys, c.summaryValues, nil)
		for i := range n {
			c.summaryEvent(&c.summaryKeys[i], &c.summaryValues[i], now, emit)
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil
		case errors.Is(err, ebpf.ErrNotSupported):
			return c.drainSummaries(out, now, emit)
		case err != nil:
			return fmt.Errorf("read tcp summaries: %w", err)
		}
	}
}

// drainSummaries is flushSummaries' reading for kernels without batch operations: entry by
// entry.
func (c *Collector) drainSummaries(m *ebpf.Map, now time.Time, emit func(*schemas.NetworkEvent)) error {
	var (
		key  networkTcpSummaryKey
		sum  networkTcpSummary
		keys []networkTcpSummaryKey
	)
	it := m.Iterate()
	for it.Next(&key, &sum) {
		keys = append(keys, key)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list tcp summaries: %w", err)
	}
	for _, k := range keys {
		if err := m.LookupAndDelete(&k, &sum); err != nil {
			return fmt.Errorf("read tcp summary: %w", err)
		}
		c.summaryEvent(&k, &sum, now, emit)
	}
	return nil
}

// summaryEvent emits the event of one summary: at the first connection's establishment, the
// service port on the side that was reached, the other side's port 0 (one per connection).
func (c *Collector) summaryEvent(k *networkTcpSummaryKey, s *networkTcpSummary, now time.Time, emit func(*schemas.NetworkEvent)) {
	c.summaryEvents.Add(1)
	c.summarized.Add(s.Connections)
	c.addTraffic(s.CgroupId, 0, int64(s.BytesSent), int64(s.BytesReceived))
	action := schemas.ActionConnectSummary
	if networkNetDirection(k.Direction) == networkNetDirectionNET_DIR_INBOUND {
		action = schemas.ActionAcceptSummary
	}
	ev := c.newEvent(int64(s.FirstNs)+c.bootOffset, action)
	ev.Process = c.procs.actor(k.Pid, s.Uid, &s.Comm, s.CgroupId, c.users, now)
	local, _ := c.endpoint(k.Family, s.LocalAddr, 0)
	remote, raddr := c.endpoint(k.Family, k.Addr, 0)
	remote.Hostname = c.names.lookup(raddr, now)
	n := &ev.Network
	n.Protocol = "tcp"
	n.IPVersion = ipVersion(raddr)
	if action == schemas.ActionAcceptSummary {
		local.Port = int32(k.Port)
		n.Direction, n.Src, n.Dst = "inbound", remote, local
	} else {
		remote.Port = int32(k.Port)
		n.Direction, n.Src, n.Dst = "outbound", local, remote
	}
	n.BytesSent, n.BytesReceived = int64(s.BytesSent), int64(s.BytesReceived)
	n.Packets = int64(s.Connections)
	if s.LastNs > s.FirstNs {
		n.DurationNs = int64(s.LastNs - s.FirstNs)
	}
	c.emit(ev, emit)
}

func (c *Collector) udpEvent(k *networkUdpKey, f *networkUdpFlow, now time.Time) *schemas.NetworkEvent {
	ev := c.newEvent(int64(f.LastNs)+c.bootOffset, schemas.ActionUDPFlow)
	ev.Process = c.procs.actor(k.Pid, f.Uid, &f.Comm, f.CgroupId, c.users, now)
	local, _ := c.endpoint(k.Family, f.LocalAddr, f.LocalPort)
	remote, raddr := c.endpoint(k.Family, k.Addr, k.Port)
	remote.Hostname = c.names.lookup(raddr, now)
	n := &ev.Network
	n.Protocol = "udp"
	n.IPVersion = ipVersion(raddr)
	if networkNetDirection(f.Direction) == networkNetDirectionNET_DIR_INBOUND {
		n.Direction, n.Src, n.Dst = "inbound", remote, local
	} else {
		n.Direction, n.Src, n.Dst = "outbound", local, remote
	}
	n.BytesSent, n.BytesReceived = int64(f.BytesSent), int64(f.BytesReceived)
	n.Packets = int64(f.PacketsSent + f.PacketsReceived)
	if f.LastNs > f.FirstNs {
		n.DurationNs = int64(f.LastNs - f.FirstNs)
	}
	return ev
}

func (c *Collector) handleDNS(raw []byte, now time.Time, emit func(*schemas.NetworkEvent)) error {
	var rec networkDnsEvent
	n, err := kernel.Decode(raw, &rec)
	if err != nil {
		return fmt.Errorf("decode dns record: %w", err)
	}
	if int(rec.Len) > len(raw)-n {
		return fmt.Errorf("dns record: %d payload bytes, %d present", rec.Len, len(raw)-n)
	}
	resp, err := parseDNSResponse(raw[n : n+int(rec.Len)])
	if err != nil {
		c.dnsErrors.Add(1)
		c.log.Debug("unparsable dns response", "error", err)
		return nil
	}
	answers := make([]string, 0, len(resp.Addrs))
	for _, a := range resp.Addrs {
		c.names.put(a, resp.Name, now)
		answers = append(answers, a.Unmap().String())
	}
	ev := c.newEvent(int64(rec.KtimeNs)+c.bootOffset, schemas.ActionDNS)
	ev.Process = c.procs.actor(rec.Pid, rec.Uid, &rec.Comm, rec.CgroupId, c.users, now)
	server, saddr := c.endpoint(rec.T.Family, rec.T.Saddr, rec.T.Sport)
	server.Hostname = resp.Name
	net := &ev.Network
	net.Direction, net.Protocol = "outbound", "udp"
	net.IPVersion = ipVersion(saddr)
	net.Src, _ = c.endpoint(rec.T.Family, rec.T.Daddr, rec.T.Dport)
	net.Dst = server
	net.BytesReceived = int64(rec.Size)
	net.Packets = 1
	net.DNSAnswers = answers
	c.emit(ev, emit)
	return nil
}

// addrOf returns the address in a record's 16 bytes; IPv4-mapped IPv6 addresses are
// returned as IPv4.
func addrOf(family uint16, b [16]uint8) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b).Unmap()
}

// endpoint returns the endpoint of a record's address and port, and the address.
func (c *Collector) endpoint(family uint16, b [16]uint8, port uint16) (schemas.Endpoint, netip.Addr) {
	a := addrOf(family, b)
	return schemas.Endpoint{IP: c.addrs.text(a), Port: int32(port)}, a
}

func ipVersion(a netip.Addr) int32 {
	if a.Is4() {
		return 4
	}
	return 6
}

// addrTexts keeps the text of the addresses seen lately, so that the events of the same
// peers share it instead of formatting it anew. Reader goroutine only.
type addrTexts struct {
	max   int
	texts map[netip.Addr]string
}

func (t *addrTexts) text(a netip.Addr) string {
	if s, ok := t.texts[a]; ok {
		return s
	}
	if t.texts == nil || len(t.texts) >= t.max {
		t.texts = make(map[netip.Addr]string) // start over: a cache, not a record
	}
	s := a.String()
	t.texts[a] = s
	return s
}

// eventFilter drops the events the exclude_* settings name.
type eventFilter struct {
	ports map[int32]bool
	exes  []string
	users map[string]bool // names and decimal uids
}

func newEventFilter(cfg Config) eventFilter {
	f := eventFilter{ports: make(map[int32]bool), exes: cfg.ExcludeExecutables, users: make(map[string]bool)}
	for _, p := range cfg.ExcludePorts {
		f.ports[int32(p)] = true
	}
	for _, u := range cfg.ExcludeUsers {
		f.users[u] = true
	}
	return f
}

func (f eventFilter) excludes(ev *schemas.NetworkEvent) bool {
	if f.ports[ev.Network.Src.Port] || f.ports[ev.Network.Dst.Port] {
		return true
	}
	if len(f.users) > 0 {
		u := ev.Process.User
		if f.users[u.Name] || f.users[strconv.FormatInt(u.UID, 10)] {
			return true
		}
	}
	for _, pat := range f.exes {
		if ok, _ := matchPath(pat, ev.Process.File.Path); ok {
			return true
		}
	}
	return false
}
