package rules_test

import (
	"strings"
	"testing"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/rules"
)

// TestPackFixtures is `crumbs rules test detectors/rules/pack`: every rule of the built-in pack
// has fixtures, at least one case that fires and one that must not, and all pass.
func TestPackFixtures(t *testing.T) {
	res, err := engine.TestRules(rules.FS, rules.Dir, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, r := range res {
		switch r.Status {
		case engine.FixtureNone:
			t.Errorf("rule %s has no fixtures", r.Rule)
		case engine.FixtureFail:
			t.Errorf("rule %s, %s: %s", r.Rule, r.Case, r.Detail)
		}
		if strings.Contains(r.Case, "not") {
			quiet[r.Rule] = true
		} else {
			fires[r.Rule] = true
		}
	}
	for _, r := range res {
		if !fires[r.Rule] || !quiet[r.Rule] {
			t.Errorf("rule %s needs a case that fires and one that does not (named \"... not ...\")", r.Rule)
		}
	}
}
