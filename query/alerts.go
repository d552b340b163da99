package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// How the inbox stays fast over a million alerts on every server version (18.16 has neither
// projections nor reading in key order): no query deduplicates the versions of every alert in
// the range. The list takes the newest ids by time over the few columns the filters need
// (a top-N sort, not a full one), then reads the latest version of just those ids, narrowed
// to their times (every version of an alert shares its time, the sorting key's second
// column). The counts per facet are one GROUP BY each, run side by side, over the first
// version of each alert (version <= 1: one row per alert, no deduplication). The triage state
// comes from alert_triage, which holds triaged alerts only, as a set the alerts are looked up
// in. BENCHMARKS.md has the figures.

// AlertRow is an alert as the alerts table holds it (its latest version), with its triage.
type AlertRow struct {
	ID               string    `json:"alert_id"`
	Time             time.Time `json:"time"`
	RuleID           string    `json:"rule_id"`
	Title            string    `json:"title"`
	Severity         string    `json:"severity"`
	Tags             []string  `json:"tags"`
	GroupKey         string    `json:"group_key"`
	Host             string    `json:"host"`
	Service          string    `json:"service"`
	WindowStart      time.Time `json:"window_start"`
	WindowEnd        time.Time `json:"window_end"`
	Count            int64     `json:"count"`
	Evidence         []string  `json:"evidence"`
	Summary          string    `json:"summary"`
	Version          uint64    `json:"version"`
	Author           string    `json:"author,omitempty"`
	OriginalSeverity string    `json:"original_severity,omitempty"`
	Changes          []string  `json:"changes,omitempty"`
	Explanation      string    `json:"explanation,omitempty"`
	// State and Assignee are the alert's triage (State "new" when nobody triaged it).
	State    string `json:"state"`
	Assignee string `json:"assignee,omitempty"`
}

const alertCols = "alert_id, time_ns, rule_id, title, severity, tags, group_key, host_name, service, window_start_ns, window_end_ns, count, evidence, summary, version, author, original_severity, changes, explanation"

func scanAlert(r scanner) (AlertRow, error) {
	var a AlertRow
	var ns, ws, we uint64
	err := r.Scan(&a.ID, &ns, &a.RuleID, &a.Title, &a.Severity, &a.Tags, &a.GroupKey, &a.Host, &a.Service, &ws, &we, &a.Count, &a.Evidence, &a.Summary,
		&a.Version, &a.Author, &a.OriginalSeverity, &a.Changes, &a.Explanation)
	a.Time, a.WindowStart, a.WindowEnd = time.Unix(0, int64(ns)).UTC(), time.Unix(0, int64(ws)).UTC(), time.Unix(0, int64(we)).UTC()
	a.State = "new"
	return a, err
}

// States an alert filter may ask for besides the triage states: every alert, or those not
// closed (new and acknowledged).
const (
	StateAny  = ""
	StateOpen = "open"
)

// States are the triage states, in the order of their lifecycle.
var States = []string{"new", "acknowledged", "resolved", "false_positive"}

// AlertFilter selects alerts; zero fields select everything.
type AlertFilter struct {
	Severity, Rule, Service, Host, Tag string
	// State is a triage state, StateOpen or StateAny.
	State        string
	Since, Until time.Time
	Limit        int // default 100, at most 10000
}

// Validate names the first field that cannot select anything.
func (f AlertFilter) Validate() error {
	if f.State != StateAny && f.State != StateOpen && !slices.Contains(States, f.State) {
		return fmt.Errorf("state %q: must be open, %s or empty", f.State, strings.Join(States, ", "))
	}
	if f.Limit < 0 || f.Limit > 10000 {
		return fmt.Errorf("limit %d: must be between 1 and 10000", f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("until %s is before since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return nil
}

func (f *AlertFilter) defaults() {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Until.IsZero() {
		f.Until = time.Now()
	}
}

// Facets an inbox counts by.
const (
	FacetSeverity = "severity"
	FacetRule     = "rule"
	FacetService  = "service"
	FacetHost     = "host"
	FacetTag      = "tag"
	FacetState    = "state"
)

// Facets are the facets in the order the console shows them.
var Facets = []string{FacetState, FacetSeverity, FacetRule, FacetTag, FacetService, FacetHost}

// maxFacetValues bounds the values listed per facet (the most frequent).
const maxFacetValues = 50

// closedStates is the triage subquery of the alerts whose latest triage is in a closed state.
func (s *Store) triageSet(cond string) string {
	return "(SELECT alert_id FROM " + s.table(AlertTriageTable) + " GROUP BY alert_id HAVING argMax(deleted, version) = 0 AND " + cond + ")"
}

// where returns the conditions of f on the alerts table, leaving out the facet skip (its own
// counts are over the alerts the other filters select), and their arguments.
func (s *Store) where(f AlertFilter, skip string) (string, []any) {
	conds := []string{rangeWhere}
	args := rangeArgs(f.Since, f.Until)
	for _, c := range []struct{ facet, cond, v string }{
		{FacetSeverity, "severity = ?", f.Severity}, {FacetRule, "rule_id = ?", f.Rule},
		{FacetService, "service = ?", f.Service}, {FacetHost, "host_name = ?", f.Host}, {FacetTag, "has(tags, ?)", f.Tag},
	} {
		if c.v != "" && c.facet != skip {
			conds = append(conds, c.cond)
			args = append(args, c.v)
		}
	}
	if skip != FacetState {
		switch f.State {
		case StateAny:
		case StateOpen:
			conds = append(conds, "alert_id NOT "+s.in+" "+s.triageSet("argMax(state, version) IN ('resolved', 'false_positive')"))
		case "new":
			conds = append(conds, "alert_id NOT "+s.in+" "+s.triageSet("argMax(state, version) != 'new'"))
		default:
			conds = append(conds, "alert_id "+s.in+" "+s.triageSet("argMax(state, version) = ?"))
			args = append(args, f.State)
		}
	}
	return strings.Join(conds, " AND "), args
}

// Alerts lists the alerts that match f, newest first, each in its latest version.
func (s *Store) Alerts(ctx context.Context, f AlertFilter) ([]AlertRow, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	f.defaults()
	return s.list(ctx, &queryLog{}, f)
}

// list is Alerts with its queries logged.
func (s *Store) list(ctx context.Context, log *queryLog, f AlertFilter) ([]AlertRow, error) {
	where, args := s.where(f, "")
	type hit struct {
		id string
		ns uint64
	}
	// The newest ids; an alert has one row per version, so ask for more than the limit and
	// again for more when versions crowd the distinct ids out.
	var ids []string
	var times []uint64
	for n := f.Limit * 2; ; n *= 4 {
		ids, times = ids[:0], times[:0]
		seen := map[string]bool{}
		rows := 0
		q := "SELECT alert_id, time_ns FROM " + s.table(AlertsTable) + " WHERE " + where + fmt.Sprintf(" ORDER BY time_ns DESC, alert_id LIMIT %d", n)
		err := s.query(ctx, log, "alerts_newest", q, args, func(r scanner) error {
			var h hit
			if err := r.Scan(&h.id, &h.ns); err != nil {
				return err
			}
			rows++
			if !seen[h.id] && len(ids) < f.Limit {
				seen[h.id] = true
				ids, times = append(ids, h.id), append(times, h.ns)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(ids) == f.Limit || rows < n {
			break
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	lo, hi := slices.Min(times), slices.Max(times)
	from, to := time.Unix(0, int64(lo)), time.Unix(0, int64(hi)).Add(time.Second)
	q := "SELECT " + alertCols + " FROM " + s.table(AlertsTable) + " WHERE " + rangeWhere + " AND alert_id IN (" + placeholders(len(ids)) +
		") ORDER BY version DESC LIMIT 1 BY alert_id"
	byID := make(map[string]AlertRow, len(ids))
	err := s.query(ctx, log, "alerts_latest", q, append(rangeArgs(from, to), anyArgs(ids)...), func(r scanner) error {
		a, err := scanAlert(r)
		byID[a.ID] = a
		return err
	})
	if err != nil {
		return nil, err
	}
	triage, err := s.triageOf(ctx, log, ids)
	if err != nil {
		return nil, err
	}
	out := make([]AlertRow, 0, len(ids))
	for _, id := range ids {
		a, ok := byID[id]
		if !ok {
			continue
		}
		if t := triage[id]; t != nil {
			a.State, a.Assignee = t.State, t.Assignee
		}
		out = append(out, a)
	}
	return out, nil
}

// FacetValue is one value of a facet and how many alerts have it.
type FacetValue struct {
	Value string `json:"value"`
	Count uint64 `json:"count"`
}

// Inbox is a page of the alerts inbox: the newest alerts that match a filter, how many match
// in all, and per facet how many alerts each value has among those the other filters select.
type Inbox struct {
	Filter  AlertFilter             `json:"-"`
	Alerts  []AlertRow              `json:"alerts"`
	Total   uint64                  `json:"total"`
	Facets  map[string][]FacetValue `json:"facets"`
	Queries []QueryStat             `json:"queries,omitempty"`
}

// Inbox answers f with its list and its counts; the queries run side by side.
func (s *Store) Inbox(ctx context.Context, f AlertFilter) (*Inbox, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	f.defaults()
	log := &queryLog{}
	in := &Inbox{Filter: f, Facets: map[string][]FacetValue{}}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	run(func() error {
		as, err := s.list(ctx, log, f)
		in.Alerts = as
		return err
	})
	for _, facet := range Facets {
		run(func() error {
			vs, err := s.facet(ctx, log, f, facet)
			mu.Lock()
			in.Facets[facet] = vs
			mu.Unlock()
			return err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, v := range in.Facets[FacetState] {
		if f.State == StateAny || f.State == v.Value || (f.State == StateOpen && (v.Value == "new" || v.Value == "acknowledged")) {
			in.Total += v.Count
		}
	}
	in.Queries = log.stats
	return in, nil
}

// facet counts the alerts per value of one facet, by their first version.
func (s *Store) facet(ctx context.Context, log *queryLog, f AlertFilter, facet string) ([]FacetValue, error) {
	where, args := s.where(f, facet)
	var q string
	switch facet {
	case FacetState:
		// Alerts nobody triaged have no row in alert_triage: the join gives them "".
		q = "SELECT if(state = '', 'new', state) AS value, count() AS n FROM " + s.table(AlertsTable) + " " + s.join() +
			" (SELECT alert_id, argMax(state, version) AS state FROM " + s.table(AlertTriageTable) +
			" GROUP BY alert_id HAVING argMax(deleted, version) = 0) USING alert_id WHERE " + where + " AND version <= 1 GROUP BY value"
	case FacetTag:
		q = "SELECT tag AS value, count() AS n FROM " + s.table(AlertsTable) + " ARRAY JOIN tags AS tag WHERE " + where + " AND version <= 1 GROUP BY value"
	default:
		col := map[string]string{FacetSeverity: "severity", FacetRule: "rule_id", FacetService: "service", FacetHost: "host_name"}[facet]
		q = "SELECT " + col + " AS value, count() AS n FROM " + s.table(AlertsTable) + " WHERE " + where + " AND version <= 1 GROUP BY value"
	}
	q += fmt.Sprintf(" ORDER BY n DESC, value LIMIT %d", maxFacetValues)
	var out []FacetValue
	err := s.query(ctx, log, "facet_"+facet, q, args, func(r scanner) error {
		var v FacetValue
		if err := r.Scan(&v.Value, &v.Count); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if facet == FacetState { // every state listed, in lifecycle order
		have := map[string]uint64{}
		for _, v := range out {
			have[v.Value] += v.Count
		}
		out = out[:0]
		for _, st := range States {
			out = append(out, FacetValue{Value: st, Count: have[st]})
		}
	}
	return out, err
}

// join is the join of the alerts with a subquery over another table.
func (s *Store) join() string {
	if s.in == "GLOBAL IN" {
		return "GLOBAL ANY LEFT JOIN"
	}
	return "ANY LEFT JOIN"
}

// Note is a note on an alert.
type Note struct {
	At   time.Time `json:"at"`
	By   string    `json:"by"`
	Text string    `json:"text"`
}

// Triage is an alert's triage as alert_triage holds its latest version.
type Triage struct {
	AlertID       string    `json:"alert_id"`
	Version       uint64    `json:"version"`
	State         string    `json:"state"`
	Assignee      string    `json:"assignee"`
	UpdatedAt     time.Time `json:"updated_at"`
	UpdatedBy     string    `json:"updated_by"`
	Notes         []Note    `json:"notes"`
	RuleID        string    `json:"rule_id"`
	Host          string    `json:"host"`
	GroupKey      string    `json:"group_key"`
	SuppressUntil time.Time `json:"suppress_until,omitzero"`
	SuppressScope string    `json:"suppress_scope,omitempty"`
}

const triageCols = "alert_id, argMax(version, version), argMax(state, version), argMax(assignee, version), argMax(updated_at, version), argMax(updated_by, version), " +
	"argMax(note_at, version), argMax(note_by, version), argMax(note_text, version), argMax(rule_id, version), argMax(host_name, version), " +
	"argMax(group_key, version), argMax(suppress_until, version), argMax(suppress_scope, version)"

func scanTriage(r scanner) (*Triage, error) {
	t := &Triage{}
	var updated, until uint64
	var noteAt []uint64
	var noteBy, noteText []string
	if err := r.Scan(&t.AlertID, &t.Version, &t.State, &t.Assignee, &updated, &t.UpdatedBy, &noteAt, &noteBy, &noteText,
		&t.RuleID, &t.Host, &t.GroupKey, &until, &t.SuppressScope); err != nil {
		return nil, err
	}
	t.UpdatedAt = time.Unix(0, int64(updated)).UTC()
	if until > 0 {
		t.SuppressUntil = time.Unix(0, int64(until)).UTC()
	}
	t.Notes = []Note{}
	for i := range noteAt {
		if i < len(noteBy) && i < len(noteText) {
			t.Notes = append(t.Notes, Note{At: time.Unix(0, int64(noteAt[i])).UTC(), By: noteBy[i], Text: noteText[i]})
		}
	}
	return t, nil
}

// triageOf returns the triage of the alerts with ids that have one (deleted ones have none).
func (s *Store) triageOf(ctx context.Context, log *queryLog, ids []string) (map[string]*Triage, error) {
	out := map[string]*Triage{}
	if len(ids) == 0 {
		return out, nil
	}
	q := "SELECT " + triageCols + " FROM " + s.table(AlertTriageTable) + " WHERE alert_id IN (" + placeholders(len(ids)) +
		") GROUP BY alert_id HAVING argMax(deleted, version) = 0"
	err := s.query(ctx, log, "triage", q, anyArgs(ids), func(r scanner) error {
		t, err := scanTriage(r)
		if err == nil {
			out[t.AlertID] = t
		}
		return err
	})
	return out, err
}

// Triage returns the alert's triage, nil when nobody triaged it.
func (s *Store) Triage(ctx context.Context, alertID string) (*Triage, error) {
	ts, err := s.triageOf(ctx, &queryLog{}, []string{alertID})
	return ts[alertID], err
}

// Suppressions returns the false positives whose suppression is in force at now, latest first.
func (s *Store) Suppressions(ctx context.Context, now time.Time) ([]*Triage, error) {
	q := "SELECT " + triageCols + " FROM " + s.table(AlertTriageTable) + " GROUP BY alert_id HAVING argMax(deleted, version) = 0 AND argMax(state, version) = 'false_positive'" +
		" AND argMax(suppress_until, version) > ? ORDER BY argMax(updated_at, version) DESC LIMIT 1000"
	var out []*Triage
	err := s.query(ctx, &queryLog{}, "suppressions", q, []any{uint64(now.UnixNano())}, func(r scanner) error {
		t, err := scanTriage(r)
		out = append(out, t)
		return err
	})
	return out, err
}
