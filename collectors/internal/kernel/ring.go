package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Wake-ups (bpf/include/wakeup.h): a record wakes the reader when the data waiting in the
// ring crosses a multiple of wakeup_bytes (WakeupVar), instead of once per record, and the
// reader looks at the ring every PollInterval, so a record waits at most that long. Waking
// the reader for every event costs a context switch per event on the CPUs the workload runs
// on.
const PollInterval = 100 * time.Millisecond

// clockEvery is how many records the reader handles between two reads of the clock while
// records keep coming.
const clockEvery = 64

// WakeupVar sets wakeup_bytes for a ring of ringBytes: a sixteenth of it.
func WakeupVar(ringBytes int) Var { return Var{Name: "wakeup_bytes", Value: uint64(ringBytes / 16)} }

// RingConfig names a collector's ring buffer in errors and logs.
type RingConfig struct {
	Name            string // the collector: "read <Name> ring buffer: ..."
	Dropped         string // what the kernel drops: "<Dropped> dropped in the kernel: ring buffer full"
	RingBufferBytes int    // logged with the drops
	Log             *slog.Logger
	// BeforeStop, if set, runs once Read's context is done, before the records still in the
	// ring are read: the last chance to have the kernel write records.
	BeforeStop func()
}

// Ring owns the kernel side of one collector (Open builds it): its loaded objects, the
// links attaching its programs, the reader of its ring buffer and its per-CPU drop counter,
// and the report of what works on this host. Close releases them all; it is safe to call at
// any point of opening, and more than once.
type Ring struct {
	cfg    RingConfig
	objs   io.Closer
	hooks  []*hook     // programs attached to kernel hooks, which Pause detaches
	links  []link.Link // other links (iterators)
	iters  map[string]*link.Iter
	report Report
	reader *ringbuf.Reader
	drops  *ebpf.Map
	// poll is the ring's descriptor in the Go runtime's poller, for waiting (see wait).
	poll     *os.File
	pollConn syscall.RawConn

	// mu guards reading the kernel maps against closing them, and the hooks' links.
	mu          sync.Mutex
	closed      bool
	kernelDrops atomic.Uint64
	reported    uint64 // drops already logged; reading goroutine only
}

// NewRing returns a ring that will own objs (a bpf2go objects struct pointer, loaded or not
// yet).
func NewRing(cfg RingConfig, objs io.Closer) *Ring {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Ring{cfg: cfg, objs: objs}
}

// hook is a program attached to a kernel hook: how to attach it, and its link while attached.
type hook struct {
	what   string
	attach func() (link.Link, error)
	link   link.Link
}

// addHook keeps l, the link of a program attach attached, to be closed with the ring,
// detached by Pause and attached again (by calling attach) by Resume. what names it in
// errors.
func (r *Ring) addHook(what string, attach func() (link.Link, error), l link.Link) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, &hook{what: what, attach: attach, link: l})
}

// addIter keeps l, the link of the iterator program prog, to be closed with the ring.
func (r *Ring) addIter(prog string, l link.Link) {
	r.links = append(r.links, l)
	if it, ok := l.(*link.Iter); ok {
		if r.iters == nil {
			r.iters = make(map[string]*link.Iter)
		}
		r.iters[prog] = it
	}
}

// Iter returns the attached iterator program prog, or nil when Open did not attach it.
func (r *Ring) Iter(prog string) *link.Iter { return r.iters[prog] }

// Report says what the collector does on this host (see Open).
func (r *Ring) Report() Report { return r.report }

// Way returns the way Open took for the feature named feature; "" when it is off.
func (r *Ring) Way(feature string) string {
	for _, f := range r.report.Features {
		if f.Feature == feature {
			return f.Way
		}
	}
	return ""
}

// Pause detaches the programs from their hooks: the kernel runs none of them until Resume.
// Records already written are still read.
func (r *Ring) Pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	closeAll(r.detach(nil))
}

// detach takes the attached hooks' links out of them, appended to links; mu must be held.
func (r *Ring) detach(links []link.Link) []link.Link {
	for _, h := range r.hooks {
		if h.link != nil {
			links = append(links, h.link)
			h.link = nil
		}
	}
	return links
}

// closeAll closes links side by side: detaching a tracepoint waits for an RCU grace period,
// and waits that overlap end together.
func closeAll(links []link.Link) {
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Go(func() { l.Close() })
	}
	wg.Wait()
}

// Resume attaches the programs Pause detached again. On error, the ones attached stay so.
func (r *Ring) Resume() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("resume " + r.cfg.Name + " collector: closed")
	}
	for _, h := range r.hooks {
		if h.link != nil {
			continue
		}
		l, err := h.attach()
		if err != nil {
			return fmt.Errorf("resume %s collector: %s: %w", r.cfg.Name, h.what, err)
		}
		h.link = l
	}
	return nil
}

// Open starts reading events, the ring buffer map; drops is the per-CPU counter of the
// records the kernel could not write to it.
func (r *Ring) Open(events, drops *ebpf.Map) error {
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return fmt.Errorf("open %s ring buffer reader: %w", r.cfg.Name, err)
	}
	poll, pollConn, err := pollable(events)
	if err != nil {
		rd.Close()
		return fmt.Errorf("open %s ring buffer reader: %w", r.cfg.Name, err)
	}
	r.mu.Lock()
	r.reader, r.drops, r.poll, r.pollConn = rd, drops, poll, pollConn
	r.mu.Unlock()
	return nil
}

// pollable returns a non-blocking copy of the ring buffer map's descriptor as a file the
// Go runtime's poller watches (edge-triggered: each wake-up of the ring's readers makes it
// readable once), and its raw connection.
func pollable(events *ebpf.Map) (*os.File, syscall.RawConn, error) {
	fd, err := unix.FcntlInt(uintptr(events.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("duplicate ring buffer descriptor: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("ring buffer descriptor: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ring buffer")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// ReadMaps calls f while the kernel maps are open, so that they are not closed under it,
// and reports whether it did.
func (r *Ring) ReadMaps(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	f()
	return true
}

// Drops returns the records the kernel dropped so far, read from the kernel while the
// ring is open and as last read after it is closed.
func (r *Ring) Drops() uint64 {
	r.ReadMaps(r.readDrops)
	return r.kernelDrops.Load()
}

// readDrops copies the kernel's drop counter; mu must be held.
func (r *Ring) readDrops() {
	if r.drops == nil {
		return
	}
	if n, err := SumPerCPU(r.drops); err == nil {
		r.kernelDrops.Store(n)
	}
}

// Close reads the drop counter a last time and releases the reader, the links and the
// objects.
func (r *Ring) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.readDrops()
	if r.reader != nil {
		r.reader.Close()
		r.poll.Close()
	}
	closeAll(r.detach(r.links))
	r.objs.Close()
}

// Read calls handle with each record's bytes and about the time it was read (the clock is
// read after each wait and once per clockEvery records, so it may be behind by up to
// PollInterval), and chore at least every `every` (between records), until ctx is done;
// then it runs BeforeStop, hands over the records the ring holds at that point, and returns
// nil. The bytes are only valid during the call. Read returns an error when reading fails
// for another reason than ctx being done. It is called at most once, from the goroutine that
// owns the reported-drops count.
func (r *Ring) Read(ctx context.Context, every time.Duration, handle func(raw []byte, now time.Time), chore func(now time.Time)) error {
	var rec ringbuf.Record
	now := time.Now()
	nextChore := now.Add(every)
	// Stop waiting as soon as ctx is done (wait checks ctx after setting its deadline).
	defer context.AfterFunc(ctx, func() { r.poll.SetReadDeadline(time.Now()) })()
	r.reader.SetDeadline(now) // in the past from now on: the reader never waits, wait does
	for {
		if ctx.Err() != nil {
			return r.drain(handle)
		}
		// The ring's records, read without waiting, until it is empty.
		for n := 1; ; n++ {
			err := r.reader.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s ring buffer: %w", r.cfg.Name, err)
			}
			handle(rec.RawSample, now)
			if n%clockEvery == 0 {
				now = time.Now()
				if !now.Before(nextChore) {
					chore(now)
					nextChore = now.Add(every)
				}
			}
		}
		now = time.Now()
		if !now.Before(nextChore) {
			chore(now)
			nextChore = now.Add(every)
		}
		deadline := nextChore
		if poll := now.Add(PollInterval); poll.Before(deadline) {
			deadline = poll
		}
		if err := r.wait(ctx, deadline); err != nil {
			return fmt.Errorf("read %s ring buffer: %w", r.cfg.Name, err)
		}
		now = time.Now()
	}
}

// wait returns when the kernel wakes the ring's readers, at deadline, or once ctx is done
// (Read's AfterFunc moves the deadline). It waits in the Go runtime's poller, on a copy of
// the ring's descriptor, not in a blocking system call: a thread blocked in a system call
// has the runtime's monitor take its processor back and then poll every 20 µs for a while,
// at every wait.
func (r *Ring) wait(ctx context.Context, deadline time.Time) error {
	if r.reader.AvailableBytes() > 0 {
		return nil
	}
	if err := r.poll.SetReadDeadline(deadline); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	err := r.pollConn.Read(func(uintptr) bool { return r.reader.AvailableBytes() > 0 })
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}

// drain runs BeforeStop, then hands over the records in the ring, as many as it holds now.
func (r *Ring) drain(handle func(raw []byte, now time.Time)) error {
	if r.cfg.BeforeStop != nil {
		r.cfg.BeforeStop()
	}
	avail := r.reader.AvailableBytes()
	var rec ringbuf.Record
	now := time.Now()
	for read := 0; read < avail; { // Read's deadline, in the past, holds: nothing waits
		err := r.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil
		case err != nil:
			return fmt.Errorf("read %s ring buffer: %w", r.cfg.Name, err)
		}
		handle(rec.RawSample, now)
		read += (len(rec.RawSample)+7)&^7 + 8 // an 8-byte header, the sample padded to 8 bytes
	}
	return nil
}

// ReportDrops logs the kernel drops since the last report. Call it from the goroutine
// that calls Read, or after Read returned.
func (r *Ring) ReportDrops() {
	total := r.Drops()
	if total > r.reported {
		r.cfg.Log.Warn(r.cfg.Dropped+" dropped in the kernel: ring buffer full",
			"dropped", total-r.reported, "dropped_total", total, "ring_buffer_bytes", r.cfg.RingBufferBytes)
		r.reported = total
	}
}
