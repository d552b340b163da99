package detectors_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

func TestReloadRefusesAnInvalidSetWhole(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "id: a\ntitle: A\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n")
	cfg := detectors.DefaultConfig()
	cfg.RulesDir = dir
	d, err := detectors.New(cfg, kafka.DefaultConfig(), detectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	write("b.yaml", "id: b\ntitle: B\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n")
	if err := d.Reload(); err != nil {
		t.Errorf("valid set refused: %v", err)
	}
	write("c.yaml", "id: c\ntitle: C\nseverity: low\nsource: process\nkind: match\ncondition: process.nope\n")
	err = d.Reload()
	if err == nil || !strings.Contains(err.Error(), "c.yaml:6: condition:") || !strings.Contains(err.Error(), "running set stays") {
		t.Errorf("invalid set: got %v, want it refused naming c.yaml:6", err)
	}
}
