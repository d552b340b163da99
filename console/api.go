package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/threatcrumbs/crumbs/query"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiFail answers an API error: 400 for a bad parameter or change, 404 for no such alert,
// 503 when ClickHouse or Kafka could not answer.
func (c *Console) apiFail(w http.ResponseWriter, err error) {
	var bad *badRequest
	switch {
	case errors.As(err, &bad), errors.Is(err, ErrInvalidChange):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case errors.Is(err, query.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such alert"})
	default:
		c.log.Warn("console api: failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "ClickHouse or Kafka could not answer; try again"})
	}
}

// apiAlerts is GET /api/v1/alerts?severity=&rule=&tag=&service=&host=&state=&since=&until=&limit=:
// the inbox as JSON.
func (c *Console) apiAlerts(w http.ResponseWriter, r *http.Request, _ principal) {
	f, _, err := filterOf(r.URL.Query(), c.cfg.PageSize)
	if err != nil {
		c.apiFail(w, err)
		return
	}
	ctx, cancel := c.pages.queryContext(r)
	defer cancel()
	in, err := c.deps.Store.Inbox(ctx, f)
	if err != nil {
		c.apiFail(w, err)
		return
	}
	if in.Alerts == nil {
		in.Alerts = []query.AlertRow{}
	}
	in.Queries = nil
	writeJSON(w, http.StatusOK, in)
}

// apiAlert is GET /api/v1/alerts/{id}: the alert with its evidence and triage.
func (c *Console) apiAlert(w http.ResponseWriter, r *http.Request, _ principal) {
	ctx, cancel := c.pages.queryContext(r)
	defer cancel()
	a, err := c.deps.Store.Alert(ctx, r.PathValue("id"))
	if err != nil {
		c.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// triageRequest is the body of POST /api/v1/alerts/{id}/{action}; every field is optional.
type triageRequest struct {
	Assignee    string `json:"assignee"`
	Note        string `json:"note"`
	SuppressFor string `json:"suppress_for"` // false_positive: e.g. 24h or 7d; default console.suppress_for
	Scope       string `json:"scope"`        // false_positive: host (default) or group_key
}

// apiTriage is POST /api/v1/alerts/{id}/{action}: 200 with the state once ClickHouse shows
// it, 202 when it is published but ClickHouse does not show it within 5 s.
func (c *Console) apiTriage(w http.ResponseWriter, r *http.Request, p principal) {
	if !p.canTriage() || c.deps.Triager == nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "this token or user has the read role: it may not change triage"})
		return
	}
	var req triageRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil && len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want a JSON object with assignee, note, suppress_for or scope: " + err.Error()})
		return
	}
	action := r.PathValue("action")
	if action == "false-positive" {
		action = ActionFalsePositive
	}
	ch, err := c.pages.changeOf(action, req.Assignee, req.Note, req.SuppressFor, req.Scope, p.name)
	if err != nil {
		c.apiFail(w, err)
		return
	}
	st, visible, err := c.pages.apply(r.Context(), r.PathValue("id"), ch)
	if err != nil {
		c.apiFail(w, err)
		return
	}
	c.log.Info("triage changed", "alert", st.AlertID, "action", action, "state", st.State, "by", p.name)
	status := http.StatusOK
	if !visible {
		status = http.StatusAccepted
	}
	writeJSON(w, status, map[string]any{"alert_id": st.AlertID, "version": st.Version, "state": st.State, "assignee": st.Assignee,
		"notes": len(st.Notes), "suppress_until": st.SuppressUntil, "suppress_scope": st.SuppressScope, "in_clickhouse": visible})
}
