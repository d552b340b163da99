package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/sigma"
)

// defaultSigmaFilter is the detector's default Sigma filter, which rules lint applies too.
var defaultSigmaFilter = sigma.Filter{MinLevel: sigma.DefaultMinLevel, Statuses: sigma.DefaultStatuses}

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
	err := rulesLint(&out, []string{dir}, defaultSigmaFilter)
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

// TestRulesLintSigmaCorpus: every refused file of the shared corpus is listed with its
// reason, then every file loaded without some branches of an OR with a warning naming the
// rule and the branch, a summary follows, and the exit code is 1.
func TestRulesLintSigmaCorpus(t *testing.T) {
	corpus := filepath.Join("..", "..", "..", "shared", "sigma", "rules")
	res, err := sigma.LintDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	var refusedLines, warnLines []string
	loaded := 0
	for _, r := range res {
		if r.Loaded() {
			loaded++
			for _, w := range r.Warnings() {
				warnLines = append(warnLines, r.File+": warning: "+w)
			}
			continue
		}
		refusedLines = append(refusedLines, r.File+": "+r.Reason())
	}
	if len(refusedLines) == 0 || len(warnLines) == 0 {
		t.Fatal("the corpus has no refused file or none loaded in part; this test needs both")
	}
	wantLines := append(refusedLines, warnLines...)
	var out bytes.Buffer
	err = rulesLint(&out, []string{corpus}, defaultSigmaFilter)
	var ec *exitCode
	if !errors.As(err, &ec) || ec.code != 1 {
		t.Fatalf("lint of the corpus: got %v, want exit code 1", err)
	}
	body, summary, _ := strings.Cut(out.String(), "\n\n")
	if d := cmp.Diff(wantLines, strings.Split(body, "\n")); d != "" {
		t.Errorf("refused files (-want +got):\n%s", d)
	}
	wantAll := fmt.Sprintf("all %d %d %d", len(res), loaded, len(refusedLines))
	if !strings.Contains(strings.Join(strings.Fields(summary), " "), wantAll) {
		t.Errorf("summary lacks %q:\n%s", wantAll, summary)
	}
}

// TestRulesLintFilesAndSigmaBesideNative: lint takes single files, reads a Sigma file beside
// native ones, and loads a valid set without output.
func TestRulesLintFilesAndSigmaBesideNative(t *testing.T) {
	dir := t.TempDir()
	native := filepath.Join(dir, "native.yaml")
	sig := filepath.Join(dir, "shell.yml")
	for name, body := range map[string]string{
		native: "id: ok\ntitle: OK\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n",
		sig:    "title: Shell\nid: s1\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /sh\n  condition: s\n",
	} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{dir}, {native, sig}} {
		var out bytes.Buffer
		if err := rulesLint(&out, args, defaultSigmaFilter); err != nil {
			t.Errorf("lint %v: %v\n%s", args, err, out.String())
		}
		if !strings.Contains(out.String(), "process_creation") {
			t.Errorf("lint %v: no Sigma summary:\n%s", args, out.String())
		}
	}
	var out bytes.Buffer
	if err := rulesTest(&out, []string{sig}); err != nil || !strings.Contains(out.String(), "s1") {
		t.Errorf("rules test of a Sigma file: %v\n%s", err, out.String())
	}
}

// TestRulesLintCountsWhatTheFiltersLeaveOut: over the shared corpus, lint says how many Sigma
// rules load at the default level and statuses and how many each filter left out, as counted
// from the rules' own levels and statuses; at a lower level more load. A deprecated rule is
// left out by the default statuses.
func TestRulesLintCountsWhatTheFiltersLeaveOut(t *testing.T) {
	corpus := filepath.Join("..", "..", "..", "shared", "sigma", "rules")
	res, err := sigma.LintDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	count := func(min string) (total, loaded, below, refused int) {
		rank := map[string]int{"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
		for _, r := range res {
			if !r.Loaded() {
				total++
				refused++
				continue
			}
			levels := []string{}
			for _, c := range r.Rules {
				levels = append(levels, c.Level)
			}
			for _, c := range r.Correlations {
				levels = append(levels, c.Level)
			}
			for _, l := range levels {
				total++
				if l == "" {
					l = "medium"
				}
				if rank[l] < rank[min] {
					below++
				} else {
					loaded++
				}
			}
		}
		return
	}
	for _, min := range []string{"medium", "low"} {
		total, loaded, below, refused := count(min)
		if below == 0 {
			t.Fatalf("no corpus rule below level %s; this test needs some", min)
		}
		var out bytes.Buffer
		_ = rulesLint(&out, []string{corpus}, sigma.Filter{MinLevel: min, Statuses: sigma.DefaultStatuses})
		want := fmt.Sprintf("%d Sigma rules: %d loaded, %d below level %s, %d refused", total, loaded, below, min, refused)
		if !strings.Contains(out.String(), want) {
			t.Errorf("lint at level %s lacks %q:\n%s", min, want, out.String())
		}
	}

	dir := t.TempDir()
	for name, body := range map[string]string{
		"old.yml": "title: Old\nid: old\nstatus: deprecated\nlevel: high\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /nc\n  condition: s\n",
		"new.yml": "title: New\nid: new\nstatus: test\nlevel: high\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /ncat\n  condition: s\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := rulesLint(&out, []string{dir}, defaultSigmaFilter); err != nil {
		t.Fatalf("lint: %v\n%s", err, out.String())
	}
	if want := "2 Sigma rules: 1 loaded, 1 deprecated"; !strings.Contains(out.String(), want) {
		t.Errorf("lint lacks %q:\n%s", want, out.String())
	}
}

// TestRulesTestReportsPerKind: a Sigma auditd rule reading exec and file events runs its
// fixtures with events of both kinds against both of its engine rules at once, and rules
// test reports its cases, events and alerts per kind, noting a kind no event exercises; an
// event that does not say its kind fails its case.
func TestRulesTestReportsPerKind(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("policy.yml", `title: Password policy read
id: 6f1c2d4e-0000-4000-8000-000000000001
level: low
logsource:
  product: linux
  service: auditd
detection:
  execve:
    type: EXECVE
    a0: chage
    a1: '-l'
  path:
    type: PATH
    name: /etc/login.defs
  condition: 1 of them
`)
	write("policy.fixtures.yaml", `cases:
  - name: chage -l and a read of login.defs fire
    events:
      - {kind: process, time: "2026-03-01T10:00:00Z", action: exec, process: {file: {path: /usr/bin/chage, name: chage}, args: [chage, "-l", root]}}
      - {kind: file, time: "2026-03-01T10:00:01Z", action: write, file: {path: /etc/login.defs}}
    expect:
      - {rule_id: 6f1c2d4e-0000-4000-8000-000000000001}
      - {rule_id: 6f1c2d4e-0000-4000-8000-000000000001}
  - name: chage -d and other files do not fire
    events:
      - {kind: process, time: "2026-03-01T10:00:00Z", action: exec, process: {file: {path: /usr/bin/chage, name: chage}, args: [chage, "-d", "0", root]}}
      - {kind: file, time: "2026-03-01T10:00:01Z", action: write, file: {path: /etc/hosts}}
      - {kind: file, time: "2026-03-01T10:00:02Z", action: write, file: {path: /etc/motd}}
    expect: []
`)
	var out bytes.Buffer
	if err := rulesTest(&out, []string{dir}); err != nil {
		t.Fatalf("rules test: %v\n%s", err, out.String())
	}
	_, kinds, ok := strings.Cut(out.String(), "\n\n")
	if !ok {
		t.Fatalf("no per-kind table:\n%s", out.String())
	}
	var got [][]string
	for _, line := range strings.Split(strings.TrimSpace(kinds), "\n")[1:] {
		got = append(got, strings.Fields(line))
	}
	want := [][]string{
		{"6f1c2d4e-0000-4000-8000-000000000001", "file", "2", "3", "1"},
		{"6f1c2d4e-0000-4000-8000-000000000001", "process", "2", "2", "1"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("per-kind table (-want +got):\n%s", d)
	}

	// Only exec events in the fixtures: the file kind is noted; an event without its kind fails.
	write("policy.fixtures.yaml", `cases:
  - name: chage -l fires
    events:
      - {kind: process, time: "2026-03-01T10:00:00Z", action: exec, process: {file: {path: /usr/bin/chage, name: chage}, args: [chage, "-l", root]}}
    expect:
      - {rule_id: 6f1c2d4e-0000-4000-8000-000000000001}
  - name: an event without its kind does not say which of the rule's kinds it is
    events:
      - {time: "2026-03-01T10:00:00Z", action: exec, process: {file: {path: /usr/bin/chage, name: chage}, args: [chage, "-l", root]}}
    expect: []
`)
	out.Reset()
	var ec *exitCode
	if err := rulesTest(&out, []string{dir}); !errors.As(err, &ec) || ec.code != 1 {
		t.Fatalf("rules test with an event without its kind: got %v, want exit code 1\n%s", err, out.String())
	}
	for _, want := range []string{
		"event 1: kind: required, the rule reads several kinds (file, process)",
		"file     0      0       0       no fixture event of this kind",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
