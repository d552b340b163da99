package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// complete asks the command tree for the completions of args as a shell's script does
// (`crumbs __complete args...`), returning the candidates without their descriptions and the
// directive.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{cobraComplete}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("crumbs __complete %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var got []string
	directive := ""
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(line, ":") {
			directive = line
			continue
		}
		if line != "" {
			got = append(got, strings.SplitN(line, "\t", 2)[0])
		}
	}
	return got, directive
}

const cobraComplete = "__complete"

// TestCompletionScripts: crumbs completion prints a script for bash, zsh and fish.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_crumbs", "zsh": "#compdef crumbs", "fish": "complete -c crumbs"} {
		out, err := runRoot(t, "completion", shell)
		if err != nil {
			t.Fatalf("crumbs completion %s: %v", shell, err)
		}
		if !strings.Contains(out, want) {
			t.Errorf("crumbs completion %s lacks %q", shell, want)
		}
	}
}

// TestCompletionOfFixedChoicesAndRules: flags with fixed values complete them; --rule
// completes the ids of the configured rule set.
func TestCompletionOfFixedChoicesAndRules(t *testing.T) {
	got, _ := complete(t, "alerts", "--severity", "")
	if diff := cmp.Diff([]string{"informational", "low", "medium", "high", "critical"}, got); diff != "" {
		t.Errorf("alerts --severity (-want +got):\n%s", diff)
	}
	got, _ = complete(t, "context", "publish", "--kind", "")
	if diff := cmp.Diff([]string{"change", "deploy", "inventory", "account"}, got); diff != "" {
		t.Errorf("context publish --kind (-want +got):\n%s", diff)
	}
	got, _ = complete(t, "timeline", "--log.level", "")
	if diff := cmp.Diff([]string{"debug", "info", "warn", "error"}, got); diff != "" {
		t.Errorf("timeline --log.level (-want +got):\n%s", diff)
	}
	got, _ = complete(t, "up", "--up.stages", "")
	if diff := cmp.Diff(upStages, got); diff != "" {
		t.Errorf("up --up.stages (-want +got):\n%s", diff)
	}
	got, _ = complete(t, "com")
	if !slices.Contains(got, "completion") {
		t.Errorf("crumbs com<TAB> = %v, want completion among them", got)
	}

	cfg := detectors.DefaultConfig()
	rules, err := cfg.LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range rules {
		if strings.HasPrefix(r.ID, "crumbs-b") {
			want = append(want, r.ID)
		}
	}
	if len(want) == 0 {
		t.Fatal("the built-in pack has no rule starting with crumbs-b")
	}
	got, directive := complete(t, "alerts", "--rule", "crumbs-b")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts --rule crumbs-b (-want +got):\n%s", diff)
	}
	if directive != ":4" { // ShellCompDirectiveNoFileComp
		t.Errorf("alerts --rule: directive %s, want :4 (no file completion)", directive)
	}
}

// TestCompletionFromClickHouse: --host, --service and alert ids complete from what the sink
// wrote; a ClickHouse that does not answer completes nothing, with an error directive.
func TestCompletionFromClickHouse(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	clickhousetest.Land(t, cfg, s)
	ch := []string{"--clickhouse.addr", cfg.Addr[0], "--clickhouse.database", cfg.Database}

	got, _ := complete(t, append([]string{"timeline"}, append(ch, "--host", clickhousetest.WebHost[:2])...)...)
	if !slices.Contains(got, clickhousetest.WebHost) {
		t.Errorf("timeline --host %s<TAB> = %v, want %s among them", clickhousetest.WebHost[:2], got, clickhousetest.WebHost)
	}
	for _, h := range got {
		if !strings.HasPrefix(h, clickhousetest.WebHost[:2]) {
			t.Errorf("timeline --host %s<TAB> offers %q", clickhousetest.WebHost[:2], h)
		}
	}
	got, _ = complete(t, append([]string{"alerts"}, append(ch, "--service", "")...)...)
	if !slices.Contains(got, clickhousetest.WebService) {
		t.Errorf("alerts --service <TAB> = %v, want %s among them", got, clickhousetest.WebService)
	}
	const alertID = "alert-ssh-then-unknown-binary"
	got, _ = complete(t, append(append([]string{"alerts", "show"}, ch...), "alert-ssh")...)
	if diff := cmp.Diff([]string{alertID}, got); diff != "" {
		t.Errorf("alerts show alert-ssh<TAB> (-want +got):\n%s", diff)
	}
	got, _ = complete(t, append(append([]string{"alerts", "ack"}, ch...), alertID, "")...)
	if len(got) != 0 {
		t.Errorf("alerts ack ID <TAB> = %v, want nothing after the id", got)
	}
	got, _ = complete(t, append([]string{"timeline"}, append(ch, "--alert", "alert-ssh")...)...)
	if diff := cmp.Diff([]string{alertID}, got); diff != "" {
		t.Errorf("timeline --alert alert-ssh<TAB> (-want +got):\n%s", diff)
	}

	// Nothing listens on port 1: nothing is offered, the shell is told so.
	got, directive := complete(t, "timeline", "--clickhouse.addr", "127.0.0.1:1", "--host", "")
	if len(got) != 0 || directive != ":1" { // ShellCompDirectiveError
		t.Errorf("timeline --host <TAB> without ClickHouse = %v %s, want nothing and :1", got, directive)
	}
}
