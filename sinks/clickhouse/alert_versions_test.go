package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestEarlyAlertReplacedByFinal: a brute-force burst's alert raised early (version 1, the count
// so far) lands in ClickHouse and is readable at once; the same alert raised again when its
// window closed (version 2, the final count) replaces it: `crumbs alerts` and `crumbs alerts
// show` read one row per alert id with the final count, alerts_hourly counts the alert once,
// and a merge keeps that row alone.
func TestEarlyAlertReplacedByFinal(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.BatchMaxAge = 100, 100*time.Millisecond
	kcfg, cl := startKafka(t)
	sink, _ := runSink(t, cfg, kcfg, nil)
	var st *Store
	waitFor(t, "the sink to migrate", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		st, err = Open(ctx, cfg)
		return err == nil, fmt.Sprint(err)
	})
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	start := time.Now().Add(-time.Hour).Truncate(time.Minute)
	early := sampleAlert(0, start.Add(time.Minute))
	early.AlertID, early.RuleID, early.GroupKey, early.Time = "bf-web-1-root", "crumbs-brute-force-per-account", "web-1|root", start.Add(time.Second).UnixNano()
	early.WindowStart, early.WindowEnd, early.Count, early.Evidence = start.UnixNano(), start.Add(time.Minute).UnixNano(), 5, []string{"f0", "f1", "f2", "f3", "f4"}
	early.Summary = "Brute force against an account: count 5 >= 5 within 1m0s for web-1|root (so far: the window is open)"
	early.IncidentID = "inc-web-1-sshd"
	final := *early
	final.Version, final.Count, final.Evidence, final.Final = 2, 6, []string{"f0", "f1", "f2", "f3", "f4", "f5"}, true
	final.Summary = "Brute force against an account: count 6 >= 5 within 1m0s for web-1|root"
	other := sampleAlert(1, start.Add(30*time.Second))

	listed := func() map[string]int64 {
		t.Helper()
		rows, err := query.New(st.Conn(), st.Database(), "").Alerts(ctx, query.AlertFilter{Since: start.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, r := range rows {
			if _, dup := out[r.ID]; dup {
				t.Errorf("alert %s listed twice", r.ID)
			}
			out[r.ID] = r.Count
		}
		return out
	}
	produceAll(t, cl, kcfg, nil, []*schemas.Alert{early})
	waitFor(t, "the early alert", func() (bool, string) {
		got := listed()
		return got[early.AlertID] == 5, fmt.Sprint(got)
	})
	produceAll(t, cl, kcfg, nil, []*schemas.Alert{&final, other})
	waitFor(t, "the final alert", func() (bool, string) {
		got := listed()
		return got[early.AlertID] == 6 && got[other.AlertID] == other.Count, fmt.Sprint(got)
	})
	if d := cmp.Diff(map[string]int64{early.AlertID: 6, other.AlertID: other.Count}, listed()); d != "" {
		t.Errorf("alerts listed (-want +got):\n%s", d)
	}
	shown, err := query.New(st.Conn(), st.Database(), "").Alert(ctx, early.AlertID)
	if err != nil {
		t.Fatal(err)
	}
	if shown.Alert.Count != 6 || len(shown.Alert.Evidence) != 6 || shown.Alert.Summary != final.Summary {
		t.Errorf("alert shown: count %d, evidence %v, summary %q; want the final version's", shown.Alert.Count, shown.Alert.Evidence, shown.Alert.Summary)
	}
	var hourly uint64
	if err := st.Conn().QueryRow(ctx, "SELECT sum(alerts) FROM "+st.Database()+".alerts_hourly").Scan(&hourly); err != nil {
		t.Fatal(err)
	}
	if hourly != 2 {
		t.Errorf("alerts_hourly counts %d alerts, want 2", hourly)
	}
	// Both versions share the sorting key (rule_id, time, alert_id): a merge keeps the last.
	if err := st.Conn().Exec(ctx, "OPTIMIZE TABLE "+st.Database()+".alerts FINAL"); err != nil {
		t.Fatal(err)
	}
	var (
		rows  uint64
		count int64
	)
	if err := st.Conn().QueryRow(ctx, "SELECT count(), sum(count) FROM "+st.Database()+".alerts WHERE alert_id = ?", early.AlertID).Scan(&rows, &count); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || count != 6 {
		t.Errorf("after a merge: %d rows of the alert, count %d; want one row, count 6", rows, count)
	}
	var (
		incident string
		isFinal  uint8
	)
	if err := st.Conn().QueryRow(ctx, "SELECT incident_id, final FROM "+st.Database()+".alerts WHERE alert_id = ?", early.AlertID).Scan(&incident, &isFinal); err != nil {
		t.Fatal(err)
	}
	if incident != early.IncidentID || isFinal != 1 {
		t.Errorf("incident_id %q, final %d; want %q and 1 (migration 0010)", incident, isFinal, early.IncidentID)
	}
	// An alert's latency is observed for its first version only: the final version, an hour
	// after its first event, would count the time the window stayed open.
	var m dto.Metric
	if err := sink.latency.WithLabelValues(AlertsTable).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() != 2 {
		t.Errorf("alerts latency: %d samples, want 2 (the first versions of the two alerts)", h.GetSampleCount())
	}
}
