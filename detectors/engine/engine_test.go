package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

const sec = int64(time.Second)

// mustRule parses one rule from YAML.
func mustRule(t *testing.T, yml string) *engine.Rule {
	t.Helper()
	r, ps := engine.ParseRule("test.yaml", []byte(yml))
	if len(ps) > 0 {
		t.Fatalf("rule refused:\n%s", ps.Error())
	}
	return r
}

func mustEngine(t *testing.T, opt engine.Options, rules ...*engine.Rule) *engine.Engine {
	t.Helper()
	e, err := engine.New(rules, opt)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// authEvent is an identity event at t seconds.
func authEvent(t *testing.T, id string, at int64, host, user, result string) map[string]any {
	t.Helper()
	ev, err := engine.FixtureEvent("identity", map[string]any{
		"time": at * sec, "host": map[string]any{"id": host, "name": host}, "action": "auth",
		"identity": map[string]any{"target_user": user, "result": result}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

const bruteForce = `id: bf
title: Brute force
severity: high
source: identity
kind: threshold
condition: action == "auth" && identity.result == "failure"
group_by: [host.name, identity.target_user]
window: 1m
threshold: {value: 3}
early: false
`

type alertView struct {
	Rule, Key string
	Count     int64
	Start     int64
	Evidence  []string
}

func view(as []*engine.Alert) []alertView {
	var out []alertView
	for _, a := range as {
		out = append(out, alertView{a.RuleID, a.GroupKey, a.Count, a.WindowStart / sec, a.Evidence})
	}
	return out
}

func process(t *testing.T, e *engine.Engine, evs ...map[string]any) []*engine.Alert {
	t.Helper()
	var out []*engine.Alert
	for _, ev := range evs {
		as, err := e.Process(0, ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, as...)
	}
	return out
}

func TestWatermarkAndLateness(t *testing.T) {
	e := mustEngine(t, engine.Options{AllowedLateness: 10 * time.Second}, mustRule(t, bruteForce))
	got := process(t, e,
		authEvent(t, "a", 10, "h", "root", "failure"),
		authEvent(t, "b", 20, "h", "root", "failure"),
		authEvent(t, "c", 65, "h", "root", "failure"), // watermark 55s: [0s, 60s) stays open
		authEvent(t, "d", 55, "h", "root", "failure"), // out of order but within lateness: counted
	)
	if len(got) != 0 {
		t.Fatalf("alert before the window closed: %+v", view(got))
	}
	got = process(t, e,
		authEvent(t, "e", 80, "h", "root", "failure"), // watermark 70s closes [0s, 60s)
		authEvent(t, "f", 30, "h", "root", "failure"), // older than the watermark: late
	)
	want := []alertView{{"bf", "h|root", 3, 0, []string{"a", "b", "d"}}}
	if d := cmp.Diff(want, view(got)); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
	if st := e.Stats(); st.Late != 1 {
		t.Errorf("late events: got %d, want 1", st.Late)
	}
}

func TestThresholdAggregatesAndSliding(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		times      []int64
		want       []alertView
	}{
		{"tumbling count below bound", "threshold: {value: 3}", []int64{1, 2, 61, 62}, nil},
		{"tumbling count", "threshold: {value: 3}", []int64{1, 2, 3, 61}, []alertView{{"bf", "h|root", 3, 0, []string{"e1", "e2", "e3"}}}},
		{"sliding spans tumbling boundary", "threshold: {value: 3, slide: 20s}", []int64{50, 55, 65},
			[]alertView{{"bf", "h|root", 3, 20, []string{"e1", "e2", "e3"}}}},
		{"sliding fires once per window", "threshold: {value: 2, slide: 20s}", []int64{50, 55, 65, 70},
			[]alertView{{"bf", "h|root", 2, 0, []string{"e1", "e2"}}, {"bf", "h|root", 2, 60, []string{"e3", "e4"}}}},
		{"distinct users", "group_by: [host.name]\nthreshold: {aggregate: distinct, field: identity.target_user, op: '>', value: 1}", []int64{1, 2, 3},
			[]alertView{{"bf", "h", 3, 0, []string{"e1", "e2", "e3"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := strings.Replace(bruteForce, "threshold: {value: 3}\n", tc.spec+"\n", 1)
			if strings.Contains(tc.spec, "group_by") {
				spec = strings.Replace(spec, "group_by: [host.name, identity.target_user]\n", "", 1)
			}
			e := mustEngine(t, engine.Options{}, mustRule(t, spec))
			var got []*engine.Alert
			for i, at := range tc.times {
				user := "root"
				if strings.Contains(tc.name, "distinct") {
					user = fmt.Sprint("u", i)
				}
				got = append(got, process(t, e, authEvent(t, fmt.Sprint("e", i+1), at, "h", user, "failure"))...)
			}
			got = append(got, e.Advance(0, 1e6*sec)...)
			if d := cmp.Diff(tc.want, view(got)); d != "" {
				t.Errorf("alerts (-want +got):\n%s", d)
			}
		})
	}
}

func TestSequenceKinds(t *testing.T) {
	const base = `id: seq
title: Seq
severity: high
source: identity
kind: sequence
group_by: [host.name, identity.target_user]
window: 1m
sequence:
`
	for _, tc := range []struct {
		name, steps string
		events      [][2]any // time, result
		want        int
	}{
		{"ordered completes", "  steps: [{condition: 'identity.result == \"failure\"', count: 2}, {condition: 'identity.result == \"success\"'}]",
			[][2]any{{1, "failure"}, {2, "failure"}, {3, "success"}}, 1},
		{"ordered out of order", "  steps: [{condition: 'identity.result == \"failure\"', count: 2}, {condition: 'identity.result == \"success\"'}]",
			[][2]any{{1, "failure"}, {2, "success"}, {3, "failure"}}, 0},
		{"ordered too slow", "  steps: [{condition: 'identity.result == \"failure\"'}, {condition: 'identity.result == \"success\"'}]",
			[][2]any{{1, "failure"}, {90, "success"}}, 0},
		{"unordered", "  unordered: true\n  steps: [{condition: 'identity.result == \"failure\"'}, {condition: 'identity.result == \"success\"'}]",
			[][2]any{{1, "success"}, {2, "failure"}}, 1},
		{"trailing absent fires at close", "  steps: [{condition: 'identity.result == \"failure\"'}, {condition: 'identity.result == \"success\"', absent: true}]",
			[][2]any{{1, "failure"}, {200, "other"}}, 1},
		{"trailing absent occurred", "  steps: [{condition: 'identity.result == \"failure\"'}, {condition: 'identity.result == \"success\"', absent: true}]",
			[][2]any{{1, "failure"}, {30, "success"}, {200, "other"}}, 0},
		{"middle absent occurred", "  steps: [{condition: 'identity.result == \"failure\"'}, {condition: 'identity.result == \"success\"', absent: true}, {condition: 'identity.result == \"error\"'}]",
			[][2]any{{1, "failure"}, {2, "success"}, {3, "error"}}, 0},
		{"middle absent did not occur", "  steps: [{condition: 'identity.result == \"failure\"'}, {condition: 'identity.result == \"success\"', absent: true}, {condition: 'identity.result == \"error\"'}]",
			[][2]any{{1, "failure"}, {3, "error"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, engine.Options{}, mustRule(t, base+tc.steps+"\n"))
			var got []*engine.Alert
			for i, ev := range tc.events {
				got = append(got, process(t, e, authEvent(t, fmt.Sprint("e", i), int64(ev[0].(int)), "h", "root", ev[1].(string)))...)
			}
			got = append(got, e.Advance(0, 1e6*sec)...)
			if len(got) != tc.want {
				t.Errorf("got %d alerts, want %d: %+v", len(got), tc.want, view(got))
			}
		})
	}
}

func TestStateEvictionIsBoundedAndCounted(t *testing.T) {
	e := mustEngine(t, engine.Options{MaxStateKeys: 2}, mustRule(t, bruteForce))
	process(t, e, authEvent(t, "a", 1, "h1", "root", "failure"), authEvent(t, "b", 2, "h2", "root", "failure"),
		authEvent(t, "c", 3, "h3", "root", "failure"))
	if st := e.Stats(); st.Keys != 2 || st.Evicted != 1 {
		t.Errorf("stats: got %+v, want 2 keys and 1 eviction", st)
	}
	changes, err := e.Changes()
	if err != nil {
		t.Fatal(err)
	}
	var tombstones []string
	for _, c := range changes {
		if c.Value == nil {
			tombstones = append(tombstones, strings.ReplaceAll(string(c.Key), "\x00", "/"))
		}
	}
	if d := cmp.Diff([]string{"bf/0/h1|root"}, tombstones); d != "" {
		t.Errorf("tombstones (-want +got):\n%s", d)
	}
}

func TestAlertsAreDeterministicAndThrottled(t *testing.T) {
	run := func() []*engine.Alert {
		e := mustEngine(t, engine.Options{MaxEvidence: 3}, mustRule(t, bruteForce))
		var evs []map[string]any
		for i := range 10 {
			evs = append(evs, authEvent(t, fmt.Sprint("e", i), int64(i+1), "h", "root", "failure"))
		}
		return append(process(t, e, evs...), e.Advance(0, 1e6*sec)...)
	}
	a, b := run(), run()
	want := []alertView{{"bf", "h|root", 10, 0, []string{"e0", "e1", "e2"}}}
	if d := cmp.Diff(want, view(a)); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
	if len(a) != 1 || len(b) != 1 || a[0].AlertID != b[0].AlertID || a[0].AlertID != engine.AlertID("bf", "h|root", fmt.Sprintf("%d-%d", 0, 60*sec)) {
		t.Errorf("alert ids differ between runs or from AlertID(rule, key, window)")
	}
}

func TestStateRestoresFromChangelog(t *testing.T) {
	r := mustRule(t, bruteForce)
	a := mustEngine(t, engine.Options{}, r)
	process(t, a, authEvent(t, "a", 1, "h", "root", "failure"), authEvent(t, "b", 2, "h", "root", "failure"))
	changes, err := a.Changes()
	if err != nil {
		t.Fatal(err)
	}
	b := mustEngine(t, engine.Options{}, mustRule(t, bruteForce))
	for _, c := range changes {
		if err := b.Restore(c.Key, c.Value); err != nil {
			t.Fatal(err)
		}
	}
	if wm, ok := b.Watermark(0); !ok || wm != 2*sec {
		t.Errorf("restored watermark: got %d %v, want %d", wm, ok, 2*sec)
	}
	got := append(process(t, b, authEvent(t, "c", 3, "h", "root", "failure")), b.Advance(0, 1e6*sec)...)
	want := []alertView{{"bf", "h|root", 3, 0, []string{"a", "b", "c"}}}
	if d := cmp.Diff(want, view(got)); d != "" {
		t.Errorf("alerts after restore (-want +got):\n%s", d)
	}
}

// constCond is a condition built in Go, as the Sigma loader builds them.
type constCond struct{ result string }

func (c constCond) Match(act map[string]any) (bool, error) {
	id, _ := act["identity"].(map[string]any)
	return id["result"] == c.result, nil
}

func TestRulesBuiltInGo(t *testing.T) {
	r := &engine.Rule{ID: "go", Title: "Built in Go", Severity: "low", Source: "identity", Kind: engine.KindSequence,
		GroupBy: []string{"identity.target_user"}, Window: time.Minute,
		Sequence: &engine.Sequence{Steps: []engine.Step{{Cond: constCond{"failure"}, Count: 2}, {Cond: constCond{"success"}}}}}
	e := mustEngine(t, engine.Options{}, r)
	got := process(t, e, authEvent(t, "a", 1, "h", "root", "failure"), authEvent(t, "b", 2, "h", "root", "failure"),
		authEvent(t, "c", 3, "h", "root", "success"))
	want := []alertView{{"go", "root", 3, 1, []string{"a", "b", "c"}}}
	if d := cmp.Diff(want, view(got)); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
	bad := &engine.Rule{ID: "bad", Title: "Bad", Severity: "low", Source: "identity", Kind: engine.KindThreshold, Cond: constCond{}}
	if _, err := engine.New([]*engine.Rule{bad}, engine.Options{}); err == nil || !strings.Contains(err.Error(), "rule bad:") {
		t.Errorf("rule without window and threshold: got %v, want a problem naming it", err)
	}
	if err := e.SetRules([]*engine.Rule{bad}); err == nil || e.Rules() != 1 {
		t.Errorf("invalid reload: got %v with %d rules, want refused and the running rule kept", err, e.Rules())
	}
}

func TestInvalidRulesAreRefusedWithFileAndLine(t *testing.T) {
	fsys := fstest.MapFS{
		"r/bad-field.yaml":     {Data: []byte("id: a\ntitle: A\nseverity: high\nsource: process\nkind: match\ncondition: process.nosuch == 1\n")},
		"r/bad-type.yaml":      {Data: []byte("id: b\ntitle: B\nseverity: high\nsource: process\nkind: match\ncondition: process.pid == 'x'\n")},
		"r/bad-sev.yaml":       {Data: []byte("id: c\ntitle: C\nseverity: urgent\nsource: process\nkind: match\ncondition: action == 'exec'\nextra: 1\n")},
		"r/bad-window.yaml":    {Data: []byte("id: d\ntitle: D\nseverity: low\nsource: identity\nkind: threshold\ncondition: action == 'auth'\nwindow: 1m\nthreshold:\n  value: 2\n  slide: 7s\n  aggregate: sum\n  field: identity.user\ngroup_by: [identity.nope]\n")},
		"r/good.yaml":          {Data: []byte("id: e\ntitle: E\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n")},
		"r/good.fixtures.yaml": {Data: []byte("not: a rule\n")},
	}
	_, err := engine.LoadFS(fsys, "r")
	if err == nil {
		t.Fatal("rule set with invalid rules was accepted")
	}
	for _, want := range []string{
		"r/bad-field.yaml:6: condition: ERROR: <input>:1:8: undefined field 'nosuch'",
		"r/bad-type.yaml:6: condition: ERROR: <input>:1:13: found no matching overload for '_==_' applied to '(int, string)'",
		"r/bad-sev.yaml:3: severity: \"urgent\"", "r/bad-sev.yaml:7: unknown key \"extra\"",
		"r/bad-window.yaml:10: threshold.slide: 7s: must divide the window (1m0s)",
		"r/bad-window.yaml:12: threshold.field: identity.user is string, not a number",
		"r/bad-window.yaml:13: group_by.0: identity.nope: no field \"nope\" in identity events",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "good") {
		t.Errorf("good rule or fixture reported: %s", err)
	}
}
