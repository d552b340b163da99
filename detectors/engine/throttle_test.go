package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// fileChanged is a match rule over file changes grouped by host, as the built-in pack's
// file-changed-outside-change rule is.
const fileChanged = `id: fc
title: File changed
severity: high
source: file
kind: match
condition: action in ["create", "write", "rename", "delete"] && file.path.startsWith("/etc/")
group_by: [host.name]
`

// fileEvent is a file event of a host at t milliseconds, by a process.
func fileEvent(t *testing.T, id string, ms int64, host, action, path string, pid int64) map[string]any {
	t.Helper()
	ev, err := engine.FixtureEvent("file", map[string]any{
		"time": ms * int64(time.Millisecond), "host": map[string]any{"id": host, "name": host}, "action": action,
		"file": map[string]any{"path": path}, "process": map[string]any{"pid": pid}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// useraddPaths are the changes `useradd -M x && userdel x` makes under /etc, as the file
// collector saw them on this machine: every file through its lock, temporary and backup
// siblings.
var useraddPaths = func() []string {
	var out []string
	for _, f := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"} {
		out = append(out, f+".12269", f+".lock", f+"+", f+"-", f+"+", f, f+".12269", f+".lock", f+"+", f+"-", f+"+", f)
	}
	return out
}()

// throttleView is a version of a throttled alert as the test compares it.
type throttleView struct {
	Version  int64
	Count    int64
	Final    bool
	Evidence int // evidence event ids
}

func throttleViews(as []*engine.Alert) []throttleView {
	var out []throttleView
	for _, a := range as {
		out = append(out, throttleView{a.Version, a.Count, a.Final, len(a.Evidence)})
	}
	return out
}

// TestThrottleFoldsABurstIntoOneAlert: the 48 file changes of a useradd and userdel within a
// second are one alert, raised at once, again each time its count doubles and a last time,
// final, when its minute closes; its evidence holds one event per real file (the siblings
// folded), and restoring the engine from its changelog halfway changes nothing.
func TestThrottleFoldsABurstIntoOneAlert(t *testing.T) {
	run := func(t *testing.T, restoreAt int, maxEvidence int) ([]*engine.Alert, *engine.Engine) {
		rule := mustRule(t, fileChanged)
		opt := engine.Options{Throttle: time.Minute, MaxEvidence: maxEvidence}
		e := mustEngine(t, opt, rule)
		var got []*engine.Alert
		for i, p := range useraddPaths {
			if i == restoreAt {
				changes, err := e.Changes()
				if err != nil {
					t.Fatal(err)
				}
				e = mustEngine(t, opt, mustRule(t, fileChanged))
				for _, c := range changes {
					if err := e.Restore(c.Key, c.Value); err != nil {
						t.Fatal(err)
					}
				}
			}
			got = append(got, process(t, e, fileEvent(t, fmt.Sprint("e", i), int64(1000+10*i), "web-1", "write", p, 100))...)
		}
		return append(got, e.Advance(0, 120*sec)...), e
	}
	want := []throttleView{{1, 1, false, 1}, {2, 2, false, 1}, {3, 4, false, 1}, {4, 8, false, 1},
		{5, 16, false, 2}, {6, 32, false, 3}, {7, 48, true, 4}}
	straight, e := run(t, -1, 20)
	if d := cmp.Diff(want, throttleViews(straight)); d != "" {
		t.Fatalf("versions (-want +got):\n%s", d)
	}
	for _, a := range straight {
		if a.AlertID != straight[0].AlertID || a.Time != straight[0].Time {
			t.Errorf("version %d: id %s time %d, want the first's %s %d", a.Version, a.AlertID, a.Time, straight[0].AlertID, straight[0].Time)
		}
	}
	if id := engine.AlertID("fc", "web-1|web-1", fmt.Sprint("throttle:", 1000*int64(time.Millisecond))); straight[0].AlertID != id {
		t.Errorf("alert id %s, want AlertID(rule, host|group key, throttle:<first event time>) %s", straight[0].AlertID, id)
	}
	final := straight[len(straight)-1]
	// One event per real file, the first of each: passwd's is e0, shadow's e12, ...
	if d := cmp.Diff([]string{"e0", "e12", "e24", "e36"}, final.Evidence); d != "" {
		t.Errorf("final evidence (-want +got):\n%s", d)
	}
	for _, f := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"} {
		if !strings.Contains(final.Summary, f) {
			t.Errorf("final summary lacks %s: %s", f, final.Summary)
		}
	}
	if strings.Contains(final.Summary, ".lock") || strings.Contains(final.Summary, "12269") {
		t.Errorf("final summary names a lock or temporary file: %s", final.Summary)
	}
	if d := cmp.Diff(map[string]engine.RuleStats{"fc": {Raised: 1, Grouped: 47}}, e.RuleStats()); d != "" {
		t.Errorf("rule stats (-want +got):\n%s", d)
	}

	t.Run("restored from the changelog halfway", func(t *testing.T) {
		restored, _ := run(t, 20, 20)
		if d := cmp.Diff(straight, restored, cmp.Comparer(func(a, b *engine.Alert) bool {
			return cmp.Equal(a.Alert, b.Alert) && a.Partition == b.Partition
		})); d != "" {
			t.Errorf("alerts after a restore differ from a straight run (-straight +restored):\n%s", d)
		}
	})
	t.Run("evidence bounded", func(t *testing.T) {
		bounded, _ := run(t, -1, 3)
		last := bounded[len(bounded)-1]
		if len(last.Evidence) != 3 || last.Count != 48 {
			t.Errorf("final: %d evidence ids for %d events, want 3 (the bound) for 48", len(last.Evidence), last.Count)
		}
	})
}

// TestThrottleWindowsAndKeys: a host and group key has its own window, an alert after a
// window's end starts another (closing the first even before the watermark does), a lone
// alert raises no final version, and throttle 0 turns folding off.
func TestThrottleWindowsAndKeys(t *testing.T) {
	rule := mustRule(t, fileChanged)
	e := mustEngine(t, engine.Options{Throttle: time.Minute, AllowedLateness: time.Hour}, rule)
	got := process(t, e,
		fileEvent(t, "a1", 0, "web-1", "write", "/etc/passwd", 1),
		fileEvent(t, "b1", 10, "web-2", "write", "/etc/passwd", 1),
		fileEvent(t, "a2", 20, "web-1", "write", "/etc/shadow", 1),
		fileEvent(t, "a3", 61000, "web-1", "write", "/etc/group", 1), // the watermark is an hour behind
	)
	got = append(got, e.Advance(0, 3*3600*sec)...)
	type v struct {
		Host     string
		Version  int64
		Count    int64
		Final    bool
		Evidence string
	}
	var views []v
	ids := map[string]bool{}
	for _, a := range got {
		views = append(views, v{a.Host.Name, a.Version, a.Count, a.Final, strings.Join(a.Evidence, ",")})
		ids[a.AlertID] = true
	}
	want := []v{
		{"web-1", 1, 1, false, "a1"},
		{"web-2", 1, 1, false, "b1"},
		{"web-1", 2, 2, false, "a1,a2"},
		{"web-1", 3, 2, true, "a1,a2"}, // a3 is past web-1's minute: that window closes
		{"web-1", 1, 1, false, "a3"},
	}
	if d := cmp.Diff(want, views); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
	if len(ids) != 3 {
		t.Errorf("%d alert ids, want 3 (web-1's two windows, web-2's)", len(ids))
	}

	off := mustRule(t, fileChanged+"throttle: 0s\n")
	e = mustEngine(t, engine.Options{Throttle: time.Minute}, off)
	got = process(t, e, fileEvent(t, "x1", 0, "web-1", "write", "/etc/passwd", 1), fileEvent(t, "x2", 1, "web-1", "write", "/etc/passwd", 1))
	if len(got) != 2 || got[0].AlertID == got[1].AlertID || !got[0].Final || !got[1].Final {
		t.Errorf("throttle 0: want two final alerts with their own ids, got %+v", throttleViews(got))
	}
}

// TestThrottleRuleOptionsRefused: throttle and evidence_key are checked where they are read.
func TestThrottleRuleOptionsRefused(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{bruteForce + "throttle: 1m\n", "throttle: applies to match, new_term and sequence rules only"},
		{fileChanged + "throttle: -1s\n", "throttle: -1s: must not be negative"},
		{fileChanged + "evidence_key: file.nope\n", "evidence_key:"},
	} {
		_, ps := engine.ParseRule("r.yaml", []byte(tc.rule))
		if len(ps) == 0 || !strings.Contains(ps.Error(), tc.want) {
			t.Errorf("problems %v, want one containing %q", ps, tc.want)
		}
	}
}

func TestRealPath(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/passwd.12269":          "/etc/passwd",
		"/etc/passwd+":               "/etc/passwd",
		"/etc/passwd-":               "/etc/passwd",
		"/etc/shadow.lock":           "/etc/shadow",
		"/etc/.sudoers.swp":          "/etc/sudoers",
		"/etc/nginx/.#nginx.conf":    "/etc/nginx/nginx.conf",
		"/etc/nginx/nginx.conf~":     "/etc/nginx/nginx.conf",
		"/etc/default/grub.dpkg-new": "/etc/default/grub",
		"/etc/passwd":                "/etc/passwd",
		"/usr/lib/libc.so.6":         "/usr/lib/libc.so.6",
		"/usr/bin/python3.11":        "/usr/bin/python3.11",
		"/tmp/-":                     "/tmp/-",
		"/etc/.pwd.lock":             "/etc/.pwd",
	} {
		if got := engine.RealPath(in); got != want {
			t.Errorf("RealPath(%q) = %q, want %q", in, got, want)
		}
	}
}
