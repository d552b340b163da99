package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/schemas"
)

// processColumns are the columns of process_events readProcessEvents reads, in its order.
var processColumns = []string{
	"event_id", "time", "time_ns", "date", "kind", "host_id", "host_name", "action",
	"pid", "ppid", "cmd_line", "args", "args_truncated", "cwd", "exe_path", "exe_name", "exe_sha256",
	"uid", "user_name", "gid", "group_name", "login_uid", "tty", "cgroup_id", "systemd_unit",
	"container_id", "exit_code", "parent_pid", "parent_exe_path", "parent_exe_name",
	"parent_exe_sha256", "parent_cmd_line", "service", "environment", "role",
	"container_name", "container_image", "container_image_id", "pod_name", "pod_namespace", "pod_labels",
	"workload_kind", "workload_name",
}

// readProcessEvents reads every row of process_events back into events, by event id.
func readProcessEvents(t testing.TB, st *Store) map[string]*schemas.ProcessEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := st.Conn().Query(ctx, "SELECT "+joinCols(processColumns)+" FROM "+st.Database()+".process_events")
	if err != nil {
		t.Fatalf("read process_events: %v", err)
	}
	defer rows.Close()
	out := map[string]*schemas.ProcessEvent{}
	for rows.Next() {
		var (
			e         schemas.ProcessEvent
			ts, date  time.Time
			timeNs    uint64
			argsTrunc uint8
			en        schemas.Enrichment
			p         = &e.Process
			c         schemas.Container
			pod       schemas.Pod
		)
		if err := rows.Scan(&e.EventID, &ts, &timeNs, &date, &e.Kind, &e.Host.ID, &e.Host.Name, &e.Action,
			&p.PID, &p.PPID, &p.CmdLine, &p.Args, &argsTrunc, &p.CWD, &p.File.Path, &p.File.Name, &p.File.SHA256,
			&p.UID, &p.UserName, &p.GID, &p.GroupName, &p.LoginUID, &p.TTY, &p.CgroupID, &p.SystemdUnit,
			&p.ContainerID, &p.ExitCode, &p.Parent.PID, &p.Parent.File.Path, &p.Parent.File.Name,
			&p.Parent.File.SHA256, &p.Parent.CmdLine, &en.Service, &en.Environment, &en.Role,
			&c.Name, &c.Image, &c.ImageID, &pod.Name, &pod.Namespace, &pod.Labels, &pod.WorkloadKind, &pod.WorkloadName); err != nil {
			t.Fatalf("scan process_events: %v", err)
		}
		e.Time = int64(timeNs)
		if ts.Unix() != e.Time/1e9 {
			t.Errorf("event %s: time %v does not match time_ns %d", e.EventID, ts, timeNs)
		}
		if want := time.Unix(0, e.Time).UTC().Format(time.DateOnly); date.Format(time.DateOnly) != want {
			t.Errorf("event %s: date %s, want %s", e.EventID, date.Format(time.DateOnly), want)
		}
		p.ArgsTruncated = argsTrunc == 1
		if pod.Name != "" {
			c.Pod = &pod
		}
		if c.Name != "" || c.Image != "" {
			p.Container = &c
		}
		e.Enrichment = &en
		out[e.EventID] = &e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readAlerts reads every row of alerts back, by alert id.
func readAlerts(t testing.TB, st *Store) map[string]*schemas.Alert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := st.Conn().Query(ctx, "SELECT "+joinCols(alertColumns)+" FROM "+st.Database()+".alerts")
	if err != nil {
		t.Fatalf("read alerts: %v", err)
	}
	defer rows.Close()
	out := map[string]*schemas.Alert{}
	for rows.Next() {
		var (
			a                           schemas.Alert
			ts, date, ws, we            time.Time
			timeNs, wsNs, weNs, version uint64
		)
		if err := rows.Scan(&a.AlertID, &ts, &timeNs, &date, &a.RuleID, &a.Title, &a.Severity, &a.Tags, &a.GroupKey,
			&a.Host.ID, &a.Host.Name, &a.Service, &ws, &wsNs, &we, &weNs, &a.Count, &a.Evidence, &a.Summary, &version); err != nil {
			t.Fatalf("scan alerts: %v", err)
		}
		a.Time, a.WindowStart, a.WindowEnd, a.Version = int64(timeNs), int64(wsNs), int64(weNs), int64(version)
		if ws.Unix() != a.WindowStart/1e9 || we.Unix() != a.WindowEnd/1e9 {
			t.Errorf("alert %s: window %v..%v does not match %d..%d", a.AlertID, ws, we, wsNs, weNs)
		}
		out[a.AlertID] = &a
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func joinCols(cols []string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}

func TestStoreRoundTrip(t *testing.T) {
	st, _ := openTestStore(t)
	now := time.Now()
	empty := sampleEvent(9, now)
	empty.Process.Args, empty.Enrichment = []string{}, &schemas.Enrichment{}
	minimal := &schemas.Alert{AlertID: "minimal", Time: now.UnixNano(), Tags: []string{}, Evidence: []string{}}

	tests := []struct {
		name   string
		events []*schemas.ProcessEvent
		alerts []*schemas.Alert
	}{
		{name: "full event", events: []*schemas.ProcessEvent{sampleEvent(1, now)}},
		{name: "empty args and enrichment", events: []*schemas.ProcessEvent{empty}},
		{name: "batch of events", events: []*schemas.ProcessEvent{sampleEvent(2, now), sampleEvent(3, now.Add(-48*time.Hour))}},
		{name: "full alert", alerts: []*schemas.Alert{sampleAlert(1, now)}},
		{name: "minimal alert", alerts: []*schemas.Alert{minimal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := insertProcessEvents(ctx, st, tc.events); err != nil {
				t.Fatal(err)
			}
			if err := st.InsertAlerts(ctx, tc.alerts); err != nil {
				t.Fatal(err)
			}
			gotEvents, gotAlerts := readProcessEvents(t, st), readAlerts(t, st)
			for _, want := range tc.events {
				if diff := cmp.Diff(want, gotEvents[want.EventID]); diff != "" {
					t.Errorf("event %s (-want +got):\n%s", want.EventID, diff)
				}
			}
			for _, want := range tc.alerts {
				if diff := cmp.Diff(want, gotAlerts[want.AlertID]); diff != "" {
					t.Errorf("alert %s (-want +got):\n%s", want.AlertID, diff)
				}
			}
		})
	}
}

func TestStoreExistingIDs(t *testing.T) {
	st, _ := openTestStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	var written, fresh []*schemas.ProcessEvent
	for i := range 3 {
		written = append(written, sampleEvent(i, now.Add(time.Duration(-i)*25*time.Hour)))
		fresh = append(fresh, sampleEvent(10+i, now))
	}
	if err := insertProcessEvents(ctx, st, written); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var times []int64
	for _, e := range append(append([]*schemas.ProcessEvent{}, fresh...), written...) {
		ids, times = append(ids, e.EventID), append(times, e.Time)
	}
	got, err := st.ExistingIDs(ctx, ProcessEventsTable, "event_id", ids, times)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range written {
		want[e.EventID] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("existing event ids (-want +got):\n%s", diff)
	}

	a := sampleAlert(1, now)
	if err := st.InsertAlerts(ctx, []*schemas.Alert{a}); err != nil {
		t.Fatal(err)
	}
	b := sampleAlert(2, now)
	gotA, err := st.ExistingIDs(ctx, AlertsTable, "alert_id", []string{a.AlertID, b.AlertID}, []int64{a.Time, b.Time})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{a.AlertID: true}, gotA); diff != "" {
		t.Errorf("existing alert ids (-want +got):\n%s", diff)
	}
}
