package atomics

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseForms(t *testing.T) {
	art := `
attack_technique: T1053.003
atomic_tests:
- name: Cron - Add script to /etc/cron.d folder
  auto_generated_guid: b5bbd5c2-0000-0000-0000-000000000001
  supported_platforms: [linux]
  input_arguments:
    command: {default: "echo hi > /tmp/x"}
    cron_script_name: {default: persistevil}
  dependencies:
  - prereq_command: command -v cron
    get_prereq_command: apt-get install -y cron
  executor:
    name: sh
    command: 'echo "#{command}" > /etc/cron.d/#{cron_script_name}'
    cleanup_command: rm /etc/cron.d/#{cron_script_name}
- name: Windows only
  supported_platforms: [windows]
  executor: {name: powershell, command: dir}
`
	derived := `
tests:
- technique: T1033
  test_number: 2
  test_name: System Owner/User Discovery
  guid: 2a9b677d-0000-0000-0000-000000000002
  executor: sh
  command: "users\nw\nwho\n"
  prereq_checks: ["command -v w"]
  telemetry: [process]
`
	tests := []struct {
		name, data string
		want       []Simulation
	}{
		{"atomic red team", art, []Simulation{{Technique: "T1053.003", TestNumber: 1, Name: "Cron - Add script to /etc/cron.d folder",
			GUID: "b5bbd5c2-0000-0000-0000-000000000001", Executor: "sh", Command: `echo "echo hi > /tmp/x" > /etc/cron.d/persistevil`,
			Cleanup: "rm /etc/cron.d/persistevil", Prereqs: []string{"command -v cron"}, Telemetry: []string{"process"}}}},
		{"derived list", derived, []Simulation{{Technique: "T1033", TestNumber: 2, Name: "System Owner/User Discovery",
			GUID: "2a9b677d-0000-0000-0000-000000000002", Executor: "sh", Command: "users\nw\nwho\n",
			Prereqs: []string{"command -v w"}, Telemetry: []string{"process"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("x.yaml", []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("tests:\n- technique: X1\n  executor: powershell\n  command: ''\n"))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"bad.yaml: tests.0", "technique \"X1\"", "executor \"powershell\"", "command: is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := Parse("other.yaml", []byte("a: 1\n")); err == nil || !strings.Contains(err.Error(), "other.yaml") {
		t.Errorf("a file of neither form: error %v", err)
	}
}

// TestTreeLineage: a process belongs to the tree when its parent, named by pid and start
// time, does; a reused pid with another start does not, nor does the harness's own exec.
func TestTreeLineage(t *testing.T) {
	const from, to = int64(1000e9), int64(1010e9)
	events := []procEvent{
		{ID: "fork-root", Action: "fork", PID: 50, PPID: 49, Start: 1000.1e9, ParentStart: 999e9, Time: 1000.1e9},
		{ID: "harness", Action: "exec", PID: 50, PPID: 1, Start: 1000.1e9, Time: 1000.2e9, Harness: true},
		{ID: "shell", Action: "exec", PID: 50, PPID: 1, Start: 1000.1e9, Time: 1000.3e9},
		{ID: "child", Action: "exec", PID: 51, PPID: 50, Start: 1000.4e9, ParentStart: 1000.1e9, Time: 1000.4e9},
		{ID: "grandchild", Action: "exec", PID: 52, PPID: 51, Start: 1000.5e9, ParentStart: 1000.4e9, Time: 1000.5e9},
		{ID: "stranger", Action: "exec", PID: 60, PPID: 50, Start: 1000.6e9, ParentStart: 900e9, Time: 1000.6e9},
		{ID: "child-exit", Action: "exit", PID: 51, Start: 1000.4e9, Time: 1000.7e9},
		{ID: "root-exit", Action: "exit", PID: 50, Start: 1000.1e9, Time: 1000.8e9, ExitCode: 3},
	}
	tr, ok := buildTree(events, 50, from, to)
	if !ok {
		t.Fatal("tree not found")
	}
	var owned []string
	for _, e := range events {
		if tr.ownsProcessEvent(e) {
			owned = append(owned, e.ID)
		}
	}
	want := []string{"fork-root", "shell", "child", "grandchild", "child-exit", "root-exit"}
	if diff := cmp.Diff(want, owned); diff != "" {
		t.Errorf("owned events (-want +got)\n%s", diff)
	}
	if !tr.exited || tr.exitCode != 3 {
		t.Errorf("exit: %v %d, want true 3", tr.exited, tr.exitCode)
	}
	for _, tc := range []struct {
		pid  int32
		at   int64
		want bool
	}{{51, 1000.5e9, true}, {51, 1000.9e9, false}, {60, 1000.7e9, false}, {52, 1001e9, true}} {
		if got := tr.ownsAt(tc.pid, tc.at); got != tc.want {
			t.Errorf("ownsAt(%d, %d) = %v, want %v", tc.pid, tc.at, got, tc.want)
		}
	}
	if _, ok := buildTree(events, 50, 2000e9, 2010e9); ok {
		t.Error("a shell started long before the launch was taken for it")
	}
}

func TestReportRoundTrip(t *testing.T) {
	results := []Result{
		{Simulation: Simulation{Technique: "T1033", TestNumber: 2, Name: "Owner | user"}, Exit: "exit 0",
			Events: map[string]int{"process": 4}, Alerts: []AlertHit{{RuleID: "crumbs-discovery-burst", Technique: true}},
			Technique: true, Latency: 2 * time.Second},
		{Simulation: Simulation{Technique: "T1057", TestNumber: 1, Name: "ps"}, Exit: "exit 0",
			Events: map[string]int{"process": 3}, Why: WhyRuleMissed, RulesForTechnique: []string{"crumbs-discovery-burst"}},
		{Simulation: Simulation{Technique: "T1046", TestNumber: 12, Name: "nmap"}, Skipped: "prerequisite not met here: x", Why: WhyNotRun},
		{Simulation: Simulation{Technique: "T1070.003", TestNumber: 6, Name: "history"}, Exit: "exit 0",
			Events: map[string]int{"process": 1}, Alerts: []AlertHit{{RuleID: "sigma-x"}}, Why: WhyRuleMissed},
	}
	md := Markdown(results, "intro")
	want := map[string]Recorded{
		"T1033 #2":     {Ran: true, Technique: true, AnyAlert: true},
		"T1057 #1":     {Ran: true},
		"T1046 #12":    {},
		"T1070.003 #6": {Ran: true, AnyAlert: true},
	}
	if diff := cmp.Diff(want, ParseReport(md)); diff != "" {
		t.Errorf("(-want +got)\n%s\n%s", diff, md)
	}
	f := Sum(results)
	if diff := cmp.Diff(Figures{Simulations: 4, Ran: 3, Observable: 3, Technique: 1, AnyAlert: 2, MedianLatency: 2 * time.Second}, f); diff != "" {
		t.Errorf("figures (-want +got)\n%s", diff)
	}
	if !strings.Contains(md, "1 of 3 (33 %; target 80 %)") {
		t.Errorf("report does not state the technique share:\n%s", md)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		scratch string
		ok      bool
	}{{"/var/lib/crumbs/eval", true}, {"/tmp", false}, {"/tmp/x", false}, {"rel", false}, {"/tmpfoo", true}} {
		c := DefaultConfig()
		c.Scratch = tc.scratch
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("scratch %q: error %v, want ok %v", tc.scratch, err, tc.ok)
		}
	}
}

func TestNotFound(t *testing.T) {
	out := "sh: 1: sudo: not found\ncat: /tmp/x: No such file or directory\nbash: line 2: auditctl: command not found\n"
	var got []string
	for _, m := range notFound.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	if diff := cmp.Diff([]string{"sudo", "auditctl"}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
