package outputs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
)

// Headers of a webhook request.
const (
	// HeaderIdempotencyKey carries the delivery's key (alert id "/" output name, and "/v"
	// version for a later version of the alert), the same on every retry and replay: a
	// receiver that keeps the keys it has seen drops duplicates.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderAlertID carries the alert's id.
	HeaderAlertID = "X-Crumbs-Alert-Id"
)

// WebhookBody is the JSON body a webhook output posts.
type WebhookBody struct {
	// Output is the output's name.
	Output string `json:"output"`
	// Alert is the alert (an incident rendered as an alert, for an output delivering
	// incidents).
	Alert AlertJSON `json:"alert"`
	// Incident is the incident, for an output delivering incidents.
	Incident *IncidentJSON `json:"incident,omitempty"`
	// Fields are the output's templated fields, rendered.
	Fields map[string]string `json:"fields,omitempty"`
}

// Signature returns the signature header's value for body under secret: "sha256=" and the
// hex HMAC-SHA256. A receiver recomputes it over the raw body and compares in constant time.
func Signature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type webhook struct {
	http    *httpPoster
	name    string
	secret  []byte
	sigName string
	headers http.Header
}

func newWebhook(key string, o OutputConfig) (*webhook, error) {
	p, err := newHTTPPoster(key, o, o.URL)
	if err != nil {
		return nil, err
	}
	secret, err := secretValue(key+".secret", o.Secret)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, v := range o.Headers {
		h.Set(k, v)
	}
	return &webhook{http: p, name: o.Name, secret: []byte(secret), sigName: o.SignatureHeader, headers: h}, nil
}

func (w *webhook) Send(ctx context.Context, m *message) error {
	body, err := json.Marshal(WebhookBody{Output: w.name, Alert: alertJSON(m.Alert, m.Data.URL), Incident: incidentJSON(m.Incident), Fields: m.Fields})
	if err != nil {
		return fmt.Errorf("encode webhook body: %w", err)
	}
	h := w.headers.Clone()
	h.Set(HeaderIdempotencyKey, m.Key)
	h.Set(HeaderAlertID, m.Alert.AlertID)
	if len(w.secret) > 0 {
		h.Set(w.sigName, Signature(w.secret, body))
	}
	return w.http.post(ctx, body, h)
}

func (w *webhook) Close() error { w.http.close(); return nil }
