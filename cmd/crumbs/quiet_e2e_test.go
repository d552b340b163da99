package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/eval/atomics"
)

// quietExplained are the alerts of medium severity or above that ordinary maintenance may
// raise, by rule id, each with why it fires and why that is acceptable.
var quietExplained = map[string]string{}

// TestQuietHost runs ordinary maintenance (testdata/quiet-host: cron jobs, a git clone and
// build, log rotation, an interactive user's session, then a small package installed and
// removed inside a declared change window) through `crumbs eval atomics` against crumbs up
// with the built-in pack and the Sigma corpus at the detector's default level and statuses.
// Alerts are counted when their evidence comes from the maintenance's own process trees (the
// machine is shared: other processes' alerts are not the maintenance's). At most one alert
// of medium severity or above may be raised, and each must be explained in quietExplained.
func TestQuietHost(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(root, "..", "shared", "sigma", "rules")
	p := newPipeline(t, "CRUMBS_DETECTOR_SIGMA_DIRS="+readableByCrumbs(t, corpus), "CRUMBS_DETECTOR_SIGMA_REFUSED=skip")
	p.start()
	if err := os.MkdirAll("/var/lib/crumbs", 0o755); err != nil {
		t.Fatal(err)
	}
	scratch, err := os.MkdirTemp("/var/lib/crumbs", "quiet-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	out := tempDir(t)
	run := func(name string) []atomics.Result {
		t.Helper()
		results := filepath.Join(out, name+".json")
		p.crumbs("eval", "atomics", filepath.Join("testdata", "quiet-host", name+".yaml"), "--scratch", scratch,
			"--settle", "8s", "--timeout", "120s", "--results", results, "--report", filepath.Join(out, name+".md"))
		var got []atomics.Result
		if err := json.Unmarshal(mustRead(t, results), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	results := run("ordinary")

	// The change window of the package's installation, on this host only.
	host, _ := os.Hostname()
	now := time.Now().UTC()
	change := filepath.Join(out, "change.json")
	rec := fmt.Sprintf(`{"kind": "change", "id": "CHG-QUIET-1", "type": "maintenance", "title": "install crumbs-quiet-hello",
		"services": [], "hosts": [%q], "starts_at": %q, "ends_at": %q, "expected": []}`,
		host, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	if err := os.WriteFile(change, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	p.crumbs("context", "publish", "--kind", "change", "-f", change)
	time.Sleep(2 * time.Second) // the enricher applies the record
	results = append(results, run("change")...)

	var loud []string
	for _, r := range results {
		if r.Exit != "exit 0" {
			t.Errorf("%s (%s): %s, want exit 0: maintenance that fails proves nothing", r.Simulation.ID(), r.Simulation.Name, r.Exit)
		}
		if r.Events["process"] < 2 {
			t.Errorf("%s (%s): %d exec events seen, want its commands'", r.Simulation.ID(), r.Simulation.Name, r.Events["process"])
		}
		for _, a := range r.Alerts {
			t.Logf("%s (%s): %s %s %q", r.Simulation.ID(), r.Simulation.Name, a.Severity, a.RuleID, a.Title)
			if !slices.Contains([]string{"medium", "high", "critical"}, a.Severity) {
				continue
			}
			loud = append(loud, r.Simulation.Name+": "+a.RuleID)
			if why, ok := quietExplained[a.RuleID]; !ok {
				t.Errorf("%s (%s): unexplained %s alert %s %q", r.Simulation.ID(), r.Simulation.Name, a.Severity, a.RuleID, a.Title)
			} else {
				t.Logf("explained: %s: %s", a.RuleID, why)
			}
		}
	}
	if len(loud) > 1 {
		t.Errorf("%d alerts of medium severity or above, want at most one:\n%s", len(loud), strings.Join(loud, "\n"))
	}
}
