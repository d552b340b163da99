package engine

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// bucket aggregates the events of one slide (a whole window when tumbling) of a threshold.
type bucket struct {
	Start    int64           `json:"start"`
	Count    int64           `json:"count"`
	Sum      float64         `json:"sum,omitempty"`
	Distinct map[string]bool `json:"distinct,omitempty"`
	First    int64           `json:"first"`
	Evidence []string        `json:"evidence,omitempty"`
}

// floorTo is the start of the step of length d that holds t.
func floorTo(t, d int64) int64 {
	q := t / d
	if t%d != 0 && t < 0 {
		q--
	}
	return q * d
}

func number(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

// thresholdHit adds an event to its bucket and returns the early alert it raises, if any. A
// tumbling window is a sliding one whose slide is the window, so both close through
// thresholdClose.
//
// Windows ending at or before the partition's closed watermark were judged already: an event
// only in those (a kind back from idleness behind the others) is left out, and the entry
// never judges them again.
func (e *Engine) thresholdHit(part int32, r *Rule, act map[string]any, t int64) *Alert {
	th := r.Threshold
	slide := r.slide()
	start := floorTo(t, slide)
	open, closed := e.firstOpenEnd(part, slide)
	if closed && start+int64(r.Window) < open {
		e.closedOut = true
		return nil
	}
	en := e.get(entryKey{r.ID, part, groupKey(r.groupBy, act)})
	e.noteEvent(en, act)
	if closed {
		en.st.NextEnd = max(en.st.NextEnd, open)
	}
	i := sort.Search(len(en.st.Buckets), func(i int) bool { return en.st.Buckets[i].Start >= start })
	if i == len(en.st.Buckets) || en.st.Buckets[i].Start != start {
		b := &bucket{Start: start, First: t}
		en.st.Buckets = append(en.st.Buckets[:i], append([]*bucket{b}, en.st.Buckets[i:]...)...)
	}
	b := en.st.Buckets[i]
	b.Count++
	b.First = min(b.First, t)
	if len(b.Evidence) < e.opt.MaxEvidence {
		b.Evidence = append(b.Evidence, str(act["event_id"]))
	}
	switch th.Aggregate {
	case AggSum:
		b.Sum += number(lookup(act, th.field))
	case AggDistinct:
		if b.Distinct == nil {
			b.Distinct = map[string]bool{}
		}
		if len(b.Distinct) < th.MaxDistinct {
			b.Distinct[fmt.Sprint(lookup(act, th.field))] = true
		}
	}
	e.schedule(en, e.nextWindowEnd(r, en))
	if r.early && en.st.EarlyEnd == 0 {
		return e.thresholdEarly(r, en, start)
	}
	return nil
}

// slide is the step between the ends of a threshold's windows: its slide, or the window
// when tumbling.
func (r *Rule) slide() int64 {
	if r.Threshold.Slide > 0 {
		return int64(r.Threshold.Slide)
	}
	return int64(r.Window)
}

// thresholdEarly raises, before it closes, the alert of the first open window holding the
// bucket that starts at bucket whose aggregate already passes the bound. The aggregate only
// grows while the window fills (Prepare allows early for such thresholds only), so the
// window will alert when it closes: that alert, with the same id and the final figures,
// replaces this one (thresholdClose).
func (e *Engine) thresholdEarly(r *Rule, en *entry, bucket int64) *Alert {
	w, slide := int64(r.Window), r.slide()
	for end := max(bucket+slide, e.nextWindowEnd(r, en)); end <= bucket+w; end += slide {
		start := end - w
		if start < en.st.FiredUntil {
			continue
		}
		agg, ok := e.aggregate(r, en, start, end, true)
		if !ok || agg.count == 0 || !compare(agg.value, r.Threshold.Op, r.Threshold.Value) {
			continue
		}
		a := e.thresholdAlert(r, en, start, end, agg, 1, agg.first, true)
		if a != nil {
			en.st.EarlyEnd, en.st.EarlyTime = end, agg.first
		}
		return a
	}
	return nil
}

// firstOpenEnd is the end of a partition's first window of step slide not closed yet, and
// false when no window of the partition closed.
func (e *Engine) firstOpenEnd(part int32, slide int64) (int64, bool) {
	closed := e.closedBefore(part)
	if closed == math.MinInt64 {
		return 0, false
	}
	return floorTo(closed, slide) + slide, true
}

// nextWindowEnd is the end of the next window to judge: the first after the last judged
// that holds the oldest open bucket.
func (e *Engine) nextWindowEnd(r *Rule, en *entry) int64 {
	return max(en.st.NextEnd, en.st.Buckets[0].Start+r.slide())
}

// thresholdClose judges every window that ended at or before the watermark wm. Windows end
// every slide (every window when tumbling); one alert at most per group and window, and none
// for a window overlapping one already alerted. A window alerted early is alerted again with
// its final figures, and the windows before it that overlap it are not judged: its alert
// stands for their events.
func (e *Engine) thresholdClose(r *Rule, en *entry, wm int64) []*Alert {
	w, slide := int64(r.Window), r.slide()
	var alerts []*Alert
	for len(en.st.Buckets) > 0 {
		end := e.nextWindowEnd(r, en)
		if end > wm {
			break
		}
		switch early := en.st.EarlyEnd; {
		case early != 0 && end == early:
			agg, _ := e.aggregate(r, en, end-w, end, false)
			en.st.FiredUntil = end
			if a := e.thresholdAlert(r, en, end-w, end, agg, 2, en.st.EarlyTime, false); a != nil {
				alerts = append(alerts, a)
			}
			en.st.EarlyEnd, en.st.EarlyTime = 0, 0
		case early != 0 && end < early && end > early-w:
			// overlaps the window alerted early, whose alert stands for these events
		default:
			if a := e.judgeWindow(r, en, end-w, end); a != nil {
				alerts = append(alerts, a)
			}
		}
		en.st.NextEnd = end + slide
		for len(en.st.Buckets) > 0 && en.st.Buckets[0].Start+w < en.st.NextEnd {
			en.st.Buckets = en.st.Buckets[1:]
		}
	}
	if len(en.st.Buckets) == 0 {
		e.remove(en)
		return alerts
	}
	e.dirty[en.key] = struct{}{}
	e.schedule(en, e.nextWindowEnd(r, en))
	return alerts
}

// windowAggregate is what the buckets of one window add up to.
type windowAggregate struct {
	value    float64 // the threshold's aggregate
	count    int64
	first    int64
	evidence []string
}

// aggregate adds up the buckets of window [start, end). With quick, a distinct count whose
// buckets hold too few values to pass the bound is not merged, and ok is false.
func (e *Engine) aggregate(r *Rule, en *entry, start, end int64, quick bool) (agg windowAggregate, ok bool) {
	th := r.Threshold
	var sum float64
	agg.first = math.MaxInt64
	most := 0 // distinct values, counted with repeats across buckets
	for _, b := range en.st.Buckets {
		if b.Start < start || b.Start >= end {
			continue
		}
		agg.count += b.Count
		sum += b.Sum
		most += len(b.Distinct)
		agg.first = min(agg.first, b.First)
		for _, id := range b.Evidence {
			if len(agg.evidence) < e.opt.MaxEvidence {
				agg.evidence = append(agg.evidence, id)
			}
		}
	}
	agg.value = float64(agg.count)
	switch th.Aggregate {
	case AggSum:
		agg.value = sum
	case AggDistinct:
		if quick && !compare(float64(most), th.Op, th.Value) {
			return agg, false
		}
		distinct := map[string]bool{}
		for _, b := range en.st.Buckets {
			if b.Start >= start && b.Start < end {
				for v := range b.Distinct {
					distinct[v] = true
				}
			}
		}
		agg.value = float64(len(distinct))
	}
	return agg, true
}

// judgeWindow aggregates the buckets of window [start, end) and compares with the bound.
func (e *Engine) judgeWindow(r *Rule, en *entry, start, end int64) *Alert {
	agg, _ := e.aggregate(r, en, start, end, false)
	if agg.count == 0 || !compare(agg.value, r.Threshold.Op, r.Threshold.Value) || start < en.st.FiredUntil {
		return nil
	}
	en.st.FiredUntil = end
	return e.thresholdAlert(r, en, start, end, agg, 1, agg.first, false)
}

// thresholdAlert is the alert of window [start, end): version 1 raised early (open) or at the
// close, version 2 the final one replacing an early alert, at the early alert's time. A change
// that suppresses the rule's alerts does not suppress a final one: its early alert is out.
func (e *Engine) thresholdAlert(r *Rule, en *entry, start, end int64, agg windowAggregate, version, at int64, open bool) *Alert {
	th := r.Threshold
	a := e.newAlert(r, en.key.part, en.key.group, AlertID(r.ID, en.key.group, windowID(start, end)), at, start, end, agg.count, agg.evidence)
	a.Version = version
	e.fillFromState(a, en)
	e.openOrFinal(a, en, open)
	a.Summary = fmt.Sprintf("%s: %s %g %s %g within %s for %s", r.Title, th.Aggregate, agg.value, th.Op, th.Value, r.Window, en.key.group)
	switch {
	case open:
		a.Summary += " (so far: the window is open)"
	case version > 1 && !compare(agg.value, th.Op, th.Value):
		a.Summary = fmt.Sprintf("%s: %s %g, no longer %s %g within %s for %s", r.Title, th.Aggregate, agg.value, th.Op, th.Value, r.Window, en.key.group)
	}
	if !applyChanges(r, a, en.st.Changes, a.Service, 0) && version == 1 {
		e.ruleStats(r.ID).Suppressed++
		return nil
	}
	return a
}

// openOrFinal ties a window's alert to its entry: one raised early (open) stays open and keeps
// its incident id in the entry for its final version; a final version (above 1) takes it.
func (e *Engine) openOrFinal(a *Alert, en *entry, open bool) {
	a.tree = en.st.Tree
	switch {
	case open:
		a.Final = false
		a.keep = func(id string) { en.st.Incident = id; e.dirty[en.key] = struct{}{} }
	case a.Version > 1:
		a.IncidentID = en.st.Incident
		en.st.Incident = ""
	}
}

func compare(v float64, op string, bound float64) bool {
	switch op {
	case ">":
		return v > bound
	case ">=":
		return v >= bound
	case "<":
		return v < bound
	case "<=":
		return v <= bound
	case "==":
		return v == bound
	case "!=":
		return v != bound
	}
	return false
}

// fillFromState sets an alert's host and service from its entry.
func (e *Engine) fillFromState(a *Alert, en *entry) {
	a.Host.ID, a.Host.Name, a.Service = en.st.HostID, en.st.HostName, en.st.Service
}

// seqState is the progress of a sequence for one group key.
type seqState struct {
	Start    int64    `json:"start"`
	Counts   []int    `json:"counts"` // events matched per step
	Count    int64    `json:"count"`
	First    int64    `json:"first"`
	Evidence []string `json:"evidence,omitempty"`
	Done     bool     `json:"done,omitempty"` // every present step matched; a trailing absent step remains
}

// next is the first present step not yet satisfied (len(steps) when all are).
func (s *seqState) next(steps []Step) int {
	for i, st := range steps {
		if !st.Absent && s.Counts[i] < st.Count {
			return i
		}
	}
	return len(steps)
}

// sequenceHit advances the sequence of the event's group key with a matched step.
func (e *Engine) sequenceHit(part int32, r *Rule, step int, act map[string]any, t int64) []*Alert {
	seq := r.Sequence
	st := seq.Steps[step]
	key := entryKey{r.ID, part, groupKey(st.groupBy, act)}
	en := e.entries[key]
	if en != nil && t > en.st.Seq.Start+int64(r.Window) {
		if en.st.Seq.Done {
			return nil // complete but for a trailing absent step: fires when its window closes
		}
		e.remove(en) // expired: the window passed before the sequence completed
		en = nil
	}
	if en == nil {
		if st.Absent || (!seq.Unordered && step != 0) {
			return nil
		}
		en = e.get(key)
		en.st.Seq = &seqState{Start: t, First: t, Counts: make([]int, len(seq.Steps))}
		e.schedule(en, t+int64(r.Window))
	}
	s := en.st.Seq
	if st.Absent {
		if activeAbsent(seq.Steps, step, s.next(seq.Steps)) {
			e.remove(en) // the step that must not occur did
		}
		return nil
	}
	if !seq.Unordered && step > s.next(seq.Steps) {
		return nil // out of order
	}
	en = e.get(key)
	e.noteEvent(en, act)
	s.Counts[step]++
	s.Count++
	if len(s.Evidence) < e.opt.MaxEvidence {
		s.Evidence = append(s.Evidence, str(act["event_id"]))
	}
	if s.next(seq.Steps) < len(seq.Steps) || s.Done {
		return nil
	}
	if seq.Steps[len(seq.Steps)-1].Absent {
		s.Done = true // fires when the window closes without the absent step
		return nil
	}
	return e.sequenceAlert(r, en, t)
}

// activeAbsent tells whether absent step j is being watched: every present step before it
// is satisfied (next > j) and none after it (next is the first present step after j).
func activeAbsent(steps []Step, j, next int) bool {
	for i := j + 1; i < len(steps); i++ {
		if !steps[i].Absent {
			return next == i
		}
	}
	return next == len(steps)
}

func (e *Engine) sequenceAlert(r *Rule, en *entry, last int64) []*Alert {
	s := en.st.Seq
	w := int64(r.Window)
	a := e.newAlert(r, en.key.part, en.key.group, AlertID(r.ID, en.key.group, windowID(s.Start, s.Start+w)), s.First, s.Start, last, s.Count, s.Evidence)
	e.fillFromState(a, en)
	names := make([]string, 0, len(r.Sequence.Steps))
	for i, st := range r.Sequence.Steps {
		n := st.Name
		if n == "" {
			n = fmt.Sprintf("step %d", i+1)
		}
		if st.Absent {
			n = "no " + n
		}
		names = append(names, n)
	}
	a.Summary = fmt.Sprintf("%s: %s within %s for %s", r.Title, strings.Join(names, " then "), r.Window, en.key.group)
	a.tree = en.st.Tree
	e.remove(en)
	if !applyChanges(r, a, en.st.Changes, a.Service, 0) {
		e.ruleStats(r.ID).Suppressed++
		return nil
	}
	return e.throttle(en.key.part, r, a, "")
}

// sequenceClose ends a sequence whose window passed: it fires when only a trailing absent
// step remained, else it is dropped.
func (e *Engine) sequenceClose(r *Rule, en *entry, wm int64) []*Alert {
	s := en.st.Seq
	if s == nil || s.Start+int64(r.Window) > wm {
		return nil
	}
	if s.Done {
		return e.sequenceAlert(r, en, s.Start+int64(r.Window))
	}
	e.remove(en)
	return nil
}

// termState is what a new_term rule learnt for one group key.
type termState struct {
	First int64           `json:"first"`
	Terms map[string]bool `json:"terms"`
}

// newTermHit learns the event's term and alerts when it is new after the learning period; it
// returns the alert and the term.
func (e *Engine) newTermHit(part int32, r *Rule, act map[string]any, t int64) (*Alert, string) {
	nt := r.NewTerm
	vals := make([]string, len(nt.fields))
	empty := true
	for i, p := range nt.fields {
		v := lookup(act, p)
		if v != nil && v != "" {
			empty = false
		}
		vals[i] = fmt.Sprint(v)
	}
	if empty {
		return nil, ""
	}
	term := strings.Join(vals, "|")
	key := entryKey{r.ID, part, groupKey(r.groupBy, act)}
	if en := e.entries[key]; en != nil && en.st.Term.Terms[term] {
		e.lru.MoveToBack(en.elem)
		return nil, ""
	}
	en := e.get(key)
	if en.st.Term == nil {
		en.st.Term = &termState{First: t, Terms: map[string]bool{}}
	}
	ts := en.st.Term
	if len(ts.Terms) < nt.MaxTerms {
		ts.Terms[term] = true
	}
	if t < ts.First+int64(nt.Learning) {
		return nil, ""
	}
	env := str(act["event_id"])
	a := e.newAlert(r, part, key.group, AlertID(r.ID, key.group, "term:"+term), t, t, t, 1, []string{env})
	h, _ := act["host"].(map[string]any)
	a.Host.ID, a.Host.Name, a.Service = str(h["id"]), str(h["name"]), serviceOf(act)
	a.Summary = fmt.Sprintf("%s: %s %s first seen for %s", r.Title, strings.Join(nt.Fields, ","), term, key.group)
	if !applyChanges(r, a, changesOf(act), a.Service, 0) {
		e.ruleStats(r.ID).Suppressed++
		return nil, ""
	}
	a.tree = e.treeOf(act)
	return a, term
}

// spikeState is the rolling baseline of one group key and its open intervals.
type spikeState struct {
	Open       []*interval `json:"open,omitempty"`
	LastClosed int64       `json:"last_closed"`
	Closed     bool        `json:"closed,omitempty"` // LastClosed is set
	History    []float64   `json:"history,omitempty"`
}

// interval is one measured interval of a spike rule.
type interval struct {
	Start    int64        `json:"start"`
	Value    float64      `json:"value"`
	Count    int64        `json:"count"`
	First    int64        `json:"first"`
	Evidence []string     `json:"evidence,omitempty"`
	Changes  []changeNote `json:"changes,omitempty"`
}

// spikeHit adds an event's value to its interval and returns the early alert it raises, if
// any.
func (e *Engine) spikeHit(part int32, r *Rule, act map[string]any, t int64) *Alert {
	sp := r.Spike
	iv := int64(sp.Interval)
	start := floorTo(t, iv)
	if open, closed := e.firstOpenEnd(part, iv); closed && start+iv < open {
		e.closedOut = true // its interval closed (a kind back from idleness behind the others)
		return nil
	}
	en := e.get(entryKey{r.ID, part, groupKey(r.groupBy, act)})
	e.noteEvent(en, act)
	if en.st.Spike == nil {
		en.st.Spike = &spikeState{}
	}
	s := en.st.Spike
	if s.Closed && start <= s.LastClosed {
		return nil // its interval was judged already
	}
	i := sort.Search(len(s.Open), func(i int) bool { return s.Open[i].Start >= start })
	if i == len(s.Open) || s.Open[i].Start != start {
		s.Open = append(s.Open[:i], append([]*interval{{Start: start, First: t}}, s.Open[i:]...)...)
	}
	in := s.Open[i]
	if sp.field != nil {
		in.Value += number(lookup(act, sp.field))
	} else {
		in.Value++
	}
	in.Count++
	in.First = min(in.First, t)
	if len(in.Evidence) < e.opt.MaxEvidence {
		in.Evidence = append(in.Evidence, str(act["event_id"]))
	}
	in.Changes = mergeChanges(in.Changes, changesOf(act))
	e.schedule(en, s.Open[0].Start+iv)
	// Early: only the oldest open interval, whose baseline is the history so far and the empty
	// intervals since the last closed one, as spikeClose will judge it.
	if r.early && i == 0 && s.Closed && en.st.EarlyEnd != start+iv {
		h := append(slices.Clone(s.History), make([]float64, emptyIntervals(s, in, sp))...)
		if a := e.judgeSpike(r, en, in, trimHistory(h, sp.Baseline), true); a != nil && a.Version == 1 {
			en.st.EarlyEnd, en.st.EarlyTime = start+iv, a.Time
			return a
		}
	}
	return nil
}

// emptyIntervals is how many intervals without events lie between the last closed interval
// and in: each counts as zero in the baseline. A gap longer than the baseline (the key was
// away) counts as none: the baseline from before it stays.
func emptyIntervals(s *spikeState, in *interval, sp *Spike) int {
	if !s.Closed {
		return 0
	}
	gap := (in.Start-s.LastClosed)/int64(sp.Interval) - 1
	if gap <= 0 || gap > int64(sp.Baseline) {
		return 0
	}
	return int(gap)
}

// spikeClose judges the intervals that ended at or before wm against the baseline. An
// interval alerted early is alerted again, final, whatever the judgement now (a late event
// in an earlier interval may have raised its baseline).
func (e *Engine) spikeClose(r *Rule, en *entry, wm int64) []*Alert {
	sp := r.Spike
	iv := int64(sp.Interval)
	s := en.st.Spike
	var alerts []*Alert
	for len(s.Open) > 0 && s.Open[0].Start+iv <= wm {
		in := s.Open[0]
		s.Open = s.Open[1:]
		for range emptyIntervals(s, in, sp) {
			s.History = pushBounded(s.History, 0, sp.Baseline)
		}
		if a := e.judgeSpike(r, en, in, s.History, false); a != nil {
			alerts = append(alerts, a)
		}
		if en.st.EarlyEnd == in.Start+iv {
			en.st.EarlyEnd, en.st.EarlyTime = 0, 0
		}
		s.History = pushBounded(s.History, in.Value, sp.Baseline)
		s.LastClosed, s.Closed = in.Start, true
	}
	e.dirty[en.key] = struct{}{}
	if len(s.Open) > 0 {
		e.schedule(en, s.Open[0].Start+iv)
	}
	return alerts
}

func pushBounded(h []float64, v float64, n int) []float64 {
	return trimHistory(append(h, v), n)
}

func trimHistory(h []float64, n int) []float64 {
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return h
}

// judgeSpike compares an interval's value with the baseline h and returns its alert: with
// open, only an upward spike of the interval still filling (version 1); at its close, a spike
// (version 1), or the final alert of an interval alerted early whatever the judgement
// (version 2, at the early alert's time).
func (e *Engine) judgeSpike(r *Rule, en *entry, in *interval, h []float64, open bool) *Alert {
	sp := r.Spike
	end := in.Start + int64(sp.Interval)
	final := !open && en.st.EarlyEnd == end
	if len(h) < sp.MinBaseline && !final {
		return nil
	}
	var mean, sd float64
	for _, v := range h {
		mean += v
	}
	mean /= float64(max(len(h), 1))
	for _, v := range h {
		sd += (v - mean) * (v - mean)
	}
	sd = math.Sqrt(sd / float64(max(len(h), 1)))
	sd = math.Max(sd, 0.01*math.Abs(mean)) // a flat baseline must not make every wiggle a spike
	var up, down bool
	if sp.Method == "ratio" {
		up = (mean > 0 && in.Value >= mean*sp.Ratio) || (mean == 0 && in.Value > 0)
		down = mean > 0 && in.Value <= mean/sp.Ratio
	} else {
		up = in.Value > mean+sp.K*sd
		down = in.Value < mean-sp.K*sd
	}
	dir := ""
	switch {
	case up && sp.Direction != "down":
		dir = "up"
	case down && sp.Direction != "up" && !open:
		dir = "down"
	case !final:
		return nil
	}
	factor := 0.0
	if mean > 0 {
		factor = in.Value / mean
	}
	at := in.First
	a := e.newAlert(r, en.key.part, en.key.group, AlertID(r.ID, en.key.group, windowID(in.Start, end)), at, in.Start, end, in.Count, in.Evidence)
	if final {
		a.Version, a.Time = 2, en.st.EarlyTime
	}
	e.fillFromState(a, en)
	e.openOrFinal(a, en, open)
	what := sp.Field
	if what == "" {
		what = "events"
	}
	if dir == "" {
		a.Summary = fmt.Sprintf("%s: %s at %g against a baseline of %.4g (x%.2f) for %s: no longer a spike when the interval closed", r.Title, what, in.Value, mean, factor, en.key.group)
	} else {
		a.Summary = fmt.Sprintf("%s: %s %s to %g against a baseline of %.4g (x%.2f) for %s", r.Title, what, dir, in.Value, mean, factor, en.key.group)
	}
	if open {
		a.Summary += " (so far: the interval is open)"
	}
	if dir != "up" {
		factor = 0
	}
	if !applyChanges(r, a, in.Changes, a.Service, factor) && !final {
		e.ruleStats(r.ID).Suppressed++
		return nil
	}
	return a
}
