package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Incidents: the alerts of one process tree on one host, each raised within the incident span
// of the one before, share an incident id; the incident is raised as its own record (Incident)
// for outputs that deliver incidents rather than alerts: version 1 with its first alert, at
// most one update per update interval while it grows, and a final version when the span
// passed without a new alert (when it was updated at all).
//
// The tree an alert belongs to is read from the event that raised it (the first of its window
// or throttle window), in this order:
//
//  1. cgroup:<id>, when the event's process is in a cgroup other than the root (cgroup id
//     above 1): a systemd service, a login session's scope (pam_systemd puts each login in its
//     own session-N.scope) or a container. A process cannot leave its cgroup without rights
//     over the hierarchy, and double-forking or reparenting to init does not change it, so this
//     is the most robust tie the events carry, on every event kind.
//  2. tree:<pid>:<start>, from the process table the engine builds from process events (fork
//     and exec carry pid and ppid): the root is the topmost ancestor reached without crossing
//     init (pid 1 or 2) or a change of audit login uid (pam_loginuid sets it at login), so a
//     login session's processes share their session leader and a daemon's share the daemon. A
//     parent the table never saw (started before the detector) is taken as the root. The table
//     is bounded (Options.MaxProcesses, oldest forgotten first) and not in the changelog: after
//     a restart, processes started before it fall to the next keys until they fork.
//  3. login:<uid>, for process events of a login (audit login uid set) the table does not know.
//  4. pid:<pid>: the process alone; host, for events without a process (system metrics).
//
// Incident state (per host and tree) is an entry like a window's: in the changelog, exactly
// once across restarts.

// incidentRule is the rule part of incident entries' keys, as watermarkRule is of clocks'.
const incidentRule = "\x00incident"

// Bounds of an incident's lists.
const (
	maxIncidentRules = 50
	maxIncidentTags  = 50
)

// treeRef is the process tree of an event: its key and the key in words.
type treeRef struct {
	Key     string `json:"key"`
	Subject string `json:"subject,omitempty"`
}

// procKey names a process of a host.
type procKey struct {
	host string
	pid  int32
}

// procNode is what the process table knows of a process: its tree's root.
type procNode struct {
	auid int64 // audit login uid, -1 unset
	root procRoot
	seq  uint64 // insertion number, for eviction
}

// procRoot is the root of a process tree.
type procRoot struct {
	pid   int32
	start int64 // event time it was seen to start; 0 when it started before the table knew it
	exe   string
	login int64 // for a root the table never saw start: the login uid of its child seen, else -1
}

// ref is the tree's key and subject.
func (r procRoot) ref() *treeRef {
	key := fmt.Sprintf("tree:%d:%d", r.pid, r.start)
	subj := fmt.Sprintf("process tree of pid %d", r.pid)
	if r.exe != "" {
		subj = fmt.Sprintf("process tree of %s (pid %d)", r.exe, r.pid)
	}
	if r.start == 0 && r.login >= 0 {
		// Two logins under one parent the table never saw (sshd started before it) are two
		// trees, told apart by their login uid.
		key += fmt.Sprintf(":uid%d", r.login)
		subj += fmt.Sprintf(", login uid %d", r.login)
	}
	return &treeRef{Key: key, Subject: subj}
}

// procSlot is one place of the table's eviction ring.
type procSlot struct {
	key procKey
	seq uint64
}

// processTable is the engine's bounded process table: roots of process trees by host and pid.
type processTable struct {
	nodes map[procKey]*procNode
	ring  []procSlot
	next  int
	seq   uint64
}

func newProcessTable(size int) *processTable {
	return &processTable{nodes: map[procKey]*procNode{}, ring: make([]procSlot, size)}
}

// put adds or replaces a process, forgetting the oldest beyond the table's size.
func (t *processTable) put(k procKey, n *procNode) {
	t.seq++
	n.seq = t.seq
	if old := t.ring[t.next]; old.seq != 0 {
		if cur := t.nodes[old.key]; cur != nil && cur.seq == old.seq {
			delete(t.nodes, old.key)
		}
	}
	t.ring[t.next] = procSlot{key: k, seq: n.seq}
	t.next = (t.next + 1) % len(t.ring)
	t.nodes[k] = n
}

// observeProcess learns a fork or exec into the process table.
func (e *Engine) observeProcess(ev Fields, t int64) {
	if e.procs == nil {
		return
	}
	value := func(path string) any { v, _ := ev.Value(path); return v }
	action, _ := value("action").(string)
	if action != "fork" && action != "exec" {
		return
	}
	host := strings.Clone(str(value("host.id"))) // kept in the table: not a view of the record
	pid, ppid := int32(number(value("process.pid"))), int32(number(value("process.ppid")))
	auid := int64(-1)
	if v, ok := value("process.login_uid").(int64); ok {
		auid = v
	}
	exe := strings.Clone(str(value("process.file.path")))
	k := procKey{host, pid}
	if n := e.procs.nodes[k]; action == "exec" && n != nil && n.auid == auid {
		if n.root.pid == pid {
			n.root.exe = exe // a root that execs: name the tree by its image
		}
		return
	}
	n := &procNode{auid: auid}
	parent := e.procs.nodes[procKey{host, ppid}]
	switch {
	case ppid <= 2:
		n.root = procRoot{pid: pid, start: t, exe: exe, login: -1}
	case parent == nil:
		n.root = procRoot{pid: ppid, login: auid} // a parent older than the table: the root as far as it knows
	case parent.auid != auid:
		n.root = procRoot{pid: pid, start: t, exe: exe, login: -1} // a login began here
	default:
		n.root = parent.root
	}
	e.procs.put(k, n)
}

// treeOf is the process tree of an event (see the rules above).
func (e *Engine) treeOf(act map[string]any) *treeRef {
	p, ok := act["process"].(map[string]any)
	if !ok {
		return &treeRef{Key: "host", Subject: "host " + hostName(act)}
	}
	if cg, _ := p["cgroup_id"].(int64); cg > 1 {
		subj := "cgroup " + strconv.FormatInt(cg, 10)
		if u := str(p["systemd_unit"]); u != "" {
			subj = u
		} else if c := str(p["container_id"]); c != "" {
			subj = "container " + c
		}
		return &treeRef{Key: "cgroup:" + strconv.FormatInt(cg, 10), Subject: subj}
	}
	pid := int32(number(p["pid"]))
	h, _ := act["host"].(map[string]any)
	if e.procs != nil {
		if n := e.procs.nodes[procKey{str(h["id"]), pid}]; n != nil {
			return n.root.ref()
		}
	}
	if auid, ok := p["login_uid"].(int64); ok && auid >= 0 {
		return &treeRef{Key: "login:" + strconv.FormatInt(auid, 10), Subject: fmt.Sprintf("login session of uid %d", auid)}
	}
	exe := ""
	if f, ok := p["file"].(map[string]any); ok {
		exe = str(f["path"])
	}
	subj := fmt.Sprintf("process %d", pid)
	if exe != "" {
		subj = fmt.Sprintf("process %d (%s)", pid, exe)
	}
	return &treeRef{Key: fmt.Sprintf("pid:%d", pid), Subject: subj}
}

func hostName(act map[string]any) string {
	h, _ := act["host"].(map[string]any)
	return str(h["name"])
}

// incidentState is an open incident of a host and process tree.
type incidentState struct {
	ID       string       `json:"id"`
	Version  int64        `json:"version"`
	First    int64        `json:"first"`
	Last     int64        `json:"last"`
	Tree     treeRef      `json:"tree"`
	Severity string       `json:"severity"`
	Alerts   int64        `json:"alerts"`
	Events   int64        `json:"events"`
	Rules    []ruleAlerts `json:"rules,omitempty"`
	AlertIDs []string     `json:"alert_ids,omitempty"`
	Tags     []string     `json:"tags,omitempty"`
	Dirty    bool         `json:"dirty,omitempty"`     // changed since the last version raised
	LastEmit int64        `json:"last_emit,omitempty"` // event time of the last version raised
	// Until is the end of the latest throttle window of its alerts: the incident stays open
	// until then, so that the final figures of its alerts reach it.
	Until int64 `json:"until,omitempty"`
}

// closesAt is when an incident closes: its span after its last alert, and after the throttle
// windows of its alerts (a nanosecond after, so that their timers, due at the same time, run
// first).
func (in *incidentState) closesAt(span int64) int64 {
	return max(in.Last+span, in.Until+1)
}

// ruleAlerts is one rule of an incident.
type ruleAlerts struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Severity string `json:"severity"`
	Alerts   int64  `json:"alerts"`
}

// Incidents returns the incident versions raised since the last call, in the order raised.
func (e *Engine) Incidents() []*schemas.Incident {
	out := e.incidents
	e.incidents = nil
	return out
}

// incidentKey is the entry of the incident of a host and tree on a partition.
func incidentKey(part int32, hostID, tree string) entryKey {
	return entryKey{incidentRule, part, hostID + "\x00" + tree}
}

// joinIncident adds a new alert (version 1) to the incident of its tree, opening one (and
// raising it) when none is open; it returns the incident id.
func (e *Engine) joinIncident(a *Alert) string {
	tree := a.tree
	if tree == nil {
		tree = &treeRef{Key: "host", Subject: "host " + a.Host.Name}
	}
	key := incidentKey(a.Partition, a.Host.ID, tree.Key)
	span := int64(e.opt.IncidentSpan)
	if en := e.entries[key]; en != nil && en.st.Inc != nil && a.Time >= en.st.Inc.closesAt(span) {
		e.closeIncident(en) // its span passed; the watermark had not closed it yet
	}
	en := e.get(key)
	in := en.st.Inc
	if in == nil {
		in = &incidentState{ID: AlertID(incidentRule, a.Host.ID+"|"+tree.Key, strconv.FormatInt(a.Time, 10)),
			First: a.Time, Last: a.Time, Tree: *tree, Severity: a.Severity}
		en.st.Inc = in
		en.st.HostID, en.st.HostName, en.st.Service = a.Host.ID, a.Host.Name, a.Service
	}
	in.Alerts++
	in.Events += a.Count
	in.First, in.Last = min(in.First, a.Time), max(in.Last, a.Time)
	if r := e.set.byID[a.RuleID]; r != nil && !a.Final {
		in.Until = max(in.Until, a.Time+int64(e.throttleOf(r)))
	}
	if slices.Index(Severities, a.Severity) > slices.Index(Severities, in.Severity) {
		in.Severity = a.Severity
	}
	i := slices.IndexFunc(in.Rules, func(r ruleAlerts) bool { return r.ID == a.RuleID })
	switch {
	case i >= 0:
		in.Rules[i].Alerts++
	case len(in.Rules) < maxIncidentRules:
		in.Rules = append(in.Rules, ruleAlerts{ID: a.RuleID, Title: a.Title, Severity: a.Severity, Alerts: 1})
	}
	if len(in.AlertIDs) < e.opt.MaxEvidence {
		in.AlertIDs = append(in.AlertIDs, a.AlertID)
	}
	for _, t := range a.Tags {
		if len(in.Tags) < maxIncidentTags && !slices.Contains(in.Tags, t) {
			in.Tags = append(in.Tags, t)
		}
	}
	if in.Version == 0 {
		in.LastEmit = a.Time
		e.raiseIncident(en, false)
	} else {
		in.Dirty = true
	}
	e.scheduleIncident(en)
	return in.ID
}

// growIncident adds the events a throttled alert gained to its incident, if still open.
func (e *Engine) growIncident(a *Alert) {
	if a.tree == nil {
		return
	}
	en := e.entries[incidentKey(a.Partition, a.Host.ID, a.tree.Key)]
	if en == nil || en.st.Inc == nil || en.st.Inc.ID != a.IncidentID {
		return // closed already
	}
	en.st.Inc.Events += a.added
	en.st.Inc.Dirty = true
	e.dirty[en.key] = struct{}{}
	e.scheduleIncident(en)
}

// scheduleIncident sets the incident's next timer: its close, or its next update when changed.
func (e *Engine) scheduleIncident(en *entry) {
	in := en.st.Inc
	at := in.closesAt(int64(e.opt.IncidentSpan))
	if in.Dirty {
		at = min(at, in.LastEmit+int64(e.opt.IncidentUpdate))
	}
	e.schedule(en, at)
}

// incidentFire runs an incident's timer at watermark wm: it closes the incident once its span
// passed, or raises an update when one is due.
func (e *Engine) incidentFire(en *entry, wm int64) {
	in := en.st.Inc
	if in == nil {
		e.remove(en)
		return
	}
	if wm >= in.closesAt(int64(e.opt.IncidentSpan)) {
		e.closeIncident(en)
		return
	}
	if in.Dirty && wm >= in.LastEmit+int64(e.opt.IncidentUpdate) {
		in.LastEmit = wm
		e.raiseIncident(en, false)
	}
	e.dirty[en.key] = struct{}{}
	e.scheduleIncident(en)
}

// closeIncident ends an incident: it is raised a last time, Final, when it was updated or
// changed since.
func (e *Engine) closeIncident(en *entry) {
	if in := en.st.Inc; in != nil && (in.Version > 1 || in.Dirty) {
		e.raiseIncident(en, true)
	}
	e.remove(en)
}

// raiseIncident raises the incident's next version.
func (e *Engine) raiseIncident(en *entry, final bool) {
	in := en.st.Inc
	in.Version++
	in.Dirty = false
	out := &schemas.Incident{
		IncidentID: in.ID, Version: in.Version, Final: final, Time: in.First, LastTime: in.Last,
		Host: schemas.Host{ID: en.st.HostID, Name: en.st.HostName}, Service: en.st.Service,
		TreeKey: in.Tree.Key, Subject: in.Tree.Subject, Severity: in.Severity, Alerts: in.Alerts, Events: in.Events,
		AlertIDs: slices.Clone(in.AlertIDs), Tags: slices.Clone(in.Tags),
	}
	if out.AlertIDs == nil {
		out.AlertIDs = []string{}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	parts := make([]string, 0, len(in.Rules))
	for _, r := range in.Rules {
		out.Rules = append(out.Rules, schemas.IncidentRule{RuleID: r.ID, Title: r.Title, Severity: r.Severity, Alerts: r.Alerts})
		parts = append(parts, fmt.Sprintf("%s (%d, %s)", r.Title, r.Alerts, r.Severity))
	}
	what := "alerts"
	if in.Alerts == 1 {
		what = "alert"
	}
	out.Summary = fmt.Sprintf("%d %s of %d rules on %s, %s: %s", in.Alerts, what, len(in.Rules), en.st.HostName, in.Tree.Subject, strings.Join(parts, "; "))
	if len(in.Rules) == 1 {
		out.Summary = fmt.Sprintf("%d %s of 1 rule on %s, %s: %s", in.Alerts, what, en.st.HostName, in.Tree.Subject, strings.Join(parts, "; "))
	}
	e.incidents = append(e.incidents, out)
	e.dirty[en.key] = struct{}{}
}
