package engine

import (
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
	})
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
		for _, tg := range set.candidates("process", act, nil) {
			got = append(got, tg.rule.ID)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s %s: candidates (-want +got):\n%s", tc.action, tc.name, d)
		}
	}
}
