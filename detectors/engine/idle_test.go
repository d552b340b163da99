package engine_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// TestAdvanceIdleClosesOnlyDueWindows: an idle partition's clock moves only when that closes
// a window, never backwards, and the clock it moved to is written to the changelog.
func TestAdvanceIdleClosesOnlyDueWindows(t *testing.T) {
	const lateness = 5 * time.Second
	burst := []map[string]any{ // three failures in [0s, 60s) on partition 0
		authEvent(t, "a", 10, "h", "root", "failure"),
		authEvent(t, "b", 20, "h", "root", "failure"),
		authEvent(t, "c", 30, "h", "root", "failure"),
	}
	fired := []alertView{{"bf", "h|root", 3, 0, []string{"a", "b", "c"}}}
	for _, tc := range []struct {
		name      string
		events    bool
		part      int32
		to        []int64 // AdvanceIdle clock times, in seconds, one after another
		want      []alertView
		wantClock int64 // partition 0's clock written by the last call, in seconds; 0: none
	}{
		{name: "window not due", events: true, to: []int64{64}},
		{name: "window due", events: true, to: []int64{65}, want: fired, wantClock: 65},
		{name: "closes once", events: true, to: []int64{70, 80}, want: fired},
		{name: "never backwards", events: true, to: []int64{20, 25}},
		{name: "other partition", events: true, part: 1, to: []int64{1000}},
		{name: "no events", to: []int64{1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, engine.Options{AllowedLateness: lateness}, mustRule(t, bruteForce))
			if tc.events {
				process(t, e, burst...)
			}
			if _, err := e.Changes(); err != nil {
				t.Fatal(err)
			}
			var got []*engine.Alert
			var changes []engine.StateRecord
			for _, s := range tc.to {
				got = append(got, e.AdvanceIdle(tc.part, s*sec)...)
				pending := e.Pending()
				var err error
				if changes, err = e.Changes(); err != nil {
					t.Fatal(err)
				}
				if pending != (len(changes) > 0) {
					t.Errorf("after AdvanceIdle to %ds: Pending() = %v with %d changes", s, pending, len(changes))
				}
			}
			if d := cmp.Diff(tc.want, view(got)); d != "" {
				t.Errorf("alerts (-want +got):\n%s", d)
			}
			var clock int64
			for _, c := range changes {
				if string(c.Key) == string(engine.StateKey("\x00watermark", 0, "")) {
					var rec struct{ All int64 } // the clock of every kind, set by Advance
					if err := json.Unmarshal(c.Value, &rec); err != nil {
						t.Fatalf("clock value %q: %v", c.Value, err)
					}
					clock = rec.All / sec
				}
			}
			if clock != tc.wantClock {
				t.Errorf("clock written: got %ds, want %ds (0: none)", clock, tc.wantClock)
			}
		})
	}
}

// TestQuietKindClosesWithinLatenessPlusIdle: after a burst of identity failures the identity
// kind goes quiet for an hour, while network events of the host keep coming each second or
// nothing comes at all. The clock is simulated, a step per second: network events go through
// Process; the stage's idle tick (AdvanceIdle to now - idle_timeout once the partition has
// received nothing for idle_timeout) runs at every step. Either way the window must have
// closed once the clock reached its end plus the lateness plus the idle timeout.
func TestQuietKindClosesWithinLatenessPlusIdle(t *testing.T) {
	const (
		lateness = 5 * time.Second
		idle     = 10 * time.Second
		end      = 60 // the burst's window is [0s, 60s)
	)
	for _, tc := range []struct {
		name    string
		flowing bool // network events each second after the burst
	}{
		{name: "other kinds keep flowing", flowing: true},
		{name: "nothing at all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, engine.Options{AllowedLateness: lateness, IdleTimeout: idle}, mustRule(t, bruteForce))
			got := process(t, e,
				authEvent(t, "a", 10, "h", "root", "failure"),
				authEvent(t, "b", 20, "h", "root", "failure"),
				authEvent(t, "c", 30, "h", "root", "failure"))
			lastSeen := int64(30)
			closedAt := int64(-1)
			for now := int64(31); now <= 3600 && closedAt < 0; now++ {
				if tc.flowing {
					got = append(got, process(t, e, netEvent(t, fmt.Sprint("n", now), now, "h"))...)
					lastSeen = now
				}
				if now-lastSeen >= int64(idle/time.Second) {
					got = append(got, e.AdvanceIdle(0, (now-int64(idle/time.Second))*sec)...)
				}
				if len(got) > 0 {
					closedAt = now
				}
			}
			if d := cmp.Diff([]alertView{{"bf", "h|root", 3, 0, []string{"a", "b", "c"}}}, view(got)); d != "" {
				t.Fatalf("alerts (-want +got):\n%s", d)
			}
			if bound := end + int64((lateness+idle)/time.Second); closedAt > bound {
				t.Errorf("the window closed when the clock reached %ds, after its end plus the lateness plus the idle timeout (%ds)", closedAt, bound)
			}
			if closedAt < end+int64(lateness/time.Second) {
				t.Errorf("the window closed at %ds, before its end plus the lateness (%ds)", closedAt, end+int64(lateness/time.Second))
			}
		})
	}
}
