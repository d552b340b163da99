package engine

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRulesAreIndexedByPinnedFields(t *testing.T) {
	mk := func(id, cond string) *Rule {
		r, ps := ParseRule(id+".yaml", []byte("id: "+id+"\ntitle: T\nseverity: low\nsource: process\nkind: match\ncondition: '"+cond+"'\n"))
		if len(ps) > 0 {
			t.Fatal(ps)
		}
		return r
	}
	set, err := newRuleSet([]*Rule{
		mk("sh", `action == "exec" && process.file.name == "sh"`),
		mk("shells", `process.file.name in ["sh", "bash"] && process.pid > 1`),
		mk("curl", `"curl" == process.file.name`),
		mk("any", `process.pid > 1 || process.file.name == "x"`),
		mk("exit", `action == "exit"`),
	}, DefaultMaxConditionCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		action, name string
		want         []string
	}{
		{"exec", "sh", []string{"sh", "shells", "any"}},
		{"exec", "bash", []string{"shells", "any"}},
		{"exit", "curl", []string{"curl", "any", "exit"}},
		{"exec", "ls", []string{"any"}},
	} {
		act := map[string]any{"action": tc.action, "process": map[string]any{"file": map[string]any{"name": tc.name}}}
		var got []string
		for _, tg := range set.candidates("process", Map(act), nil, &scratch{}) {
			got = append(got, tg.rule.ID)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s %s: candidates (-want +got):\n%s", tc.action, tc.name, d)
		}
	}
}

// keyedCond is a condition keyed by the upper-cased process name.
type keyedCond struct {
	values []string
	calls  *int
}

func (k keyedCond) Match(map[string]any) (bool, error) { return true, nil }

func (k keyedCond) IndexKey() (IndexKey, []string, bool) {
	*k.calls++
	return IndexKey{Name: "upper-name", Of: func(ev Fields) (string, bool) {
		v, _ := ev.Value("process.name")
		s, ok := v.(string)
		return strings.ToUpper(s), ok
	}}, k.values, len(k.values) > 0
}

func TestRulesAreIndexedByKeys(t *testing.T) {
	calls := 0
	mk := func(id string, values ...string) *Rule {
		return &Rule{ID: id, Title: "T", Severity: "low", Source: "process", Kind: KindMatch, Cond: keyedCond{values, &calls}}
	}
	set, err := newRuleSet([]*Rule{mk("sh", "SH"), mk("shells", "SH", "BASH"), mk("unkeyed"), mk("curl", "CURL")}, DefaultMaxConditionCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		act  map[string]any
		want []string
	}{
		{map[string]any{"process": map[string]any{"name": "sh"}}, []string{"sh", "shells", "unkeyed"}},
		{map[string]any{"process": map[string]any{"name": "bash"}}, []string{"shells", "unkeyed"}},
		{map[string]any{"process": map[string]any{"name": "ls"}}, []string{"unkeyed"}},
		{map[string]any{"process": map[string]any{}}, []string{"unkeyed"}}, // no key: only the unkeyed
	} {
		var got []string
		for _, tg := range set.candidates("process", Map(tc.act), nil, &scratch{}) {
			got = append(got, tg.rule.ID)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%v: candidates (-want +got):\n%s", tc.act, d)
		}
	}
}

// litCond is a condition with literals in the command line and the parent's.
type litCond struct {
	cmd, parent []string
}

func (litCond) Match(map[string]any) (bool, error) { return true, nil }

func (l litCond) Literals() ([]LiteralSet, bool) {
	text := func(name, field string) IndexKey {
		return IndexKey{Name: name, Of: func(ev Fields) (string, bool) {
			v, _ := ev.Value("process." + field)
			s, ok := v.(string)
			return s, ok
		}}
	}
	var sets []LiteralSet
	if len(l.cmd) > 0 {
		sets = append(sets, LiteralSet{Key: text("cmd", "cmd_line"), Values: l.cmd})
	}
	if len(l.parent) > 0 {
		sets = append(sets, LiteralSet{Key: text("parent", "parent_cmd_line"), Values: l.parent})
	}
	return sets, len(sets) > 0
}

func TestRulesAreIndexedByLiterals(t *testing.T) {
	mk := func(id string, c Condition) *Rule {
		return &Rule{ID: id, Title: "T", Severity: "low", Source: "process", Kind: KindMatch, Cond: c}
	}
	set, err := newRuleSet([]*Rule{
		mk("b64", litCond{cmd: []string{"base64 -d", "base64 --decode"}}),
		mk("unindexed", constCondition{}),
		mk("nc", litCond{cmd: []string{"nc -e"}, parent: []string{"nc"}}),
		mk("empty", litCond{cmd: []string{""}}), // an empty literal cannot index
	}, DefaultMaxConditionCost)
	if err != nil {
		t.Fatal(err)
	}
	sc := &scratch{}
	for _, tc := range []struct {
		cmd, parent string
		want        []string
	}{
		{"echo x | base64 -d | sh", "", []string{"b64", "unindexed", "empty"}},
		{"base64 -d; base64 --decode; nc -e sh", "", []string{"b64", "unindexed", "nc", "empty"}}, // each once, in rule order
		{"ls", "nc -lv", []string{"unindexed", "nc", "empty"}},
		{"ls", "", []string{"unindexed", "empty"}},
	} {
		act := map[string]any{"process": map[string]any{"cmd_line": tc.cmd, "parent_cmd_line": tc.parent}}
		var got []string
		for _, tg := range set.candidates("process", Map(act), nil, sc) {
			got = append(got, tg.rule.ID)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%q / %q: candidates (-want +got):\n%s", tc.cmd, tc.parent, d)
		}
	}
}

// constCondition matches every event and offers nothing to index it by.
type constCondition struct{}

func (constCondition) Match(map[string]any) (bool, error) { return true, nil }
