package engine

import (
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/yamlsafe"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Rule fixtures sit next to a rule as <rule>.fixtures.yaml (or .yml, or .json): cases of
// events in and alerts expected out, run through a real Engine on event time.
//
//	cases:
//	  - name: five failures fire
//	    events:                       # fields of the source's schema; the rest are zero
//	      - {time: "2026-01-01T10:00:00Z", identity: {result: failure, target_user: root}}
//	    expect:                       # every alert, in order; only the keys given are compared
//	      - {count: 5, group_key: "web-1|root", severity: high}
//
// An event's kind defaults to the rule's source, its host to host-1, its event_id to
// <case>-<n>. A time is RFC 3339 or nanoseconds. After the last event every window closes.
// An expect key may be any alert field, or summary_contains. The alerts compared are those
// read downstream: an alert raised early and again when its window closed is one alert, its
// last version, in the place of its first.

// FixtureFile is the content of a fixtures file.
type FixtureFile struct {
	// Lateness is the allowed lateness for these cases. Default 0.
	Lateness time.Duration `yaml:"lateness"`
	// Throttle is the default throttle window (detector.throttle) for these cases; the rule's
	// own throttle applies regardless. Default 0: off, so that each case sees every alert.
	Throttle time.Duration `yaml:"throttle"`
	Cases    []FixtureCase `yaml:"cases"`
}

// FixtureCase is events in and the alerts they must raise (none when Expect is empty).
type FixtureCase struct {
	Name   string           `yaml:"name"`
	Events []map[string]any `yaml:"events"`
	Expect []map[string]any `yaml:"expect"`
}

// FixtureResult is the outcome of one case (or of a rule without fixtures: Case empty).
type FixtureResult struct {
	Rule   string
	File   string // the fixtures file
	Case   string
	Status string // pass, fail or none (no fixtures)
	Detail string // why it failed
	// Kinds is, for a rule that reads several event kinds (a Sigma auditd rule: one engine
	// rule per kind under one id), the case's events and the alerts they raised per kind,
	// every kind the rule reads listed; nil for a rule of one kind.
	Kinds map[string]KindCount
}

// KindCount is what a fixture case gave a rule of several kinds for one event kind: its
// events of that kind, and the alerts whose first evidence event is of that kind.
type KindCount struct {
	Events int
	Alerts int
}

// Fixture statuses.
const (
	FixturePass = "pass"
	FixtureFail = "fail"
	FixtureNone = "none"
)

// TestRules loads the rules under dir (formats as for LoadFS) and runs every rule's fixtures through the engine. The
// error is the rule set's problems, or a fixtures file that cannot be read.
func TestRules(fsys fs.FS, dir string, opt Options, formats ...Format) ([]FixtureResult, error) {
	rules, err := LoadFS(fsys, dir, formats...)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].File < rules[j].File })
	// The engine rules of one rule of several kinds (same file and id) run together, as in
	// the detector: a case's events of every kind reach them all.
	type group struct {
		file, id string
		rules    []*Rule
	}
	var groups []*group
	at := map[[2]string]*group{}
	for _, r := range rules {
		k := [2]string{r.File, r.ID}
		if g := at[k]; g != nil {
			g.rules = append(g.rules, r)
			continue
		}
		g := &group{file: r.File, id: r.ID, rules: []*Rule{r}}
		at[k] = g
		groups = append(groups, g)
	}
	var out []FixtureResult
	for _, g := range groups {
		file, ff, err := readFixtures(fsys, g.file)
		if err != nil {
			return out, err
		}
		if ff == nil {
			out = append(out, FixtureResult{Rule: g.id, Status: FixtureNone})
			continue
		}
		for i, c := range ff.Cases {
			name := c.Name
			if name == "" {
				name = fmt.Sprintf("case %d", i+1)
			}
			res := FixtureResult{Rule: g.id, File: file, Case: name, Status: FixturePass}
			o := opt
			o.AllowedLateness, o.Throttle = ff.Lateness, ff.Throttle
			kinds, d := runCase(g.rules, c, name, o)
			if d != "" {
				res.Status, res.Detail = FixtureFail, d
			}
			if len(g.rules) > 1 {
				res.Kinds = kinds
			}
			out = append(out, res)
		}
	}
	return out, nil
}

// readFixtures finds and parses the fixtures of a rule file; nil when it has none.
func readFixtures(fsys fs.FS, ruleFile string) (string, *FixtureFile, error) {
	base := strings.TrimSuffix(ruleFile, path.Ext(ruleFile))
	for _, ext := range []string{".fixtures.yaml", ".fixtures.yml", ".fixtures.json"} {
		data, why, err := readRuleFile(fsys, base+ext)
		if err != nil {
			continue
		}
		if why != "" {
			return base + ext, nil, fmt.Errorf("%s: %s", base+ext, why)
		}
		var ff FixtureFile
		if err := yamlsafe.Unmarshal(data, &ff, yamlsafe.DefaultLimits(), true); err != nil {
			return base + ext, nil, fmt.Errorf("%s:%d: %v", base+ext, yamlErrLine(err), err)
		}
		return base + ext, &ff, nil
	}
	return "", nil, nil
}

// runCase returns "" when the case passes, else what differed, and the case's events and
// alerts per event kind. The events are judged twice: as activation maps (Process) and as
// records decoded by their generated codecs (ProcessRecord), which must raise the same
// alerts. rs are the engine rules of one rule: one, or one per kind it reads; an event of a
// case of a rule of several kinds must say its kind.
func runCase(rs []*Rule, c FixtureCase, name string, opt Options) (map[string]KindCount, string) {
	kinds := map[string]KindCount{}
	var sources []string
	for _, r := range rs {
		kinds[r.Source] = KindCount{}
		sources = append(sources, r.Source)
	}
	for _, raw := range c.Events {
		k, ok := raw["kind"].(string)
		if !ok && len(rs) > 1 {
			continue // refused below: which kind it is is unknown
		}
		if !ok {
			k = rs[0].Source
		}
		kc := kinds[k]
		kc.Events++
		kinds[k] = kc
	}
	for _, records := range []bool{false, true} {
		e, err := New(rs, opt)
		if err != nil {
			return kinds, err.Error()
		}
		var alerts []*Alert
		kindOf := map[string]string{} // event id → kind
		for i, raw := range c.Events {
			if _, ok := raw["kind"]; !ok && len(rs) > 1 {
				return kinds, fmt.Sprintf("event %d: kind: required, the rule reads several kinds (%s)", i+1, strings.Join(sources, ", "))
			}
			ev, err := FixtureEvent(rs[0].Source, raw, fmt.Sprintf("%s-%d", strings.ReplaceAll(name, " ", "-"), i+1))
			if err != nil {
				return kinds, fmt.Sprintf("event %d: %v", i+1, err)
			}
			id, _ := ev["event_id"].(string)
			kindOf[id], _ = ev["kind"].(string)
			var as []*Alert
			if records {
				as, err = processAsRecord(e, ev)
			} else {
				as, err = e.Process(0, ev)
			}
			if err != nil {
				return kinds, fmt.Sprintf("event %d: %v", i+1, err)
			}
			alerts = append(alerts, as...)
		}
		alerts = append(alerts, e.Advance(0, math.MaxInt64/2)...)
		latest := Latest(alerts)
		if !records {
			for _, a := range latest {
				if len(a.Evidence) > 0 {
					k := kindOf[a.Evidence[0]]
					kc := kinds[k]
					kc.Alerts++
					kinds[k] = kc
				}
			}
		}
		if d := compareAlerts(c.Expect, latest); d != "" {
			if records {
				return kinds, "judged on the decoded record (the activation maps passed): " + d
			}
			return kinds, d
		}
	}
	return kinds, ""
}

// processAsRecord judges a fixture event as the detector does: decoded by its kind's
// generated codec.
func processAsRecord(e *Engine, ev map[string]any) ([]*Alert, error) {
	kind, _ := ev["kind"].(string)
	k, ok := schemas.Kinds.Lookup(kind)
	if !ok || k.Codec == nil {
		return e.Process(0, ev)
	}
	rec := k.Codec.New()
	if err := rec.FromNative(ev); err != nil {
		return nil, fmt.Errorf("as a %s record: %w", k.Codec.Schema, err)
	}
	return e.ProcessRecord(0, rec)
}

// Latest keeps the last version of each alert id, in the order the ids were first raised:
// the alerts as ClickHouse and the outputs end up holding them.
func Latest(alerts []*Alert) []*Alert {
	at := map[string]int{}
	var out []*Alert
	for _, a := range alerts {
		i, ok := at[a.AlertID]
		if !ok {
			at[a.AlertID] = len(out)
			out = append(out, a)
			continue
		}
		if a.Version >= out[i].Version {
			out[i] = a
		}
	}
	return out
}

// FixtureEvent builds an event from a fixture's fields over the zero event of its kind.
func FixtureEvent(source string, raw map[string]any, id string) (map[string]any, error) {
	kind := source
	if k, ok := raw["kind"].(string); ok {
		kind = k
	}
	ev, err := ZeroEvent(kind)
	if err != nil {
		return nil, err
	}
	ev["event_id"], ev["kind"] = id, kind
	ev["host"] = map[string]any{"id": "host-1", "name": "host-1"}
	if en, ok := raw["enrichment"].(map[string]any); ok {
		ev["enrichment"] = overlay(ZeroRecord(kind, "crumbs.Enrichment"), en, "crumbs.")
	}
	for k, v := range raw {
		if k == "enrichment" {
			continue
		}
		if k == "time" {
			t, err := fixtureTime(v)
			if err != nil {
				return nil, err
			}
			ev["time"] = t
			continue
		}
		if base, ok := ev[k].(map[string]any); ok {
			if vm, ok := v.(map[string]any); ok {
				ev[k] = overlay(base, vm, "")
				continue
			}
		}
		ev[k] = fromYAML(v)
	}
	return ev, nil
}

func fixtureTime(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return 0, fmt.Errorf("time %q: want RFC 3339 or nanoseconds: %w", x, err)
		}
		return t.UnixNano(), nil
	case time.Time:
		return x.UnixNano(), nil
	}
	return 0, fmt.Errorf("time %v: want RFC 3339 or nanoseconds", v)
}

// overlay sets the fields of add over base, recursively; optional records are given whole.
func overlay(base, add map[string]any, _ string) map[string]any {
	out := make(map[string]any, len(base)+len(add))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range add {
		if bm, ok := out[k].(map[string]any); ok {
			if vm, ok := v.(map[string]any); ok {
				out[k] = overlay(bm, vm, "")
				continue
			}
		}
		out[k] = fromYAML(v)
	}
	return out
}

// fromYAML turns YAML's decoded values into the event's: ints become int64.
func fromYAML(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = fromYAML(vv)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = fromYAML(vv)
		}
		return out
	case time.Time:
		return x.UnixNano()
	}
	return v
}

// compareAlerts checks the alerts against the expected ones, in order, on the keys given.
func compareAlerts(want []map[string]any, got []*Alert) string {
	var diffs []string
	for i := 0; i < max(len(want), len(got)); i++ {
		if i >= len(want) {
			diffs = append(diffs, fmt.Sprintf("unexpected alert %d: %s", i+1, got[i].Summary))
			continue
		}
		if i >= len(got) {
			diffs = append(diffs, fmt.Sprintf("missing alert %d: %v", i+1, want[i]))
			continue
		}
		g := got[i].Native()
		keys := make([]string, 0, len(want[i]))
		for k := range want[i] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv := want[i][k]
			switch k {
			case "summary_contains":
				if !strings.Contains(got[i].Summary, fmt.Sprint(wv)) {
					diffs = append(diffs, fmt.Sprintf("alert %d: summary %q does not contain %q", i+1, got[i].Summary, wv))
				}
				continue
			case "time", "window_start", "window_end":
				if s, ok := wv.(string); ok {
					if t, err := fixtureTime(s); err == nil {
						wv = t
					}
				}
			case "host":
				g[k] = fmt.Sprint(got[i].Host.Name)
			}
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("alert %d: no field %q", i+1, k))
				continue
			}
			if fmt.Sprint(fromYAML(wv)) != fmt.Sprint(gv) {
				diffs = append(diffs, fmt.Sprintf("alert %d: %s: want %v, got %v", i+1, k, wv, gv))
			}
		}
	}
	return strings.Join(diffs, "; ")
}
