package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// nested is the condition of issue 14: three nested all() over argv, seconds per event.
const nested = `process.args.all(a, process.args.all(b, process.args.all(c, a + b + c != "x")))`

// TestConditionCostRefusedAtLoad: a condition whose estimated cost is above the limit is
// refused when the rules load, naming the file, the line and the estimate; the same rule
// loads under a limit that allows it.
func TestConditionCostRefusedAtLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"r/nested.yaml": {Data: []byte("id: nested\ntitle: N\nseverity: low\nsource: process\nkind: match\ncondition: '" + nested + "'\n")},
		"r/seq.yaml": {Data: []byte("id: seq\ntitle: S\nseverity: low\nsource: process\nkind: sequence\nwindow: 1m\ngroup_by: [host.id]\nsequence:\n  steps:\n" +
			"    - {source: process, condition: 'action == \"exec\"'}\n    - {source: process, condition: '" + nested + "'}\n")},
		"r/fine.yaml": {Data: []byte("id: fine\ntitle: F\nseverity: low\nsource: process\nkind: match\ncondition: 'process.args.exists(a, a.contains(\"x\"))'\n")},
	}
	rules, err := engine.LoadFS(fsys, "r")
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.New(rules, engine.Options{})
	var ps engine.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v, want Problems", err)
	}
	hint := " (detector.max_condition_cost): bound the lists it iterates, or nest fewer comprehensions"
	want := engine.Problems{
		{File: "r/nested.yaml", Line: 6, Msg: "condition: estimated cost 34494350851 is above the limit of 100000" + hint},
		{File: "r/seq.yaml", Line: 11, Msg: "sequence.steps.1.condition: estimated cost 34494350851 is above the limit of 100000" + hint},
	}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, err := engine.New(rules, engine.Options{MaxConditionCost: 1 << 40}); err != nil {
		t.Errorf("under a higher limit: %v", err)
	}
}

// TestConditionCostInterruptedAtRun: an event larger than the estimate assumed drives an
// accepted condition past the limit; its evaluation is stopped, counted and taken as no
// match, and the other rules still judge the event.
func TestConditionCostInterruptedAtRun(t *testing.T) {
	rules := []*engine.Rule{
		{ID: "scan-args", Title: "S", Severity: "low", Source: "process", Kind: engine.KindMatch, Condition: `process.args.exists(a, a.contains("needle"))`},
		{ID: "exec", Title: "E", Severity: "low", Source: "process", Kind: engine.KindMatch, Condition: `action == "exec"`},
	}
	e, err := engine.New(rules, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, 5000) // the estimate assumes at most 256
	for i := range args {
		args[i] = fmt.Sprintf("%s-%d", strings.Repeat("a", 512), i)
	}
	args[len(args)-1] = "needle"
	ev := map[string]any{"event_id": "e1", "time": int64(1), "kind": "process", "action": "exec",
		"host": map[string]any{"id": "h", "name": "h"}, "process": map[string]any{"pid": int64(1), "args": args}}
	alerts, err := e.Process(0, ev)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range alerts {
		ids = append(ids, a.RuleID)
	}
	if diff := cmp.Diff([]string{"exec"}, ids); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if st := e.Stats(); st.Interrupted != 1 || st.InterruptedRule != "scan-args" {
		t.Errorf("interrupted %d (last %q), want 1 (scan-args)", st.Interrupted, st.InterruptedRule)
	}
	// A small event is judged in full.
	ev["process"] = map[string]any{"pid": int64(1), "args": []any{"needle"}}
	ev["event_id"] = "e2"
	alerts, err = e.Process(0, ev)
	if err != nil || len(alerts) != 2 {
		t.Errorf("small event: %d alerts, error %v; want 2", len(alerts), err)
	}
}
