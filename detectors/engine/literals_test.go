package engine

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestRegexpLiterals(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    []string // nil: none
		folded  bool
	}{
		{`(^|/)(auditctl)$`, []string{"auditctl"}, false},
		{`(^|/)(wipe|srm)$`, []string{"wipe", "srm"}, false},
		{`\s(-[a-z]*[uz]|--(remove|zero))`, []string{"-"}, false}, // the alternatives share "-", and -u has no other
		{`flush\s+ruleset|delete\s+table`, []string{"ruleset", "delete"}, false},
		{`r?syslog\.conf`, []string{"syslog.conf"}, false},
		{`(?i)invoke-expression`, []string{"INVOKE-EXPRESSION"}, true},
		{`(?i)kill|SS`, []string{"KILL", "SS"}, true}, // a case-sensitive literal is folded with the rest
		{`x{2,3}y`, []string{"x"}, false},             // xx(x)?y: x and y rank the same, the first is taken
		{`(ab)+`, []string{"ab"}, false},
		{`a*`, nil, false},
		{`a|b*`, nil, false},
		{`\d+`, nil, false},
		{`(`, nil, false}, // does not parse
	} {
		got, folded, ok := regexpLiterals(tc.pattern)
		if !ok {
			got = nil
		}
		if tc.want == nil && ok {
			t.Errorf("%q: literals %q, want none", tc.pattern, got)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" || folded != tc.folded {
			t.Errorf("%q: literals (-want +got):\n%s folded %v, want %v", tc.pattern, d, folded, tc.folded)
		}
	}
}

// Every text a regular expression matches holds one of its literals (folded when they are).
func FuzzRegexpLiterals(f *testing.F) {
	for _, s := range [][2]string{
		{`(^|/)(auditctl)$`, "/sbin/auditctl"},
		{`(?i)kelvin`, "\u212aelvin"}, // the Kelvin sign folds to k
		{`(?i)ssh`, "\u017fsh"},       // and the long s to s
		{`(?i)straße`, "STRASSE"},
		{`\s(-[a-z]*[uz]|--(remove|zero))`, "shred --zero x"},
		{`unset\s+HISTFILE|HIST(FILE)?SIZE=["']?0([^0-9]|$)`, "export HISTSIZE=0"},
		{`(?i)(a|b)+c{2}`, "xxABCC"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		re, err := regexp.Compile(pattern)
		if err != nil || !re.MatchString(text) {
			return
		}
		lits, folded, ok := regexpLiterals(pattern)
		if !ok {
			return
		}
		if folded {
			text = foldString(text)
		}
		for _, l := range lits {
			if strings.Contains(text, l) {
				return
			}
		}
		t.Fatalf("%q matches %q, which holds none of its literals %q (folded %v)", pattern, text, lits, folded)
	})
}

func TestCELConditionsOfferLiterals(t *testing.T) {
	for _, tc := range []struct {
		cond string
		want map[string][]string // key name -> literals; nil: none
	}{
		{`action == "exec" && process.file.name == "nc"`, map[string][]string{"cel: process.file.name": {"nc"}}},
		{`action == "exec" && (process.file.name in ["shred"] || (size(process.args) > 0 && process.args[0].matches("(^|/)(shred)$")))`,
			map[string][]string{"cel: process.file.name": {"shred"}, "cel: process.args[*]": {"shred"}}},
		{`process.cmd_line.contains("base64") && process.cmd_line.matches("(?i)-d(ecode)?\\s")`, map[string][]string{"cel: process.cmd_line": {"base64"}}},
		{`process.cmd_line.matches("(?i)nc\\s+-e")`, map[string][]string{"cel: process.cmd_line, case-folded": {"NC"}}},
		{`process.file.path.startsWith("/tmp/") || process.file.path.endsWith(".sh")`, map[string][]string{"cel: process.file.path": {".sh", "/tmp/"}}},
		{`action == "exec"`, nil},                              // an action is pinned instead
		{`process.file.name != "sh"`, nil},                     // a negation holds without the literal
		{`!(process.file.name == "sh")`, nil},                  // so does this
		{`process.file.name == "sh" || process.pid == 1`, nil}, // one disjunct without literals: none
		{`process.args.exists(a, a == "-D")`, nil},             // comprehensions are not read
		{`process.file.name == ""`, nil},                       // an empty literal indexes nothing
	} {
		c, err := CompileCEL("process", tc.cond)
		if err != nil {
			t.Fatalf("%s: %v", tc.cond, err)
		}
		sets, ok := c.(LiteralCondition).Literals()
		var got map[string][]string
		if ok {
			got = map[string][]string{}
			for _, s := range sets {
				got[s.Key.Name] = s.Values
			}
		}
		if d := cmp.Diff(tc.want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" { // a set's order is not its meaning
			t.Errorf("%s: literals (-want +got):\n%s", tc.cond, d)
		}
	}
}

// The literals are a necessary condition: over every fixture event of the built-in pack, and
// each of those events with its texts changed (case, path, arguments), every target whose
// condition holds is among the candidates the index gives.
func TestLiteralIndexMissesNoMatch(t *testing.T) {
	fsys := os.DirFS("../rules")
	rules, err := LoadFS(fsys, "pack")
	if err != nil {
		t.Fatal(err)
	}
	set, err := newRuleSet(rules, DefaultMaxConditionCost)
	if err != nil {
		t.Fatal(err)
	}
	var all []*target
	for _, idx := range set.bySource {
		all = append(all, idx.unpinned...)
		for _, m := range idx.pinned {
			for _, ts := range m {
				all = append(all, ts...)
			}
		}
		for _, ti := range idx.texts {
			for _, ts := range ti.targets {
				all = append(all, ts...)
			}
		}
	}
	literal := 0
	for _, r := range rules {
		if lc, ok := r.Cond.(LiteralCondition); ok {
			if _, ok := lc.Literals(); ok {
				literal++
			}
		}
	}
	if literal < 10 {
		t.Fatalf("%d rules of the pack offer literals; the index is not used", literal)
	}
	var events []map[string]any
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.File] {
			continue
		}
		seen[r.File] = true
		_, ff, err := readFixtures(fsys, r.File)
		if err != nil || ff == nil {
			continue
		}
		for _, c := range ff.Cases {
			for i, raw := range c.Events {
				src := r.Source
				if k, ok := raw["kind"].(string); ok {
					src = k
				}
				ev, err := FixtureEvent(src, raw, "ev-"+string(rune('a'+i)))
				if err != nil {
					continue
				}
				events = append(events, ev, mutate(ev, strings.ToUpper), mutate(ev, func(s string) string { return "/usr/bin/" + s }),
					mutate(ev, func(s string) string { return s + " x" }))
			}
		}
	}
	if len(events) < 400 {
		t.Fatalf("only %d fixture events", len(events))
	}
	sc, hits := &scratch{}, 0
	for _, ev := range events {
		kind, _ := ev["kind"].(string)
		act := Activation(ev)
		cands := set.candidates(kind, Map(act), nil, sc)
		for _, tg := range all {
			if tg.rule.Source != kind && (tg.step < 0 || tg.rule.Sequence.Steps[tg.step].Source != kind) {
				continue
			}
			hit, err := tg.cond.Match(act)
			if err != nil || !hit {
				continue
			}
			hits++
			if !slices.Contains(cands, tg) {
				t.Errorf("rule %s holds on %v but is not among its candidates", tg.rule.ID, ev)
			}
		}
	}
	if hits < 100 {
		t.Fatalf("only %d matches over %d events: the test checks little", hits, len(events))
	}
	t.Logf("%d rules with literals; %d matches over %d events, each a candidate", literal, hits, len(events))
}

// mutate returns a copy of ev with f applied to each string (and string in a list) under
// process, file and network, and the command line rebuilt from the arguments.
func mutate(ev map[string]any, f func(string) string) map[string]any {
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return f(x)
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = walk(e)
			}
			return out
		}
		return v
	}
	out := make(map[string]any, len(ev))
	for k, v := range ev {
		switch k {
		case "process", "file", "network":
			out[k] = walk(v)
		default:
			out[k] = v
		}
	}
	return out
}
