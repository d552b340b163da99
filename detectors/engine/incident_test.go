package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/schemas"
)

// userAdded fires on an exec of useradd.
const userAdded = `id: ua
title: User added
severity: medium
source: process
kind: match
condition: action == "exec" && process.file.name == "useradd"
tags: [attack.t1136]
`

// procEvent is a process event of host h at t seconds.
func procEvent(t *testing.T, id string, at int64, action string, pid, ppid, auid int64, exe string, cgroup int64) map[string]any {
	t.Helper()
	name := exe
	for i := len(exe) - 1; i >= 0; i-- {
		if exe[i] == '/' {
			name = exe[i+1:]
			break
		}
	}
	ev, err := engine.FixtureEvent("process", map[string]any{
		"time": at * sec, "host": map[string]any{"id": "h", "name": "web-1"}, "action": action,
		"process": map[string]any{"pid": pid, "ppid": ppid, "login_uid": auid, "cgroup_id": cgroup,
			"file": map[string]any{"path": exe, "name": name}}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// fileBy is a file event of host h at t seconds by pid.
func fileBy(t *testing.T, id string, at int64, path string, pid, cgroup int64) map[string]any {
	t.Helper()
	ev, err := engine.FixtureEvent("file", map[string]any{
		"time": at * sec, "host": map[string]any{"id": "h", "name": "web-1"}, "action": "write",
		"file": map[string]any{"path": path}, "process": map[string]any{"pid": pid, "cgroup_id": cgroup}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestIncidentsTieAlertsOfOneProcessTree: two rules firing in one login session's process tree
// share an incident; the same rule in another session, or in a service's cgroup, does not; an
// incident is raised with its first alert, updated a minute on once it grew, and closed, final,
// when the span passed; the incident state survives a restart through the changelog.
func TestIncidentsTieAlertsOfOneProcessTree(t *testing.T) {
	opt := engine.Options{IncidentSpan: 10 * time.Minute, IncidentUpdate: time.Minute, Throttle: time.Minute}
	rules := func() []*engine.Rule {
		return []*engine.Rule{mustRule(t, userAdded+"throttle: 0s\n"), mustRule(t, fileChanged)}
	}
	e := mustEngine(t, opt, rules()...)
	var alerts []*engine.Alert
	var incidents []*schemas.Incident
	take := func(as []*engine.Alert) {
		alerts = append(alerts, as...)
		incidents = append(incidents, e.Incidents()...)
	}
	// sshd (a daemon: no login uid) accepts alice's login; the session leader gets her login
	// uid, and the shells and commands below it inherit it.
	take(process(t, e,
		procEvent(t, "p1", 1, "exec", 500, 1, -1, "/usr/sbin/sshd", 0),
		procEvent(t, "p2", 2, "fork", 600, 500, 1000, "/usr/sbin/sshd", 0),
		procEvent(t, "p3", 3, "exec", 600, 500, 1000, "/bin/bash", 0),
		procEvent(t, "p4", 6, "fork", 601, 600, 1000, "/bin/bash", 0),
		procEvent(t, "p5", 7, "exec", 601, 600, 1000, "/usr/sbin/useradd", 0), // ua in alice's tree
	))
	take(process(t, e, fileBy(t, "f1", 8, "/etc/passwd", 601, 0))) // fc in alice's tree
	// A restart: window, throttle and incident state come back from the changelog; the process
	// table does not, so bob's session, under an sshd the table no longer knows, is keyed by
	// that parent and his login uid.
	changes, err := e.Changes()
	if err != nil {
		t.Fatal(err)
	}
	e = mustEngine(t, opt, rules()...)
	for _, c := range changes {
		if err := e.Restore(c.Key, c.Value); err != nil {
			t.Fatal(err)
		}
	}
	take(process(t, e,
		procEvent(t, "p6", 9, "fork", 700, 500, 1001, "/usr/sbin/sshd", 0),
		procEvent(t, "p7", 9, "exec", 700, 500, 1001, "/bin/bash", 0),
		procEvent(t, "p8", 10, "fork", 701, 700, 1001, "/bin/bash", 0),
		procEvent(t, "p9", 11, "exec", 701, 700, 1001, "/usr/sbin/useradd", 0), // ua in bob's tree
		fileBy(t, "f2", 12, "/etc/shadow", 601, 0),                             // fc again: folded into alice's alert
		procEvent(t, "p10", 13, "exec", 900, 1, -1, "/usr/sbin/useradd", 4242), // ua in a service's cgroup
	))
	take(e.Advance(0, 70*sec))
	take(e.Advance(0, 3600*sec))

	first := map[string]*engine.Alert{}
	for _, a := range alerts {
		if a.Version == 1 {
			first[a.Evidence[0]] = a
		}
	}
	alice1, alice2, bob, svc := first["p5"], first["f1"], first["p9"], first["p10"]
	if alice1 == nil || alice2 == nil || bob == nil || svc == nil {
		t.Fatalf("alerts missing: %+v", first)
	}
	if alice1.IncidentID == "" || alice1.IncidentID != alice2.IncidentID {
		t.Errorf("useradd and the passwd change in alice's session: incidents %q and %q, want one", alice1.IncidentID, alice2.IncidentID)
	}
	if bob.IncidentID == alice1.IncidentID || svc.IncidentID == alice1.IncidentID || svc.IncidentID == bob.IncidentID {
		t.Errorf("incidents alice %q bob %q service %q: want three", alice1.IncidentID, bob.IncidentID, svc.IncidentID)
	}
	later := 0
	for _, a := range alerts {
		if a.Version > 1 && a.AlertID == alice2.AlertID {
			later++
			if a.IncidentID != alice1.IncidentID {
				t.Errorf("version %d of the passwd alert has incident %q, want its first's %q", a.Version, a.IncidentID, alice1.IncidentID)
			}
		}
	}
	if later != 2 {
		t.Errorf("%d later versions of the passwd alert, want 2 (grown, final)", later)
	}

	type incView struct {
		Version        int64
		Final          bool
		Alerts, Events int64
		Severity, Tree string
		Rules          string
	}
	got := map[string][]incView{}
	for _, in := range incidents {
		rules := ""
		for _, r := range in.Rules {
			rules += fmt.Sprintf("%s:%d ", r.RuleID, r.Alerts)
		}
		got[in.IncidentID] = append(got[in.IncidentID], incView{in.Version, in.Final, in.Alerts, in.Events, in.Severity, in.TreeKey, rules})
	}
	want := map[string][]incView{
		alice1.IncidentID: {
			{1, false, 1, 1, "medium", "tree:600:2000000000", "ua:1 "},
			{2, false, 2, 3, "high", "tree:600:2000000000", "ua:1 fc:1 "}, // an update a minute on
			{3, true, 2, 3, "high", "tree:600:2000000000", "ua:1 fc:1 "},  // closed when the span passed
		},
		bob.IncidentID: {{1, false, 1, 1, "medium", "tree:500:0:uid1001", "ua:1 "}}, // alone: no update, no final
		svc.IncidentID: {{1, false, 1, 1, "medium", "cgroup:4242", "ua:1 "}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("incidents (-want +got):\n%s", d)
	}
	if n := len(e.Incidents()); n != 0 {
		t.Errorf("Incidents returned %d again after being drained", n)
	}
}
