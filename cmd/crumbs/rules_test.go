package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRulesTestBuiltinPack(t *testing.T) {
	var out bytes.Buffer
	if err := rulesTest(&out, []string{filepath.Join("..", "..", "detectors", "rules", "pack")}); err != nil {
		t.Fatalf("crumbs rules test detectors/rules/pack: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "pass") || strings.Contains(out.String(), "fail ") {
		t.Errorf("unexpected table:\n%s", out.String())
	}
}

func TestRulesLintAndTestReportProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad.yaml", "id: bad\ntitle: Bad\nseverity: high\nsource: process\nkind: threshold\ncondition: process.nope == 1\nthreshold: {value: 3}\n")
	var out bytes.Buffer
	err := rulesLint(&out, []string{dir})
	var ec *exitCode
	if !errors.As(err, &ec) || ec.code != 1 {
		t.Fatalf("lint of an invalid rule: got %v, want exit code 1", err)
	}
	want := []string{
		filepath.Join(dir, "bad.yaml") + ":6: condition: ERROR: <input>:1:8: undefined field 'nope'  | process.nope == 1  | .......^",
		filepath.Join(dir, "bad.yaml") + ":1: window: is required for kind threshold (a duration such as 5m)",
	}
	if d := cmp.Diff(want, strings.Split(strings.TrimSpace(out.String()), "\n")); d != "" {
		t.Errorf("lint output (-want +got):\n%s", d)
	}

	write("bad.yaml", "id: ok\ntitle: OK\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n")
	write("bad.fixtures.yaml", "cases:\n  - name: expects an alert that never comes\n    events: [{time: 1, action: exit}]\n    expect: [{count: 1}]\n")
	out.Reset()
	if err := rulesTest(&out, []string{dir}); !errors.As(err, &ec) || ec.code != 1 {
		t.Fatalf("rules test with a failing case: got %v, want exit code 1\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "expects an alert that never comes  fail") {
		t.Errorf("table does not show the failed case:\n%s", out.String())
	}
}
