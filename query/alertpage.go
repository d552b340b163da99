package query

import (
	"context"
	"sort"
	"time"
)

// ProcessNode is a process in an alert's process tree: its exec with arguments and hashes.
type ProcessNode struct {
	Depth    int       `json:"depth"`
	Time     time.Time `json:"time"`
	EventID  string    `json:"event_id"`
	PID      int32     `json:"pid"`
	PPID     int32     `json:"ppid"`
	Exe      string    `json:"exe_path"`
	SHA256   string    `json:"exe_sha256"`
	Args     []string  `json:"args"`
	User     string    `json:"user_name"`
	Verdict  string    `json:"verdict,omitempty"`
	Parent   string    `json:"parent_exe_path,omitempty"` // the parent's image, also when its exec is not in the range
	Evidence bool      `json:"evidence"`                  // the process (or an event it made) is evidence of the alert
}

// AlertDetail is everything the console's alert page shows.
type AlertDetail struct {
	AlertEvidence
	// Tree is the lineage of the evidence processes on the alert's host: their ancestors and
	// descendants whose exec lies in the timeline's range, depth first.
	Tree []ProcessNode `json:"process_tree"`
	// Timeline is the alert's host around it (Before and After).
	Timeline *Timeline `json:"timeline"`
	// Deploys are the deployments of the alert's service or host before the alert.
	Deploys []Deploy `json:"deploys"`
}

// AlertDetail returns the alert with its evidence, its host's timeline from before to after
// it, the process tree of its evidence, the change windows in force (in the timeline) and the
// deployments behind its service.
func (s *Store) AlertDetail(ctx context.Context, id string, before, after time.Duration) (*AlertDetail, error) {
	ev, err := s.Alert(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &AlertDetail{AlertEvidence: *ev}
	a := ev.Alert
	if a.Host != "" || a.Service != "" {
		from := a.Time.Add(-before)
		if a.WindowStart.Before(from) && !a.WindowStart.IsZero() && a.Time.Sub(a.WindowStart) < 24*time.Hour {
			from = a.WindowStart.Add(-time.Minute)
		}
		tl, err := s.Timeline(ctx, TimelineQuery{AlertID: id, From: from, To: a.Time.Add(after), Limit: 2000})
		if err != nil {
			return nil, err
		}
		d.Timeline = tl
		d.Tree = processTreeOf(tl.Entries, ev.Evidence, a.Host)
	}
	cond, args := "deployed_at <= toDateTime(?)", []any{uint32(clampDateTime(a.Time).Unix())}
	switch {
	case a.Service != "" && a.Host != "":
		cond += " AND (service = ? OR has(hosts, ?))"
		args = append(args, a.Service, a.Host)
	case a.Service != "":
		cond += " AND service = ?"
		args = append(args, a.Service)
	case a.Host != "":
		cond += " AND has(hosts, ?)"
		args = append(args, a.Host)
	default:
		return d, nil
	}
	if d.Deploys, err = s.deploys(ctx, &queryLog{}, cond, args); err != nil {
		return nil, err
	}
	if len(d.Deploys) > 20 {
		d.Deploys = d.Deploys[:20]
	}
	return d, nil
}

// processTreeOf builds the lineage of the evidence's processes from a host's timeline entries.
func processTreeOf(entries, evidence []Entry, host string) []ProcessNode {
	type node struct {
		ProcessNode
		parent   int // index in nodes, -1 when not in range
		children []int
	}
	var nodes []node
	latest := map[int32]int{} // pid -> its latest exec so far
	for _, e := range entries {
		if e.Kind != "process" || e.Host != host || (e.Action != "exec" && e.Action != "fork") {
			continue
		}
		n := node{ProcessNode: ProcessNode{Time: e.Time, EventID: e.ID, PID: e.PID, PPID: e.PPID}, parent: -1}
		if v, ok := e.Details["exe_path"].(string); ok {
			n.Exe = v
		}
		if v, ok := e.Details["exe_sha256"].(string); ok {
			n.SHA256 = v
		}
		if v, ok := e.Details["args"].([]string); ok {
			n.Args = v
		}
		if v, ok := e.Details["user_name"].(string); ok {
			n.User = v
		}
		if v, ok := e.Details["verdict"].(string); ok {
			n.Verdict = v
		}
		if v, ok := e.Details["parent_exe_path"].(string); ok {
			n.Parent = v
		}
		if p, ok := latest[e.PPID]; ok && e.PPID != e.PID {
			n.parent = p
		}
		latest[e.PID] = len(nodes)
		nodes = append(nodes, n)
	}
	for i := range nodes {
		if p := nodes[i].parent; p >= 0 {
			nodes[p].children = append(nodes[p].children, i)
		}
	}
	// The evidence's processes: by event id for process events, by pid for the others.
	focus := map[int]bool{}
	ids := map[string]bool{}
	pids := map[int32]bool{}
	for _, e := range evidence {
		if e.Host != host {
			continue
		}
		if e.Kind == "process" {
			ids[e.ID] = true
		}
		if e.PID > 0 {
			pids[e.PID] = true
		}
	}
	for i, n := range nodes {
		if ids[n.EventID] {
			focus[i] = true
		}
	}
	if len(focus) == 0 { // no process evidence: the latest process of each evidence pid
		for pid := range pids {
			if i, ok := latest[pid]; ok {
				focus[i] = true
			}
		}
	}
	keep := map[int]bool{}
	for i := range focus {
		for p := i; p >= 0 && !keep[p]; p = nodes[p].parent { // ancestors
			keep[p] = true
		}
		var down func(int)
		down = func(j int) { // descendants
			for _, c := range nodes[j].children { // a child comes after its parent: no cycle
				keep[c] = true
				down(c)
			}
		}
		down(i)
	}
	var roots []int
	for i := range nodes {
		if keep[i] && nodes[i].parent < 0 {
			roots = append(roots, i)
		}
	}
	sort.Slice(roots, func(a, b int) bool { return nodes[roots[a]].Time.Before(nodes[roots[b]].Time) })
	var out []ProcessNode
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if len(out) >= 500 {
			return
		}
		n := nodes[i].ProcessNode
		n.Depth, n.Evidence = depth, focus[i]
		out = append(out, n)
		for _, c := range nodes[i].children {
			if keep[c] {
				walk(c, depth+1)
			}
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return out
}
