package outputs_test

import (
	"bytes"
	"context"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// versions returns an alert's versions as a throttled alert is raised: its first, grown ones,
// and a final one with count counts[i].
func versions(a *schemas.Alert, counts ...int64) []*schemas.Alert {
	var out []*schemas.Alert
	for i, c := range counts {
		v := *a
		v.Version, v.Count, v.Final = int64(i+1), c, i == len(counts)-1
		out = append(out, &v)
	}
	return out
}

// produceIncidents writes incidents to crumbs.incidents, keyed like the detector keys them.
func (b *broker) produceIncidents(t testing.TB, ins ...*schemas.Incident) {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, in := range ins {
		v, err := serde.Encode(nil, schemas.IncidentSchema, in)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: b.kcfg.Topics().Incidents(), Key: []byte(in.IncidentID), Value: v})
	}
	if err := b.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// counterValue reads one output's counter from a registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name, output string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "output" && l.GetValue() == output {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestUpdatesPerOutputPolicy: an alert raised in four versions (first, grown twice, final) and
// one raised whole reach each output as its updates policy says: a webhook and PagerDuty (all
// by default) every version, under a key per version; a webhook with updates none the first
// only; Slack and e-mail (final by default) the first and the final, the final mail threaded
// under the first; the versions left out are counted.
func TestUpdatesPerOutputPolicy(t *testing.T) {
	b := newBroker(t)
	p := newPKI(t)
	hook := &webhookReceiver{}
	hookSrv := startHTTP(t, hook, nil, false)
	chat := &slackReceiver{}
	chatSrv := startHTTP(t, chat, nil, false)
	pd := &pagerDutyReceiver{routingKey: "rk"}
	pdSrv := startHTTP(t, pd, nil, false)
	smtpSrv := startSMTP(t, p.serverTLS(false), "", "")
	reg := prometheus.NewRegistry()
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{
		{Name: "all", Type: "webhook", URL: hookSrv.URL, Retry: fastRetry},
		{Name: "none", Type: "webhook", URL: hookSrv.URL, Updates: "none", Retry: fastRetry},
		{Name: "chat", Type: "slack", URL: chatSrv.URL + "/services/T/B/X", Retry: fastRetry},
		{Name: "oncall", Type: "pagerduty", URL: pdSrv.URL + "/v2/enqueue", RoutingKey: "rk", Retry: fastRetry},
		{Name: "mail", Type: "email", Address: smtpSrv.addr, From: "crumbs@example.org", To: []string{"soc@example.org"},
			TLS: outputs.TLSConfig{CAFile: p.caFile}, Retry: fastRetry},
	}}, func(d *outputs.Deps) { d.Metrics = reg })
	grown := versions(alert(1, "high"), 1, 2, 4, 5)
	whole := alert(2, "high")
	b.produce(t, append(grown, whole)...)
	eventually(t, "every delivery", func() bool {
		h, _ := hook.got.count()
		c, _ := chat.got.count()
		m, _ := smtpSrv.got.count()
		pds, _ := pd.got.count()
		return h == 7 && c == 3 && m == 3 && pds == 5
	})
	keys := hook.got.keys()
	slices.Sort(keys)
	want := []string{"alert-0001/all", "alert-0001/all/v2", "alert-0001/all/v3", "alert-0001/all/v4", "alert-0001/none", "alert-0002/all", "alert-0002/none"}
	if d := cmp.Diff(want, keys); d != "" {
		t.Errorf("webhook deliveries (-want +got):\n%s", d)
	}
	final := hook.got.get("alert-0001/all/v4")[0].Body["alert"].(map[string]any)
	if final["version"] != 4.0 || final["final"] != true || final["count"] != 5.0 {
		t.Errorf("final webhook body: version %v final %v count %v, want 4 true 5", final["version"], final["final"], final["count"])
	}
	footers := chat.got.keys()
	slices.Sort(footers)
	if d := cmp.Diff([]string{"crumbs · alert alert-0001", "crumbs · alert alert-0001 · final (version 4)", "crumbs · alert alert-0002"}, footers); d != "" {
		t.Errorf("slack messages (-want +got):\n%s", d)
	}
	var counts []float64
	for _, ev := range pd.got.get("alert-0001/trigger") {
		counts = append(counts, ev["payload"].(map[string]any)["custom_details"].(map[string]any)["count"].(float64))
	}
	if d := cmp.Diff([]float64{1, 2, 4, 5}, counts); d != "" {
		t.Errorf("pagerduty triggers of alert-0001 by count (-want +got):\n%s", d)
	}
	mails := smtpSrv.got.get("alert-0001")
	if len(mails) != 2 {
		t.Fatalf("%d mails of alert-0001, want 2 (first, final)", len(mails))
	}
	var ids, replies []string
	for _, m := range mails {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		ids, replies = append(ids, msg.Header.Get("Message-Id")), append(replies, msg.Header.Get("In-Reply-To"))
	}
	if d := cmp.Diff([]string{"<alert-0001.mail@example.org>", "<alert-0001.mail.v4@example.org>"}, ids); d != "" {
		t.Errorf("message ids (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"", "<alert-0001.mail@example.org>"}, replies); d != "" {
		t.Errorf("in-reply-to (-want +got):\n%s", d)
	}
	for out, want := range map[string]float64{"none": 3, "chat": 2, "mail": 2, "all": 0, "oncall": 0} {
		if got := counterValue(t, reg, "crumbs_output_updates_skipped_total", out); got != want {
			t.Errorf("updates skipped by %s: %g, want %g", out, got, want)
		}
	}
}

// TestIncidentsDelivered: outputs with deliver: incidents take crumbs.incidents, every version
// (their default), filtered by the incident's severity and rules; PagerDuty under the incident
// id as dedup key, Alertmanager under stable labels (incident_id, no severity label), a
// webhook with the incident's rules in its body; an output delivering alerts takes none of
// them, and an incident output none of the alerts.
func TestIncidentsDelivered(t *testing.T) {
	b := newBroker(t)
	hook := &webhookReceiver{}
	hookSrv := startHTTP(t, hook, nil, false)
	pd := &pagerDutyReceiver{routingKey: "rk"}
	pdSrv := startHTTP(t, pd, nil, false)
	am := &alertmanagerReceiver{}
	amSrv := startHTTP(t, am, nil, false)
	chat := &slackReceiver{}
	chatSrv := startHTTP(t, chat, nil, false)
	reg := prometheus.NewRegistry()
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{
		{Name: "alerts", Type: "webhook", URL: hookSrv.URL, Retry: fastRetry},
		{Name: "inc-hook", Type: "webhook", URL: hookSrv.URL, Deliver: "incidents", Rules: []string{"r2"}, Retry: fastRetry},
		{Name: "oncall", Type: "pagerduty", URL: pdSrv.URL + "/v2/enqueue", RoutingKey: "rk", Deliver: "incidents", Retry: fastRetry},
		{Name: "am", Type: "alertmanager", URL: amSrv.URL, Deliver: "incidents", Retry: fastRetry},
		{Name: "chat", Type: "slack", URL: chatSrv.URL + "/services/T/B/X", Deliver: "incidents", MinSeverity: "medium",
			Text: "{{.Title}} ({{range .Rules}}{{.ID}}={{.Alerts}} {{end}})", Retry: fastRetry},
	}}, func(d *outputs.Deps) { d.Metrics = reg })
	host := schemas.Host{ID: "m1", Name: "web-1"}
	r1 := schemas.IncidentRule{RuleID: "r1", Title: "User added", Severity: "medium", Alerts: 1}
	r2 := schemas.IncidentRule{RuleID: "r2", Title: "Passwd changed", Severity: "high", Alerts: 1}
	inc := func(id string, v int64, final bool, sev string, alerts int64, rules ...schemas.IncidentRule) *schemas.Incident {
		return &schemas.Incident{IncidentID: id, Version: v, Final: final, Time: 1, LastTime: 2, Host: host, TreeKey: "tree:600:2",
			Subject: "process tree of /bin/bash (pid 600)", Severity: sev, Alerts: alerts, Events: alerts * 3, Rules: rules,
			AlertIDs: []string{"a1", "a2"}[:alerts], Tags: []string{"attack.t1136"}, Summary: "an incident"}
	}
	b.produceIncidents(t,
		inc("inc-1", 1, false, "medium", 1, r1),
		inc("inc-1", 2, false, "high", 2, r1, r2),
		inc("inc-1", 3, true, "high", 2, r1, r2),
		inc("inc-2", 1, false, "low", 1, r1),
	)
	b.produce(t, alert(5, "high"))
	eventually(t, "every delivery", func() bool {
		h, _ := hook.got.count()
		p, _ := pd.got.count()
		a, _ := am.got.count()
		c, _ := chat.got.count()
		// inc-2 may sit in another partition than inc-1: wait until chat filtered it out.
		return h == 3 && p == 4 && a == 4 && c == 3 && counterValue(t, reg, "crumbs_output_filtered_total", "chat") == 1
	})
	keys := hook.got.keys()
	slices.Sort(keys)
	if d := cmp.Diff([]string{"alert-0005/alerts", "inc-1/inc-hook/v2", "inc-1/inc-hook/v3"}, keys); d != "" {
		t.Errorf("webhook deliveries (-want +got):\n%s", d)
	}
	body := hook.got.get("inc-1/inc-hook/v3")[0].Body
	incident := body["incident"].(map[string]any)
	var rules []string
	for _, r := range incident["rules"].([]any) {
		rules = append(rules, r.(map[string]any)["rule_id"].(string))
	}
	gotBody := map[string]any{"rule_id": body["alert"].(map[string]any)["rule_id"], "severity": body["alert"].(map[string]any)["severity"],
		"count": body["alert"].(map[string]any)["count"], "rules": rules, "events": incident["events"], "final": body["alert"].(map[string]any)["final"]}
	wantBody := map[string]any{"rule_id": "crumbs-incident", "severity": "high", "count": 2.0, "rules": []string{"r1", "r2"}, "events": 6.0, "final": true}
	if d := cmp.Diff(wantBody, gotBody); d != "" {
		t.Errorf("incident webhook body (-want +got):\n%s", d)
	}
	if n := len(pd.got.get("inc-1/trigger")); n != 3 {
		t.Errorf("pagerduty: %d triggers with dedup key inc-1, want 3 (one per version)", n)
	}
	amAlerts := am.got.get("inc-1")
	if len(amAlerts) != 3 {
		t.Fatalf("alertmanager: %d posts of inc-1, want 3", len(amAlerts))
	}
	for _, a := range amAlerts {
		labels := a["labels"].(map[string]any)
		if d := cmp.Diff(map[string]any{"alertname": "crumbs-incident", "incident_id": "inc-1", "host": "web-1"}, labels); d != "" {
			t.Errorf("alertmanager labels change with the version (-want +got):\n%s", d)
		}
	}
	if sev := amAlerts[2]["annotations"].(map[string]any)["severity"]; sev != "high" {
		t.Errorf("alertmanager severity annotation %v, want high", sev)
	}
	var texts []string
	for _, k := range chat.got.keys() {
		for _, m := range chat.got.get(k) {
			texts = append(texts, m["text"].(string))
		}
	}
	slices.Sort(texts)
	wantTexts := []string{"Incident: 1 alert (User added) (r1=1 )", "Incident: 2 alerts (User added; Passwd changed) (r1=1 r2=1 )",
		"Incident: 2 alerts (User added; Passwd changed) (r1=1 r2=1 )"}
	if d := cmp.Diff(wantTexts, texts); d != "" {
		t.Errorf("slack texts (-want +got):\n%s", d)
	}
	for _, k := range chat.got.keys() {
		if strings.Contains(k, "inc-2") {
			t.Errorf("slack got inc-2, a low incident below its min_severity")
		}
	}
}
