package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AlertmanagerAlert is one alert of Alertmanager's v2 API (POST /api/v2/alerts, the
// postableAlert of its OpenAPI spec).
type AlertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

type alertmanager struct {
	http      *httpPoster
	endsAfter time.Duration
}

func newAlertmanager(key string, o OutputConfig) (*alertmanager, error) {
	base, err := secretValue(key+".url", o.URL)
	if err != nil {
		return nil, err
	}
	p, err := newHTTPPoster(key, o, strings.TrimRight(base, "/")+"/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	return &alertmanager{http: p, endsAfter: o.EndsAfter}, nil
}

// Send posts the alert. Alertmanager identifies an alert by its labels, which carry the alert
// id, so a replayed post updates the same alert.
func (am *alertmanager) Send(ctx context.Context, m *message) error {
	a := m.Alert
	labels := map[string]string{"alertname": a.RuleID, "severity": a.Severity, "alert_id": a.AlertID}
	if m.Incident != nil {
		// An incident's highest severity grows with it, and Alertmanager tells alerts apart by
		// their labels: its severity is an annotation, so that each version updates one alert.
		labels = map[string]string{"alertname": a.RuleID, "incident_id": a.AlertID}
	}
	if a.Host.Name != "" {
		labels["host"] = a.Host.Name
	}
	if a.Service != "" {
		labels["service"] = a.Service
	}
	for k, v := range m.Labels {
		if v != "" {
			labels[k] = v
		}
	}
	ann := map[string]string{"summary": m.Text, "title": a.Title, "description": a.Summary,
		"count": fmt.Sprint(a.Count), "tags": strings.Join(a.Tags, ","), "version": fmt.Sprint(a.Version)}
	if a.IncidentID != "" {
		ann["incident_id"] = a.IncidentID
	}
	if m.Incident != nil {
		ann["severity"], ann["events"] = a.Severity, fmt.Sprint(m.Incident.Events)
	}
	if a.Explanation != "" {
		ann["explanation"] = a.Explanation
	}
	for k, v := range m.Fields {
		ann[k] = v
	}
	start := time.Unix(0, a.Time).UTC()
	alert := AlertmanagerAlert{Labels: labels, Annotations: ann, StartsAt: start.Format(time.RFC3339Nano), GeneratorURL: m.Data.URL}
	if am.endsAfter > 0 {
		alert.EndsAt = start.Add(am.endsAfter).Format(time.RFC3339Nano)
	}
	body, err := json.Marshal([]AlertmanagerAlert{alert})
	if err != nil {
		return fmt.Errorf("encode alertmanager alert: %w", err)
	}
	return am.http.post(ctx, body, nil)
}

func (am *alertmanager) Close() error { am.http.close(); return nil }
