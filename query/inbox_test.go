package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// landed lands the scenario through the sink and returns a Store on it.
func landed(t *testing.T) (*query.Store, *clickhousetest.Scenario) {
	t.Helper()
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	return query.New(clickhousetest.Land(t, cfg, s).Conn(), cfg.Database, ""), s
}

func ids(as []query.AlertRow) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// TestInbox: the inbox lists the alerts a filter selects, newest first, with their triage
// state, and counts per facet over the alerts the other filters select.
func TestInbox(t *testing.T) {
	st, s := landed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		f      query.AlertFilter
		want   []string
		total  uint64
		facets map[string][]query.FacetValue
	}{
		{name: "all", f: query.AlertFilter{Since: s.Start}, want: []string{"alert-db-volume", "alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}, total: 3,
			facets: map[string][]query.FacetValue{
				query.FacetState:    {{"new", 2}, {"acknowledged", 1}, {"resolved", 0}, {"false_positive", 0}},
				query.FacetSeverity: {{"critical", 1}, {"high", 1}, {"medium", 1}},
				query.FacetService:  {{"shop", 2}, {"shop-db", 1}},
				query.FacetTag:      {{"attack.t1204", 1}, {"integrity", 1}},
			}},
		// Whole hours in the range: the counts come from alerts_facets_hourly and the edges.
		{name: "whole hours", f: query.AlertFilter{Since: s.Start.Add(-3 * time.Hour), Until: s.End.Add(2 * time.Hour)},
			want: []string{"alert-db-volume", "alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}, total: 3,
			facets: map[string][]query.FacetValue{
				query.FacetState:    {{"new", 2}, {"acknowledged", 1}, {"resolved", 0}, {"false_positive", 0}},
				query.FacetSeverity: {{"critical", 1}, {"high", 1}, {"medium", 1}},
				query.FacetRule:     {{"db-volume-spike", 1}, {"deployed-file-changed", 1}, {"unknown-binary-after-login", 1}},
				query.FacetTag:      {{"attack.t1204", 1}, {"integrity", 1}},
			}},
		{name: "state new", f: query.AlertFilter{Since: s.Start, State: "new"}, want: []string{"alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}, total: 2,
			facets: map[string][]query.FacetValue{
				query.FacetState:    {{"new", 2}, {"acknowledged", 1}, {"resolved", 0}, {"false_positive", 0}}, // its own filter left out
				query.FacetSeverity: {{"critical", 1}, {"high", 1}},
			}},
		{name: "acknowledged", f: query.AlertFilter{Since: s.Start, State: "acknowledged"}, want: []string{"alert-db-volume"}, total: 1,
			facets: map[string][]query.FacetValue{query.FacetSeverity: {{"medium", 1}}, query.FacetHost: {{"db-1", 1}}, query.FacetService: {{"shop-db", 1}}}},
		{name: "open", f: query.AlertFilter{Since: s.Start, State: query.StateOpen}, want: []string{"alert-db-volume", "alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}, total: 3,
			facets: map[string][]query.FacetValue{query.FacetSeverity: {{"critical", 1}, {"high", 1}, {"medium", 1}}}},
		{name: "state new over whole hours", f: query.AlertFilter{Since: s.Start.Add(-3 * time.Hour), Until: s.End.Add(2 * time.Hour), State: "new"},
			want: []string{"alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}, total: 2,
			facets: map[string][]query.FacetValue{query.FacetSeverity: {{"critical", 1}, {"high", 1}}, query.FacetService: {{"shop", 2}},
				query.FacetRule: {{"deployed-file-changed", 1}, {"unknown-binary-after-login", 1}}}},
		{name: "state and host", f: query.AlertFilter{Since: s.Start, State: "new", Host: clickhousetest.WebHost},
			want: []string{"alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}, total: 2,
			facets: map[string][]query.FacetValue{query.FacetSeverity: {{"critical", 1}, {"high", 1}}, query.FacetHost: {{"web-1", 2}}}},
		{name: "tag and severity", f: query.AlertFilter{Since: s.Start, Tag: "integrity", Severity: "critical"}, want: []string{"alert-deployed-file-changed"}, total: 1,
			facets: map[string][]query.FacetValue{query.FacetSeverity: {{"critical", 1}}, query.FacetTag: {{"integrity", 1}}}},
		{name: "host", f: query.AlertFilter{Since: s.Start, Host: clickhousetest.DBHost}, want: []string{"alert-db-volume"}, total: 1},
		{name: "limit", f: query.AlertFilter{Since: s.Start, Limit: 1}, want: []string{"alert-db-volume"}, total: 3},
		{name: "nothing", f: query.AlertFilter{Since: s.End}, total: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := st.Inbox(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(in.Alerts)); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
			if in.Total != tc.total {
				t.Errorf("total %d, want %d", in.Total, tc.total)
			}
			for facet, want := range tc.facets {
				if diff := cmp.Diff(want, in.Facets[facet]); diff != "" {
					t.Errorf("facet %s (-want +got):\n%s", facet, diff)
				}
			}
		})
	}
	in, err := st.Inbox(ctx, query.AlertFilter{Since: s.Start, Rule: "db-volume-spike"})
	if err != nil {
		t.Fatal(err)
	}
	if a := in.Alerts[0]; a.State != "acknowledged" || a.Assignee != "alice" {
		t.Errorf("triaged alert listed as %s by %q, want acknowledged by alice", a.State, a.Assignee)
	}
	if _, err := st.Inbox(ctx, query.AlertFilter{State: "done"}); err == nil {
		t.Error("state done: no error")
	}
}

// TestAlertDetail: the alert page's data: the evidence's process lineage with arguments and
// hashes, the host's timeline around it, the change window in force and the service's deploy.
func TestAlertDetail(t *testing.T) {
	st, _ := landed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := st.AlertDetail(ctx, "alert-ssh-then-unknown-binary", 10*time.Minute, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		Depth    int
		Exe      string
		Evidence bool
	}
	var tree []node
	for _, n := range d.Tree {
		tree = append(tree, node{n.Depth, n.Exe, n.Evidence})
		if n.SHA256 == "" || len(n.Args) == 0 {
			t.Errorf("process %s: sha256 %q, args %q: want both", n.Exe, n.SHA256, n.Args)
		}
	}
	want := []node{{0, "/usr/sbin/sshd", false}, {1, "/usr/bin/bash", false}, {2, "/tmp/x", true}}
	if diff := cmp.Diff(want, tree); diff != "" {
		t.Errorf("process tree (-want +got):\n%s", diff)
	}
	if d.Timeline == nil || len(d.Timeline.Entries) == 0 || len(d.Timeline.Changes) != 1 || d.Timeline.Changes[0].ID != clickhousetest.ChangeID {
		t.Errorf("timeline: %+v, want entries and the change window %s", d.Timeline, clickhousetest.ChangeID)
	}
	if len(d.Deploys) != 1 || d.Deploys[0].ID != clickhousetest.DeployID || len(d.Deploys[0].Artifacts) != 1 {
		t.Errorf("deploys: %+v, want %s with its artifact", d.Deploys, clickhousetest.DeployID)
	}
	db, err := st.AlertDetail(ctx, "alert-db-volume", time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if db.Triage == nil || db.Triage.State != "acknowledged" || len(db.Triage.Notes) != 1 || db.Triage.Notes[0].Text != "backup window? <img src=x onerror=alert(1)>" {
		t.Errorf("triage: %+v, want acknowledged with alice's note", db.Triage)
	}
}

// TestContextAndServiceGraph: the context in force at the scenario's end and its service graph.
func TestContextAndServiceGraph(t *testing.T) {
	st, s := landed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := st.Context(ctx, s.End.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, ch := range c.Changes {
		changes = append(changes, ch.ID)
	}
	if diff := cmp.Diff([]string{clickhousetest.ChangeID}, changes); diff != "" {
		t.Errorf("changes in force (-want +got):\n%s", diff)
	}
	if len(c.Deploys) != 1 || len(c.Inventory) != 2 || len(c.Accounts) != 1 || !c.Accounts[0].Interactive {
		t.Errorf("context: %d deploys, %d inventory entries, accounts %+v; want 1, 2 and alice interactive", len(c.Deploys), len(c.Inventory), c.Accounts)
	}
	edges, err := st.ServiceGraph(ctx, s.Start, s.End)
	if err != nil {
		t.Fatal(err)
	}
	if len(edges) == 0 {
		t.Fatal("service graph: no edges")
	}
	for _, e := range edges {
		if e.Source == "" || e.Destination == "" || e.Connections == 0 {
			t.Errorf("edge %+v: want a source, a destination and connections", e)
		}
	}
}
