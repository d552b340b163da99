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
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

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
