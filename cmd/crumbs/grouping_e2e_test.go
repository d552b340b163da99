package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

const fileChangedRule = "crumbs-sensitive-file-changed-outside-change"

// fileChangedPaths is the path part of the file rule's condition: the files useradd changes
// that it alerts on.
var fileChangedPaths = regexp.MustCompile(`^(/usr)?/s?bin/|^/opt/[^/]+/bin/|^/etc/(passwd|shadow|sudoers)`)

// TestUseraddPairIsOneAlertPerRule: `useradd -M x && userdel x` on the real kernel, through
// crumbs up with a throttle of 15 s (a minute by default; shorter here only to end sooner),
// raises one alert of the file rule for this host, not one per file and action; when its
// throttle window closes, its final version counts every
// change and its evidence holds every file the pair changed (the lock and temporary siblings
// folded onto the file). No rule raises more than one alert on this host within that window.
// groupingThrottle is the test's detector.throttle.
const groupingThrottle = 15 * time.Second

func TestUseraddPairIsOneAlertPerRule(t *testing.T) {
	// The network collector is off: it cannot load on this kernel yet (issue 13).
	p := newPipeline(t, "CRUMBS_COLLECTORS_NETWORK_ENABLED=false",
		"CRUMBS_DETECTOR_ALLOWED_LATENESS=1s", "CRUMBS_DETECTOR_IDLE_TIMEOUT=2s", "CRUMBS_DETECTOR_THROTTLE="+groupingThrottle.String())
	p.start()
	host, _ := os.Hostname()
	user := randomName("crumbs-ua-")
	t.Cleanup(func() { _ = exec.Command("userdel", user).Run() })
	began := time.Now().Add(-time.Second).Truncate(time.Second) // file_events.time has seconds
	if out, err := exec.Command("sh", "-c", "useradd -M "+user+" && userdel "+user).CombinedOutput(); err != nil {
		t.Fatalf("useradd and userdel: %v\n%s", err, out)
	}
	ctx := context.Background()

	// The pair's changes of files the rule watches, as the sink landed them.
	type change struct{ id, path, exe string }
	var changes []change
	seen := -1
	p.eventually(30*time.Second, "the pair's file changes in file_events", func() (bool, string) {
		rows, err := p.conn.Query(ctx, fmt.Sprintf(`SELECT event_id, file_path, exe_name FROM %s.file_events
			WHERE host_name = ? AND time >= ? AND exe_name IN ('useradd', 'userdel') ORDER BY time, time_ns`, p.database), host, began)
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		changes = changes[:0]
		for rows.Next() {
			var c change
			if err := rows.Scan(&c.id, &c.path, &c.exe); err != nil {
				return false, err.Error()
			}
			if fileChangedPaths.MatchString(c.path) {
				changes = append(changes, c)
			}
		}
		// Both commands' changes landed, and no more came since the last look.
		done := slices.ContainsFunc(changes, func(c change) bool { return c.exe == "userdel" }) && len(changes) == seen
		seen = len(changes)
		if done {
			time.Sleep(time.Second)
		}
		return done, fmt.Sprint(len(changes), " changes")
	})

	// The alert's final version, once its throttle window closed.
	type alertRow struct {
		id, incident string
		count        int64
		evidence     []string
		final        uint8
		start, end   time.Time
	}
	var final alertRow
	latest := fmt.Sprintf(`SELECT alert_id, incident_id, count, evidence, final, window_start, window_end FROM %s.alerts
		WHERE rule_id = ? AND host_name = ? AND window_end >= ? ORDER BY version DESC LIMIT 1 BY alert_id`, p.database)
	p.eventually(150*time.Second, "the file rule's alert, final", func() (bool, string) {
		rows, err := p.conn.Query(ctx, latest, fileChangedRule, host, began)
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		var got []alertRow
		for rows.Next() {
			var a alertRow
			if err := rows.Scan(&a.id, &a.incident, &a.count, &a.evidence, &a.final, &a.start, &a.end); err != nil {
				return false, err.Error()
			}
			got = append(got, a)
		}
		for _, a := range got {
			if a.final == 1 && a.count >= int64(len(changes)) {
				final = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", got)
	})
	paths := map[string]bool{}
	for _, c := range changes {
		paths[c.path] = true
	}
	t.Logf("useradd -M and userdel: %d changes of watched files, %d paths (one alert each change before throttling); one alert of %d events now, final, %d evidence events",
		len(changes), len(paths), final.count, len(final.evidence))
	if final.incident == "" {
		t.Errorf("the alert has no incident id")
	}

	// Every file the pair changed is in the evidence, through one event of it or a sibling.
	want := map[string]bool{}
	for _, c := range changes {
		want[engine.RealPath(c.path)] = true
	}
	rows, err := p.conn.Query(ctx, fmt.Sprintf(`SELECT file_path FROM %s.file_events WHERE has(?, event_id)`, p.database), final.evidence)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for rows.Next() {
		var path string
		if err := rows.Scan(&path); err != nil {
			t.Fatal(err)
		}
		got[engine.RealPath(path)] = true
	}
	rows.Close()
	var missing []string
	for f := range want {
		if !got[f] {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("files the pair changed that the alert's evidence (%d events) lacks: %v", len(final.evidence), missing)
	}

	// At most one alert per rule on this host over the pair's throttle window.
	perRule := fmt.Sprintf(`SELECT rule_id, uniqExact(alert_id) FROM %s.alerts
		WHERE host_name = ? AND window_start >= ? AND window_start < ? GROUP BY rule_id`, p.database)
	r2, err := p.conn.Query(ctx, perRule, host, began, began.Add(groupingThrottle))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for r2.Next() {
		var rule string
		var n uint64
		if err := r2.Scan(&rule, &n); err != nil {
			t.Fatal(err)
		}
		t.Logf("rule %s: %d alert(s) on %s within %v", rule, n, host, groupingThrottle)
		if n > 1 {
			t.Errorf("rule %s raised %d alerts on %s within %v, want at most 1", rule, n, host, groupingThrottle)
		}
	}
}
