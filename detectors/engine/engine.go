package engine

import (
	"container/heap"
	"container/list"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Options tune an Engine.
type Options struct {
	// MaxEvidence caps the evidence event ids of an alert. Default 20.
	MaxEvidence int
	// AllowedLateness is how far behind its kind's clock (the highest event time seen of
	// that kind on the partition) an event may be and still count in windows; it is also
	// subtracted from the clocks to give the partition's watermark. Default 0.
	AllowedLateness time.Duration
	// IdleTimeout is how far behind the partition's highest clock a kind's clock may be
	// before the kind is idle and left out of the watermark (see clock.go). Default 10s
	// (also when 0).
	IdleTimeout time.Duration
	// MaxStateKeys caps the (rule, partition, group key) states held; beyond it the least
	// recently updated is evicted. Default 1000000.
	MaxStateKeys int
	// MaxConditionCost bounds the cost of evaluating one CEL condition on one event, in
	// CEL's cost units (about one per comparison, field read or list element visited): a
	// condition whose estimated worst cost is higher is refused when the rules load, and an
	// evaluation that goes past it at run time is interrupted, counted (Stats.Interrupted)
	// and taken as no match. Default DefaultMaxConditionCost.
	MaxConditionCost uint64
	// Throttle is the throttle window of match, new_term and sequence rules that set none
	// (Rule.Throttle). Default 0: off.
	Throttle time.Duration
	// IncidentSpan is how long after an alert another of the same host and process tree joins
	// its incident (incident.go); 0 (default) groups no incidents.
	IncidentSpan time.Duration
	// IncidentUpdate is the shortest time between two versions of a growing incident.
	// Default 1m (also when 0).
	IncidentUpdate time.Duration
	// MaxProcesses bounds the process table incidents read process trees from. Default 65536.
	MaxProcesses int
}

// RuleStats count what became of a rule's alerts since the engine was built.
type RuleStats struct {
	Raised     uint64 // alerts raised (first versions)
	Grouped    uint64 // alerts folded into an alert already raised (throttling)
	Suppressed uint64 // alerts a change window suppressed (on_change: suppress)
}

// Stats are the engine's counters since it was built.
type Stats struct {
	Late    uint64 // events left out of windows: behind their kind's clock by more than the lateness, or only in closed windows
	Evicted uint64 // states evicted under MaxStateKeys
	// Interrupted counts condition evaluations stopped at MaxConditionCost (no match), and
	// InterruptedRule names the rule of the last one.
	Interrupted     uint64
	InterruptedRule string
	Keys            int // states held now
}

// Engine evaluates events against a rule set, keeping window state per rule, partition and
// group key. It is not safe for concurrent use: one goroutine owns it (the detector's loop).
type Engine struct {
	set       *ruleSet
	opt       Options
	parts     map[int32]*partition
	entries   map[entryKey]*entry
	lru       *list.List // of *entry, least recently updated first
	dirty     map[entryKey]struct{}
	stats     Stats
	buf       []*target
	ev        Event // the event ProcessRecord judges
	sc        scratch
	closedOut bool // the event being processed fell only in closed windows of some rule

	procs     *processTable // nil when incidents are off
	incidents []*schemas.Incident
	rules     map[string]*RuleStats
}

// New returns an engine over rules. Rules built in Go that have not passed through Prepare
// are prepared here; an invalid set is refused whole.
func New(rules []*Rule, opt Options) (*Engine, error) {
	if opt.MaxConditionCost == 0 {
		opt.MaxConditionCost = DefaultMaxConditionCost
	}
	set, err := newRuleSet(rules, opt.MaxConditionCost)
	if err != nil {
		return nil, err
	}
	if opt.MaxEvidence <= 0 {
		opt.MaxEvidence = 20
	}
	if opt.MaxStateKeys <= 0 {
		opt.MaxStateKeys = 1000000
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 10 * time.Second
	}
	if opt.IncidentUpdate <= 0 {
		opt.IncidentUpdate = time.Minute
	}
	if opt.MaxProcesses <= 0 {
		opt.MaxProcesses = 65536
	}
	e := &Engine{set: set, opt: opt, parts: map[int32]*partition{}, entries: map[entryKey]*entry{},
		lru: list.New(), dirty: map[entryKey]struct{}{}, rules: map[string]*RuleStats{}}
	if opt.IncidentSpan > 0 {
		e.procs = newProcessTable(opt.MaxProcesses)
	}
	return e, nil
}

// RuleStats returns what became of each rule's alerts, by rule id.
func (e *Engine) RuleStats() map[string]RuleStats {
	out := make(map[string]RuleStats, len(e.rules))
	for id, s := range e.rules {
		out[id] = *s
	}
	return out
}

func (e *Engine) ruleStats(id string) *RuleStats {
	s := e.rules[id]
	if s == nil {
		s = &RuleStats{}
		e.rules[id] = s
	}
	return s
}

// Rules returns how many rules the engine holds.
func (e *Engine) Rules() int { return len(e.set.rules) }

// Index describes how the rules are indexed, for logs.
func (e *Engine) Index() string { return e.set.describe() }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Keys = len(e.entries)
	return s
}

// SetRules replaces the rule set (a reload). State of rules that keep their id and kind is
// kept; state of the others is dropped (and tombstoned in the changelog). An invalid set is
// refused whole and the running set stays.
func (e *Engine) SetRules(rules []*Rule) error {
	set, err := newRuleSet(rules, e.opt.MaxConditionCost)
	if err != nil {
		return err
	}
	for k, en := range e.entries {
		if k.rule == incidentRule {
			continue
		}
		if nr, ok := set.byID[k.rule]; !ok || nr.Kind != e.set.byID[k.rule].Kind {
			e.remove(en)
		}
	}
	e.set = set
	return nil
}

// Watermark returns a partition's watermark (the minimum of its active kinds' clocks less the
// allowed lateness, never backwards; see clock.go), and false before its first event.
func (e *Engine) Watermark(part int32) (int64, bool) {
	p := e.parts[part]
	if p == nil {
		return 0, false
	}
	return p.watermark(e.opt.AllowedLateness, e.opt.IdleTimeout)
}

func (e *Engine) partition(part int32) *partition {
	p := e.parts[part]
	if p == nil {
		p = newPartition()
		e.parts[part] = p
	}
	return p
}

// closedBefore is the end after which a partition's windows are still open: windows ending
// at or before it were closed (math.MinInt64 when none was).
func (e *Engine) closedBefore(part int32) int64 {
	if p := e.parts[part]; p != nil {
		return p.closed
	}
	return math.MinInt64
}

// Process judges one event (goavro's native form of an enriched event) read from a partition
// and returns the alerts it raises, including those of windows its time closes. A late event
// (older than its kind's clock less the allowed lateness) is still judged by match and
// new_term rules but left out of windows; so is an event whose windows all closed. An error names a rule that could not be evaluated; the other rules ran.
func (e *Engine) Process(part int32, event map[string]any) ([]*Alert, error) {
	ev := Event{act: Activation(event)}
	return e.process(part, &ev)
}

// ProcessRecord is Process for an enriched event decoded by its generated codec: the index,
// pin-only conditions and Sigma detections read its fields one by one, and its activation
// maps are built only if a CEL condition other than pins is evaluated or an alert raised.
// The record must stay unchanged until ProcessRecord returns.
func (e *Engine) ProcessRecord(part int32, rec schemas.Record) ([]*Alert, error) {
	e.ev = RecordEvent(rec)
	alerts, err := e.process(part, &e.ev)
	e.ev = Event{} // keep nothing of the record
	return alerts, err
}

func (e *Engine) process(part int32, ev *Event) ([]*Alert, error) {
	kind, t := ev.kindAndTime()
	p := e.partition(part)
	c := p.clock(kind)
	late := c != math.MinInt64 && t < c-int64(e.opt.AllowedLateness)
	if late {
		e.stats.Late++
	} else {
		p.observe(kind, t)
	}
	if kind == "process" {
		e.observeProcess(ev, t)
	}
	e.closedOut = false
	var alerts []*Alert
	var errs []string
	e.buf = e.set.candidates(kind, ev, e.buf, &e.sc)
	for _, tg := range e.buf {
		if late && tg.rule.Kind != KindMatch && tg.rule.Kind != KindNewTerm {
			continue
		}
		if e.idleStep(part, tg, ev) {
			continue
		}
		hit, err := matchTarget(tg, ev)
		if errors.Is(err, ErrCostLimit) {
			e.stats.Interrupted++
			e.stats.InterruptedRule = tg.rule.ID
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("rule %s (%s:%d): %v", tg.rule.ID, tg.rule.File, tg.rule.Line, err))
			continue
		}
		if hit {
			alerts = append(alerts, e.finish(e.hit(part, tg, ev.Activation(), t))...)
		}
	}
	if e.closedOut {
		e.stats.Late++
	}
	if !late {
		alerts = append(alerts, e.fire(part, p)...)
	}
	if len(errs) > 0 {
		return alerts, fmt.Errorf("evaluate event: %s", strings.Join(errs, "; "))
	}
	return alerts, nil
}

// matchTarget evaluates a target's condition on the event's fields when it can be, else on
// its activation.
func matchTarget(tg *target, ev *Event) (bool, error) {
	if tg.fields != nil {
		if hit, handled, err := tg.fields.MatchFields(ev); handled {
			return hit, err
		}
	}
	return tg.cond.Match(ev.Activation())
}

// finish counts the alerts raised and ties them to their incidents, as they are raised: an
// incident whose timer runs after them (the same watermark) sees them.
func (e *Engine) finish(alerts []*Alert) []*Alert {
	for _, a := range alerts {
		if a.Version <= 1 {
			e.ruleStats(a.RuleID).Raised++
		}
		if e.opt.IncidentSpan <= 0 {
			continue
		}
		switch {
		case a.IncidentID == "" && a.Version <= 1:
			a.IncidentID = e.joinIncident(a)
			if a.keep != nil {
				a.keep(a.IncidentID)
			}
		case a.added > 0 && a.IncidentID != "":
			e.growIncident(a)
		}
	}
	return alerts
}

// Advance moves every clock of a partition (each kind's, and that of kinds not seen yet) to
// event time t as if events of every kind at that time had been seen (an idle partition, or
// the end of a fixture), closing the windows its watermark passes.
func (e *Engine) Advance(part int32, t int64) []*Alert {
	p := e.partition(part)
	p.advance(t)
	return e.fire(part, p)
}

// AdvanceIdle is Advance for a partition that has received nothing for a while: its clocks
// move to t (never backwards) only when that closes a window, so an idle partition with
// nothing pending writes no clock to the changelog on every call.
func (e *Engine) AdvanceIdle(part int32, t int64) []*Alert {
	p := e.parts[part]
	if p == nil || len(p.timers) == 0 || p.timers[0].at > t-int64(e.opt.AllowedLateness) {
		return nil
	}
	return e.Advance(part, t)
}

// idleStep tells whether a target is a step that can only advance a sequence already under
// way, and none is for the event's group key: a later step of an ordered sequence, or an
// absent step. Its condition need not be evaluated (sequenceHit would do nothing).
func (e *Engine) idleStep(part int32, tg *target, f Fields) bool {
	if tg.step < 0 {
		return false
	}
	seq := tg.rule.Sequence
	st := &seq.Steps[tg.step]
	if !st.Absent && (seq.Unordered || tg.step == 0) {
		return false
	}
	return e.entries[entryKey{tg.rule.ID, part, fieldsKey(st.groupBy, f)}] == nil
}

// hit updates the state of a matched target and returns the alerts it raises now.
func (e *Engine) hit(part int32, tg *target, act map[string]any, t int64) []*Alert {
	r := tg.rule
	switch r.Kind {
	case KindMatch:
		if a := e.matchAlert(part, r, act, t); a != nil {
			return e.throttle(part, r, a, evidenceKey(r, act))
		}
	case KindThreshold:
		if a := e.thresholdHit(part, r, act, t); a != nil {
			return []*Alert{a}
		}
	case KindSequence:
		return e.sequenceHit(part, r, tg.step, act, t)
	case KindNewTerm:
		if a, term := e.newTermHit(part, r, act, t); a != nil {
			key := evidenceKey(r, act)
			if key == "" {
				key = term
			}
			return e.throttle(part, r, a, key)
		}
	case KindSpike:
		if a := e.spikeHit(part, r, act, t); a != nil {
			return []*Alert{a}
		}
	}
	return nil
}

// fire runs the timers of a partition that its watermark passed.
func (e *Engine) fire(part int32, p *partition) []*Alert {
	wm, ok := p.watermark(e.opt.AllowedLateness, e.opt.IdleTimeout)
	if !ok {
		return nil
	}
	if wm > p.closed {
		p.closed, p.wmDirty = wm, true
	}
	var alerts []*Alert
	for len(p.timers) > 0 && p.timers[0].at <= wm {
		tm := heap.Pop(&p.timers).(timer)
		en := e.entries[tm.key]
		if en == nil || en.deadline != tm.at {
			continue // stale: the entry moved its deadline or is gone
		}
		en.deadline = 0
		if tm.key.rule == incidentRule {
			e.incidentFire(en, wm)
			continue
		}
		r := e.set.byID[tm.key.rule]
		if r == nil {
			continue
		}
		if en.st.Throttle != nil {
			alerts = append(alerts, e.finish(e.throttleClose(r, en))...)
			continue
		}
		switch r.Kind {
		case KindThreshold:
			alerts = append(alerts, e.finish(e.thresholdClose(r, en, wm))...)
		case KindSequence:
			alerts = append(alerts, e.finish(e.sequenceClose(r, en, wm))...)
		case KindSpike:
			alerts = append(alerts, e.finish(e.spikeClose(r, en, wm))...)
		}
	}
	return alerts
}

// schedule sets an entry's next deadline (the end of its earliest open window).
func (e *Engine) schedule(en *entry, at int64) {
	if en.deadline != 0 && en.deadline <= at {
		return
	}
	en.deadline = at
	heap.Push(&e.partition(en.key.part).timers, timer{at: at, key: en.key})
}

// matchAlert is the alert of a match rule: one per event, its window the event itself.
func (e *Engine) matchAlert(part int32, r *Rule, act map[string]any, t int64) *Alert {
	env, _ := schemas.EnvelopeFromNative(act)
	key := groupKey(r.groupBy, act)
	a := e.newAlert(r, part, key, AlertID(r.ID, key, env.EventID), t, t, t, 1, []string{env.EventID})
	a.Host = env.Host
	a.Service = serviceOf(act)
	a.Summary = summary(r, act)
	if !applyChanges(r, a, changesOf(act), a.Service, 0) {
		e.ruleStats(r.ID).Suppressed++
		return nil
	}
	a.tree = e.treeOf(act)
	return a
}

func (e *Engine) newAlert(r *Rule, part int32, key, id string, first, start, end, count int64, evidence []string) *Alert {
	return &Alert{Alert: schemas.Alert{
		AlertID: id, Time: first, RuleID: r.ID, Title: r.Title, Severity: r.Severity, Tags: r.Tags,
		Author: r.Author, Level: r.Level, RuleSource: r.Format,
		GroupKey: key, WindowStart: start, WindowEnd: end, Count: count, Evidence: evidence,
		Summary: r.Title, Version: 1, Final: true,
	}, Partition: part}
}

// groupKey joins the values of group-by paths, each as fmt.Sprint prints it.
func groupKey(paths [][]string, act map[string]any) string {
	if len(paths) == 1 {
		return keyPart(lookup(act, paths[0]))
	}
	var b strings.Builder
	for i, p := range paths {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(keyPart(lookup(act, p)))
	}
	return b.String()
}

// keyPart is fmt.Sprint(v), without its cost for the usual strings and integers.
func keyPart(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprint(v)
}

// fieldsKey is groupKey read from an event's fields.
func fieldsKey(paths [][]string, f Fields) string {
	if m, ok := f.(Map); ok {
		return groupKey(paths, m)
	}
	var b strings.Builder
	for i, p := range paths {
		if i > 0 {
			b.WriteByte('|')
		}
		v, _ := f.Value(strings.Join(p, "."))
		b.WriteString(keyPart(v))
	}
	return b.String()
}

func lookup(m map[string]any, p []string) any {
	var cur any = m
	for _, k := range p {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func serviceOf(act map[string]any) string {
	en, _ := act["enrichment"].(map[string]any)
	return str(en["service"])
}

func summary(r *Rule, act map[string]any) string {
	kind, _ := act["kind"].(string)
	body, _ := act[kind].(map[string]any)
	if kind == "process" || kind == "network" || kind == "file" || kind == "identity" {
		if proc, ok := act["process"].(map[string]any); ok && kind != "process" {
			body = proc
		}
	}
	if cl, ok := body["cmd_line"].(string); ok && cl != "" {
		return r.Title + ": " + cl
	}
	return r.Title
}

// Activation turns goavro's native form into CEL's input: unions are unwrapped (null leaves
// the field out, so has() tests it), Avro ints become int64, and an event without enrichment
// gets an empty one.
func Activation(event map[string]any) map[string]any {
	out := make(map[string]any, len(event))
	for k, v := range event {
		if v == nil {
			continue
		}
		out[k] = normalize(v)
	}
	if out["enrichment"] == nil {
		out["enrichment"] = map[string]any{"service": "", "environment": "", "role": "", "changes": []any{},
			"verdict": "", "verdict_reason": ""}
	}
	return out
}

func normalize(v any) any {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case map[string]any:
		if len(x) == 1 {
			for k, inner := range x {
				if strings.HasPrefix(k, "crumbs.") { // a union branch
					return normalize(inner)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, vv := range x {
			if vv == nil {
				continue
			}
			out[k] = normalize(vv)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = normalize(vv)
		}
		return out
	}
	return v
}
