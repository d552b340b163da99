package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// netEvent is a network event at t seconds on host h.
func netEvent(t *testing.T, id string, at int64, host string) map[string]any {
	t.Helper()
	ev, err := engine.FixtureEvent("network", map[string]any{
		"time": at * sec, "host": map[string]any{"id": host, "name": host}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// step is one event of a clocks case: a network event, or an identity failure of h/root.
type step struct {
	kind string // "network" or "identity"
	id   string
	at   int64 // seconds
}

func (s step) event(t *testing.T) map[string]any {
	if s.kind == "network" {
		return netEvent(t, s.id, s.at, "h")
	}
	return authEvent(t, s.id, s.at, "h", "root", "failure")
}

// TestClocksPerKind: lateness is judged against each kind's clock, and the watermark that
// closes windows is the minimum of the active kinds' clocks (idle kinds left out).
func TestClocksPerKind(t *testing.T) {
	const lateness = time.Second
	for _, tc := range []struct {
		name       string
		steps      []step
		wantBefore []alertView // raised by the events themselves, before the end
		wantWM     int64       // watermark after the events, in seconds
		want       []alertView // raised when every clock then moves to the end
		wantLate   uint64
	}{{
		// A restart read a backlog of network events 5s ahead of the identity events of the
		// same host: with one clock per partition, the failures were late and never counted.
		name:   "network backlog ahead of identity",
		steps:  []step{{"network", "n1", 105}, {"identity", "a", 100}, {"identity", "b", 101}, {"identity", "c", 102}},
		wantWM: 104, // reached on the network clock alone, never backwards; [60s, 120s) stays open
		want:   []alertView{{"bf", "h|root", 3, 60, []string{"a", "b", "c"}}},
	}, {
		name: "late identity judged against the identity clock",
		steps: []step{{"network", "n1", 105}, {"identity", "a", 100}, {"identity", "b", 101}, {"identity", "c", 102},
			{"identity", "late", 100}, {"identity", "d", 101}},
		wantWM:   104,
		want:     []alertView{{"bf", "h|root", 4, 60, []string{"a", "b", "c", "d"}}},
		wantLate: 1,
	}, {
		name:   "active kind holds the window open",
		steps:  []step{{"identity", "a", 100}, {"identity", "b", 101}, {"identity", "c", 102}, {"network", "n1", 111}},
		wantWM: 101,
		want:   []alertView{{"bf", "h|root", 3, 60, []string{"a", "b", "c"}}},
	}, {
		name:       "idle kind left out of the watermark",
		steps:      []step{{"identity", "a", 100}, {"identity", "b", 101}, {"identity", "c", 102}, {"network", "n1", 125}},
		wantBefore: []alertView{{"bf", "h|root", 3, 60, []string{"a", "b", "c"}}},
		wantWM:     124,
	}, {
		name: "kind back from idleness into a closed window is left out",
		steps: []step{{"identity", "a", 100}, {"identity", "b", 101}, {"identity", "c", 102}, {"network", "n1", 125},
			{"identity", "closed", 103}, {"identity", "d", 121}, {"identity", "e", 122}, {"identity", "f", 123}},
		wantBefore: []alertView{{"bf", "h|root", 3, 60, []string{"a", "b", "c"}}},
		wantWM:     124, // never backwards
		want:       []alertView{{"bf", "h|root", 3, 120, []string{"d", "e", "f"}}},
		wantLate:   1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, engine.Options{AllowedLateness: lateness, IdleTimeout: 10 * time.Second}, mustRule(t, bruteForce))
			var before []*engine.Alert
			for _, s := range tc.steps {
				before = append(before, process(t, e, s.event(t))...)
			}
			if d := cmp.Diff(tc.wantBefore, view(before)); d != "" {
				t.Errorf("alerts of the events (-want +got):\n%s", d)
			}
			if wm, ok := e.Watermark(0); !ok || wm != tc.wantWM*sec {
				t.Errorf("watermark: got %v %v, want %ds", time.Duration(wm), ok, tc.wantWM)
			}
			if d := cmp.Diff(tc.want, view(e.Advance(0, 1e6*sec))); d != "" {
				t.Errorf("alerts at the end (-want +got):\n%s", d)
			}
			if got := e.Stats().Late; got != tc.wantLate {
				t.Errorf("late events: got %d, want %d", got, tc.wantLate)
			}
		})
	}
}

// TestClocksRestore: the clocks of every kind come back from the changelog, and a clock
// record of an older engine (one integer) applies to every kind.
func TestClocksRestore(t *testing.T) {
	clockKey := engine.StateKey("\x00watermark", 0, "")
	written := func(t *testing.T) []engine.StateRecord {
		t.Helper()
		a := mustEngine(t, engine.Options{AllowedLateness: time.Second}, mustRule(t, bruteForce))
		process(t, a, netEvent(t, "n1", 105, "h"), authEvent(t, "a", 100, "h", "root", "failure"))
		changes, err := a.Changes()
		if err != nil {
			t.Fatal(err)
		}
		return changes
	}
	for _, tc := range []struct {
		name     string
		records  func(t *testing.T) []engine.StateRecord
		steps    []step
		wantWM   int64 // seconds, after restore
		wantLate []string
	}{{
		name:     "per-kind clocks",
		records:  written,
		steps:    []step{{"identity", "id99", 99}, {"network", "net103", 103}, {"identity", "id98", 98}},
		wantWM:   104, // the watermark windows were closed at is restored too
		wantLate: []string{"net103", "id98"},
	}, {
		name: "old single clock applies to every kind",
		records: func(*testing.T) []engine.StateRecord {
			return []engine.StateRecord{{Key: clockKey, Value: []byte(fmt.Sprint(100 * sec))}}
		},
		steps:    []step{{"identity", "id99", 99}, {"network", "net98", 98}, {"network", "net106", 106}, {"identity", "id98", 98}},
		wantWM:   99,
		wantLate: []string{"net98", "id98"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustEngine(t, engine.Options{AllowedLateness: time.Second}, mustRule(t, bruteForce))
			for _, c := range tc.records(t) {
				if err := b.Restore(c.Key, c.Value); err != nil {
					t.Fatal(err)
				}
			}
			if wm, ok := b.Watermark(0); !ok || wm != tc.wantWM*sec {
				t.Errorf("restored watermark: got %v %v, want %ds", time.Duration(wm), ok, tc.wantWM)
			}
			var late []string
			for _, s := range tc.steps {
				before := b.Stats().Late
				process(t, b, s.event(t))
				if b.Stats().Late > before {
					late = append(late, s.id)
				}
			}
			if d := cmp.Diff(tc.wantLate, late); d != "" {
				t.Errorf("late events (-want +got):\n%s", d)
			}
		})
	}
	if err := mustEngine(t, engine.Options{}).Restore(clockKey, []byte("{bad")); err == nil || !strings.Contains(err.Error(), "partition 0") {
		t.Errorf("bad clock record: got %v, want an error naming the partition", err)
	}
}
