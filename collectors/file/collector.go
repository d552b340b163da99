// Package file collects software-integrity events: changes to files under watched path
// globs, reads of sensitive files, file capabilities set, and scans of the watched files.
//
// In: the create, write, rename, delete, chmod, chown, utimes (times given), read (of a
// sensitive_reads glob) and setcap records that bpf/file.bpf.c writes into a BPF ring buffer
// (a write is one record per file opened for writing, when this process's last descriptor
// on it goes: a close, a dup2 over it, or its exit), plus what /proc says about the process
// that made the change and what a stat says about the file afterwards; and, for scans, the
// files themselves under the watched globs and the previous scan's baseline in state_dir.
// Out: one *schemas.FileEvent per change that passes the filters, and scan_added,
// scan_removed and scan_changed events from each scan, handed to the caller's emit
// function. Records the kernel could not write because the ring buffer was full are counted
// in Stats.KernelDrops and logged; they are never lost silently.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrAlreadyRun is returned by Run when called a second time: a Collector runs once.
var ErrAlreadyRun = errors.New("file collector already ran")

const (
	// pipelineDepth bounds the changes read but not yet statted and emitted.
	pipelineDepth = 4096
	// housekeepingEvery is how often the reader reports kernel drops.
	housekeepingEvery = time.Second
	// topBytes is the kernel filter's key size (TOP_BYTES in bpf/include/file.h).
	topBytes = 32
)

// Stats counts what the collector did. Every field only grows.
type Stats struct {
	Events       uint64 // change events emitted
	KernelDrops  uint64 // records the kernel dropped because the ring buffer was full
	DecodeErrors uint64 // records that could not be decoded
	Filtered     uint64 // records not emitted: outside the globs or excluded
	Truncated    uint64 // paths cut in the kernel (too deep or too long)
	StatErrors   uint64 // files gone or unreadable when statted after the change
	ScanEvents   uint64 // scan events emitted
	Scan         ScanStats
}

// Collector reads file changes from the kernel and runs scheduled scans. Create it with
// New, then call Run once.
type Collector struct {
	cfg        Config
	host       schemas.Host
	log        *slog.Logger
	watch      globSet
	sensitive  globSet // sensitive_reads
	exclude    globSet
	excludeExe globSet
	users      userSet
	owners     owners
	cgroups    *hostinfo.CgroupCache
	scanner    *Scanner
	root       hostinfo.Root // where the host's files are

	objs       fileObjects
	ring       *kernel.Ring
	bootOffset int64 // wall clock minus CLOCK_BOOTTIME, ns

	ran atomic.Bool

	events, decodeErrors, filtered, truncated, statErrors, scanEvents atomic.Uint64
}

// New loads the file programs into the kernel and attaches them: for each feature, the
// first way this kernel and the configuration allow (see features). Changes are buffered in
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
	scanner, err := NewScanner(cfg, host, log, opts...)
	if err != nil {
		return nil, err
	}
	c := &Collector{
		cfg: cfg, host: host, log: log.With("collector", "file"),
		watch: newGlobSet(append(slices.Clone(cfg.Paths), cfg.ChangeOnlyPaths...)), sensitive: newGlobSet(cfg.SensitiveReads), exclude: newGlobSet(cfg.ExcludePaths),
		excludeExe: newGlobSet(cfg.ExcludeExecutables), users: newUserSet(cfg.ExcludeUsers),
		owners: newOwners(o.Root), cgroups: hostinfo.NewCgroupCache(o.Root, hostinfo.CgroupCacheEntries), scanner: scanner,
		root: o.Root,
	}
	kf, filter := c.watch.filter()
	ring, err := kernel.Open(kernel.Spec{
		Collector:  "file",
		Load:       loadFile,
		MaxEntries: map[string]uint32{fileMapEvents: uint32(cfg.RingBufferBytes)},
		Vars: []kernel.Var{
			{Name: fileVarSelfTgid, Value: uint32(os.Getpid())},
			{Name: fileVarFilterTops, Value: boolU32(filter)},
			{Name: fileVarSensitiveReads, Value: boolU32(len(cfg.SensitiveReads) > 0)},
			kernel.WakeupVar(cfg.RingBufferBytes),
		},
		Objects:  &c.objs,
		Events:   fileMapEvents,
		Drops:    fileMapDrops,
		Features: features(),
		Refuse:   kernel.Refusals("collectors.file.refuse", cfg.Refuse),
		Ring:     kernel.RingConfig{Name: "file", Dropped: "file events", RingBufferBytes: cfg.RingBufferBytes, Log: c.log},
	})
	if err != nil {
		return nil, err
	}
	c.ring = ring
	if err := c.open(kf); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// open fills the kernel's filters of watched paths and sensitive reads and finishes what New
// started.
func (c *Collector) open(kf kernelFilter) error {
	for top, v := range kf.tops {
		if err := c.objs.WatchedTops.Put(topKey(top), v); err != nil {
			return fmt.Errorf("fill watched_tops with %q: %w", top, err)
		}
	}
	for _, ts := range kf.seconds {
		key := fileSecondKey{Top: topKey(ts[0]), Second: topKey(ts[1])}
		if err := c.objs.WatchedSeconds.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("fill watched_seconds with %q: %w", ts[0]+"/"+ts[1], err)
		}
	}
	for _, g := range c.cfg.SensitiveReads {
		k, err := readFilterKey(g)
		if err != nil {
			return fmt.Errorf("collectors.file.sensitive_reads: %q: %w", g, err)
		}
		var key fileReadKey
		key.Prefixlen = uint32(len(k) * 8)
		for i, b := range k {
			key.Data[i] = int8(b)
		}
		if err := c.objs.ReadFilter.Put(key, uint8(1)); err != nil {
			return fmt.Errorf("fill read_filter with %q: %w", g, err)
		}
	}
	offset, err := kernel.BootTimeOffset()
	if err != nil {
		return err
	}
	c.bootOffset = offset
	return nil
}

// topKey is a path component as the kernel filter keys it: cut at topBytes-1, NUL padded.
func topKey(name string) fileTopKey {
	var key fileTopKey
	for i := 0; i < len(name) && i < topBytes-1; i++ {
		key.Name[i] = int8(name[i])
	}
	return key
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// The file collector's features (kernel.Feature), as reports and warnings name them.
const (
	FeatureWrites = "create and write events"
	FeatureRename = "rename events"
	FeatureDelete = "delete events"
	FeatureChmod  = "chmod events"
	FeatureChown  = "chown events"
	// FeatureCapabilities is setxattr of security.capability (file capabilities set).
	FeatureCapabilities = "capabilities-set events"
	// FeatureTimes is utimensat and its elders with given times (touch -d, -r).
	FeatureTimes = "times-set events"
	FeatureScans = "scans"
)

// features are what the collector does with its programs: each kind of change needs the
// syscall tracepoints of the calls that make it (some of which a kernel or architecture may
// lack: optional hooks). Sensitive reads ride on the open hooks of writes. Scans need no
// kernel program.
func features() []kernel.Feature {
	sys := func(name, prog string) kernel.Hook { return kernel.TracepointHook("syscalls", name, prog) }
	opt := func(name, prog string) kernel.Hook { return kernel.OptionalTracepointHook("syscalls", name, prog) }
	way := func(hooks ...kernel.Hook) []kernel.Way {
		return []kernel.Way{{Name: "syscall tracepoints", Hooks: hooks}}
	}
	return []kernel.Feature{
		{Name: FeatureWrites, Lost: "create and write events", Ways: way(
			sys("sys_enter_openat", fileProgEnterOpenat), sys("sys_exit_openat", fileProgExitOpen),
			opt("sys_enter_open", fileProgEnterOpen), opt("sys_exit_open", fileProgExitOpen),
			opt("sys_enter_creat", fileProgEnterCreat), opt("sys_exit_creat", fileProgExitOpen),
			opt("sys_enter_openat2", fileProgEnterOpenat2), opt("sys_exit_openat2", fileProgExitOpen),
			sys("sys_enter_write", fileProgEnterWrite), sys("sys_enter_writev", fileProgEnterWriteFamily),
			sys("sys_enter_pwrite64", fileProgEnterWriteFamily), sys("sys_enter_pwritev", fileProgEnterWriteFamily),
			opt("sys_enter_pwritev2", fileProgEnterWriteFamily), sys("sys_enter_ftruncate", fileProgEnterWriteFamily),
			sys("sys_enter_fallocate", fileProgEnterWriteFamily), sys("sys_enter_close", fileProgEnterClose),
			// A shell's redirection: the descriptor dup2'd onto stdout, written by the
			// command, released at its exit. Without these, such writes go unreported.
			opt("sys_enter_dup", fileProgEnterDup), opt("sys_exit_dup", fileProgExitDup),
			opt("sys_enter_dup2", fileProgEnterDup2), opt("sys_exit_dup2", fileProgExitDup),
			opt("sys_enter_dup3", fileProgEnterDup2), opt("sys_exit_dup3", fileProgExitDup),
			opt("sys_enter_fcntl", fileProgEnterFcntl), opt("sys_exit_fcntl", fileProgExitDup),
			opt("sys_enter_exit_group", fileProgEnterExitGroup),
			kernel.OptionalTracepointHook("sched", "sched_process_exit", fileProgExitProcess),
		)},
		{Name: FeatureRename, Lost: "rename events", Ways: way(
			sys("sys_enter_renameat2", fileProgEnterRenameat), sys("sys_exit_renameat2", fileProgExitPath),
			opt("sys_enter_renameat", fileProgEnterRenameat), opt("sys_exit_renameat", fileProgExitPath),
			opt("sys_enter_rename", fileProgEnterRename), opt("sys_exit_rename", fileProgExitPath),
		)},
		{Name: FeatureDelete, Lost: "delete events", Ways: way(
			sys("sys_enter_unlinkat", fileProgEnterUnlinkat), sys("sys_exit_unlinkat", fileProgExitPath),
			opt("sys_enter_unlink", fileProgEnterUnlink), opt("sys_exit_unlink", fileProgExitPath),
			opt("sys_enter_rmdir", fileProgEnterRmdir), opt("sys_exit_rmdir", fileProgExitPath),
		)},
		{Name: FeatureChmod, Lost: "chmod events", Ways: way(
			sys("sys_enter_fchmodat", fileProgEnterFchmodat), sys("sys_exit_fchmodat", fileProgExitPath),
			opt("sys_enter_fchmodat2", fileProgEnterFchmodat), opt("sys_exit_fchmodat2", fileProgExitPath),
			opt("sys_enter_chmod", fileProgEnterChmod), opt("sys_exit_chmod", fileProgExitPath),
			sys("sys_enter_fchmod", fileProgEnterFchmod), sys("sys_exit_fchmod", fileProgExitPath),
		)},
		{Name: FeatureChown, Lost: "chown events", Ways: way(
			sys("sys_enter_fchownat", fileProgEnterFchownat), sys("sys_exit_fchownat", fileProgExitPath),
			opt("sys_enter_chown", fileProgEnterChown), opt("sys_exit_chown", fileProgExitPath),
			opt("sys_enter_lchown", fileProgEnterChown), opt("sys_exit_lchown", fileProgExitPath),
			sys("sys_enter_fchown", fileProgEnterFchown), sys("sys_exit_fchown", fileProgExitPath),
		)},
		{Name: FeatureCapabilities, Lost: "capabilities-set events", Ways: way(
			sys("sys_enter_setxattr", fileProgEnterSetxattr), sys("sys_exit_setxattr", fileProgExitPath),
			sys("sys_enter_lsetxattr", fileProgEnterSetxattr), sys("sys_exit_lsetxattr", fileProgExitPath),
			sys("sys_enter_fsetxattr", fileProgEnterFsetxattr), sys("sys_exit_fsetxattr", fileProgExitPath),
			opt("sys_enter_setxattrat", fileProgEnterSetxattrat), opt("sys_exit_setxattrat", fileProgExitPath),
		)},
		{Name: FeatureTimes, Lost: "times-set events", Ways: way(
			sys("sys_enter_utimensat", fileProgEnterUtimensat), sys("sys_exit_utimensat", fileProgExitPath),
			opt("sys_enter_futimesat", fileProgEnterFutimesat), opt("sys_exit_futimesat", fileProgExitPath),
			opt("sys_enter_utimes", fileProgEnterUtimes), opt("sys_exit_utimes", fileProgExitPath),
			opt("sys_enter_utime", fileProgEnterUtimes), opt("sys_exit_utime", fileProgExitPath),
		)},
		{Name: FeatureScans, Ways: []kernel.Way{{Name: "user space"}}},
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
		Events:       c.events.Load(),
		KernelDrops:  c.ring.Drops(),
		DecodeErrors: c.decodeErrors.Load(),
		Filtered:     c.filtered.Load(),
		Truncated:    c.truncated.Load(),
		StatErrors:   c.statErrors.Load(),
		ScanEvents:   c.scanEvents.Load(),
		Scan:         c.scanner.Stats(),
	}
}

// Scan runs one scan now (see Scanner.Scan) and returns its events without emitting them.
// It waits for a scheduled scan in progress to finish.
func (c *Collector) Scan(ctx context.Context, progress func(done, total int)) ([]*schemas.FileEvent, error) {
	return c.scanner.Scan(ctx, progress)
}

// change is a decoded record waiting for its file to be statted.
type change struct {
	ev *schemas.FileEvent
}

// Run reads the ring buffer and runs scans (on start when scan_on_start, then every
// scan_interval) and calls emit for each event until ctx is done; then it closes the
// collector and returns nil. emit is called from one goroutine at a time; change events
// come in ring-buffer order. While emit blocks, reading stops and the kernel drops (and
// counts) what no longer fits in the ring buffer, so emit should stop blocking once ctx is
// done. Run returns an error only when reading fails for another reason than ctx being
// done; a failed scan is logged and retried at the next interval.
func (c *Collector) Run(ctx context.Context, emit func(*schemas.FileEvent)) error {
	if !c.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	defer c.close()

	var emitMu sync.Mutex
	emitOne := func(ev *schemas.FileEvent) {
		emitMu.Lock()
		defer emitMu.Unlock()
		emit(ev)
	}
	var wg sync.WaitGroup
	queue := make(chan change, pipelineDepth)
	wg.Go(func() { c.completeChanges(queue, emitOne) })
	readDone := make(chan struct{})
	wg.Go(func() { c.scanLoop(ctx, readDone, emitOne) })

	err := c.ring.Read(ctx, housekeepingEvery, func(raw []byte, now time.Time) { c.handle(raw, now, queue) }, func(time.Time) { c.ring.ReportDrops() })
	close(readDone)
	close(queue)
	wg.Wait()
	c.ring.ReportDrops()
	return err
}

// scanLoop runs the scheduled scans until ctx is done or reading stopped.
func (c *Collector) scanLoop(ctx context.Context, stop <-chan struct{}, emit func(*schemas.FileEvent)) {
	if c.cfg.ScanOnStart {
		c.scanAndEmit(ctx, emit)
	}
	if c.cfg.ScanInterval <= 0 {
		return
	}
	t := time.NewTicker(c.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
			c.scanAndEmit(ctx, emit)
		}
	}
}

func (c *Collector) scanAndEmit(ctx context.Context, emit func(*schemas.FileEvent)) {
	start := time.Now()
	events, err := c.scanner.Scan(ctx, nil)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("scan failed", "err", err)
		}
		return
	}
	for _, ev := range events {
		if ctx.Err() != nil {
			return
		}
		emit(ev)
		c.scanEvents.Add(1)
	}
	c.log.Info("scan done", "changes", len(events), "took", time.Since(start).Round(time.Millisecond))
}

// handle decodes one record, applies the filters and queues the change.
func (c *Collector) handle(raw []byte, now time.Time, queue chan<- change) {
	ch, err := c.decode(raw, now)
	if err != nil {
		c.decodeErrors.Add(1)
		c.log.Debug("undecodable file record", "error", err)
		return
	}
	if !c.wanted(ch) {
		c.filtered.Add(1)
		return
	}
	queue <- ch
}

// wanted applies the globs and the exclusions: a read must match sensitive_reads, file
// capabilities set anywhere are wanted, every other change must be under a watched path.
func (c *Collector) wanted(ch change) bool {
	f := &ch.ev.File
	switch ch.ev.Action {
	case schemas.ActionRead:
		if !c.sensitive.match(f.Path) {
			return false
		}
	case schemas.ActionSetCap:
	default:
		if !c.watch.match(f.Path) && (f.NewPath == "" || !c.watch.match(f.NewPath)) {
			return false
		}
		if c.exclude.match(f.Path) && (f.NewPath == "" || c.exclude.match(f.NewPath)) {
			return false
		}
	}
	p := &ch.ev.Process
	if p.File.Path != "" && len(c.excludeExe.globs) > 0 && c.excludeExe.match(p.File.Path) {
		return false
	}
	return !c.users.has(p.User.UID, p.User.Name)
}

// decode turns a record into a change. The executable and argv come from the kernel; the
// systemd unit and container id from /proc, read while the process likely still exists.
func (c *Collector) decode(raw []byte, now time.Time) (change, error) {
	var hdr fileFileEvent
	n, err := kernel.Decode(raw, &hdr)
	if err != nil {
		return change{}, fmt.Errorf("decode file record: %w", err)
	}
	action, ok := actions[fileFileOp(hdr.Op)]
	if !ok {
		return change{}, fmt.Errorf("record of unknown op %d", hdr.Op)
	}
	data := raw[n:]
	paths := make([]string, 0, 2)
	for i := range 2 {
		if i == 1 && action != schemas.ActionRename {
			break
		}
		p, rest, err := decodePath(data, hdr.DirDepth[i], hdr.DirLen[i], hdr.StrLen[i])
		if err != nil {
			return change{}, err
		}
		paths, data = append(paths, p), rest
	}
	if hdr.Flags&uint32(fileFileFlagFILE_FLAG_TRUNCATED) != 0 {
		c.truncated.Add(1)
	}
	ev := &schemas.FileEvent{
		Envelope: schemas.Envelope{EventID: schemas.NewEventIDAt(int64(hdr.KtimeNs) + c.bootOffset), Time: int64(hdr.KtimeNs) + c.bootOffset, Host: c.host, Kind: schemas.KindFile},
		Action:   action,
		File:     schemas.TargetFile{Path: paths[0], Name: filepath.Base(paths[0])},
	}
	if len(paths) > 1 {
		ev.File.NewPath = paths[1]
	}
	exe, data, err := decodePath(data, hdr.ExeDepth, hdr.ExeLen, 0)
	if err != nil {
		return change{}, err
	}
	if hdr.ExeLen == 0 {
		exe = ""
	}
	if uint64(hdr.ArgsLen) > uint64(len(data)) {
		return change{}, fmt.Errorf("file record: %d bytes of argv, %d present", hdr.ArgsLen, len(data))
	}
	cmdLine := joinArgs(data[:hdr.ArgsLen])
	if cmdLine == "" {
		cmdLine = kernel.CString(hdr.Comm[:])
	}
	cg := c.cgroups.Lookup(hdr.CgroupId, int(hdr.Pid))
	ev.Process = schemas.Actor{
		PID:         int32(hdr.Pid),
		CmdLine:     cmdLine,
		User:        schemas.User{UID: int64(hdr.Uid), Name: c.owners.user(hdr.Uid)},
		CgroupID:    int64(hdr.CgroupId),
		SystemdUnit: cg.SystemdUnit,
		ContainerID: cg.ContainerID,
	}
	if exe != "" {
		ev.Process.File = schemas.File{Path: exe, Name: filepath.Base(exe)}
	}
	return change{ev: ev}, nil
}

var actions = map[fileFileOp]string{
	fileFileOpFILE_OP_CREATE: schemas.ActionCreate,
	fileFileOpFILE_OP_WRITE:  schemas.ActionWrite,
	fileFileOpFILE_OP_RENAME: schemas.ActionRename,
	fileFileOpFILE_OP_DELETE: schemas.ActionDelete,
	fileFileOpFILE_OP_CHMOD:  schemas.ActionChmod,
	fileFileOpFILE_OP_CHOWN:  schemas.ActionChown,
	fileFileOpFILE_OP_READ:   schemas.ActionRead,
	fileFileOpFILE_OP_SETCAP: schemas.ActionSetCap,
	fileFileOpFILE_OP_UTIMES: schemas.ActionUtimes,
}

// decodePath reads one path of a record: the walked directory's components (leaf first),
// then the string the process passed, resolved against that directory.
func decodePath(data []byte, depth, dirLen, strLen uint32) (string, []byte, error) {
	if uint64(dirLen)+uint64(strLen) > uint64(len(data)) {
		return "", nil, fmt.Errorf("file record: %d bytes of path, %d present", dirLen+strLen, len(data))
	}
	names := strings.Split(string(bytes.TrimRight(data[:dirLen], "\x00")), "\x00")
	if depth == 0 || dirLen == 0 {
		names = nil
	}
	slices.Reverse(names)
	dir := "/" + strings.Join(names, "/")
	str := kernel.CString(data[dirLen : dirLen+strLen])
	rest := data[dirLen+strLen:]
	switch {
	case str == "":
		return filepath.Clean(dir), rest, nil
	case filepath.IsAbs(str):
		return filepath.Clean(str), rest, nil
	default:
		return filepath.Join(dir, str), rest, nil
	}
}

// joinArgs joins NUL-separated argv into a command line.
func joinArgs(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return ""
	}
	return schemas.JoinArgs(strings.Split(string(b), "\x00"))
}

// completeChanges stats (and for content changes hashes) each changed file, then emits it.
func (c *Collector) completeChanges(queue <-chan change, emit func(*schemas.FileEvent)) {
	for ch := range queue {
		c.fillFile(ch.ev)
		emit(ch.ev)
		c.events.Add(1)
	}
}

// fillFile sets the resulting owner, group and mode, and for written or renamed files the
// size and sha256 (a created file's contents come with its write event). A deleted file is
// not statted.
func (c *Collector) fillFile(ev *schemas.FileEvent) {
	if ev.Action == schemas.ActionDelete {
		return
	}
	path := ev.File.Path
	if ev.Action == schemas.ActionRename {
		path = ev.File.NewPath
	}
	a, err := lstatAttrs(c.root, path)
	if err != nil {
		c.statErrors.Add(1)
		return
	}
	f := &ev.File
	if ev.Action != schemas.ActionCreate { // a new file's contents come with its write event
		f.Size = a.Size
	}
	f.UID, f.GID, f.Mode, f.Mtime = int64(a.UID), int64(a.GID), modeString(a.Mode), a.MtimeNs
	f.Owner, f.Group = c.owners.user(a.UID), c.owners.group(a.GID)
	switch ev.Action {
	case schemas.ActionWrite, schemas.ActionRename:
		if a.Regular && a.Size <= c.cfg.HashMaxFileBytes {
			if sum, err := hashFile(c.root, path, c.cfg.HashMaxFileBytes); err == nil {
				f.SHA256 = sum
			}
		}
	}
}
