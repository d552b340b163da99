package detectors_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// incidents reads every committed incident.
func (p *pipeline) incidents(t *testing.T) []*schemas.Incident {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	var out []*schemas.Incident
	parts := make([]int32, p.kcfg.Partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	err = kafka.ReadPartitions(context.Background(), p.kcfg, p.kcfg.Topics().Incidents(), parts, func(r *kgo.Record) error {
		_, native, err := serde.Decode(r.Value)
		if err != nil {
			return err
		}
		in, err := schemas.IncidentFromNative(native)
		out = append(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestThrottledAlertsAndIncidentsOnTheirTopics: five failed logins of a match rule within its
// throttle minute reach crumbs.alerts as one alert in versions (1, 2, 4 events, then 5, final,
// when the idle partition's watermark closes the minute), all with one incident id;
// crumbs.incidents gets that incident (raised with the alert, final when its span closed);
// /metrics counts one alert raised and four grouped for the rule.
func TestThrottledAlertsAndIncidentsOnTheirTopics(t *testing.T) {
	p := newPipeline(t)
	dir := t.TempDir()
	yml := "id: failed-login\ntitle: Failed login\nseverity: low\nsource: identity\nkind: match\n" +
		"condition: action == \"auth\" && identity.result == \"failure\"\ngroup_by: [host.name]\n"
	if err := os.WriteFile(filepath.Join(dir, "failed-login.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	p.configure = func(c *detectors.Config) {
		c.RulesDir, c.Incidents.Span = dir, time.Minute
	}
	p.metrics = prometheus.NewRegistry()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute) // the idle watermark passes every window at once
	for i := range 5 {
		p.failedLogin(t, fmt.Sprint("f", i), t0.Add(time.Duration(i+1)*time.Second), "failure")
	}
	stop := p.startDetector(t, nil, time.Second)
	defer stop()
	deadline := time.Now().Add(60 * time.Second)
	var alerts []*schemas.Alert
	var incidents []*schemas.Incident
	for time.Now().Before(deadline) {
		alerts, incidents = p.alerts(t), p.incidents(t)
		if len(alerts) > 0 && alerts[len(alerts)-1].Final && len(incidents) > 0 && incidents[len(incidents)-1].Final {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	type av struct {
		Version, Count int64
		Final          bool
		Evidence       int
	}
	var got []av
	for _, a := range alerts {
		got = append(got, av{a.Version, a.Count, a.Final, len(a.Evidence)})
		if a.AlertID != alerts[0].AlertID || a.IncidentID != alerts[0].IncidentID || a.IncidentID == "" {
			t.Errorf("version %d: alert %s incident %q, want the first's %s %q", a.Version, a.AlertID, a.IncidentID, alerts[0].AlertID, alerts[0].IncidentID)
		}
	}
	want := []av{{1, 1, false, 1}, {2, 2, false, 2}, {3, 4, false, 4}, {4, 5, true, 5}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("alerts on %s (-want +got):\n%s", p.kcfg.Topics().Alerts(), d)
	}
	type iv struct {
		Version        int64
		Final          bool
		Alerts, Events int64
	}
	var gotInc []iv
	for _, in := range incidents {
		gotInc = append(gotInc, iv{in.Version, in.Final, in.Alerts, in.Events})
		if in.IncidentID != alerts[0].IncidentID {
			t.Errorf("incident %s, want the alerts' %s", in.IncidentID, alerts[0].IncidentID)
		}
	}
	if d := cmp.Diff([]iv{{1, false, 1, 1}, {2, true, 1, 5}}, gotInc); d != "" {
		t.Errorf("incidents on %s (-want +got):\n%s", p.kcfg.Topics().Incidents(), d)
	}
	stop()
	mfs, err := p.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gotMetrics := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rule" {
					gotMetrics[mf.GetName()+"{"+l.GetValue()+"}"] = m.GetCounter().GetValue()
				}
			}
		}
	}
	wantMetrics := map[string]float64{
		"crumbs_detector_alerts_raised_total{failed-login}":     1,
		"crumbs_detector_alerts_grouped_total{failed-login}":    4,
		"crumbs_detector_alerts_suppressed_total{failed-login}": 0,
	}
	if d := cmp.Diff(wantMetrics, gotMetrics); d != "" {
		t.Errorf("per-rule metrics (-want +got):\n%s", d)
	}
}

// TestIncidentsTopicUnwritableLeavesAlertsFlowing: without crumbs.incidents (or the right to
// write it), incidents are not produced and alerts still are: a failing write would abort every
// transaction.
func TestIncidentsTopicUnwritableLeavesAlertsFlowing(t *testing.T) {
	p := newPipeline(t)
	if _, err := kadm.NewClient(p.cl).DeleteTopics(context.Background(), p.kcfg.Topics().Incidents()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yml := "id: failed-login\ntitle: Failed login\nseverity: low\nsource: identity\nkind: match\n" +
		"condition: action == \"auth\" && identity.result == \"failure\"\ngroup_by: [host.name]\n"
	if err := os.WriteFile(filepath.Join(dir, "failed-login.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	p.configure = func(c *detectors.Config) { c.RulesDir = dir }
	p.failedLogin(t, "f0", time.Now().Add(-time.Hour), "failure")
	stop := p.startDetector(t, nil, time.Second)
	defer stop()
	p.waitCommitted(t, 1)
	alerts := p.alerts(t)
	if len(alerts) != 1 || alerts[0].IncidentID == "" {
		t.Fatalf("alerts %+v, want one, with its incident id", alerts)
	}
}
