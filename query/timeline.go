package query

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The questions analysts ask: a timeline of a host, a service or an alert, and alerts with
// their evidence. Each is a few queries on the tables' sorting keys: raw events by
// (host_name, time), a service's hosts from service_activity, alerts by time.

// TimelineQuery says what a timeline is about: exactly one of Host, Service and AlertID, and
// the range [From, To]. For an alert, From and To default to Before and After around it.
type TimelineQuery struct {
	Host, Service, AlertID string
	From, To               time.Time
	Before, After          time.Duration // around an alert
	// Limit bounds the rows read back per kind (the newest are dropped). Default 10000.
	Limit int
}

// Entry is one line of a timeline: an event, an alert or a change window opening or closing.
type Entry struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // process, network, file, identity, alert
	Action  string    `json:"action"`
	Host    string    `json:"host"`
	Service string    `json:"service,omitempty"`
	ID      string    `json:"id"` // event id or alert id
	Summary string    `json:"summary"`
	// Process tree (process entries): the pid, the parent pid and the depth of the process
	// below the oldest ancestor seen in the range.
	PID   int32 `json:"pid,omitempty"`
	PPID  int32 `json:"ppid,omitempty"`
	Depth int   `json:"depth,omitempty"`
	// Details are the entry's fields by column name (arguments, hashes, endpoints, verdicts).
	Details map[string]any `json:"details,omitempty"`
}

// ChangeWindow is a change window (context_changes) that overlaps a timeline.
type ChangeWindow struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Title    string    `json:"title"`
	Services []string  `json:"services"`
	Hosts    []string  `json:"hosts"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
}

// Timeline is the answer to a TimelineQuery.
type Timeline struct {
	Scope   string         `json:"scope"` // host H, service S or alert A
	From    time.Time      `json:"from"`
	To      time.Time      `json:"to"`
	Hosts   []string       `json:"hosts"`
	Changes []ChangeWindow `json:"change_windows"`
	Entries []Entry        `json:"entries"`
	Queries []QueryStat    `json:"queries"`
}

// Timeline answers q.
func (s *Store) Timeline(ctx context.Context, q TimelineQuery) (*Timeline, error) {
	if q.Limit <= 0 {
		q.Limit = 10000
	}
	log := &queryLog{}
	tl := &Timeline{From: q.From.UTC(), To: q.To.UTC()}
	service := ""
	switch {
	case q.AlertID != "":
		a, err := s.alert(ctx, log, q.AlertID)
		if err != nil {
			return nil, err
		}
		tl.Scope = "alert " + q.AlertID
		if q.From.IsZero() {
			tl.From = a.Time.Add(-q.Before)
		}
		if q.To.IsZero() {
			tl.To = a.Time.Add(q.After)
		}
		if a.Host != "" {
			tl.Hosts = []string{a.Host}
		} else if a.Service != "" {
			service = a.Service
		}
	case q.Host != "":
		tl.Scope, tl.Hosts = "host "+q.Host, []string{q.Host}
	case q.Service != "":
		tl.Scope, service = "service "+q.Service, q.Service
	default:
		return nil, errors.New("timeline: name a host, a service or an alert")
	}
	if !tl.From.Before(tl.To) {
		return nil, fmt.Errorf("timeline: empty range %s to %s", tl.From.Format(time.RFC3339), tl.To.Format(time.RFC3339))
	}
	if service != "" {
		hosts, err := s.serviceHosts(ctx, log, service, tl.From, tl.To)
		if err != nil {
			return nil, err
		}
		tl.Hosts = hosts
	}
	var services map[string]bool
	if len(tl.Hosts) > 0 {
		var err error
		if tl.Entries, services, err = s.events(ctx, log, tl.Hosts, service, tl.From, tl.To, q.Limit); err != nil {
			return nil, err
		}
	}
	if service != "" {
		services = map[string]bool{service: true}
	} else if len(tl.Hosts) > 0 {
		if services == nil {
			services = map[string]bool{}
		}
		if err := s.inventoryServices(ctx, log, tl.Hosts, services); err != nil {
			return nil, err
		}
	}
	alerts, err := s.alertsIn(ctx, log, tl.Hosts, service, tl.From, tl.To)
	if err != nil {
		return nil, err
	}
	tl.Entries = append(tl.Entries, alerts...)
	if tl.Changes, err = s.changeWindows(ctx, log, tl.Hosts, services, tl.From, tl.To); err != nil {
		return nil, err
	}
	sortEntries(tl.Entries)
	processTree(tl.Entries)
	tl.Queries = log.stats
	return tl, nil
}

// sortEntries orders entries by time, then kind and id, so that equal times read the same
// way every time.
func sortEntries(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool {
		if !es[i].Time.Equal(es[j].Time) {
			return es[i].Time.Before(es[j].Time)
		}
		if es[i].Kind != es[j].Kind {
			return es[i].Kind < es[j].Kind
		}
		return es[i].ID < es[j].ID
	})
}

// processTree sets the depth of every process entry: 0 for a process whose parent did not
// start in the range, else its parent's depth plus one (by host and pid, the latest exec of
// the parent before the child).
func processTree(es []Entry) {
	type key struct {
		host string
		pid  int32
	}
	depth := map[key]int{}
	for i := range es {
		e := &es[i]
		if e.Kind != "process" {
			continue
		}
		d, ok := depth[key{e.Host, e.PPID}]
		if ok {
			d++
		}
		if e.Action == "exec" || e.Action == "fork" {
			depth[key{e.Host, e.PID}] = d
		} else if own, seen := depth[key{e.Host, e.PID}]; seen {
			d = own
		}
		e.Depth = d
	}
}

// serviceHosts returns the hosts a service had events on in [from, to], from service_activity.
func (s *Store) serviceHosts(ctx context.Context, log *queryLog, service string, from, to time.Time) ([]string, error) {
	q := "SELECT DISTINCT host_name FROM " + s.database + ".service_activity WHERE service = ? AND minute BETWEEN toDateTime(?) AND toDateTime(?) ORDER BY host_name"
	var hosts []string
	err := s.query(ctx, log, "service_hosts", q, []any{service, uint32(from.Truncate(time.Minute).Unix()), uint32(to.Unix())},
		func(r scanner) error {
			var h string
			if err := r.Scan(&h); err != nil {
				return err
			}
			hosts = append(hosts, h)
			return nil
		})
	return hosts, err
}

// scope returns the WHERE clause and arguments selecting hosts (and a service) in a range.
func scope(hosts []string, service string, from, to time.Time) (string, []any) {
	where := "host_name IN (" + placeholders(len(hosts)) + ") AND " + rangeWhere
	args := make([]any, 0, len(hosts)+5)
	for _, h := range hosts {
		args = append(args, h)
	}
	args = append(args, rangeArgs(from, to)...)
	if service != "" {
		where += " AND service = ?"
		args = append(args, service)
	}
	return where, args
}

// eventQuery is how one kind's rows become entries.
type eventQuery struct {
	kind, table, columns string
	scan                 func(r scanner) (Entry, error)
}

var eventQueries = []eventQuery{
	{kind: "process", table: ProcessEventsTable,
		columns: "time_ns, event_id, host_name, service, action, pid, ppid, exe_path, exe_sha256, args, cmd_line, user_name, exit_code, verdict, parent_exe_path",
		scan: func(r scanner) (Entry, error) {
			var e Entry
			var ns uint64
			var exe, sha, cmd, user, verdict, parent string
			var args []string
			var exit int32
			err := r.Scan(&ns, &e.ID, &e.Host, &e.Service, &e.Action, &e.PID, &e.PPID, &exe, &sha, &args, &cmd, &user, &exit, &verdict, &parent)
			e.Time = time.Unix(0, int64(ns)).UTC()
			if len(args) == 0 && cmd != "" {
				args = []string{cmd}
			}
			e.Details = map[string]any{"exe_path": exe, "exe_sha256": sha, "args": args, "user_name": user, "verdict": verdict, "parent_exe_path": parent}
			switch e.Action {
			case "exit":
				e.Summary = fmt.Sprintf("exit %s pid=%d code=%d", exe, e.PID, exit)
				e.Details["exit_code"] = exit
			default:
				e.Summary = fmt.Sprintf("%s %s [%s] pid=%d ppid=%d user=%s sha256=%s", e.Action, exe, strings.Join(args, " "), e.PID, e.PPID, user, short(sha))
				if verdict != "" {
					e.Summary += " verdict=" + verdict
				}
			}
			return e, err
		}},
	{kind: "network", table: NetworkEventsTable,
		columns: "time_ns, event_id, host_name, service, action, pid, exe_path, direction, protocol, src_ip, src_port, dst_ip, dst_port, dst_hostname, bytes_sent, bytes_received",
		scan: func(r scanner) (Entry, error) {
			var e Entry
			var ns uint64
			var exe, dir, proto, sip, dip, dhost string
			var sport, dport int32
			var sent, recv int64
			err := r.Scan(&ns, &e.ID, &e.Host, &e.Service, &e.Action, &e.PID, &exe, &dir, &proto, &sip, &sport, &dip, &dport, &dhost, &sent, &recv)
			e.Time = time.Unix(0, int64(ns)).UTC()
			dst := dip
			if dhost != "" {
				dst = dhost + "(" + dip + ")"
			}
			e.Summary = fmt.Sprintf("%s %s %s %s:%d -> %s:%d sent=%d received=%d by %s pid=%d", e.Action, dir, proto, sip, sport, dst, dport, sent, recv, exe, e.PID)
			e.Details = map[string]any{"exe_path": exe, "direction": dir, "protocol": proto, "src_ip": sip, "src_port": sport,
				"dst_ip": dip, "dst_port": dport, "dst_hostname": dhost, "bytes_sent": sent, "bytes_received": recv}
			return e, err
		}},
	{kind: "file", table: FileEventsTable,
		columns: "time_ns, event_id, host_name, service, action, pid, exe_path, file_path, new_path, file_sha256, file_owner, file_group, file_mode, verdict, verdict_reason",
		scan: func(r scanner) (Entry, error) {
			var e Entry
			var ns uint64
			var exe, path, newPath, sha, owner, group, mode, verdict, reason string
			err := r.Scan(&ns, &e.ID, &e.Host, &e.Service, &e.Action, &e.PID, &exe, &path, &newPath, &sha, &owner, &group, &mode, &verdict, &reason)
			e.Time = time.Unix(0, int64(ns)).UTC()
			target := path
			if newPath != "" {
				target += " -> " + newPath
			}
			e.Summary = fmt.Sprintf("%s %s sha256=%s %s:%s %s", e.Action, target, short(sha), owner, group, mode)
			if exe != "" {
				e.Summary += fmt.Sprintf(" by %s pid=%d", exe, e.PID)
			}
			if verdict != "" {
				e.Summary += " verdict=" + verdict
			}
			e.Details = map[string]any{"exe_path": exe, "file_path": path, "new_path": newPath, "file_sha256": sha,
				"file_owner": owner, "file_group": group, "file_mode": mode, "verdict": verdict, "verdict_reason": reason}
			return e, err
		}},
	{kind: "identity", table: IdentityEventsTable,
		columns: "time_ns, event_id, host_name, service, action, pid, identity_service, user, target_user, remote_host, result, account_type",
		scan: func(r scanner) (Entry, error) {
			var e Entry
			var ns uint64
			var svc, user, target, remote, result, acct string
			err := r.Scan(&ns, &e.ID, &e.Host, &e.Service, &e.Action, &e.PID, &svc, &user, &target, &remote, &result, &acct)
			e.Time = time.Unix(0, int64(ns)).UTC()
			e.Summary = fmt.Sprintf("%s %s user=%s", e.Action, svc, user)
			if target != "" {
				e.Summary += " target=" + target
			}
			if remote != "" {
				e.Summary += " from=" + remote
			}
			e.Summary += " " + result
			e.Details = map[string]any{"identity_service": svc, "user": user, "target_user": target, "remote_host": remote, "result": result, "account_type": acct}
			return e, err
		}},
}

// events reads the process, network, file and identity events of hosts (and service) in
// the range, one query per table, and returns the services they were enriched with.
func (s *Store) events(ctx context.Context, log *queryLog, hosts []string, service string, from, to time.Time, limit int) ([]Entry, map[string]bool, error) {
	where, args := scope(hosts, service, from, to)
	var out []Entry
	services := map[string]bool{}
	for _, eq := range eventQueries {
		q := "SELECT " + eq.columns + " FROM " + s.database + "." + eq.table + " WHERE " + where +
			fmt.Sprintf(" ORDER BY host_name, time LIMIT %d", limit)
		err := s.query(ctx, log, eq.kind+"_events", q, args, func(r scanner) error {
			e, err := eq.scan(r)
			if err != nil {
				return err
			}
			e.Kind = eq.kind
			if e.Service != "" {
				services[e.Service] = true
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return out, services, nil
}

// latestAlerts is the alerts within rangeWhere (its arguments come first), one row per alert
// id, its latest version: an alert raised early is raised again when its window closes, and
// merges fold the two rows only eventually. The versions of an alert share its time; other
// filters go outside, on the version read (the close may lower the severity).
func (s *Store) latestAlerts() string {
	return "(SELECT * FROM " + s.database + ".alerts WHERE " + rangeWhere + " ORDER BY version DESC LIMIT 1 BY alert_id)"
}

func (a AlertRow) entry() Entry {
	return Entry{Time: a.Time, Kind: "alert", Action: a.Severity, Host: a.Host, Service: a.Service, ID: a.ID,
		Summary: fmt.Sprintf("[%s] %s: %s (%s)", a.Severity, a.RuleID, a.Title, a.Summary),
		Details: map[string]any{"rule_id": a.RuleID, "evidence": a.Evidence, "count": a.Count}}
}

// AlertByID returns the latest version of the alert with id, without its evidence.
func (s *Store) AlertByID(ctx context.Context, id string) (AlertRow, error) {
	return s.alert(ctx, &queryLog{}, id)
}

func (s *Store) alert(ctx context.Context, log *queryLog, id string) (AlertRow, error) {
	q := "SELECT " + alertCols + " FROM " + s.database + ".alerts WHERE alert_id = ? ORDER BY version DESC LIMIT 1"
	var found []AlertRow
	err := s.query(ctx, log, "alert", q, []any{id}, func(r scanner) error {
		a, err := scanAlert(r)
		found = append(found, a)
		return err
	})
	if err != nil {
		return AlertRow{}, err
	}
	if len(found) == 0 {
		return AlertRow{}, fmt.Errorf("alert %s: %w", id, ErrNotFound)
	}
	return found[0], nil
}

func (s *Store) alertsIn(ctx context.Context, log *queryLog, hosts []string, service string, from, to time.Time) ([]Entry, error) {
	cond := []string{}
	args := rangeArgs(from, to)
	if len(hosts) > 0 {
		cond = append(cond, "host_name IN ("+placeholders(len(hosts))+")")
		for _, h := range hosts {
			args = append(args, h)
		}
	}
	if service != "" {
		cond = append(cond, "service = ?")
		args = append(args, service)
	}
	if len(cond) == 0 {
		return nil, nil
	}
	q := "SELECT " + alertCols + " FROM " + s.latestAlerts() + " WHERE " + strings.Join(cond, " OR ") + " ORDER BY time"
	var out []Entry
	err := s.query(ctx, log, "alerts", q, args, func(r scanner) error {
		a, err := scanAlert(r)
		out = append(out, a.entry())
		return err
	})
	return out, err
}

// inventoryServices adds to services those the hosts serve according to context_inventory.
func (s *Store) inventoryServices(ctx context.Context, log *queryLog, hosts []string, services map[string]bool) error {
	q := "SELECT service FROM " + s.database + ".context_inventory FINAL WHERE deleted = 0 AND host IN (" + placeholders(len(hosts)) + ")"
	args := make([]any, len(hosts))
	for i, h := range hosts {
		args[i] = h
	}
	return s.query(ctx, log, "inventory", q, args, func(r scanner) error {
		var sv string
		if err := r.Scan(&sv); err != nil {
			return err
		}
		if sv != "" {
			services[sv] = true
		}
		return nil
	})
}

// changeWindows returns the change windows overlapping [from, to] that apply to the hosts or
// services: by host name, or by service when the window names no hosts.
func (s *Store) changeWindows(ctx context.Context, log *queryLog, hosts []string, services map[string]bool, from, to time.Time) ([]ChangeWindow, error) {
	q := "SELECT id, type, title, services, hosts, starts_at, ends_at FROM " + s.database +
		".context_changes FINAL WHERE deleted = 0 AND starts_at <= toDateTime(?) AND ends_at >= toDateTime(?) ORDER BY starts_at, id"
	onHost := map[string]bool{}
	for _, h := range hosts {
		onHost[h] = true
	}
	var out []ChangeWindow
	err := s.query(ctx, log, "change_windows", q, []any{uint32(to.Unix()), uint32(from.Unix())}, func(r scanner) error {
		var c ChangeWindow
		if err := r.Scan(&c.ID, &c.Type, &c.Title, &c.Services, &c.Hosts, &c.StartsAt, &c.EndsAt); err != nil {
			return err
		}
		c.StartsAt, c.EndsAt = c.StartsAt.UTC(), c.EndsAt.UTC()
		applies := false
		for _, h := range c.Hosts {
			applies = applies || onHost[h]
		}
		if len(c.Hosts) == 0 {
			for _, sv := range c.Services {
				applies = applies || services[sv]
			}
		}
		if applies {
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// AlertEvidence is an alert with the events it names as evidence.
type AlertEvidence struct {
	Alert AlertRow `json:"alert"`
	// Triage is the alert's triage; nil when nobody triaged it.
	Triage   *Triage  `json:"triage,omitempty"`
	Evidence []Entry  `json:"evidence"`
	Missing  []string `json:"missing,omitempty"` // evidence ids not found (expired or not yet written)
}

// Alert returns the alert with id and its evidence events, looked up by id within a day of
// the alert's window on its host (or everywhere when the alert names no host).
func (s *Store) Alert(ctx context.Context, id string) (*AlertEvidence, error) {
	log := &queryLog{}
	a, err := s.alert(ctx, log, id)
	if err != nil {
		return nil, err
	}
	out := &AlertEvidence{Alert: a}
	triage, err := s.triageOf(ctx, log, []string{id})
	if err != nil {
		return nil, err
	}
	if t := triage[id]; t != nil {
		out.Triage, out.Alert.State, out.Alert.Assignee = t, t.State, t.Assignee
	}
	if len(a.Evidence) == 0 {
		return out, nil
	}
	from, to := a.WindowStart.Add(-24*time.Hour), a.Time.Add(24*time.Hour)
	found := map[string]bool{}
	missing := func() []string {
		var ids []string
		for _, e := range a.Evidence {
			if !found[e] {
				ids = append(ids, e)
			}
		}
		return ids
	}
	// On the alert's host first (its sorting key), then anywhere for what is still missing.
	hosts := []string{""}
	if a.Host != "" {
		hosts = []string{a.Host, ""}
	}
	for _, host := range hosts {
		ids := missing()
		if len(ids) == 0 {
			break
		}
		evs, err := s.eventsByID(ctx, log, ids, host, from, to)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			found[e.ID] = true
		}
		out.Evidence = append(out.Evidence, evs...)
	}
	for _, e := range a.Evidence {
		if !found[e] {
			out.Missing = append(out.Missing, e)
		}
	}
	sortEntries(out.Evidence)
	return out, nil
}

// eventsByID reads the events with the given ids in [from, to], on host when it is not empty.
func (s *Store) eventsByID(ctx context.Context, log *queryLog, ids []string, host string, from, to time.Time) ([]Entry, error) {
	where := rangeWhere + " AND event_id IN (" + placeholders(len(ids)) + ")"
	args := rangeArgs(from, to)
	for _, e := range ids {
		args = append(args, e)
	}
	if host != "" {
		where += " AND host_name = ?"
		args = append(args, host)
	}
	var out []Entry
	for _, eq := range eventQueries {
		q := "SELECT " + eq.columns + " FROM " + s.database + "." + eq.table + " WHERE " + where
		err := s.query(ctx, log, eq.kind+"_evidence", q, args, func(r scanner) error {
			e, err := eq.scan(r)
			e.Kind = eq.kind
			out = append(out, e)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "-"
	}
	return sha
}
