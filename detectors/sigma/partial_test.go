package sigma

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOrBranchesBeyondTelemetry: an OR whose branches are partly beyond crumbs' telemetry
// loads the branches it can judge and records the others; an AND, a negated OR, a quantifier
// other than 1 of, an OR with nothing left and a branch that is wrong (not merely unknown to
// crumbs) still refuse the rule.
func TestOrBranchesBeyondTelemetry(t *testing.T) {
	const (
		image    = "    Image|endswith: '/evil'\n"
		unmapped = "    OriginalFileName: 'evil.exe'\n"
		why      = "field OriginalFileName: crumbs has no equivalent in process_creation events (see the field mapping in docs/sigma.md)"
	)
	for _, tc := range []struct {
		name    string
		src     string
		dropped []Dropped
		refused string // substring of the refusal; "" when the rule loads
	}{
		{name: "1 of selection_* drops the unmapped selection",
			src:     procRule("  selection_img:\n" + image + "  selection_pe:\n" + unmapped + "  condition: 1 of selection_*"),
			dropped: []Dropped{{Branch: "selection_pe", Reason: "selection_pe: " + why}}},
		{name: "1 of them drops it too",
			src:     procRule("  selection_img:\n" + image + "  selection_pe:\n" + unmapped + "  condition: 1 of them"),
			dropped: []Dropped{{Branch: "selection_pe", Reason: "selection_pe: " + why}}},
		{name: "or drops a whole and branch",
			src: procRule("  a:\n" + image + "  b:\n" + unmapped + "  c:\n    CommandLine|contains: 'evil'\n" +
				"  condition: (a and b) or c"),
			dropped: []Dropped{{Branch: "a and b", Reason: "b: " + why}}},
		{name: "several conditions are an or",
			src:     procRule("  a:\n" + image + "  b:\n" + unmapped + "  condition:\n    - a\n    - b"),
			dropped: []Dropped{{Branch: "b", Reason: "b: " + why}}},
		{name: "and over an unmapped selection refuses",
			src:     procRule("  a:\n" + image + "  b:\n" + unmapped + "  condition: a and b"),
			refused: "b: " + why},
		{name: "all of refuses",
			src:     procRule("  selection_img:\n" + image + "  selection_pe:\n" + unmapped + "  condition: all of selection_*"),
			refused: "selection_pe: " + why},
		{name: "a negated or refuses: dropping a filter would widen the rule",
			src: procRule("  selection:\n" + image + "  filter_a:\n    User: root\n  filter_b:\n" + unmapped +
				"  condition: selection and not 1 of filter_*"),
			refused: "filter_b: " + why},
		{name: "an or with nothing left refuses",
			src:     procRule("  a:\n" + unmapped + "  b:\n    Hashes|contains: 'x'\n  condition: a or b"),
			refused: "a: " + why},
		{name: "a wrong branch refuses even in an or",
			src:     procRule("  a:\n" + image + "  b:\n    Image|foo: 'x'\n  condition: a or b"),
			refused: `modifier "foo": not a Sigma modifier`},
		{name: "an auditd record type crumbs lacks is dropped from an or",
			src: "title: t\nlogsource:\n  product: linux\n  service: auditd\ndetection:\n  selection_path:\n    type: PATH\n" +
				"    name: /etc/pam.d/system-auth\n  selection_tty:\n    type: TTY\n  condition: 1 of selection_*\n",
			dropped: []Dropped{{Branch: "selection_tty", Reason: "selection_tty: type TTY: crumbs records no equivalent of this auditd type (terminal input is not recorded)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileOne(t, tc.src)
			if tc.refused != "" {
				if err == nil {
					t.Fatalf("rule loaded without %v, want it refused", c.Dropped)
				}
				if !strings.Contains(err.Error(), tc.refused) {
					t.Errorf("reason %q, want ...%s...", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.dropped, c.Dropped); diff != "" {
				t.Errorf("dropped (-want +got):\n%s", diff)
			}
		})
	}

	// What is left is judged as written.
	c, err := compileOne(t, procRule("  a:\n"+image+"  b:\n"+unmapped+"  c:\n    CommandLine|contains: 'evil'\n  condition: (a and b) or c"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fields map[string]any
		want   bool
	}{
		{map[string]any{"process.cmd_line": "run evil now"}, true},
		{map[string]any{"process.file.path": "/tmp/evil"}, false}, // a alone is not the dropped a and b
		{map[string]any{"process.cmd_line": "run good now"}, false},
	} {
		if got := matches(c, procEvent(tc.fields)); got != tc.want {
			t.Errorf("%v: match %v, want %v", tc.fields, got, tc.want)
		}
	}
}

// TestCorpusOrBranchesDropped: SigmaHQ's auditd rules whose 1 of selection_* has a branch
// on a record type or syscall crumbs does not record load the other branches, with a lint
// warning naming the rule, the branch and why; the rules whose every branch, or an AND
// operand, is beyond crumbs stay refused.
func TestCorpusOrBranchesDropped(t *testing.T) {
	dir := corpusDir(t)
	lint := func(rel string) LintResult {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return LintFile(rel, data)
	}
	for _, tc := range []struct {
		file     string
		warnings []string
		target   string
		fields   map[string]any // an event the branch that is left judges
	}{
		{file: "linux/auditd/lnx_auditd_keylogging_with_pam_d.yml",
			warnings: []string{`rule "Linux Keylogging with Pam.d": condition branch "selection_tty_events" dropped (selection_tty_events: type TTY: crumbs records no equivalent of this auditd type (terminal input is not recorded)); the rule loads without it`},
			target:   "auditd PATH NORMAL file", fields: map[string]any{"file.path": "/etc/pam.d/system-auth"}},
		{file: "linux/auditd/syscall/lnx_auditd_create_account.yml",
			warnings: []string{`rule "Creation Of An User Account": condition branch "selection_add_user_record_type" dropped (selection_add_user_record_type: type ADD_USER: crumbs records no equivalent of this auditd type (account management is not recorded)); the rule loads without it`},
			target:   "auditd SYSCALL execve", fields: map[string]any{"process.file.path": "/usr/sbin/useradd"}},
		{file: "linux/auditd/lnx_auditd_disable_aslr_protection.yml",
			warnings: []string{`rule "ASLR Disabled Via Sysctl or Direct Syscall - Linux": condition branch "selection_syscall" dropped (selection_syscall: SYSCALL personality: crumbs records no equivalent of this auditd SYSCALL (crumbs traces only exec, connect, accept and file changes)); the rule loads without it`},
			target:   "auditd EXECVE", fields: map[string]any{"process.args": []any{"sysctl", "-w", "kernel.randomize_va_space=0"}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := lint(tc.file)
			if !r.Loaded() {
				t.Fatalf("refused: %v", r.Err)
			}
			if diff := cmp.Diff(tc.warnings, r.Warnings()); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			var tg target
			for _, x := range auditdTargets {
				if x.Name == tc.target {
					tg = x
				}
			}
			ev := baseEvent(tg)
			for p, v := range tc.fields {
				setPath(ev, p, v)
			}
			if !matches(r.Rules[0], ev) {
				t.Errorf("the branch left does not match %v", tc.fields)
			}
			if matches(r.Rules[0], baseEvent(tg)) {
				t.Error("an empty event matches")
			}
		})
	}
	for file, want := range map[string]string{
		// One selection, on a record type crumbs lacks.
		"linux/auditd/service_stop/lnx_auditd_disable_system_firewall.yml": "selection: type SERVICE_STOP",
		// selection and not 1 of filter_main_*: the AND's selection is beyond crumbs.
		"rules-emerging-threats/2026/Exploits/CVE-2026-31431/lnx_auditd_exploit_cve_2026_31431_af_alg_socket_creation.yml": "selection: SYSCALL socket",
	} {
		r := lint(file)
		if r.Loaded() {
			t.Errorf("%s loaded (warnings %v), want it refused", file, r.Warnings())
			continue
		}
		if !strings.Contains(r.Err.Error(), want) {
			t.Errorf("%s: refused for %q, want ...%s...", file, r.Err, want)
		}
	}
}
