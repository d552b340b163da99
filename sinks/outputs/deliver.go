package outputs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// work delivers an output's jobs one at a time, in the order their records were consumed,
// until ctx is done; it also sends the output's rate-limit summaries when they are due.
func (s *Stage) work(ctx context.Context, o *output) {
	var tick <-chan time.Time
	if o.summarizes() {
		t := time.NewTicker(min(time.Second, o.cfg.RateLimit.SummaryInterval))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-o.queue:
			s.handle(ctx, j)
		case <-tick:
			s.summarize(ctx, o)
		}
	}
}

func (o *output) summarizes() bool { return o.limiter != nil && o.cfg.RateLimit.Exceed == "summarize" }

// handle renders a job's message, applies the rate limit and delivers it.
func (s *Stage) handle(ctx context.Context, j *job) {
	o := j.out
	if s.isCancelled(j.p) {
		return
	}
	if j.alert == nil {
		s.deliver(ctx, o, []*job{j}, "", func(actx context.Context) error { return o.resolve.Resolve(actx, j.resolveID) })
		return
	}
	msg, err := s.message(o, j.alert, j.p.rec.Timestamp, j)
	if err != nil {
		if s.begin([]*job{j}) != nil {
			s.giveUp(ctx, o, []*job{j}, 0, fmt.Errorf("%w: %w", ErrUnrenderable, err))
		}
		return
	}
	if o.limiter != nil && !o.limiter.Allow() {
		if o.summarizes() {
			o.m.summarized.Inc()
			if len(o.held) == 0 {
				o.heldSince = time.Now()
			}
			o.held = append(o.held, j)
			return
		}
		o.m.delayed.Inc()
		r := o.limiter.Reserve()
		if err := sleep(ctx, r.Delay(), j.p.gone); err != nil {
			r.Cancel()
			return
		}
	}
	s.deliver(ctx, o, []*job{j}, "", func(actx context.Context) error { return o.send.Send(actx, msg) })
}

// message renders an alert for an output: the alert or incident of job j, or (j nil) a
// rate-limit summary.
func (s *Stage) message(o *output, a *schemas.Alert, raised time.Time, j *job) (*message, error) {
	data := templateData(a, o.cfg.Name, s.cfg.ConsoleURL)
	key := deliveryKey(a.AlertID, o.cfg.Name, 1)
	m := &message{Alert: a, Data: data, Key: key, First: key, Raised: raised}
	if j != nil {
		m.Key, m.Incident = j.key, j.incident
	}
	if in := m.Incident; in != nil {
		data.Incident = true
		for _, r := range in.Rules {
			data.Rules = append(data.Rules, TemplateRule{ID: r.RuleID, Title: r.Title, Severity: r.Severity, Alerts: r.Alerts})
		}
	}
	r, err := o.tmpl.render(data)
	if err != nil {
		return nil, err
	}
	m.rendered = r
	return m, nil
}

// deliver calls send until it succeeds, the receiver refuses, or the output's retry bound is
// reached; jobs are the deliveries it stands for (one alert, its resolution, or the alerts a
// summary counts: then summaryID is the summary's id). An attempt in progress runs to its end
// (or its timeout) when the stage stops; a wait between attempts does not, and leaves the
// jobs' records to the next run.
func (s *Stage) deliver(ctx context.Context, o *output, jobs []*job, summaryID string, send func(context.Context) error) {
	first := jobs[0].consumed
	backoff := o.cfg.Retry.InitialBackoff
	attempts := 0
	for {
		if jobs = s.begin(jobs); jobs == nil {
			return
		}
		if attempts == 0 && o.failing && o.cfg.Retry.MaxDuration > 0 && time.Since(first) >= o.cfg.Retry.MaxDuration {
			// The output is down and this alert already waited its whole bound behind others:
			// no attempt of its own, which would make a long outage longer still.
			s.giveUp(ctx, o, jobs, 0, fmt.Errorf("%w: the output was failing and the alert waited %s", ErrGaveUp, time.Since(first).Round(time.Second)))
			return
		}
		attempts++
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.Timeout)
		err := send(actx)
		cancel()
		if err == nil {
			s.recovered(o)
			s.succeed(ctx, o, jobs, attempts, summaryID)
			return
		}
		s.failedAttempt(o, err)
		if permanent(err) {
			s.giveUp(ctx, o, jobs, attempts, err)
			return
		}
		if (o.cfg.Retry.MaxAttempts > 0 && attempts >= o.cfg.Retry.MaxAttempts) ||
			(o.cfg.Retry.MaxDuration > 0 && time.Since(first) >= o.cfg.Retry.MaxDuration) {
			s.giveUp(ctx, o, jobs, attempts, fmt.Errorf("%w after %d attempts over %s: %w", ErrGaveUp, attempts, time.Since(first).Round(time.Millisecond), err))
			return
		}
		s.end(jobs)
		wait := backoff
		if hint, ok := hintedBackoff(err); ok {
			wait = max(wait, hint)
		}
		backoff = min(2*backoff, o.cfg.Retry.MaxBackoff)
		o.m.retries.Inc()
		var gone <-chan struct{}
		if len(jobs) == 1 {
			gone = jobs[0].p.gone
		}
		if sleep(ctx, wait, gone) != nil {
			return
		}
	}
}

// begin marks the jobs whose records are still ours as in an attempt, and returns them; nil
// when none is.
func (s *Stage) begin(jobs []*job) []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []*job
	for _, j := range jobs {
		if !j.p.cancelled {
			j.p.busy++
			live = append(live, j)
		}
	}
	return live
}

// end marks jobs as out of their attempt.
func (s *Stage) end(jobs []*job) {
	s.mu.Lock()
	for _, j := range jobs {
		j.p.busy--
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *Stage) isCancelled(p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.cancelled
}

// succeed records the jobs as delivered (or summarized) and finishes them.
func (s *Stage) succeed(ctx context.Context, o *output, jobs []*job, attempts int, summaryID string) {
	defer s.end(jobs)
	status, detail := StatusDelivered, ""
	if summaryID != "" {
		status, detail = StatusSummarized, summaryID
	}
	o.m.delivered.Inc()
	s.counters.Out(1)
	for _, j := range jobs {
		if j.alert == nil {
			o.m.resolved.Inc()
		} else if summaryID == "" {
			o.m.latency.Observe(time.Since(j.p.rec.Timestamp).Seconds())
		}
		s.record(ctx, o, j, status, attempts, detail)
	}
}

// giveUp dead-letters the jobs' records (header crumbs.output names the output) and records
// them as dead-lettered.
func (s *Stage) giveUp(ctx context.Context, o *output, jobs []*job, attempts int, reason error) {
	defer s.end(jobs)
	for _, j := range jobs {
		dl := kafka.DeadLetter(s.topics.DLQ(), j.p.rec, StageName, reason)
		dl.Headers = append(dl.Headers, kgo.RecordHeader{Key: HeaderOutput, Value: []byte(o.cfg.Name)})
		s.log.Warn("delivery dead-lettered", "output", o.cfg.Name, "alert_id", j.alertID(), "action", j.action(), "attempts", attempts, "reason", reason)
		if err := s.produceDurably(ctx, dl); err != nil {
			s.log.Error("dead letter not written; the alert is consumed again after a restart", "output", o.cfg.Name, "alert_id", j.alertID(), "err", err)
			continue
		}
		o.m.deadLettered.Inc()
		s.counters.DeadLettered(1)
		s.record(ctx, o, j, StatusDeadLettered, attempts, reason.Error())
	}
}

// record writes a job's outcome to crumbs.deliveries, then finishes the job. When Kafka does
// not take it before the stage stops, the job stays open: its record is consumed again by the
// next run and delivered again (the receiver sees the same idempotency key).
func (s *Stage) record(ctx context.Context, o *output, j *job, status string, attempts int, detail string) {
	d := &schemas.Delivery{
		AlertID: j.alertID(), Output: o.cfg.Name, Action: j.action(), Status: status, Attempts: int32(attempts),
		At: time.Now().UnixNano(), SourceTopic: j.p.rec.Topic, SourceOffset: j.p.rec.Offset, Detail: truncate(1024, detail),
	}
	v, err := s.serde.Encode(nil, schemas.DeliverySchema, d.Native())
	if err == nil {
		err = s.produceDurably(ctx, &kgo.Record{Topic: s.topics.Deliveries(), Partition: j.p.rec.Partition, Key: []byte(j.key), Value: v})
	}
	if err != nil {
		s.log.Error("delivery state not written; the alert may be delivered again after a restart", "output", o.cfg.Name, "alert_id", j.alertID(), "err", err)
		return
	}
	s.mu.Lock()
	s.state[j.key] = stateEntry{partition: j.p.rec.Partition, d: d}
	s.mu.Unlock()
	s.finish(j.p)
}

// failedAttempt counts a failed attempt and logs an output's failures once, when it starts
// failing.
func (s *Stage) failedAttempt(o *output, err error) {
	if permanent(err) {
		o.m.refused.Inc()
		return
	}
	o.m.transient.Inc()
	o.failures++
	if !o.failing {
		o.failing = true
		s.log.Warn("output failing; retrying with backoff", "output", o.cfg.Name, "type", o.cfg.Type, "err", err)
	} else {
		s.log.Debug("output still failing", "output", o.cfg.Name, "attempts", o.failures, "err", err)
	}
}

func (s *Stage) recovered(o *output) {
	if o.failing {
		s.log.Info("output delivering again", "output", o.cfg.Name, "failed_attempts", o.failures)
	}
	o.failing, o.failures = false, 0
}

// summarize delivers one summary of the alerts the rate limit held back, once the first of
// them has waited the summary interval. The held alerts are recorded as summarized only when
// the summary is delivered; until then their records stay uncommitted.
func (s *Stage) summarize(ctx context.Context, o *output) {
	if len(o.held) == 0 || time.Since(o.heldSince) < o.cfg.RateLimit.SummaryInterval {
		return
	}
	held := o.held
	o.held = nil
	s.mu.Lock()
	held = slices.DeleteFunc(held, func(j *job) bool { return j.p.cancelled })
	s.mu.Unlock()
	if len(held) == 0 {
		return
	}
	a := summaryAlert(o.cfg.Name, held)
	msg, err := s.message(o, a, time.Now(), nil)
	if err != nil {
		if held = s.begin(held); held != nil {
			s.giveUp(ctx, o, held, 0, fmt.Errorf("%w: summary: %w", ErrUnrenderable, err))
		}
		return
	}
	msg.Data.URL = ""
	s.deliver(ctx, o, held, a.AlertID, func(actx context.Context) error { return o.send.Send(actx, msg) })
}

// SummaryRuleID is the rule id of a rate-limit summary.
const SummaryRuleID = "crumbs-rate-limit-summary"

// summaryAlert is the alert that stands for the alerts held back: their count by rule and
// severity, the highest severity, and their ids as evidence (the first 100).
func summaryAlert(outputName string, held []*job) *schemas.Alert {
	h := sha256.New()
	h.Write([]byte(outputName))
	byRule, bySev := map[string]int{}, map[string]int{}
	a := &schemas.Alert{RuleID: SummaryRuleID, Severity: "informational", Tags: []string{"crumbs.rate_limit"}, RuleSource: "native",
		Host: held[0].alert.Host, Service: held[0].alert.Service, Time: held[0].alert.Time, WindowStart: held[0].alert.Time}
	for _, j := range held {
		x := j.alert
		h.Write([]byte{0})
		h.Write([]byte(x.AlertID))
		byRule[x.RuleID]++
		bySev[x.Severity]++
		if rank(x.Severity) > rank(a.Severity) {
			a.Severity = x.Severity
		}
		if x.Host != a.Host {
			a.Host = schemas.Host{}
		}
		if x.Service != a.Service {
			a.Service = ""
		}
		a.Time = min(a.Time, x.Time)
		a.WindowStart = min(a.WindowStart, x.Time)
		a.WindowEnd = max(a.WindowEnd, x.Time)
		if len(a.Evidence) < 100 {
			a.Evidence = append(a.Evidence, x.AlertID)
		}
	}
	a.AlertID = "summary-" + hex.EncodeToString(h.Sum(nil))[:16]
	a.GroupKey = outputName
	a.Count = int64(len(held))
	a.Title = fmt.Sprintf("%d alerts held back by the rate limit of output %s", len(held), outputName)
	a.Summary = "By rule: " + countList(byRule, 20) + ". By severity: " + countList(bySev, 5) + "."
	return a
}

// countList renders counts as "a (3), b (1)", largest first, at most n names.
func countList(m map[string]int, n int) string {
	names := sortedKeys(m)
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	var parts []string
	for i, k := range names {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
