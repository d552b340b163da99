package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// How the inbox stays fast over a million alerts on every server version (18.16 has neither
// projections nor reading in key order): no query deduplicates the versions of every alert in
// the range. alerts_first, filled by a materialised view on the sink's inserts, holds one row
// per alert as first raised; the list takes the newest ids there (a top-N sort over a few
// columns, not a full one), then reads the latest version of just those ids from alerts,
// narrowed to their times (every version of an alert shares its time, the second column of
// alerts' sorting key). The counts per facet are one GROUP BY each over alerts_first, run side
// by side. The triage state comes from alert_triage, which holds triaged alerts only, as a set
// the alerts are looked up in. Filters and counts go by an alert as first raised: a later
// version with another severity (change awareness lowering it) is listed and counted under
// the first. BENCHMARKS.md has the figures.

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

// where returns the conditions of f on alerts_first, leaving out the facet skip (its own
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
			conds = append(conds, "alert_id "+s.notIn+" "+s.triageSet("argMax(state, version) IN ('resolved', 'false_positive')"))
		case "new":
			conds = append(conds, "alert_id "+s.notIn+" "+s.triageSet("argMax(state, version) != 'new'"))
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
	ids, times, err := s.newest(ctx, log, f)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	lo, hi := slices.Min(times), slices.Max(times)
	from, to := time.Unix(0, int64(lo)), time.Unix(0, int64(hi)).Add(time.Second)
	q := "SELECT " + alertCols + " FROM " + s.table(AlertsTable) + " WHERE " + rangeWhere + " AND alert_id IN (" + placeholders(len(ids)) +
		") ORDER BY version DESC LIMIT 1 BY alert_id"
	byID := make(map[string]AlertRow, len(ids))
	err = s.query(ctx, log, "alerts_latest", q, append(rangeArgs(from, to), anyArgs(ids)...), func(r scanner) error {
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

// newest returns the ids and times of the newest alerts f selects, newest first. It looks in
// the last hour of the range first (alerts_first is sorted by time: ClickHouse reads that
// hour's granules only), then in a range eight times as long, until it has f.Limit alerts or
// has looked at the whole range.
func (s *Store) newest(ctx context.Context, log *queryLog, f AlertFilter) ([]string, []uint64, error) {
	if f.State != StateAny && f.State != StateOpen && f.State != "new" && f.onlyState("") {
		return s.newestTriaged(ctx, log, f)
	}
	span := f.Until.Sub(f.Since)
	for w := time.Hour; ; w *= 8 {
		g := f
		whole := w >= span
		if !whole {
			g.Since = f.Until.Add(-w)
		}
		where, args := s.where(g, "")
		var ids []string
		var times []uint64
		// One row per alert (a row written twice, until merged away, is skipped; ask again for
		// more in the unlikely case that such rows crowd the limit out).
		for n := f.Limit + f.Limit/10 + 1; ; n *= 4 {
			ids, times = ids[:0], times[:0]
			seen := map[string]bool{}
			rows := 0
			q := "SELECT alert_id, time_ns FROM " + s.table(AlertsFirstTable) + " WHERE " + where + fmt.Sprintf(" ORDER BY time_ns DESC, alert_id LIMIT %d", n)
			err := s.query(ctx, log, "alerts_newest", q, args, func(r scanner) error {
				var id string
				var ns uint64
				if err := r.Scan(&id, &ns); err != nil {
					return err
				}
				rows++
				if !seen[id] && len(ids) < f.Limit {
					seen[id] = true
					ids, times = append(ids, id), append(times, ns)
				}
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
			if len(ids) == f.Limit || rows < n {
				break
			}
		}
		if len(ids) == f.Limit || whole {
			return ids, times, nil
		}
	}
}

// newestTriaged returns the newest alerts in one triaged state from alert_triage alone, which
// keeps each alert's time.
func (s *Store) newestTriaged(ctx context.Context, log *queryLog, f AlertFilter) ([]string, []uint64, error) {
	from, to := clampDateTime(f.Since), clampDateTime(f.Until)
	q := "SELECT alert_id, t FROM (SELECT alert_id, argMax(state, version) AS st, argMax(alert_time, version) AS t FROM " + s.table(AlertTriageTable) +
		" GROUP BY alert_id HAVING argMax(deleted, version) = 0) WHERE st = ? AND t >= ? AND t < ?" + fmt.Sprintf(" ORDER BY t DESC, alert_id LIMIT %d", f.Limit)
	var ids []string
	var times []uint64
	err := s.query(ctx, log, "alerts_newest_triaged", q, []any{f.State, uint64(from.UnixNano()), uint64(to.Add(time.Second).UnixNano())}, func(r scanner) error {
		var id string
		var ns uint64
		if err := r.Scan(&id, &ns); err != nil {
			return err
		}
		ids, times = append(ids, id), append(times, ns)
		return nil
	})
	return ids, times, err
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
	// The facets no other filter than time applies to are counted together from the hourly
	// counts; the others each over the alerts their filters select.
	var fast, byState []string
	for _, facet := range Facets {
		switch {
		case f.onlyTime(facet):
			fast = append(fast, facet)
			continue
		case f.onlyState(facet):
			byState = append(byState, facet)
			continue
		}
		run(func() error {
			counts, err := s.facetRaw(ctx, log, f, facet, maxFacetValues)
			mu.Lock()
			in.Facets[facet] = facetValues(facet, counts)
			mu.Unlock()
			return err
		})
	}
	if len(fast)+len(byState) > 0 {
		run(func() error {
			all, err := s.hourlyCounts(ctx, log, f)
			if err != nil {
				return err
			}
			if slices.Contains(fast, FacetState) { // from every alert's counts, before they are narrowed
				if all[FacetState], err = s.stateCounts(ctx, log, f, all[FacetSeverity]); err != nil {
					return err
				}
			}
			if len(byState) > 0 {
				if err := s.subtractTriaged(ctx, log, f, all); err != nil {
					return err
				}
			}
			mu.Lock()
			for _, facet := range append(fast, byState...) {
				in.Facets[facet] = facetValues(facet, all[facet])
			}
			mu.Unlock()
			return nil
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

// facetValues lists a facet's counts, most frequent first (the states in lifecycle order).
func facetValues(facet string, counts map[string]uint64) []FacetValue {
	out := make([]FacetValue, 0, len(counts))
	if facet == FacetState {
		for _, st := range States {
			out = append(out, FacetValue{Value: st, Count: counts[st]})
		}
		return out
	}
	for v, n := range counts {
		if n > 0 {
			out = append(out, FacetValue{Value: v, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if len(out) > maxFacetValues {
		out = out[:maxFacetValues]
	}
	return out
}

// onlyTime reports whether f filters by nothing but time, leaving out the facet skip.
func (f AlertFilter) onlyTime(skip string) bool {
	for facet, v := range map[string]string{FacetSeverity: f.Severity, FacetRule: f.Rule, FacetService: f.Service,
		FacetHost: f.Host, FacetTag: f.Tag, FacetState: f.State} {
		if v != "" && facet != skip {
			return false
		}
	}
	return true
}

// onlyState reports whether f filters by nothing but time and triage state, leaving out the
// facet skip (the state's own counts are onlyTime's).
func (f AlertFilter) onlyState(skip string) bool {
	g := f
	g.State = ""
	return f.State != "" && skip != FacetState && g.onlyTime(skip)
}

// stateSet is the triage states a state filter selects.
func stateSet(state string) map[string]bool {
	if state == StateOpen {
		return map[string]bool{"new": true, "acknowledged": true}
	}
	return map[string]bool{state: true}
}

// subtractTriaged turns all, the counts per facet value of every alert in f's range, into
// those of the alerts in f's triage states: the triaged alerts' counts come from
// alert_triage alone (it keeps each alert's facet values and time); new alerts are all the
// others. The state facet's entry is left as it is.
func (s *Store) subtractTriaged(ctx context.Context, log *queryLog, f AlertFilter, all map[string]map[string]uint64) error {
	from, to := clampDateTime(f.Since), clampDateTime(f.Until)
	q := "SELECT st, f.1 AS facet, f.2 AS value, count() FROM (SELECT alert_id, argMax(state, version) AS st, argMax(alert_time, version) AS t, " +
		"argMax(concat(severity, ''), version) AS sev, argMax(rule_id, version) AS rule, argMax(concat(service, ''), version) AS svc, " +
		"argMax(host_name, version) AS host, argMax(tags, version) AS tg FROM " + s.table(AlertTriageTable) +
		" GROUP BY alert_id HAVING argMax(deleted, version) = 0 AND st != 'new') ARRAY JOIN arrayConcat([('severity', sev), ('rule', rule), " +
		"('service', svc), ('host', host)], arrayMap(x -> ('tag', x), tg)) AS f WHERE t >= ? AND t < ? GROUP BY st, facet, value"
	want := stateSet(f.State)
	out := map[string]map[string]uint64{}
	for facet, counts := range all {
		if facet == FacetState {
			continue
		}
		out[facet] = map[string]uint64{}
		if want["new"] {
			for v, n := range counts {
				out[facet][v] = n
			}
		}
	}
	err := s.query(ctx, log, "facets_triaged", q, []any{uint64(from.UnixNano()), uint64(to.Add(time.Second).UnixNano())}, func(r scanner) error {
		var st, facet, v string
		var n uint64
		if err := r.Scan(&st, &facet, &v, &n); err != nil {
			return err
		}
		if out[facet] == nil {
			out[facet] = map[string]uint64{}
		}
		switch {
		case want["new"] && !want[st]: // triaged out of the selection: not new
			out[facet][v] -= min(n, out[facet][v])
		case !want["new"] && want[st]:
			out[facet][v] += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	for facet, counts := range out {
		all[facet] = counts
	}
	return nil
}

// facetRaw counts the alerts per value of a facet over alerts_first (the limit most frequent).
func (s *Store) facetRaw(ctx context.Context, log *queryLog, f AlertFilter, facet string, limit int) (map[string]uint64, error) {
	where, args := s.where(f, facet)
	var q string
	switch facet {
	case FacetState:
		// Alerts nobody triaged have no row in alert_triage: the join gives them "".
		q = "SELECT if(state = '', 'new', state) AS value, count() AS n FROM " + s.table(AlertsFirstTable) + " " + s.join() +
			" (SELECT alert_id, argMax(state, version) AS state FROM " + s.table(AlertTriageTable) +
			" GROUP BY alert_id HAVING argMax(deleted, version) = 0) USING alert_id WHERE " + where + " GROUP BY value"
	case FacetTag:
		q = "SELECT tag AS value, count() AS n FROM " + s.table(AlertsFirstTable) + " ARRAY JOIN tags AS tag WHERE " + where + " GROUP BY value"
	default:
		q = "SELECT " + facetColumn[facet] + " AS value, count() AS n FROM " + s.table(AlertsFirstTable) + " WHERE " + where + " GROUP BY value"
	}
	q += fmt.Sprintf(" ORDER BY n DESC, value LIMIT %d", limit)
	out := map[string]uint64{}
	err := s.query(ctx, log, "facet_"+facet, q, args, func(r scanner) error {
		var v string
		var n uint64
		if err := r.Scan(&v, &n); err != nil {
			return err
		}
		out[v] += n
		return nil
	})
	return out, err
}

var facetColumn = map[string]string{FacetSeverity: "severity", FacetRule: "rule_id", FacetService: "service", FacetHost: "host_name"}

// facetTuples are the (facet, value) pairs of an alert in alerts_first, as the hourly view
// makes them (concat gives plain Strings where the columns are LowCardinality).
const facetTuples = "arrayConcat([('severity', concat(severity, '')), ('rule', concat(rule_id, '')), ('service', concat(service, '')), " +
	"('host', concat(host_name, ''))], arrayMap(t -> ('tag', t), tags))"

// hourlyCounts counts the alerts per value of every facet but state in f's time range (f's
// other filters are not applied): from alerts_facets_hourly for the whole hours of the range,
// from alerts_first for the seconds before the first and after the last.
func (s *Store) hourlyCounts(ctx context.Context, log *queryLog, f AlertFilter) (map[string]map[string]uint64, error) {
	from, to := clampDateTime(f.Since), clampDateTime(f.Until) // seconds, both included
	h0 := from.Truncate(time.Hour)
	if h0.Before(from) {
		h0 = h0.Add(time.Hour)
	}
	h1 := to.Add(time.Second).Truncate(time.Hour) // whole hours: [h0, h1)
	out := map[string]map[string]uint64{}
	add := func(r scanner) error {
		var facet, v string
		var n uint64
		if err := r.Scan(&facet, &v, &n); err != nil {
			return err
		}
		if out[facet] == nil {
			out[facet] = map[string]uint64{}
		}
		out[facet][v] += n
		return nil
	}
	edges := [][2]time.Time{{from, to}}
	if h0.Before(h1) {
		q := "SELECT facet, value, sum(alerts) FROM " + s.table("alerts_facets_hourly") + " WHERE hour >= toDateTime(?) AND hour < toDateTime(?) GROUP BY facet, value"
		if err := s.query(ctx, log, "facets_hourly", q, []any{uint32(h0.Unix()), uint32(h1.Unix())}, add); err != nil {
			return nil, err
		}
		edges = [][2]time.Time{{from, h0.Add(-time.Second)}, {h1, to}}
	}
	var conds []string
	var args []any
	for _, e := range edges {
		if !e[1].Before(e[0]) {
			conds = append(conds, "("+rangeWhere+")")
			args = append(args, rangeArgs(e[0], e[1])...)
		}
	}
	if len(conds) > 0 {
		q := "SELECT f.1 AS facet, f.2 AS value, count() FROM " + s.table(AlertsFirstTable) + " ARRAY JOIN " + facetTuples + " AS f WHERE " +
			strings.Join(conds, " OR ") + " GROUP BY facet, value"
		if err := s.query(ctx, log, "facets_edges", q, args, add); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// stateCounts counts the alerts in f's range per triage state without reading the alerts:
// the triaged ones from alert_triage (by the alert time it keeps), and the others as the rest
// of the range's count.
func (s *Store) stateCounts(ctx context.Context, log *queryLog, f AlertFilter, bySeverity map[string]uint64) (map[string]uint64, error) {
	var total uint64 // every alert has one severity
	for _, n := range bySeverity {
		total += n
	}
	from, to := clampDateTime(f.Since), clampDateTime(f.Until)
	q := "SELECT st, count() FROM (SELECT alert_id, argMax(state, version) AS st, argMax(alert_time, version) AS t FROM " + s.table(AlertTriageTable) +
		" GROUP BY alert_id HAVING argMax(deleted, version) = 0) WHERE t >= ? AND t < ? GROUP BY st"
	out := map[string]uint64{}
	var triaged uint64
	err := s.query(ctx, log, "facet_state_triaged", q, []any{uint64(from.UnixNano()), uint64(to.Add(time.Second).UnixNano())}, func(r scanner) error {
		var st string
		var n uint64
		if err := r.Scan(&st, &n); err != nil {
			return err
		}
		if st != "new" {
			out[st] += n
			triaged += n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if total >= triaged {
		out["new"] = total - triaged
	}
	return out, nil
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
	AlertTime     time.Time `json:"alert_time,omitzero"`
	SuppressUntil time.Time `json:"suppress_until,omitzero"`
	SuppressScope string    `json:"suppress_scope,omitempty"`
}

const triageCols = "alert_id, argMax(version, version), argMax(state, version), argMax(assignee, version), argMax(updated_at, version), argMax(updated_by, version), " +
	"argMax(note_at, version), argMax(note_by, version), argMax(note_text, version), argMax(rule_id, version), argMax(host_name, version), " +
	"argMax(group_key, version), argMax(suppress_until, version), argMax(suppress_scope, version), argMax(alert_time, version)"

func scanTriage(r scanner) (*Triage, error) {
	t := &Triage{}
	var updated, until, alertTime uint64
	var noteAt []uint64
	var noteBy, noteText []string
	if err := r.Scan(&t.AlertID, &t.Version, &t.State, &t.Assignee, &updated, &t.UpdatedBy, &noteAt, &noteBy, &noteText,
		&t.RuleID, &t.Host, &t.GroupKey, &until, &t.SuppressScope, &alertTime); err != nil {
		return nil, err
	}
	if alertTime > 0 {
		t.AlertTime = time.Unix(0, int64(alertTime)).UTC()
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

// FirstRaised returns what the inbox counts an alert by (its severity, service and tags as
// first raised, from alerts_first), looked up by its id and time; ok is false when
// alerts_first does not hold it.
func (s *Store) FirstRaised(ctx context.Context, id string, at time.Time) (severity, service string, tags []string, ok bool, err error) {
	q := "SELECT severity, service, tags FROM " + s.table(AlertsFirstTable) + " WHERE " + rangeWhere + " AND alert_id = ? LIMIT 1"
	err = s.query(ctx, &queryLog{}, "first_raised", q, append(rangeArgs(at, at), id), func(r scanner) error {
		ok = true
		return r.Scan(&severity, &service, &tags)
	})
	return severity, service, tags, ok, err
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
