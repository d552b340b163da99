package engine_test

import (
	"testing"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/rules"
)

// FuzzParseRule: any input yields a rule or problems, never a panic, and a rule it accepts
// builds an engine.
func FuzzParseRule(f *testing.F) {
	entries, _ := rules.FS.ReadDir(rules.Dir)
	for _, e := range entries {
		if b, err := rules.FS.ReadFile(rules.Dir + "/" + e.Name()); err == nil && engine.IsRuleFile(e.Name()) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, ps := engine.ParseRule("fuzz.yaml", data)
		if (r == nil) == (len(ps) == 0) {
			t.Fatalf("rule %v with problems %v", r, ps)
		}
		if r != nil {
			if _, err := engine.New([]*engine.Rule{r}, engine.Options{}); err != nil {
				t.Fatalf("accepted rule refused by New: %v", err)
			}
		}
	})
}
