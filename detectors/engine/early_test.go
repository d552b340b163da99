package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// versionView is an alert as an early-alert test compares it.
type versionView struct {
	Count, Start, Time, Version int64 // Start and Time in seconds
	Open                        bool  // the summary says the window is still open
}

func versions(as []*engine.Alert) []versionView {
	var out []versionView
	for _, a := range as {
		out = append(out, versionView{a.Count, a.WindowStart / sec, a.Time / sec, a.Version, strings.Contains(a.Summary, "so far")})
	}
	return out
}

// TestEarlyThresholdAlerts: a threshold whose aggregate only grows alerts as soon as it passes
// its bound, before its window closes (event time), and again when the window closes, with the
// same id and time, a higher version and the final figures.
func TestEarlyThresholdAlerts(t *testing.T) {
	early := strings.Replace(bruteForce, "early: false\n", "", 1) // the default for count
	type ev struct {
		at   int64
		user string
	}
	fails := func(ats ...int64) []ev {
		var out []ev
		for _, at := range ats {
			out = append(out, ev{at, "root"})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		rule      string
		lateness  time.Duration
		events    []ev
		restore   bool          // move the state to a new engine through the changelog after the events
		more      []ev          // events after that
		wantEarly []versionView // raised by the events
		wantClose []versionView // raised when the windows close
	}{{
		name:      "count alerts at the third failure and again at the close",
		rule:      early,
		events:    fails(10, 20, 30, 40),
		wantEarly: []versionView{{3, 0, 10, 1, true}},
		wantClose: []versionView{{4, 0, 10, 2, false}},
	}, {
		name:      "the final alert keeps the early one's time when a late event came before it",
		rule:      early,
		lateness:  30 * time.Second,
		events:    fails(20, 30, 40, 15),
		wantEarly: []versionView{{3, 0, 20, 1, true}},
		wantClose: []versionView{{4, 0, 20, 2, false}},
	}, {
		name:      "restored from the changelog, the final alert replaces the early one",
		rule:      early,
		events:    fails(10, 20, 30),
		restore:   true,
		more:      fails(50),
		wantEarly: []versionView{{3, 0, 10, 1, true}},
		wantClose: []versionView{{4, 0, 10, 2, false}},
	}, {
		name:      "early false alerts at the close only",
		rule:      bruteForce,
		events:    fails(10, 20, 30, 40),
		wantClose: []versionView{{4, 0, 10, 1, false}},
	}, {
		name:   "below the bound no alert",
		rule:   early,
		events: fails(10, 20, 70),
	}, {
		name: "sliding: the early window is the one alerted, the earlier windows overlapping it are not",
		rule: strings.Replace(early, "threshold: {value: 3}", "threshold: {value: 3, slide: 20s}", 1),
		// [0s, 60s) holds two, [20s, 80s) three when 65 comes: it alerts, and [0s, 60s) does
		// not when 58 (late, within the lateness) makes it three as well.
		lateness:  10 * time.Second,
		events:    fails(50, 55, 65, 58),
		wantEarly: []versionView{{3, 20, 50, 1, true}},
		wantClose: []versionView{{4, 20, 50, 2, false}},
	}, {
		name:      "distinct counts grow too",
		rule:      strings.Replace(strings.Replace(early, "group_by: [host.name, identity.target_user]\n", "group_by: [host.name]\n", 1), "threshold: {value: 3}", "threshold: {aggregate: distinct, field: identity.target_user, op: '>', value: 1}", 1),
		events:    []ev{{1, "u0"}, {2, "u0"}, {3, "u1"}, {4, "u2"}},
		wantEarly: []versionView{{3, 0, 1, 1, true}},
		wantClose: []versionView{{4, 0, 1, 2, false}},
	}, {
		name:      "a bound that is a ceiling is judged at the close only",
		rule:      strings.Replace(early, "threshold: {value: 3}", "threshold: {value: 3, op: '<'}", 1),
		events:    fails(10, 20),
		wantClose: []versionView{{2, 0, 10, 1, false}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			opt := engine.Options{AllowedLateness: tc.lateness}
			e := mustEngine(t, opt, mustRule(t, tc.rule))
			var got []*engine.Alert
			for i, ev := range append(tc.events, tc.more...) {
				if tc.restore && i == len(tc.events) {
					changes, err := e.Changes()
					if err != nil {
						t.Fatal(err)
					}
					e = mustEngine(t, opt, mustRule(t, tc.rule))
					for _, c := range changes {
						if err := e.Restore(c.Key, c.Value); err != nil {
							t.Fatal(err)
						}
					}
				}
				got = append(got, process(t, e, authEvent(t, fmt.Sprint("e", i), ev.at, "h", ev.user, "failure"))...)
			}
			if d := cmp.Diff(tc.wantEarly, versions(got)); d != "" {
				t.Errorf("alerts before the close (-want +got):\n%s", d)
			}
			closed := e.Advance(0, 1e6*sec)
			if d := cmp.Diff(tc.wantClose, versions(closed)); d != "" {
				t.Errorf("alerts at the close (-want +got):\n%s", d)
			}
			if len(got) > 0 && len(closed) > 0 && got[0].AlertID != closed[0].AlertID {
				t.Errorf("the final alert's id %s is not the early alert's %s", closed[0].AlertID, got[0].AlertID)
			}
		})
	}
}

// TestEarlySpikeAlerts: a spike rule with early: true alerts when the interval being filled
// passes the baseline's bound, and again, final, when the interval closes.
func TestEarlySpikeAlerts(t *testing.T) {
	const spike = `id: sp
title: Spike
severity: medium
source: identity
kind: spike
condition: action == "auth"
group_by: [host.name]
spike: {interval: 10s, baseline: 3, min_baseline: 3, method: ratio, ratio: 2}
`
	for _, tc := range []struct {
		name      string
		rule      string
		times     []int64
		wantEarly []versionView
		wantClose []versionView
	}{{
		name:      "early",
		rule:      spike + "early: true\n",
		times:     []int64{1, 11, 21, 31, 32, 33},
		wantEarly: []versionView{{2, 30, 31, 1, true}},
		wantClose: []versionView{{3, 30, 31, 2, false}},
	}, {
		name:      "not early by default",
		rule:      spike,
		times:     []int64{1, 11, 21, 31, 32, 33},
		wantClose: []versionView{{3, 30, 31, 1, false}},
	}, {
		name:  "no spike",
		rule:  spike + "early: true\n",
		times: []int64{1, 11, 21, 31},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, engine.Options{}, mustRule(t, tc.rule))
			var got []*engine.Alert
			for i, at := range tc.times {
				got = append(got, process(t, e, authEvent(t, fmt.Sprint("e", i), at, "h", "root", "failure"))...)
			}
			if d := cmp.Diff(tc.wantEarly, versions(got)); d != "" {
				t.Errorf("alerts before the close (-want +got):\n%s", d)
			}
			closed := e.Advance(0, 1e6*sec)
			if d := cmp.Diff(tc.wantClose, versions(closed)); d != "" {
				t.Errorf("alerts at the close (-want +got):\n%s", d)
			}
			if len(got) > 0 && len(closed) > 0 && got[0].AlertID != closed[0].AlertID {
				t.Errorf("the final alert's id %s is not the early alert's %s", closed[0].AlertID, got[0].AlertID)
			}
		})
	}
}

// TestEarlyOptionRefused: early is refused where an early alert could be wrong or means
// nothing, with the key's line.
func TestEarlyOptionRefused(t *testing.T) {
	for _, tc := range []struct{ name, rule, want string }{
		{"match", "id: m\ntitle: M\nseverity: low\nsource: identity\nkind: match\ncondition: action == 'auth'\nearly: true\n",
			"test.yaml:7: early: applies to threshold and spike rules only"},
		{"ceiling", strings.Replace(bruteForce, "threshold: {value: 3}\nearly: false", "threshold: {value: 3, op: '<='}\nearly: true", 1),
			"test.yaml:10: early: needs threshold.op > or >="},
		{"spike down", "id: s\ntitle: S\nseverity: low\nsource: identity\nkind: spike\ncondition: action == 'auth'\n" +
			"spike: {interval: 1m, direction: down}\nearly: true\n", "test.yaml:8: early: a drop shows only when its interval closes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := engine.ParseRule("test.yaml", []byte(tc.rule))
			if !strings.Contains(ps.Error(), tc.want) {
				t.Errorf("problems %q do not contain %q", ps.Error(), tc.want)
			}
		})
	}
}
