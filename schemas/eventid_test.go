package schemas

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestNewEventIDAt checks the ids' form (UUIDv7, RFC 9562 variant), that their first 48 bits
// are the event's millisecond, that they sort by event time across milliseconds, and that
// 200,000 ids made by 4 goroutines in the same millisecond are distinct.
func TestNewEventIDAt(t *testing.T) {
	at := time.Date(2026, 11, 27, 6, 0, 0, 123_456_789, time.UTC).UnixNano()
	id := NewEventIDAt(at)
	if !uuidV7.MatchString(id) {
		t.Fatalf("%s is not a UUIDv7", id)
	}
	ms, err := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64)
	if err != nil || ms != at/int64(time.Millisecond) {
		t.Errorf("%s: time field %d (%v), want %d", id, ms, err, at/int64(time.Millisecond))
	}
	if later := NewEventIDAt(at + int64(time.Millisecond)); later <= id {
		t.Errorf("id a millisecond later %s does not sort after %s", later, id)
	}
	if !uuidV7.MatchString(NewEventID()) {
		t.Errorf("NewEventID %s is not a UUIDv7", NewEventID())
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ids := make([]string, 50_000)
			for i := range ids {
				ids[i] = NewEventIDAt(at)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] {
					t.Errorf("duplicate id %s", id)
					return
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}

func BenchmarkNewEventIDAt(b *testing.B) {
	at := time.Now().UnixNano()
	for b.Loop() {
		NewEventIDAt(at)
	}
}

// TestEventIDs checks that the ids of an EventIDs have the form and time of NewEventIDAt's,
// are distinct over many blocks, and do not change as later ids are cut from the same or
// later blocks.
func TestEventIDs(t *testing.T) {
	at := time.Date(2026, 12, 6, 6, 0, 0, 987_654_321, time.UTC).UnixNano()
	var g EventIDs
	const n = 10*eventIDBlock + 3
	ids := make([]string, n)
	copies := make([]string, n)
	for i := range ids {
		ids[i] = g.At(at + int64(i)*int64(time.Millisecond))
		copies[i] = strings.Clone(ids[i])
	}
	seen := map[string]bool{}
	for i, id := range ids {
		if !uuidV7.MatchString(id) {
			t.Fatalf("id %d: %s is not a UUIDv7", i, id)
		}
		ms, err := strconv.ParseInt(strings.ReplaceAll(id[:13], "-", ""), 16, 64)
		if want := at/int64(time.Millisecond) + int64(i); err != nil || ms != want {
			t.Errorf("id %d: %s: time field %d (%v), want %d", i, id, ms, err, want)
		}
		if seen[id] {
			t.Errorf("duplicate id %s", id)
		}
		seen[id] = true
		if id != copies[i] {
			t.Errorf("id %d changed from %s to %s", i, copies[i], id)
		}
	}
}

func BenchmarkEventIDs(b *testing.B) {
	at := time.Now().UnixNano()
	var g EventIDs
	b.ReportAllocs()
	for b.Loop() {
		g.At(at)
	}
}
