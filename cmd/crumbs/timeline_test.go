package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// runQueryCmd runs `crumbs args...` in-process against cfg's database and returns stdout.
func runQueryCmd(t *testing.T, cfg clickhouse.Config, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	for _, c := range []*cobra.Command{timelineCmd(), alertsCmd()} {
		if found, _, err := root.Find([]string{c.Name()}); err != nil || found == root {
			root.AddCommand(c)
		}
	}
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--clickhouse.addr", cfg.Addr[0], "--clickhouse.database", cfg.Database))
	err := root.Execute()
	return out.String(), err
}

func TestTimelineCommand(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	clickhousetest.Land(t, cfg, s)
	from, to := s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339)

	t.Run("json", func(t *testing.T) {
		out, err := runQueryCmd(t, cfg, "timeline", "--host", clickhousetest.WebHost, "--from", from, "--to", to, "--format", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var tl query.Timeline
		if err := json.Unmarshal([]byte(out), &tl); err != nil {
			t.Fatalf("decode output: %v\n%s", err, out)
		}
		kinds := map[string]int{}
		for _, e := range tl.Entries {
			kinds[e.Kind]++
		}
		want := map[string]int{"process": len(s.Process), "network": len(s.Network), "file": len(s.File), "identity": len(s.Identity), "alert": 2}
		if diff := cmp.Diff(want, kinds); diff != "" {
			t.Errorf("entries by kind (-want +got):\n%s", diff)
		}
		if len(tl.Changes) != 1 || tl.Changes[0].ID != clickhousetest.ChangeID {
			t.Errorf("change windows: %+v, want %s", tl.Changes, clickhousetest.ChangeID)
		}
	})
	t.Run("table with tree and stats", func(t *testing.T) {
		out, err := runQueryCmd(t, cfg, "timeline", "--service", clickhousetest.WebService, "--from", from, "--to", to, "--stats")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{
			"    exec /tmp/x [/tmp/x --quiet]", // two levels below sshd: sshd > bash > /tmp/x
			"sha256=dd44", "CHG-1042", "[critical] deployed-file-changed", "ROWS_READ", "process_events",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("alert", func(t *testing.T) {
		out, err := runQueryCmd(t, cfg, "timeline", "--alert", "alert-ssh-then-unknown-binary", "--before", "3m", "--after", "10s")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "auth sshd user=root from=198.51.100.23 failure") {
			t.Errorf("output lacks the failed logins before the alert:\n%s", out)
		}
	})
	for _, bad := range [][]string{
		{"timeline"},
		{"timeline", "--host", "a", "--service", "b"},
		{"timeline", "--host", "a", "--from", "yesterday"},
		{"timeline", "--host", "a", "--format", "xml"},
	} {
		t.Run(strings.Join(bad, " "), func(t *testing.T) {
			if out, err := runQueryCmd(t, cfg, bad...); err == nil {
				t.Errorf("no error; output:\n%s", out)
			}
		})
	}
}

func TestAlertsCommand(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	clickhousetest.Land(t, cfg, s)
	since := s.Start.Format(time.RFC3339)

	out, err := runQueryCmd(t, cfg, "alerts", "--since", since, "--severity", "high", "--format", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var as []query.AlertRow
	if err := json.Unmarshal([]byte(out), &as); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if len(as) != 1 || as[0].ID != "alert-ssh-then-unknown-binary" {
		t.Errorf("high alerts: %+v", as)
	}
	out, err = runQueryCmd(t, cfg, "alerts", "--since", since, "--service", clickhousetest.DBService)
	if err != nil || !strings.Contains(out, "db-volume-spike") || strings.Contains(out, "deployed-file-changed") {
		t.Errorf("alerts --service %s: err %v, output:\n%s", clickhousetest.DBService, err, out)
	}
	out, err = runQueryCmd(t, cfg, "alerts", "show", "alert-ssh-then-unknown-binary")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Evidence (2 of 2 events)", "exec /tmp/x", "auth sshd user=alice from=198.51.100.23 success"} {
		if !strings.Contains(out, want) {
			t.Errorf("alerts show lacks %q:\n%s", want, out)
		}
	}
	if _, err := runQueryCmd(t, cfg, "alerts", "show", "nope"); err == nil {
		t.Error("alerts show nope: no error")
	}
}

// TestTerminalOutputQuotesControls: a command line carrying escape sequences (clear the
// screen, retitle the window, reverse the text) reaches the table output of crumbs timeline
// and crumbs alerts show as visible escapes, and the JSON output as the same bytes, in valid
// JSON.
func TestTerminalOutputQuotesControls(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	const evil = "\x1b]0;owned\a\x1b[2J\rrm -rf /\u202etxt.exe\u009b"
	const shown = `\x1b]0;owned\a\x1b[2J\rrm -rf /\u202etxt.exe\u009b`
	p := &s.Process[3].Process // /tmp/x, evidence of alert-ssh-then-unknown-binary
	p.Args = append(p.Args, evil)
	clickhousetest.Land(t, cfg, s)
	from, to := s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339)

	for _, args := range [][]string{
		{"timeline", "--host", clickhousetest.WebHost, "--from", from, "--to", to},
		{"alerts", "show", "alert-ssh-then-unknown-binary"},
	} {
		out, err := runQueryCmd(t, cfg, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		if strings.ContainsAny(out, "\x1b\a\r\u202e\u009b") {
			t.Errorf("%s: control characters reach the terminal: %q", args[0], out)
		}
		if !strings.Contains(out, shown) {
			t.Errorf("%s: output lacks the escaped command line %s:\n%s", args[0], shown, out)
		}
	}
	out, err := runQueryCmd(t, cfg, "timeline", "--host", clickhousetest.WebHost, "--from", from, "--to", to, "--format", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.ContainsAny(out, "\x1b\a\r\u202e\u009b") {
		t.Errorf("JSON: control characters reach the terminal: %q", out)
	}
	var tl query.Timeline
	if err := json.Unmarshal([]byte(out), &tl); err != nil {
		t.Fatalf("JSON output is not JSON: %v", err)
	}
	found := false
	for _, e := range tl.Entries {
		found = found || strings.Contains(e.Summary, evil)
	}
	if !found {
		t.Errorf("JSON output lacks the command line as it was")
	}
}
