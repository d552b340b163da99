package engine

import (
	"fmt"
	"math"
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

// thresholdHit adds an event to its bucket. A tumbling window is a sliding one whose slide is
// the window, so both close through thresholdClose.
//
// Windows ending at or before the partition's closed watermark were judged already: an event
// only in those (a kind back from idleness behind the others) is left out, and the entry
// never judges them again.
func (e *Engine) thresholdHit(part int32, r *Rule, act map[string]any, t int64) {
	th := r.Threshold
	slide := int64(th.Slide)
	if slide == 0 {
		slide = int64(r.Window)
	}
	start := floorTo(t, slide)
	open, closed := e.firstOpenEnd(part, slide)
	if closed && start+int64(r.Window) < open {
		e.closedOut = true
		return
	}
	en := e.get(entryKey{r.ID, part, groupKey(r.groupBy, act)})
	noteEvent(en, act)
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
	slide := int64(r.Threshold.Slide)
	if slide == 0 {
		slide = int64(r.Window)
	}
	return max(en.st.NextEnd, en.st.Buckets[0].Start+slide)
}

// thresholdClose judges every window that ended at or before the watermark wm. Windows end
// every slide (every window when tumbling); one alert at most per group and window, and none
// for a window overlapping one already alerted.
func (e *Engine) thresholdClose(r *Rule, en *entry, wm int64) []*Alert {
	th := r.Threshold
	w := int64(r.Window)
	slide := int64(th.Slide)
	if slide == 0 {
		slide = w
	}
	var alerts []*Alert
	for len(en.st.Buckets) > 0 {
		end := e.nextWindowEnd(r, en)
		if end > wm {
			break
		}
		if a := e.judgeWindow(r, en, end-w, end); a != nil {
			alerts = append(alerts, a)
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

// judgeWindow aggregates the buckets of window [start, end) and compares with the bound.
func (e *Engine) judgeWindow(r *Rule, en *entry, start, end int64) *Alert {
	th := r.Threshold
	var count int64
	var sum float64
	distinct := map[string]bool{}
	first := int64(math.MaxInt64)
	var evidence []string
	for _, b := range en.st.Buckets {
		if b.Start < start || b.Start >= end {
			continue
		}
		count += b.Count
		sum += b.Sum
		for v := range b.Distinct {
			distinct[v] = true
		}
		first = min(first, b.First)
		for _, id := range b.Evidence {
			if len(evidence) < e.opt.MaxEvidence {
				evidence = append(evidence, id)
			}
		}
	}
	value := float64(count)
	switch th.Aggregate {
	case AggSum:
		value = sum
	case AggDistinct:
		value = float64(len(distinct))
	}
	if count == 0 || !compare(value, th.Op, th.Value) || start < en.st.FiredUntil {
		return nil
	}
	en.st.FiredUntil = end
	a := e.newAlert(r, en.key.part, en.key.group, AlertID(r.ID, en.key.group, windowID(start, end)), first, start, end, count, evidence)
	e.fillFromState(a, en)
	a.Summary = fmt.Sprintf("%s: %s %g %s %g within %s for %s", r.Title, th.Aggregate, value, th.Op, th.Value, r.Window, en.key.group)
	if !applyChanges(r, a, en.st.Changes, a.Service, 0) {
		return nil
	}
	return a
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
	noteEvent(en, act)
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
	e.remove(en)
	if !applyChanges(r, a, en.st.Changes, a.Service, 0) {
		return nil
	}
	return []*Alert{a}
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

// newTermHit learns the event's term and alerts when it is new after the learning period.
func (e *Engine) newTermHit(part int32, r *Rule, act map[string]any, t int64) *Alert {
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
		return nil
	}
	term := strings.Join(vals, "|")
	key := entryKey{r.ID, part, groupKey(r.groupBy, act)}
	if en := e.entries[key]; en != nil && en.st.Term.Terms[term] {
		e.lru.MoveToBack(en.elem)
		return nil
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
		return nil
	}
	env := str(act["event_id"])
	a := e.newAlert(r, part, key.group, AlertID(r.ID, key.group, "term:"+term), t, t, t, 1, []string{env})
	h, _ := act["host"].(map[string]any)
	a.Host.ID, a.Host.Name, a.Service = str(h["id"]), str(h["name"]), serviceOf(act)
	a.Summary = fmt.Sprintf("%s: %s %s first seen for %s", r.Title, strings.Join(nt.Fields, ","), term, key.group)
	if !applyChanges(r, a, changesOf(act), a.Service, 0) {
		return nil
	}
	return a
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

// spikeHit adds an event's value to its interval.
func (e *Engine) spikeHit(part int32, r *Rule, act map[string]any, t int64) {
	sp := r.Spike
	iv := int64(sp.Interval)
	start := floorTo(t, iv)
	if open, closed := e.firstOpenEnd(part, iv); closed && start+iv < open {
		e.closedOut = true // its interval closed (a kind back from idleness behind the others)
		return
	}
	en := e.get(entryKey{r.ID, part, groupKey(r.groupBy, act)})
	noteEvent(en, act)
	if en.st.Spike == nil {
		en.st.Spike = &spikeState{}
	}
	s := en.st.Spike
	if s.Closed && start <= s.LastClosed {
		return // its interval was judged already
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
}

// spikeClose judges the intervals that ended at or before wm against the baseline.
func (e *Engine) spikeClose(r *Rule, en *entry, wm int64) []*Alert {
	sp := r.Spike
	iv := int64(sp.Interval)
	s := en.st.Spike
	var alerts []*Alert
	for len(s.Open) > 0 && s.Open[0].Start+iv <= wm {
		in := s.Open[0]
		s.Open = s.Open[1:]
		if s.Closed { // intervals without events count as zero
			for gap := (in.Start-s.LastClosed)/iv - 1; gap > 0 && gap <= int64(sp.Baseline); gap-- {
				s.History = pushBounded(s.History, 0, sp.Baseline)
			}
		}
		if a := e.judgeSpike(r, en, in); a != nil {
			alerts = append(alerts, a)
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
	h = append(h, v)
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return h
}

// judgeSpike compares an interval's value with the baseline.
func (e *Engine) judgeSpike(r *Rule, en *entry, in *interval) *Alert {
	sp := r.Spike
	h := en.st.Spike.History
	if len(h) < sp.MinBaseline {
		return nil
	}
	var mean, sd float64
	for _, v := range h {
		mean += v
	}
	mean /= float64(len(h))
	for _, v := range h {
		sd += (v - mean) * (v - mean)
	}
	sd = math.Sqrt(sd / float64(len(h)))
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
	case down && sp.Direction != "up":
		dir = "down"
	default:
		return nil
	}
	factor := 0.0
	if mean > 0 {
		factor = in.Value / mean
	}
	end := in.Start + int64(sp.Interval)
	a := e.newAlert(r, en.key.part, en.key.group, AlertID(r.ID, en.key.group, windowID(in.Start, end)), in.First, in.Start, end, in.Count, in.Evidence)
	e.fillFromState(a, en)
	what := sp.Field
	if what == "" {
		what = "events"
	}
	a.Summary = fmt.Sprintf("%s: %s %s to %g against a baseline of %.4g (x%.2f) for %s", r.Title, what, dir, in.Value, mean, factor, en.key.group)
	if dir == "down" {
		factor = 0
	}
	if !applyChanges(r, a, in.Changes, a.Service, factor) {
		return nil
	}
	return a
}
