package sigma

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/schemas"
)

// counted counts the evaluations of a condition and offers the engine what the condition
// offers (a key, literals), so that the engine indexes it as it would the condition itself.
type counted struct {
	c engine.Condition
	n *int
}

func (k counted) Match(act map[string]any) (bool, error) {
	*k.n++
	return k.c.Match(act)
}

func (k counted) IndexKey() (engine.IndexKey, []string, bool) {
	if kc, ok := k.c.(engine.KeyedCondition); ok {
		return kc.IndexKey()
	}
	return engine.IndexKey{}, nil, false
}

func (k counted) Literals() ([]engine.LiteralSet, bool) {
	if lc, ok := k.c.(engine.LiteralCondition); ok {
		return lc.Literals()
	}
	return nil, false
}

// plain counts the evaluations of a condition and offers the engine nothing to index it by:
// it is evaluated for every event of its kind.
type plain struct {
	c engine.Condition
	n *int
}

func (p plain) Match(act map[string]any) (bool, error) {
	*p.n++
	return p.c.Match(act)
}

// withConds returns copies of the rules whose conditions (and sequence steps') are wrapped.
func withConds(rules []*engine.Rule, wrap func(engine.Condition) engine.Condition) []*engine.Rule {
	out := make([]*engine.Rule, len(rules))
	for i, r := range rules {
		cp := *r
		if cp.Cond != nil {
			cp.Cond = wrap(cp.Cond)
		}
		if r.Sequence != nil {
			seq := *r.Sequence
			seq.Steps = append([]engine.Step(nil), seq.Steps...)
			for j := range seq.Steps {
				seq.Steps[j].Cond = wrap(seq.Steps[j].Cond)
			}
			cp.Sequence = &seq
		}
		out[i] = &cp
	}
	return out
}

// mapStrings returns a copy of a native event with f applied to every string of its body
// (the envelope's kind, action and ids stay, so the event is still of its kind).
func mapStrings(v any, f func(string) string, top bool) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			if top && (k == "kind" || k == "action" || k == "event_id" || k == "time") {
				out[k] = vv
				continue
			}
			out[k] = mapStrings(vv, f, false)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = mapStrings(vv, f, false)
		}
		return out
	case string:
		return f(x)
	}
	return v
}

// corpusEvents are events varied around the corpus' own detections: for every loaded rule
// target, the positive and negative the generator builds, each also upper-cased, in mixed
// case and padded with text on both sides; and some of a busy host's ordinary events.
func corpusEvents(t *testing.T, results []LintResult) []map[string]any {
	t.Helper()
	mixed := func(s string) string {
		rs := []rune(s)
		for i, r := range rs {
			if i%2 == 0 {
				rs[i] = []rune(strings.ToUpper(string(r)))[0]
			}
		}
		return string(rs)
	}
	variants := []func(string) string{
		func(s string) string { return s },
		strings.ToUpper,
		mixed,
		func(s string) string {
			if s == "" {
				return s
			}
			return "Xq " + s + " qX"
		},
	}
	var evs []map[string]any
	for _, r := range results {
		for _, c := range r.Rules {
			for _, ct := range c.targets {
				pos, neg, err := generate(c, ct)
				if err != nil {
					continue // TestCorpusGenerated reports it
				}
				for _, ev := range []map[string]any{pos, neg} {
					for _, f := range variants {
						evs = append(evs, mapStrings(ev, f, true).(map[string]any))
					}
				}
			}
		}
	}
	for i, tool := range []string{"/usr/bin/ls", "/usr/bin/git", "/usr/bin/python3", "/usr/bin/curl", "/usr/bin/bash", "/usr/sbin/sshd"} {
		ev := baseEvent(categories["process_creation"])
		setPath(ev, "process.file.path", tool)
		setPath(ev, "process.cmd_line", fmt.Sprintf("%s --Color=Auto -n %d /home/Dev/Project/src/File%d.go", tool, i, i))
		setPath(ev, "process.parent.file.path", "/usr/bin/bash")
		evs = append(evs, ev)
	}
	for i, ev := range evs {
		ev["event_id"], ev["time"] = fmt.Sprint("ev", i), int64(1_700_000_000_000_000_000)+int64(i)*1_000_000
	}
	return evs
}

// TestCorpusPrefilter runs the whole corpus over events varied around its own detections,
// once indexed (rules keyed by program and searched for by their literals) and once with
// every rule evaluated on every event of its kind: the alerts must be the same, and the
// index must spare most evaluations.
func TestCorpusPrefilter(t *testing.T) {
	results := lintCorpus(t)
	var rules []*engine.Rule
	for _, r := range results {
		rules = append(rules, r.Engine...)
	}
	evs := corpusEvents(t, results)
	run := func(rules []*engine.Rule) []*engine.Alert {
		e, err := engine.New(rules, engine.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out []*engine.Alert
		for _, ev := range evs {
			as, err := e.Process(0, cloneEvent(ev).(map[string]any))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, as...)
		}
		return append(out, e.Advance(0, math.MaxInt64/2)...)
	}
	var indexedEvals, plainEvals int
	indexed := run(withConds(rules, func(c engine.Condition) engine.Condition { return counted{c, &indexedEvals} }))
	everything := run(withConds(rules, func(c engine.Condition) engine.Condition { return plain{c, &plainEvals} }))
	view := func(as []*engine.Alert) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = fmt.Sprintf("%s %s %s count %d evidence %v", a.RuleID, a.AlertID, a.Summary, a.Count, a.Evidence)
		}
		return out
	}
	if d := cmp.Diff(view(everything), view(indexed)); d != "" {
		t.Errorf("alerts with every rule evaluated (-) and with the index (+):\n%s", d)
	}
	// The same events decoded by their generated codecs and judged field by field.
	e, err := engine.New(rules, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var fromRecords []*engine.Alert
	for _, ev := range evs {
		k, ok := schemas.Kinds.Lookup(ev["kind"].(string))
		if !ok {
			t.Fatalf("event of no kind: %v", ev["kind"])
		}
		rec := k.Codec.New()
		if err := rec.FromNative(cloneEvent(ev)); err != nil {
			t.Fatal(err)
		}
		as, err := e.ProcessRecord(0, rec)
		if err != nil {
			t.Fatal(err)
		}
		fromRecords = append(fromRecords, as...)
	}
	fromRecords = append(fromRecords, e.Advance(0, math.MaxInt64/2)...)
	if d := cmp.Diff(view(indexed), view(fromRecords)); d != "" {
		t.Errorf("alerts judged on activation maps (-) and on decoded records (+):\n%s", d)
	}
	t.Logf("%d rules, %d events, %d alerts; %d evaluations indexed, %d without the index", len(rules), len(evs), len(indexed), indexedEvals, plainEvals)
	if len(indexed) < len(evs)/8 {
		t.Errorf("only %d alerts for %d events: the events do not exercise the rules", len(indexed), len(evs))
	}
	if indexedEvals*4 > plainEvals {
		t.Errorf("the index spares too little: %d evaluations of %d", indexedEvals, plainEvals)
	}
}
