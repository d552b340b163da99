// Package identity collects authentications, sessions and credential changes from the
// kernel.
//
// In: the records that bpf/identity.bpf.c writes into a BPF ring buffer: results of
// pam_authenticate, pam_acct_mgmt, pam_open_session and pam_close_session (uprobes on
// libpam, with the handle's service, user, remote user, remote host and tty), changes made
// by setuid-family syscalls (sys_enter/sys_exit tracepoints, credentials before and after),
// and execs of set-user-ID or set-group-ID files (sched_process_exec); plus what /proc and
// /etc/passwd say about the processes and users named in them.
// Out: one *schemas.IdentityEvent per record, handed to the caller's emit function in
// ring-buffer order. Records the kernel could not write because the ring buffer was full
// are counted in Stats.KernelDrops and logged; they are never lost silently. crumbs' own
// process is not reported.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrAlreadyRun is returned by Run when called a second time: a Collector runs once.
var ErrAlreadyRun = errors.New("identity collector already ran")

// ActionAccount is the action of a pam_acct_mgmt result (account validity: expired,
// locked, access denied from that source).
// TODO(lead): move next to schemas.ActionAuth and name it in identity.avsc's action doc.
const ActionAccount = "account"

// housekeepingEvery is how often the reader reports kernel drops and forgets old
// credential transitions.
const housekeepingEvery = time.Second

// Stats counts what the collector did. Every field only grows.
type Stats struct {
	Events         uint64 // events emitted
	KernelDrops    uint64 // records the kernel dropped because the ring buffer was full
	DecodeErrors   uint64 // records that could not be decoded
	Filtered       uint64 // events dropped by exclude_users
	ThreadRepeats  uint64 // credential changes not reported again for another thread of the same process
	UnknownHandles uint64 // PAM results of handles opened before the probes were attached (no items)
}

// Collector reads identity events from the kernel. Create it with New, then call Run once.
type Collector struct {
	cfg  Config
	host schemas.Host
	log  *slog.Logger

	objs identityObjects
	ring *kernel.Ring

	libPAM     string // the probed library; empty when PAM is not probed
	proc       hostinfo.Proc
	cgroups    *hostinfo.CgroupCache
	users      *hostinfo.IDNames
	exclude    map[string]bool
	repeats    *threadRepeats
	bootOffset int64 // wall clock minus CLOCK_BOOTTIME, ns

	ran atomic.Bool

	events, decodeErrors, filtered, threadRepeatsN, unknownHandles atomic.Uint64
}

// New loads the identity programs into the kernel and attaches them: for each feature, the
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
		log:     log.With("collector", "identity"),
		proc:    hostinfo.Proc{Root: "/proc"},
		cgroups: hostinfo.NewCgroupCache(o.Root, hostinfo.CgroupCacheEntries),
		users:   hostinfo.NewIDNames(o.Root.Path("/etc/passwd")),
		exclude: make(map[string]bool),
		repeats: newThreadRepeats(threadRepeatWindow, threadRepeatEntries),
	}
	for _, u := range cfg.ExcludeUsers {
		c.exclude[u] = true
	}
	libPAM, missing := cfg.LibPAMPath, error(nil)
	if libPAM == "" {
		libPAM, missing = FindLibPAM(string(o.Root))
	}
	var pam *link.Executable
	if missing == nil {
		// The uprobes are set on the library's inode: the host's, reached under the root.
		ex, err := link.OpenExecutable(o.Root.Path(libPAM))
		if err != nil {
			if cfg.LibPAMPath != "" {
				return nil, fmt.Errorf("collectors.identity.libpam_path: open %s: %w", libPAM, err)
			}
			missing = err
		}
		pam = ex
	}
	ring, err := kernel.Open(kernel.Spec{
		Collector:  "identity",
		Load:       loadIdentity,
		MaxEntries: map[string]uint32{identityMapEvents: uint32(cfg.RingBufferBytes)},
		Vars: []kernel.Var{
			{Name: identityVarSelfTgid, Value: uint32(os.Getpid())},
			kernel.WakeupVar(cfg.RingBufferBytes),
		},
		Objects:  &c.objs,
		Events:   identityMapEvents,
		Drops:    identityMapDrops,
		Features: features(libPAM, pam, missing),
		Refuse:   kernel.Refusals("collectors.identity.refuse", cfg.Refuse),
		Ring:     kernel.RingConfig{Name: "identity", Dropped: "identity events", RingBufferBytes: cfg.RingBufferBytes, Log: c.log},
	})
	if err != nil {
		return nil, err
	}
	c.ring = ring
	if ring.Way(FeaturePAM) != "" {
		c.libPAM = libPAM
	}
	offset, err := kernel.BootTimeOffset()
	if err != nil {
		c.close()
		return nil, err
	}
	c.bootOffset = offset
	return c, nil
}

// LibPAM returns the path of the probed libpam, or "" when PAM is not probed.
func (c *Collector) LibPAM() string { return c.libPAM }

// The identity collector's features (kernel.Feature), as reports and warnings name them.
const (
	FeatureCreds      = "uid and gid changes"
	FeatureSetuidExec = "set-user-ID and set-group-ID execs"
	FeaturePAM        = "authentications and sessions (PAM)"
)

// credSyscalls are the setuid-family syscalls whose tracepoints are attached.
var credSyscalls = []string{"setuid", "setreuid", "setresuid", "setfsuid", "setgid", "setregid", "setresgid", "setfsgid"}

// features are what the collector does with its programs. PAM results come from uprobes on
// libpam (at libPAM, opened as pam); where there is no libpam (missing says why) or uprobes
// are refused, they are lost and the rest goes on.
func features(libPAM string, pam *link.Executable, missing error) []kernel.Feature {
	var creds []kernel.Hook
	for _, name := range credSyscalls {
		creds = append(creds, kernel.TracepointHook("syscalls", "sys_enter_"+name, identityProgCredsEnter),
			kernel.TracepointHook("syscalls", "sys_exit_"+name, identityProgCredsExit))
	}
	probe := func(symbol, prog string, ret, optional bool) kernel.Hook {
		what := "uprobe " + symbol
		if ret {
			what = "uretprobe " + symbol
		}
		return kernel.Hook{Program: prog, What: what + " in " + libPAM, Optional: optional,
			Attach: func(p *ebpf.Program) (link.Link, error) {
				if missing != nil {
					return nil, &kernel.Missing{Capability: "libpam", Answer: missing.Error()}
				}
				if ret {
					return pam.Uretprobe(symbol, p, nil)
				}
				return pam.Uprobe(symbol, p, nil)
			}}
	}
	return []kernel.Feature{
		{Name: FeatureCreds, Lost: "uid and gid change events", Ways: []kernel.Way{{Name: "setuid-family syscall tracepoints", Hooks: creds}}},
		{Name: FeatureSetuidExec, Lost: "set-user-ID exec events", Ways: []kernel.Way{{Name: "sched_process_exec tracepoint",
			Hooks: []kernel.Hook{kernel.TracepointHook("sched", "sched_process_exec", identityProgSetuidExec)}}}},
		{Name: FeaturePAM, Lost: "authentication and session events (PAM)", Ways: []kernel.Way{{Name: "uprobes on libpam",
			Hooks: []kernel.Hook{
				probe("pam_start", identityProgPamStartEnter, false, false),
				probe("pam_start", identityProgPamStartExit, true, false),
				// pam_start_confdir exists since Linux-PAM 1.4.
				probe("pam_start_confdir", identityProgPamStartConfdirEnter, false, true),
				probe("pam_start_confdir", identityProgPamStartExit, true, true),
				probe("pam_set_item", identityProgPamSetItemEnter, false, false),
				probe("pam_end", identityProgPamEndEnter, false, false),
				probe("pam_authenticate", identityProgPamAuthenticateEnter, false, false),
				probe("pam_authenticate", identityProgPamCallExit, true, false),
				probe("pam_acct_mgmt", identityProgPamAcctMgmtEnter, false, false),
				probe("pam_acct_mgmt", identityProgPamCallExit, true, false),
				probe("pam_open_session", identityProgPamOpenSessionEnter, false, false),
				probe("pam_open_session", identityProgPamCallExit, true, false),
				probe("pam_close_session", identityProgPamCloseSessionEnter, false, false),
				probe("pam_close_session", identityProgPamCallExit, true, false),
			}}}},
	}
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
		Filtered:       c.filtered.Load(),
		ThreadRepeats:  c.threadRepeatsN.Load(),
		UnknownHandles: c.unknownHandles.Load(),
	}
}

// Run reads the ring buffer and calls emit for each event until ctx is done; then it
// closes the collector and returns nil. emit is called from one goroutine, in ring-buffer
// order; while it blocks, reading stops and the kernel drops (and counts) what no longer
// fits in the ring buffer, so emit should stop blocking once ctx is done. Run returns an
// error only when reading fails for another reason than ctx being done.
func (c *Collector) Run(ctx context.Context, emit func(*schemas.IdentityEvent)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	defer c.close()

	err := c.ring.Read(ctx, housekeepingEvery, func(raw []byte, now time.Time) { c.handle(raw, now, emit) }, func(now time.Time) {
		c.repeats.expire(now)
		c.ring.ReportDrops()
	})
	c.ring.ReportDrops()
	return err
}

func (c *Collector) handle(raw []byte, now time.Time, emit func(*schemas.IdentityEvent)) {
	ev, err := c.decode(raw, now)
	if err != nil {
		c.decodeErrors.Add(1)
		c.log.Debug("undecodable identity record", "error", err)
		return
	}
	if ev == nil {
		return // a repeat for another thread
	}
	if c.exclude[ev.Identity.User] {
		c.filtered.Add(1)
		return
	}
	emit(ev)
	c.events.Add(1)
}

func (c *Collector) newEvent(ktime uint64, action string) *schemas.IdentityEvent {
	return &schemas.IdentityEvent{
		Envelope: schemas.Envelope{
			EventID: schemas.NewEventIDAt(int64(ktime) + c.bootOffset),
			Time:    int64(ktime) + c.bootOffset,
			Host:    c.host,
			Kind:    schemas.KindIdentity,
		},
		Action: action,
		// Fields that do not apply to an event are -1, so that they cannot be read as root.
		Identity: schemas.Identity{OldUID: -1, NewUID: -1, OldGID: -1, NewGID: -1},
	}
}

// isSetUIDSyscall tells the uid syscalls of the family from the gid ones.
func isSetUIDSyscall(nr uint32) bool {
	return slices.Contains([]uint32{unix.SYS_SETUID, unix.SYS_SETREUID, unix.SYS_SETRESUID, unix.SYS_SETFSUID}, nr)
}
