package detectors

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

func TestSigmaConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"skip", func(c *Config) { c.SigmaRefused = "skip" }, ""},
		{"bad policy", func(c *Config) { c.SigmaRefused = "ignore" }, `detector.sigma_refused: "ignore": must be fail or skip`},
		{"bad sigma_on_change", func(c *Config) { c.SigmaOnChange = "downgrade" }, `detector.sigma_on_change: "downgrade": must be ignore, suppress or explain`},
		{"missing folder", func(c *Config) { c.SigmaDirs = []string{"/nonexistent/sigma"} }, `detector.sigma_dirs.0: "/nonexistent/sigma": not a readable folder`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.set(&c)
			got := ""
			if err := c.Validate(); err != nil {
				got = err.Error()
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Validate (-want +got):\n%s", d)
			}
		})
	}
}

// TestSigmaDirsLoadBesideThePack: sigma_dirs load beside the built-in pack; a refused file
// fails the set by default and is logged and counted when skipped.
func TestSigmaDirsLoadBesideThePack(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("shell.yml", "title: Shell\nid: s1\nauthor: A\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /sh\n  condition: s\n")
	write("reg.yml", "title: Registry\nid: r1\nlogsource:\n  product: windows\n  category: registry_set\ndetection:\n  s:\n    TargetObject: x\n  condition: s\n")
	pack, err := DefaultConfig().LoadRules()
	if err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.SigmaDirs = []string{dir}
	_, _, err = cfg.loadRules(slog.Default())
	var ps engine.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].File != filepath.Join(dir, "reg.yml") {
		t.Fatalf("sigma_refused fail: got %v, want one problem naming reg.yml", err)
	}

	cfg.SigmaRefused = "skip"
	var logs bytes.Buffer
	rs, skipped, err := cfg.loadRules(slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 || len(rs) != len(pack)+1 {
		t.Errorf("skip: %d rules (pack %d), %d skipped; want the pack, s1, and 1 skipped", len(rs), len(pack), skipped)
	}
	if !strings.Contains(logs.String(), "reg.yml") || !strings.Contains(logs.String(), "reason=") {
		t.Errorf("the skipped file is not logged with its reason:\n%s", logs.String())
	}
}

// TestSigmaOnChange: Sigma rules take detector.sigma_on_change (default explain); native
// rules keep their own on_change.
func TestSigmaOnChange(t *testing.T) {
	dir := t.TempDir()
	body := "title: Shell\nid: s1\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /sh\n  condition: s\n"
	if err := os.WriteFile(filepath.Join(dir, "shell.yml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"", engine.OnChangeSuppress, engine.OnChangeIgnore} {
		cfg := DefaultConfig()
		cfg.SigmaDirs = []string{dir}
		want := engine.OnChangeExplain
		if set != "" {
			cfg.SigmaOnChange, want = set, set
		}
		rs, err := cfg.LoadRules()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rs {
			if r.ID == "s1" || r.ID == "crumbs-cron-changed" || r.ID == "crumbs-reverse-shell" {
				got[r.ID] = r.OnChange
			}
		}
		if d := cmp.Diff(map[string]string{"s1": want, "crumbs-cron-changed": engine.OnChangeSuppress, "crumbs-reverse-shell": engine.OnChangeIgnore}, got); d != "" {
			t.Errorf("sigma_on_change %q (-want +got):\n%s", set, d)
		}
	}
}
