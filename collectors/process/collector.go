// Package process collects process lifecycle events from the kernel.
//
// In: the exec, fork and exit records that bpf/process.bpf.c writes into a BPF ring buffer
// (exec records carry the working directory and executable walked in the kernel, so a
// process that is gone before its record is read keeps them), plus what /proc, /etc/passwd
// and /etc/group say about the processes named in them.
// Out: one *schemas.ProcessEvent per record, handed to the caller's emit function in
// ring-buffer order, with the executable's sha256 computed off the reading goroutine.
// Records the kernel could not write because the ring buffer was full are counted in
// Stats.KernelDrops and logged; they are never lost silently.
package process

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrAlreadyRun is returned by Run when called a second time: a Collector runs once.
var ErrAlreadyRun = errors.New("process collector already ran")

const (
	// hashTimeout bounds how long an exec event waits for its sha256 before it is emitted
	// without one, counted from when the record was read.
	hashTimeout = 2 * time.Second
	// pipelineDepth bounds the events read but not yet emitted.
	pipelineDepth = 4096
	// hashQueueDepth bounds the hash jobs waiting for a worker; when it is full, exec
	// events go without sha256 rather than stall the reader.
	hashQueueDepth = 1024
	// processTableEntries caps the process table.
	processTableEntries = 1 << 16
	// exitLinger keeps an exited process in the table for events read after its exit.
	exitLinger = 5 * time.Second
	// housekeepingEvery is how often the reader reports kernel drops and expires the table.
	housekeepingEvery = time.Second
	// loginUIDUnset is the audit login uid of a process no login started.
	loginUIDUnset = 0xffffffff
)

// Stats counts what the collector did. Every field only grows.
type Stats struct {
	Events         uint64 // events emitted
	KernelDrops    uint64 // records the kernel dropped because the ring buffer was full
	DecodeErrors   uint64 // records that could not be decoded
	HashErrors     uint64 // executables that could not be opened or read
	HashTimeouts   uint64 // exec events emitted without sha256 after waiting hashTimeout
	HashSkipped    uint64 // exec events not hashed because the hash queue was full
	HashTooLarge   uint64 // executables over hash_max_file_bytes
	HashCacheHits  uint64 // sha256 sums served from the cache
	HashCacheMiss  uint64 // sha256 sums computed
	HashJobs       uint64 // executables opened to hash: those the cache did not hold as the kernel identified them
	TableEvictions uint64 // live processes evicted from the full process table
	Filtered       uint64 // events dropped by exclude_executables or exclude_users
	CWDFallbacks   uint64 // exec events whose cwd the kernel could not walk, read from /proc instead
}

// Collector reads process events from the kernel. Create it with New, then call Run once.
type Collector struct {
	cfg  Config
	host schemas.Host
	log  *slog.Logger

	objs processObjects
	ring *kernel.Ring

	proc       hostinfo.Proc
	cgroups    *hostinfo.CgroupCache
	filter     eventFilter
	table      *processTable
	users      *hostinfo.IDNames
	groups     *hostinfo.IDNames
	hasher     *fileHasher
	bootOffset int64 // wall clock minus CLOCK_BOOTTIME, ns

	ran atomic.Bool

	events, decodeErrors, hashTimeouts, hashSkipped atomic.Uint64
	tableEvictions, filtered                        atomic.Uint64
	cwdFallbacks                                    atomic.Uint64
	hashCounters                                    hashCounters
}

// New loads the process programs into the kernel and attaches them: for each feature, the
// first way this kernel and the configuration allow (see features). Events are buffered in
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
	o := hostinfo.Apply(opts)
	c := &Collector{
		cfg:     cfg,
		host:    host,
		log:     log.With("collector", "process"),
		proc:    hostinfo.Proc{Root: "/proc"},
		cgroups: hostinfo.NewCgroupCache(o.Root, hostinfo.CgroupCacheEntries),
		filter:  newEventFilter(cfg),
		users:   hostinfo.NewIDNames(o.Root.Path("/etc/passwd")),
		groups:  hostinfo.NewIDNames(o.Root.Path("/etc/group")),
	}
	c.hasher = &fileHasher{cache: newHashCache(cfg.HashCacheEntries), maxBytes: cfg.HashMaxFileBytes, counters: &c.hashCounters, root: o.Root}
	ring, err := kernel.Open(kernel.Spec{
		Collector:  "process",
		Load:       loadProcess,
		MaxEntries: map[string]uint32{processMapEvents: uint32(cfg.RingBufferBytes)},
		Vars: []kernel.Var{
			{Name: processVarSelfTgid, Value: uint32(os.Getpid())},
			{Name: processVarMaxArgBytes, Value: uint32(cfg.MaxArgBytes)},
			kernel.WakeupVar(cfg.RingBufferBytes),
		},
		Objects:  &c.objs,
		Events:   processMapEvents,
		Drops:    processMapDrops,
		Features: features(),
		Refuse:   kernel.Refusals("collectors.process.refuse", cfg.Refuse),
		Ring:     kernel.RingConfig{Name: "process", Dropped: "process events", RingBufferBytes: cfg.RingBufferBytes, Log: c.log},
	})
	if err != nil {
		return nil, err
	}
	c.ring = ring
	if err := c.open(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// The process collector's features (kernel.Feature), as reports and warnings name them.
const (
	FeatureExec = "exec events"
	FeatureExit = "exit events"
	FeatureFork = "fork events"
)

// features are what the collector does with its programs, each with its ways, preferred
// first. fork prefers tp_btf, whose task arguments are read by direct loads; a raw
// tracepoint gets the same tasks through bpf_probe_read_kernel.
func features() []kernel.Feature {
	return []kernel.Feature{
		{Name: FeatureExec, Required: true, Lost: "exec events", Ways: []kernel.Way{
			{Name: "sched_process_exec tracepoint", Hooks: []kernel.Hook{kernel.TracepointHook("sched", "sched_process_exec", processProgHandleExec)}},
		}},
		{Name: FeatureExit, Lost: "exit events (exited processes stay in the process table until it evicts them)", Ways: []kernel.Way{
			{Name: "sched_process_exit tracepoint", Hooks: []kernel.Hook{kernel.TracepointHook("sched", "sched_process_exit", processProgHandleExit)}},
		}},
		{Name: FeatureFork, Lost: "fork events", Ways: []kernel.Way{
			{Name: "tp_btf sched_process_fork", Hooks: []kernel.Hook{kernel.TPBTFHook(processProgHandleFork)}},
			{Name: "raw tracepoint sched_process_fork", Hooks: []kernel.Hook{kernel.RawTracepointHook("sched_process_fork", processProgHandleForkRaw)}},
		}},
	}
}

// open finishes what New started once the programs are attached.
func (c *Collector) open() error {
	offset, err := kernel.BootTimeOffset()
	if err != nil {
		return err
	}
	c.bootOffset = offset
	// Seed after attaching, so a process started in between is seen by one or the other.
	c.table = newProcessTable(processTableEntries, exitLinger, c.proc)
	if err := c.table.seed(); err != nil {
		return fmt.Errorf("seed process table from /proc: %w", err)
	}
	return nil
}

// Report says what the collector does on this host: each feature's way, and what is lost.
func (c *Collector) Report() kernel.Report { return c.ring.Report() }

// Close releases the kernel objects of a collector that will not run (crumbs doctor); Run
// releases them itself when it returns.
func (c *Collector) Close() { c.close() }

// close releases the kernel objects; safe to call more than once.
func (c *Collector) close() { c.ring.Close() }

// Pause detaches the collector's kernel programs from their hooks: the kernel collects
// nothing for it until Resume, and its Run goes on reading what was collected before. For
// comparing a workload with and without the collector in one process.
func (c *Collector) Pause() { c.ring.Pause() }

// Resume attaches the programs Pause detached again.
func (c *Collector) Resume() error { return c.ring.Resume() }

// Stats returns the counters so far. KernelDrops is read from the kernel while the
// collector is open.
func (c *Collector) Stats() Stats {
	return Stats{
		Events:         c.events.Load(),
		KernelDrops:    c.ring.Drops(),
		DecodeErrors:   c.decodeErrors.Load(),
		HashErrors:     c.hashCounters.errors.Load(),
		HashTimeouts:   c.hashTimeouts.Load(),
		HashSkipped:    c.hashSkipped.Load(),
		HashTooLarge:   c.hashCounters.tooLarge.Load(),
		HashCacheHits:  c.hashCounters.cacheHits.Load(),
		HashCacheMiss:  c.hashCounters.cacheMisses.Load(),
		HashJobs:       c.hashCounters.jobs.Load(),
		TableEvictions: c.tableEvictions.Load(),
		Filtered:       c.filtered.Load(),
		CWDFallbacks:   c.cwdFallbacks.Load(),
	}
}

// pending is an event read but not yet emitted; hash, when set, is the sha256 it waits for.
type pending struct {
	ev       *schemas.ProcessEvent
	hash     *hashJob
	deadline time.Time
}

// Run reads the ring buffer and calls emit for each event until ctx is done; then it emits
// the events already read, closes the collector and returns nil. emit is called from one
// goroutine, in ring-buffer order; while it blocks, reading stops and the kernel drops
// (and counts) what no longer fits in the ring buffer. Run returns after emit has returned
// for the last event, so emit should stop blocking once ctx is done. Run returns an error
// only when reading fails for another reason than ctx being done.
func (c *Collector) Run(ctx context.Context, emit func(*schemas.ProcessEvent)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	defer c.close()

	var wg sync.WaitGroup
	jobs := make(chan *hashJob, hashQueueDepth)
	for range c.cfg.HashWorkers {
		wg.Go(func() { c.hasher.work(jobs) })
	}
	queue := make(chan pending, pipelineDepth)
	wg.Go(func() { c.emitInOrder(queue, emit) })

	err := c.ring.Read(ctx, housekeepingEvery, func(raw []byte, now time.Time) { c.handle(raw, now, queue, jobs) }, c.housekeeping)
	close(queue)
	close(jobs)
	wg.Wait()
	c.ring.ReportDrops()
	return err
}

func (c *Collector) housekeeping(now time.Time) {
	c.table.expire(now)
	c.tableEvictions.Store(c.table.evictions)
	c.ring.ReportDrops()
}

// handle decodes one record and queues its event; a full hash queue leaves the event
// without sha256 rather than block.
func (c *Collector) handle(raw []byte, now time.Time, queue chan<- pending, jobs chan<- *hashJob) {
	p, err := c.decode(raw, now)
	if err != nil {
		c.decodeErrors.Add(1)
		c.log.Debug("undecodable process record", "error", err)
		return
	}
	if c.filter.excludes(p.ev) {
		c.filtered.Add(1)
		return
	}
	if p.hash != nil {
		select {
		case jobs <- p.hash:
		default:
			c.hashSkipped.Add(1)
			p.hash = nil
		}
	}
	queue <- p
}

// emitInOrder emits queued events in order, each after its sha256 or its deadline.
func (c *Collector) emitInOrder(queue <-chan pending, emit func(*schemas.ProcessEvent)) {
	timer := time.NewTimer(hashTimeout)
	defer timer.Stop()
	for p := range queue {
		if p.hash != nil {
			p.ev.Process.File.SHA256 = c.await(p, timer)
		}
		emit(p.ev)
		c.events.Add(1)
	}
}

func (c *Collector) await(p pending, timer *time.Timer) string {
	select {
	case <-p.hash.done:
		return p.hash.sum
	default:
	}
	timer.Reset(time.Until(p.deadline))
	select {
	case <-p.hash.done:
		return p.hash.sum
	case <-timer.C:
		c.hashTimeouts.Add(1)
		return ""
	}
}

func (c *Collector) decode(raw []byte, now time.Time) (pending, error) {
	if len(raw) < 4 {
		return pending{}, fmt.Errorf("record of %d bytes has no kind", len(raw))
	}
	switch kind := processEventKind(binary.LittleEndian.Uint32(raw)); kind {
	case processEventKindEVENT_KIND_EXEC:
		return c.decodeExec(raw, now)
	case processEventKindEVENT_KIND_FORK:
		return c.decodeFork(raw, now)
	case processEventKindEVENT_KIND_EXIT:
		return c.decodeExit(raw, now)
	default:
		return pending{}, fmt.Errorf("record of unknown kind %d", kind)
	}
}

func (c *Collector) newEvent(ktime uint64, action string) *schemas.ProcessEvent {
	return &schemas.ProcessEvent{
		Envelope: schemas.Envelope{
			EventID: schemas.NewEventIDAt(int64(ktime) + c.bootOffset),
			Time:    int64(ktime) + c.bootOffset,
			Host:    c.host,
			Kind:    schemas.KindProcess,
		},
		Action: action,
	}
}

func (c *Collector) decodeExec(raw []byte, now time.Time) (pending, error) {
	var hdr processExecEvent
	n, err := kernel.Decode(raw, &hdr)
	if err != nil {
		return pending{}, fmt.Errorf("decode exec record: %w", err)
	}
	data := raw[n:]
	lens := []int{int(hdr.CwdLen), int(hdr.ExeLen), int(hdr.FilenameLen), int(hdr.ArgsLen)}
	parts, err := splitData(data, lens)
	if err != nil {
		return pending{}, fmt.Errorf("exec record: %w", err)
	}
	filename := kernel.CString(parts[2])
	args, truncated := hostinfo.SplitArgs(parts[3], c.cfg.MaxArgs)

	pid := int32(hdr.Pid)
	ev := c.newEvent(hdr.KtimeNs, schemas.ActionExec)
	p := &ev.Process
	p.PID, p.PPID = pid, int32(hdr.Ppid)
	p.Args, p.CmdLine = args, schemas.JoinArgs(args)
	p.ArgsTruncated = truncated || hdr.Flags&uint32(processExecFlagEXEC_FLAG_ARGS_TRUNCATED) != 0
	p.CWD = c.cwd(pid, parts[0], hdr.Flags)
	exe := c.exe(pid, parts[1], hdr.Flags)
	path := resolveExecPath(filename, exe, p.CWD)
	viaExe := exe != "" && exe == path
	if hdr.Flags&uint32(processExecFlagEXEC_FLAG_EXE_UNLINKED) != 0 {
		// No path opens it any more; /proc/<pid>/exe does while the process lives.
		path, viaExe = unlinkedPath(path, exe, parts[1]), true
	}
	p.File = schemas.File{Path: path, Name: filepath.Base(path)}
	c.fillCreds(p, hdr.Uid, hdr.Gid, now)
	p.LoginUID = loginUID(hdr.Loginuid)
	p.TTY = kernel.CString(hdr.Tty[:])
	p.CgroupID = int64(hdr.CgroupId)
	cg := c.cgroups.Lookup(hdr.CgroupId, int(pid))
	p.SystemdUnit, p.ContainerID = cg.SystemdUnit, cg.ContainerID
	p.Parent = c.parent(p.PPID)
	p.StartTime, p.Parent.StartTime = c.wallTime(hdr.StartNs), c.wallTime(hdr.ParentStartNs)
	p.EUID, p.EGID, p.SessionID = int64(hdr.Euid), int64(hdr.Egid), int32(hdr.Sid)
	p.StdinType, p.StdoutType = fdType(hdr.StdinKind), fdType(hdr.StdoutKind)
	c.table.exec(pid, path, p.Args)

	// An executable hashed before, as the kernel identifies it, needs no hashing job.
	key := kernelKey(hdr.ExeDev, hdr.ExeIno, hdr.ExeSize, hdr.ExeCtimeNs)
	if sum, ok := c.hasher.cached(key); ok {
		p.File.SHA256 = sum
		return pending{ev: ev}, nil
	}
	job := newHashJob(pid, path, viaExe, key)
	return pending{ev: ev, hash: job, deadline: now.Add(hashTimeout)}, nil
}

// cwd returns the working directory the kernel walked, or /proc/<pid>/cwd when the walk did
// not reach the process's root.
func (c *Collector) cwd(pid int32, walked []byte, flags uint32) string {
	if flags&uint32(processExecFlagEXEC_FLAG_CWD_TRUNCATED) == 0 {
		return walkedPath(walked)
	}
	c.cwdFallbacks.Add(1)
	return c.proc.Cwd(int(pid))
}

// exe returns the executable the kernel walked, or /proc/<pid>/exe when the walk did not
// reach the process's root (a memfd, for one).
func (c *Collector) exe(pid int32, walked []byte, flags uint32) string {
	if flags&uint32(processExecFlagEXEC_FLAG_EXE_TRUNCATED) == 0 {
		return walkedPath(walked)
	}
	return c.proc.Exe(int(pid))
}

func (c *Collector) decodeFork(raw []byte, now time.Time) (pending, error) {
	var rec processForkEvent
	if _, err := kernel.Decode(raw, &rec); err != nil {
		return pending{}, fmt.Errorf("decode fork record: %w", err)
	}
	ev := c.newEvent(rec.KtimeNs, schemas.ActionFork)
	p := &ev.Process
	p.PID, p.PPID = int32(rec.ChildPid), int32(rec.ParentPid)
	c.fillCreds(p, rec.Uid, rec.Gid, now)
	p.CgroupID = int64(rec.CgroupId)
	p.LoginUID = loginUID(rec.Loginuid)
	p.Parent = c.parent(p.PPID)
	p.StartTime, p.Parent.StartTime = c.wallTime(rec.ChildStartNs), c.wallTime(rec.ParentStartNs)
	p.EUID, p.EGID, p.SessionID = int64(rec.Euid), int64(rec.Egid), int32(rec.Sid)
	// The child runs its parent's image until it execs.
	c.table.fork(p.PPID, p.PID)
	c.fillImage(p)
	return pending{ev: ev}, nil
}

func (c *Collector) decodeExit(raw []byte, now time.Time) (pending, error) {
	var rec processExitEvent
	if _, err := kernel.Decode(raw, &rec); err != nil {
		return pending{}, fmt.Errorf("decode exit record: %w", err)
	}
	ev := c.newEvent(rec.KtimeNs, schemas.ActionExit)
	p := &ev.Process
	p.PID, p.PPID = int32(rec.Pid), int32(rec.Ppid)
	p.ExitCode = exitCode(rec.ExitCode)
	c.fillCreds(p, rec.Uid, rec.Gid, now)
	p.LoginUID = loginUID(rec.Loginuid)
	p.CgroupID = int64(rec.CgroupId)
	c.fillImage(p)
	p.Parent = c.parent(p.PPID)
	p.StartTime = c.wallTime(rec.StartNs)
	p.EUID, p.EGID, p.SessionID = int64(rec.Euid), int64(rec.Egid), int32(rec.Sid)
	c.table.exit(p.PID, now)
	return pending{ev: ev}, nil
}

// wallTime turns a CLOCK_BOOTTIME reading into ns since the epoch, as event times are; 0
// stays 0 (unknown).
func (c *Collector) wallTime(boot uint64) int64 {
	if boot == 0 {
		return 0
	}
	return int64(boot) + c.bootOffset
}

// fdType names an fd_kind as the schema spells it (schemas.FD*).
func fdType(k uint8) string {
	switch processFdKind(k) {
	case processFdKindFD_KIND_FILE:
		return schemas.FDFile
	case processFdKindFD_KIND_PIPE:
		return schemas.FDPipe
	case processFdKindFD_KIND_TTY:
		return schemas.FDTTY
	case processFdKindFD_KIND_CHAR:
		return schemas.FDChar
	case processFdKindFD_KIND_SOCKET_INET:
		return schemas.FDSocketInet
	case processFdKindFD_KIND_SOCKET_UNIX:
		return schemas.FDSocketUnix
	case processFdKindFD_KIND_SOCKET:
		return schemas.FDSocket
	case processFdKindFD_KIND_OTHER:
		return schemas.FDOther
	}
	return schemas.FDNone
}

func (c *Collector) fillCreds(p *schemas.Process, uid, gid uint32, now time.Time) {
	p.UID, p.UserName = int64(uid), c.users.Name(uid, now)
	p.GID, p.GroupName = int64(gid), c.groups.Name(gid, now)
}

// fillImage sets the executable and argv the process table knows for p.PID.
func (c *Collector) fillImage(p *schemas.Process) {
	if e := c.table.entries[p.PID]; e != nil {
		p.File = fileOf(e.exe)
		p.Args, p.CmdLine = e.args, schemas.JoinArgs(e.args)
	}
}

func (c *Collector) parent(ppid int32) schemas.Parent {
	par := schemas.Parent{PID: ppid}
	if e := c.table.lookup(ppid); e != nil {
		par.File = fileOf(e.exe)
		par.CmdLine = schemas.JoinArgs(e.args)
	}
	return par
}

func fileOf(path string) schemas.File {
	if path == "" {
		return schemas.File{}
	}
	return schemas.File{Path: path, Name: filepath.Base(path)}
}

// loginUID returns the audit login uid, -1 when no login set it.
func loginUID(v uint32) int64 {
	if v == loginUIDUnset {
		return -1
	}
	return int64(v)
}

// exitCode turns the kernel's wait status into a shell-style exit code: the status a
// process passed to exit, or 128 plus the signal that killed it.
func exitCode(status uint32) int32 {
	if sig := status & 0x7f; sig != 0 {
		return int32(128 + sig)
	}
	return int32(status>>8) & 0xff
}
