package sigma

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// repoRoot is the directory holding go.mod, above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// corpusDir is the shared Sigma corpus, <repo root>/../shared/sigma/rules.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "..", "shared", "sigma", "rules")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("sigma corpus: %v", err)
	}
	return dir
}

func lintCorpus(t testing.TB) []LintResult {
	t.Helper()
	res, err := LintDir(corpusDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 {
		t.Fatal("sigma corpus holds no rule")
	}
	return res
}

// refusalKinds are the reasons crumbs may give for refusing a corpus rule: each names the
// construct it cannot evaluate.
var refusalKinds = []string{
	"crumbs records no equivalent of this auditd",
	"crumbs has no equivalent",
	"crumbs records no equivalent events",
	"not in the RE2 syntax",
	"crumbs watches Linux hosts only",
}

func TestCorpusLint(t *testing.T) {
	mustLoad := map[string]bool{"process_creation": true, "file_event": true, "network_connection": true}
	for _, r := range lintCorpus(t) {
		rel, _ := filepath.Rel(corpusDir(t), r.File)
		t.Run(rel, func(t *testing.T) {
			if r.Loaded() {
				for _, c := range r.Rules {
					if c.ID == "" || c.Title == "" || c.Author == "" || len(c.Sources) == 0 || c.Cond == nil {
						t.Errorf("loaded rule lacks metadata: id %q title %q author %q sources %v", c.ID, c.Title, c.Author, c.Sources)
					}
				}
				return
			}
			if mustLoad[r.Logsource] {
				t.Fatalf("a %s rule must load: %v", r.Logsource, r.Err)
			}
			msg := r.Err.Error()
			if !strings.HasPrefix(msg, r.File+": ") {
				t.Errorf("refusal %q does not start with the file", msg)
			}
			specific := false
			for _, k := range refusalKinds {
				specific = specific || strings.Contains(msg, k)
			}
			if !specific {
				t.Errorf("refusal is not one of the known, specific reasons: %s", msg)
			}
		})
	}
}

// TestCorpusGenerated raises every loaded rule with an event built from its own detection,
// and checks the same event with one value changed does not.
func TestCorpusGenerated(t *testing.T) {
	loaded := 0
	for _, r := range lintCorpus(t) {
		for _, c := range r.Rules {
			for _, ct := range c.targets {
				loaded++
				rel, _ := filepath.Rel(corpusDir(t), c.File)
				t.Run(rel+"/"+ct.t.Name, func(t *testing.T) {
					pos, neg, err := generate(c, ct)
					if err != nil {
						t.Fatal(err)
					}
					if !matches(c, pos) {
						t.Errorf("positive does not raise the rule: %v", pos)
					}
					// The engine evaluates a keyed rule only for events with one of its keys.
					if k, vals, ok := c.Cond.(engine.KeyedCondition).IndexKey(); ok {
						if v, present := k.Of(engine.Map(engine.Activation(pos))); !present || !slices.Contains(vals, v) {
							t.Errorf("keyed by %s on %q, but the positive's is %q (present %v)", k.Name, vals, v, present)
						}
					}
					if matches(c, neg) {
						t.Errorf("negative raises the rule: %v", neg)
					}
					if diff := cmp.Diff(1, changedLeaves(pos, neg)); diff != "" {
						t.Errorf("negative differs from the positive in more than one value (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
	if loaded == 0 {
		t.Fatal("no rule loaded from the corpus")
	}
}

// changedLeaves counts the scalar values that differ between two native events.
func changedLeaves(a, b any) int {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return 1
		}
		n := 0
		for k := range x {
			n += changedLeaves(x[k], y[k])
		}
		return n
	case []any:
		y, ok := b.([]any)
		if !ok {
			return 1
		}
		n := 0
		for i := 0; i < max(len(x), len(y)); i++ {
			var xa, ya any
			if i < len(x) {
				xa = x[i]
			}
			if i < len(y) {
				ya = y[i]
			}
			n += changedLeaves(xa, ya)
		}
		return n
	}
	if a == b {
		return 0
	}
	return 1
}

// BenchmarkCorpus measures evaluation of process events with the whole corpus loaded,
// against the same loop with no rules.
func BenchmarkCorpus(b *testing.B) {
	var rules []*Compiled
	for _, r := range lintCorpus(b) {
		rules = append(rules, r.Rules...)
	}
	var procRules []*Compiled
	for _, c := range rules {
		for _, s := range c.Sources {
			if s == "process" {
				procRules = append(procRules, c)
				break
			}
		}
	}
	ev := baseEvent(categories["process_creation"])
	setPath(ev, "process.file.path", "/usr/bin/python3.11")
	setPath(ev, "process.file.name", "python3.11")
	setPath(ev, "process.cmd_line", "python3 -m http.server --bind 127.0.0.1 8080 --directory /srv/www/releases/current")
	setPath(ev, "process.args", []any{"python3", "-m", "http.server", "--bind", "127.0.0.1", "8080"})
	setPath(ev, "process.parent.file.path", "/usr/bin/bash")
	setPath(ev, "process.parent.cmd_line", "-bash")
	setPath(ev, "process.cwd", "/home/dev")
	for _, tc := range []struct {
		name  string
		rules []*Compiled
	}{{"no-rules", nil}, {"corpus", procRules}} {
		b.Run(tc.name, func(b *testing.B) {
			hits := 0
			for b.Loop() {
				act := engine.Activation(ev)
				for _, c := range tc.rules {
					if ok, _ := c.Cond.Match(act); ok {
						hits++
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(len(tc.rules)), "rules")
		})
	}
}
