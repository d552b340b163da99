package sigma

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

const (
	shellRule = "title: Shell\nid: rule-shell\nname: shell\nauthor: Ann Author\nlevel: high\ntags: [attack.execution]\n" +
		"logsource:\n  category: process_creation\n  product: linux\ndetection:\n  s:\n    Image|endswith: /sh\n  condition: s\n"
	curlRule = "title: Curl\nid: rule-curl\nname: curl\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /curl\n  condition: s\n"
	connRule = "title: Conn\nid: rule-conn\nlogsource:\n  category: network_connection\ndetection:\n  s:\n    DestinationPort: 4444\n  condition: s\n"
)

// loadSet loads files (name → content) through engine.LoadFS with the Sigma format.
func loadSet(t *testing.T, f *Format, files map[string]string) ([]*engine.Rule, error) {
	t.Helper()
	fsys := fstestMap(files)
	return engine.LoadFS(fsys, ".", f)
}

// event builds an activation-ready event of a kind from dotted fields.
func event(t *testing.T, kind, id string, at int64, fields map[string]any) map[string]any {
	t.Helper()
	raw := map[string]any{"time": at}
	for k, v := range fields {
		putPath(raw, strings.Split(k, "."), v)
	}
	if _, ok := raw["action"]; !ok {
		raw["action"] = map[string]string{"process": "exec", "network": "connect", "file": "create"}[kind]
	}
	ev, err := engine.FixtureEvent(kind, raw, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// putPath writes v at a dotted path of a raw fixture event, making the maps on the way.
func putPath(m map[string]any, p []string, v any) {
	for _, k := range p[:len(p)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[p[len(p)-1]] = v
}

type alertRow struct {
	Rule, Severity, Level, Author, Source, Group string
	Tags                                         string
	Count                                        int64
}

func runEvents(t *testing.T, rules []*engine.Rule, evs ...map[string]any) []alertRow {
	t.Helper()
	e, err := engine.New(rules, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var as []*engine.Alert
	for _, ev := range evs {
		got, err := e.Process(0, ev)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, got...)
	}
	as = append(as, e.Advance(0, math.MaxInt64/2)...)
	out := []alertRow{}
	for _, a := range engine.Latest(as) { // an early alert and its final version are one alert
		out = append(out, alertRow{a.RuleID, a.Severity, a.Level, a.Author, a.RuleSource, a.GroupKey, strings.Join(a.Tags, ","), a.Count})
	}
	return out
}

func TestSigmaRulesRunInTheEngine(t *testing.T) {
	const sec = int64(1e9)
	sh := func(id string, at int64, user string) map[string]any {
		return event(t, "process", id, at, map[string]any{"process.file.path": "/bin/sh", "process.user.name": user})
	}
	curl := func(id string, at int64, user string) map[string]any {
		return event(t, "process", id, at, map[string]any{"process.file.path": "/usr/bin/curl", "process.user.name": user})
	}
	tests := []struct {
		name  string
		files map[string]string
		evs   func() []map[string]any
		want  []alertRow
	}{
		{
			name:  "single-event rule raises match alerts with its metadata",
			files: map[string]string{"shell.yml": shellRule, "native.yaml": "id: n\ntitle: N\nseverity: low\nsource: process\nkind: match\ncondition: process.file.path == '/bin/sh'\n"},
			evs:   func() []map[string]any { return []map[string]any{sh("e1", sec, "bob")} },
			want: []alertRow{
				{Rule: "n", Severity: "low", Source: "native", Count: 1},
				{Rule: "rule-shell", Severity: "high", Level: "high", Author: "Ann Author", Source: "sigma", Tags: "attack.execution", Count: 1},
			},
		},
		{
			name: "event_count is a threshold per group over the timespan; the referenced rule stays quiet",
			files: map[string]string{"shell.yml": shellRule, "count.yml": "title: Many shells\nid: corr-count\nauthor: Cor Relator\nlevel: critical\n" +
				"correlation:\n  type: event_count\n  rules: [shell]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 3}\n"},
			evs: func() []map[string]any {
				return []map[string]any{sh("e1", sec, "bob"), sh("e2", 2*sec, "bob"), sh("e3", 3*sec, "eve"), sh("e4", 4*sec, "bob")}
			},
			want: []alertRow{{Rule: "corr-count", Severity: "critical", Level: "critical", Author: "Cor Relator", Source: "sigma", Group: "bob", Count: 3}},
		},
		{
			name: "generate keeps the referenced rule's own alerts",
			files: map[string]string{"shell.yml": shellRule, "count.yml": "title: Many shells\nid: corr-count\n" +
				"correlation:\n  type: event_count\n  rules: [shell]\n  timespan: 1m\n  generate: true\n  condition: {gt: 5}\n"},
			evs:  func() []map[string]any { return []map[string]any{sh("e1", sec, "bob")} },
			want: []alertRow{{Rule: "rule-shell", Severity: "high", Level: "high", Author: "Ann Author", Source: "sigma", Tags: "attack.execution", Count: 1}},
		},
		{
			name: "value_count counts distinct values of the mapped field",
			files: map[string]string{"shell.yml": shellRule, "users.yml": "title: Shells by many users\nid: corr-users\n" +
				"correlation:\n  type: value_count\n  rules: [rule-shell]\n  timespan: 1m\n  condition: {field: User, gte: 2}\n"},
			evs: func() []map[string]any {
				return []map[string]any{sh("e1", sec, "bob"), sh("e2", 2*sec, "bob"), sh("e3", 3*sec, "eve")}
			},
			want: []alertRow{{Rule: "corr-users", Severity: "medium", Source: "sigma", Count: 3}},
		},
		{
			name: "temporal_ordered needs the rules in order within the timespan",
			files: map[string]string{"shell.yml": shellRule, "curl.yml": curlRule, "seq.yml": "title: Shell then curl\nid: corr-seq\n" +
				"correlation:\n  type: temporal_ordered\n  rules: [shell, curl]\n  group-by: [User]\n  timespan: 1m\n"},
			evs: func() []map[string]any {
				return []map[string]any{curl("e1", sec, "eve"), sh("e2", 2*sec, "eve"), sh("e3", 3*sec, "bob"), curl("e4", 4*sec, "bob")}
			},
			want: []alertRow{{Rule: "corr-seq", Severity: "medium", Source: "sigma", Group: "bob", Count: 2}},
		},
		{
			name: "temporal accepts any order",
			files: map[string]string{"shell.yml": shellRule, "curl.yml": curlRule, "seq.yml": "title: Shell and curl\nid: corr-seq\n" +
				"correlation:\n  type: temporal\n  rules: [shell, curl]\n  group-by: [User]\n  timespan: 1m\n"},
			evs: func() []map[string]any {
				return []map[string]any{curl("e1", sec, "eve"), sh("e2", 2*sec, "eve")}
			},
			want: []alertRow{{Rule: "corr-seq", Severity: "medium", Source: "sigma", Group: "eve", Count: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := loadSet(t, &Format{}, tt.files)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, runEvents(t, rules, tt.evs()...)); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefusedSigmaFiles(t *testing.T) {
	files := map[string]string{
		"ok.yml":   shellRule,
		"conn.yml": connRule,
		"bad.yml":  "title: Bad\nid: bad\nlogsource:\n  category: registry_set\ndetection:\n  s:\n    Image: x\n  condition: s\n",
		"mixed.yml": "title: Mixed\nid: mixed\ncorrelation:\n  type: event_count\n  rules: [rule-shell, rule-conn]\n  timespan: 1m\n" +
			"  condition: {gte: 2}\n",
		"zdup.yml": strings.Replace(curlRule, "rule-curl", "rule-shell", 1),
	}
	t.Run("fail makes the set invalid, naming each file and reason", func(t *testing.T) {
		_, err := loadSet(t, &Format{Refused: RefusedFail}, files)
		var ps engine.Problems
		if !errors.As(err, &ps) {
			t.Fatalf("got %v, want problems", err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Error())
		}
		want := []string{
			`bad.yml: logsource category "registry_set": crumbs records no equivalent events`,
			"mixed.yml: correlation: event_count over events of several crumbs kinds (network, process): a crumbs threshold counts the events of one kind",
			"zdup.yml: id rule-shell: already used by ok.yml",
		}
		if len(got) != len(want) {
			t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
		}
		for i := range want {
			// The logsource reason goes on to list what crumbs has; compare its start.
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("problem %d = %q, want it to start with %q", i, got[i], want[i])
			}
		}
	})
	t.Run("skip loads the rest and reports every refused file", func(t *testing.T) {
		var skipped []string
		f := &Format{Refused: RefusedSkip, OnSkip: func(r LintResult) { skipped = append(skipped, r.File) }}
		rules, err := loadSet(t, f, files)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rules {
			ids = append(ids, fmt.Sprintf("%s/%s/%s", r.ID, r.Kind, r.Source))
		}
		if diff := cmp.Diff([]string{"rule-conn/match/network", "rule-shell/match/process"}, ids); diff != "" {
			t.Errorf("rules loaded (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"bad.yml", "mixed.yml", "zdup.yml"}, skipped); diff != "" {
			t.Errorf("files skipped (-want +got):\n%s", diff)
		}
	})
}

func TestAuditdRuleReadsSeveralKindsUnderOneID(t *testing.T) {
	corpus := lintCorpus(t)
	for _, r := range corpus {
		if !r.Loaded() || len(r.Engine) < 2 {
			continue
		}
		for _, er := range r.Engine {
			if er.ID != r.Engine[0].ID || er.Kind != engine.KindMatch || er.Format != engine.FormatSigma {
				t.Errorf("%s: engine rule %s/%s/%s: want match rules sharing id %s", r.File, er.ID, er.Kind, er.Source, r.Engine[0].ID)
			}
		}
		if _, err := engine.New(r.Engine, engine.Options{}); err != nil {
			t.Errorf("%s: engine refuses its rules: %v", r.File, err)
		}
		return
	}
	t.Fatal("no corpus rule reads several event kinds")
}
