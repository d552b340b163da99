package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/registry"
)

// TestEveryCollectorConfigured: each collector's factory has its configuration under
// collectors.<name>, whose defaults are the factory's.
func TestEveryCollectorConfigured(t *testing.T) {
	byName := defaultConfig().Collectors.byName()
	for _, f := range registry.Factories() {
		cfg, ok := byName[f.Name]
		if !ok {
			t.Errorf("collector %s: no key collectors.%s", f.Name, f.Name)
			continue
		}
		if diff := cmp.Diff(f.DefaultConfig(), cfg); diff != "" {
			t.Errorf("collectors.%s defaults differ from the factory's (-factory +config):\n%s", f.Name, diff)
		}
		if !f.Enabled(cfg) {
			t.Errorf("collector %s is off by default", f.Name)
		}
	}
}
