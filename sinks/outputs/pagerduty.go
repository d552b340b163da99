package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// PagerDutyEvent is an Events API v2 event (developer.pagerduty.com, "Send an Alert Event").
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"` // trigger or resolve
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
}

// PagerDutyPayload is a triggered event's payload.
type PagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"` // critical, error, warning or info
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// pagerDutySeverity maps crumbs' severities onto PagerDuty's four.
var pagerDutySeverity = map[string]string{
	"critical": "critical", "high": "error", "medium": "warning", "low": "info", "informational": "info",
}

type pagerDuty struct {
	http       *httpPoster
	routingKey string
}

func newPagerDuty(key string, o OutputConfig) (*pagerDuty, error) {
	p, err := newHTTPPoster(key, o, o.URL)
	if err != nil {
		return nil, err
	}
	rk, err := secretValue(key+".routing_key", o.RoutingKey)
	if err != nil {
		return nil, err
	}
	return &pagerDuty{http: p, routingKey: rk}, nil
}

// Send triggers an incident whose dedup key is the alert id (the incident id for an output
// delivering incidents): PagerDuty folds a replayed trigger, and a later version of the alert,
// into the incident it opened.
func (p *pagerDuty) Send(ctx context.Context, m *message) error {
	a := m.Alert
	sev, ok := pagerDutySeverity[a.Severity]
	if !ok {
		sev = "warning"
	}
	details := map[string]any{
		"alert_id": a.AlertID, "rule_id": a.RuleID, "title": a.Title, "severity": a.Severity,
		"host_id": a.Host.ID, "service": a.Service, "count": a.Count, "tags": a.Tags,
		"summary": a.Summary, "evidence": a.Evidence, "group_key": a.GroupKey,
	}
	if a.Explanation != "" {
		details["explanation"] = a.Explanation
	}
	details["version"], details["final"] = a.Version, a.Final
	if a.IncidentID != "" {
		details["incident_id"] = a.IncidentID
	}
	if in := incidentJSON(m.Incident); in != nil {
		details["incident"] = in
	}
	for k, v := range m.Fields {
		details[k] = v
	}
	source := a.Host.Name
	if source == "" {
		source = "crumbs"
	}
	ev := PagerDutyEvent{
		RoutingKey: p.routingKey, EventAction: "trigger", DedupKey: truncate(255, a.AlertID), Client: "crumbs", ClientURL: m.Data.URL,
		Payload: &PagerDutyPayload{
			Summary: truncate(1024, m.Text), Source: truncate(255, source), Severity: sev,
			Timestamp: time.Unix(0, a.Time).UTC().Format(time.RFC3339Nano), Component: a.Service,
			Group: a.RuleID, Class: "crumbs alert", CustomDetails: details,
		},
	}
	return p.post(ctx, ev)
}

// Resolve resolves the incident opened for alertID; PagerDuty ignores a dedup key it never saw.
func (p *pagerDuty) Resolve(ctx context.Context, alertID string) error {
	return p.post(ctx, PagerDutyEvent{RoutingKey: p.routingKey, EventAction: "resolve", DedupKey: truncate(255, alertID)})
}

func (p *pagerDuty) post(ctx context.Context, ev PagerDutyEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode pagerduty event: %w", err)
	}
	return p.http.post(ctx, body, nil)
}

func (p *pagerDuty) Close() error { p.http.close(); return nil }
