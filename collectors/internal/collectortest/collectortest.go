// Package collectortest runs a collector in a test and waits for its events; the
// collectors' tests share it.
//
// In: a collector's Run method. Out: the channel its events arrive on, and the first event
// a predicate accepts. Cleanup stops the collector and fails the test when Run returned an
// error.
package collectortest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
)

// Run starts run (a collector's Run method) in a goroutine and returns the channel its
// events arrive on, buffering up to buffer of them; emit stops blocking once the test ends.
// Cleanup cancels run's context, waits for it to return and checks that it returned nil.
func Run[E any](t testing.TB, run func(context.Context, func(E)) error, buffer int) <-chan E {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan E, buffer)
	runErr := make(chan error, 1)
	go func() {
		runErr <- run(ctx, func(e E) {
			select {
			case events <- e:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return events
}

// WaitEvent returns the first event from events that match accepts, failing the test
// (with what in the message) when none came within limit.
func WaitEvent[E any](t testing.TB, events <-chan E, limit time.Duration, what string, match func(E) bool) E {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case e := <-events:
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within %v", what, limit)
			var zero E
			return zero
		}
	}
}

// CheckLayout checks that kernel.Decode reads a record of type T as encoding/binary does,
// from random bytes: same size, same fields. T must be a bpf2go record type.
func CheckLayout[T any](t *testing.T) {
	t.Helper()
	var zero T
	raw := make([]byte, binary.Size(zero)+7)
	for i := range raw {
		raw[i] = byte(rand.IntN(256))
	}
	var want, got T
	wn, err := binary.Decode(raw, binary.LittleEndian, &want)
	if err != nil {
		t.Fatalf("%T: binary.Decode: %v", zero, err)
	}
	gn, err := kernel.Decode(raw, &got)
	if err != nil {
		t.Fatalf("%T: kernel.Decode: %v", zero, err)
	}
	if wn != gn || !reflect.DeepEqual(want, got) {
		t.Errorf("%T: kernel.Decode read %d bytes as %+v, encoding/binary %d bytes as %+v", zero, gn, got, wn, want)
	}
	if _, err := kernel.Decode(raw[:gn-1], &got); err == nil {
		t.Errorf("%T: kernel.Decode of a short record: no error", zero)
	}
}

// ProgramRuns is what the kernel counted of the runs of one or more BPF programs while its
// statistics were on (EnableProgramStats).
type ProgramRuns struct {
	Runs    uint64
	Runtime time.Duration
}

// EnableProgramStats has the kernel count the runs and run time of every BPF program
// (kernel.bpf_stats_enabled) until the returned closer is closed. Counting costs each run
// two clock reads, so measure timings with it off.
func EnableProgramStats() (io.Closer, error) {
	return ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
}

// OwnPrograms returns the kernel's counts for the BPF programs this process holds, summed by
// program name: the programs of the collectors it runs, and no other process's.
func OwnPrograms() (map[string]ProgramRuns, error) {
	fds, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		return nil, fmt.Errorf("list own descriptors: %w", err)
	}
	seen := make(map[ebpf.ProgramID]bool)
	out := make(map[string]ProgramRuns)
	for _, fd := range fds {
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		_, rest, ok := strings.Cut(string(info), "\nprog_id:")
		if !ok {
			continue
		}
		line, _, _ := strings.Cut(rest, "\n")
		id, err := strconv.ParseUint(strings.TrimSpace(line), 10, 32)
		if err != nil || seen[ebpf.ProgramID(id)] {
			continue
		}
		seen[ebpf.ProgramID(id)] = true
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue // unloaded meanwhile
		}
		pi, err := p.Info()
		if err == nil {
			var st *ebpf.ProgramStats
			if st, err = p.Stats(); err == nil {
				r := out[pi.Name]
				r.Runs += st.RunCount
				r.Runtime += st.Runtime
				out[pi.Name] = r
			}
		}
		p.Close()
		if err != nil {
			return nil, fmt.Errorf("read BPF program %d: %w", id, err)
		}
	}
	return out, nil
}
