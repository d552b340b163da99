package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpDeliversEveryAlertOnceToAnOutput: under `crumbs up` (no collectors, no sink), the
// alerts raised from loadgen's suspicious events reach a JSON-lines file output, each once,
// across a SIGTERM in the middle of the stream and a restart.
func TestUpDeliversEveryAlertOnceToAnOutput(t *testing.T) {
	dir := tempDir(t)
	forCrumbs(t, dir) // the alerts stage writes there as the crumbs user
	file := filepath.Join(dir, "alerts.jsonl")
	cfg := filepath.Join(dir, "crumbs.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("alerts:\n  outputs:\n    - {name: archive, type: file, path: %q}\n", file)), 0o600); err != nil {
		t.Fatal(err)
	}
	// One alert per suspicious event: throttling would fold loadgen's into a few per host.
	p := newPipeline(t, "CRUMBS_CONFIG="+cfg, "CRUMBS_UP_STAGES=enrich,detect,alerts", "CRUMBS_DETECTOR_THROTTLE=0s")
	p.start()
	const n, every = 20000, 100
	p.crumbs("loadgen", "--mix", "process=1", "--count", fmt.Sprint(n), "--rate", "0", "--suspicious-every", fmt.Sprint(every))
	lines := func() (all int, ids map[string]int) {
		ids = map[string]int{}
		f, err := os.Open(file)
		if err != nil {
			return 0, ids
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l struct {
				Output string `json:"output"`
				Alert  struct {
					AlertID string                `json:"alert_id"`
					Host    struct{ Name string } `json:"host"`
				} `json:"alert"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Output != "archive" || !strings.HasPrefix(l.Alert.Host.Name, "loadgen-") {
				t.Errorf("unexpected line %q: %v", sc.Text(), err)
				continue
			}
			all++
			ids[l.Alert.AlertID]++
		}
		return all, ids
	}
	p.eventually(60*time.Second, "the first alerts in the file", func() (bool, string) {
		all, _ := lines()
		return all > 0, fmt.Sprint(all)
	})
	if err, took := p.stop(syscall.SIGTERM); err != nil || took > 10*time.Second {
		t.Fatalf("SIGTERM: exit %v after %s, want exit 0 within 10s\n%s", err, took, p.logs.String())
	}
	mid, _ := lines()
	t.Logf("%d of %d alerts delivered before the stop", mid, n/every)
	p.start()
	p.eventually(90*time.Second, "every alert in the file", func() (bool, string) {
		_, ids := lines()
		return len(ids) >= n/every, fmt.Sprint(len(ids))
	})
	time.Sleep(2 * time.Second) // a duplicate would come right behind
	all, ids := lines()
	if all != n/every || len(ids) != n/every {
		t.Errorf("%d lines for %d alerts, want each of %d once", all, len(ids), n/every)
	}
}
