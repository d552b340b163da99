package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// line is what a test checks of a timeline entry.
type line struct {
	Kind, Action, Host string
	Depth              int
}

func lines(es []query.Entry) []line {
	out := make([]line, len(es))
	for i, e := range es {
		out[i] = line{e.Kind, e.Action, e.Host, e.Depth}
	}
	return out
}

func TestTimeline(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	st := query.New(clickhousetest.Land(t, cfg, s).Conn(), cfg.Database, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	web := []line{
		{"identity", "auth", "web-1", 0}, {"identity", "auth", "web-1", 0},
		{"identity", "auth", "web-1", 0}, {"process", "exec", "web-1", 0}, // sshd
		{"identity", "session_open", "web-1", 0}, {"process", "exec", "web-1", 1}, // bash under sshd
		{"network", "connect", "web-1", 0}, {"process", "exec", "web-1", 2}, // curl under bash
		{"network", "close", "web-1", 0}, {"process", "exit", "web-1", 2},
		{"process", "exec", "web-1", 2}, // /tmp/x under bash
		{"alert", "high", "web-1", 0}, {"identity", "setuid", "web-1", 0},
		{"network", "connect", "web-1", 0}, {"network", "update", "web-1", 0},
		{"file", "write", "web-1", 0}, {"alert", "critical", "web-1", 0},
		{"file", "scan_added", "web-1", 0}, {"network", "close", "web-1", 0},
		{"process", "exec", "web-1", 0}, // shop, started by systemd
	}
	tests := []struct {
		name    string
		q       query.TimelineQuery
		want    []line
		changes []string
	}{
		{name: "host", q: query.TimelineQuery{Host: clickhousetest.WebHost, From: s.Start, To: s.End}, want: web, changes: []string{clickhousetest.ChangeID}},
		{name: "service", q: query.TimelineQuery{Service: clickhousetest.WebService, From: s.Start, To: s.End}, want: web, changes: []string{clickhousetest.ChangeID}},
		{name: "other service", q: query.TimelineQuery{Service: clickhousetest.DBService, From: s.Start, To: s.End},
			want: []line{{"alert", "medium", "db-1", 0}}},
		{name: "alert", q: query.TimelineQuery{AlertID: "alert-deployed-file-changed", Before: 30 * time.Second, After: 90 * time.Second},
			want:    []line{{"file", "write", "web-1", 0}, {"alert", "critical", "web-1", 0}, {"file", "scan_added", "web-1", 0}, {"network", "close", "web-1", 0}},
			changes: []string{clickhousetest.ChangeID}},
		{name: "empty range", q: query.TimelineQuery{Host: clickhousetest.WebHost, From: s.End.Add(time.Hour), To: s.End.Add(2 * time.Hour)},
			want: []line{}, changes: []string{clickhousetest.ChangeID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl, err := st.Timeline(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, lines(tl.Entries)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			var changes []string
			for _, c := range tl.Changes {
				changes = append(changes, c.ID)
			}
			if diff := cmp.Diff(tc.changes, changes); diff != "" {
				t.Errorf("change windows (-want +got):\n%s", diff)
			}
			if err := st.FillQueryStats(ctx, tl.Queries); err != nil {
				t.Fatal(err)
			}
			for _, q := range tl.Queries {
				if q.WallMs <= 0 {
					t.Errorf("query %s: no wall time measured", q.Name)
				}
			}
		})
	}
}

func TestAlerts(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	st := query.New(clickhousetest.Land(t, cfg, s).Conn(), cfg.Database, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name string
		f    query.AlertFilter
		want []string
	}{
		{"all", query.AlertFilter{Since: s.Start}, []string{"alert-db-volume", "alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}},
		{"severity", query.AlertFilter{Since: s.Start, Severity: "critical"}, []string{"alert-deployed-file-changed"}},
		{"rule", query.AlertFilter{Since: s.Start, Rule: "db-volume-spike"}, []string{"alert-db-volume"}},
		{"service", query.AlertFilter{Since: s.Start, Service: clickhousetest.WebService}, []string{"alert-deployed-file-changed", "alert-ssh-then-unknown-binary"}},
		{"since", query.AlertFilter{Since: s.End}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as, err := st.Alerts(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range as {
				got = append(got, a.ID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Evidence on another host than the alert's is found too.
	a, err := st.Alert(ctx, "alert-db-volume")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]line{{"network", "connect", "web-1", 0}, {"network", "update", "web-1", 0}, {"network", "close", "web-1", 0}}, lines(a.Evidence)); diff != "" {
		t.Errorf("evidence (-want +got):\n%s", diff)
	}
	if len(a.Missing) != 0 {
		t.Errorf("missing evidence: %v", a.Missing)
	}
	if _, err := st.Alert(ctx, "no-such-alert"); err == nil {
		t.Error("Alert(no-such-alert): no error")
	}
}
