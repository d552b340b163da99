package detectors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// suppressions are the false positives in force, read from the compacted topic crumbs.triage:
// an analyst who marks an alert a false positive may suppress its rule on its host (or for its
// group key) until a time. The detector drops the alerts they cover, and counts them by rule.
// The table is read beside the transactional loop, not in it: an alert judged again after an
// aborted transaction meets the suppressions of that moment.
type suppressions struct {
	mu      sync.RWMutex
	byRule  map[string]map[string]*schemas.TriageState // rule -> alert id -> its false positive
	rules   map[string]string                          // alert id -> rule, to forget a state replaced
	countMu sync.Mutex
	count   map[string]uint64 // alerts dropped, by rule: crumbs_detector_alerts_suppressed_total{reason="false_positive"}
	ready   chan struct{}     // closed once the topic was read to where it ended at the start
	once    sync.Once
}

// waitReady waits until the table has read the suppressions that existed at the start, for at
// most d, so that alerts after a (re)start meet them.
func (s *suppressions) waitReady(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ready:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func newSuppressions() *suppressions {
	return &suppressions{byRule: map[string]map[string]*schemas.TriageState{}, rules: map[string]string{}, ready: make(chan struct{}),
		count: map[string]uint64{}}
}

// apply takes one record of crumbs.triage: the state of an alert replaces the one before; a
// state without a suppression in force (or a tombstone) forgets it.
func (s *suppressions) apply(r *kgo.Record, serde *avro.Serde, log *slog.Logger) {
	id := string(r.Key)
	var st *schemas.TriageState
	if r.Value != nil {
		sc, native, err := serde.Decode(r.Value)
		if err != nil || sc.Name != schemas.TriageSchema {
			log.Warn("skipping an unreadable triage record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if st, err = schemas.TriageFromNative(native); err != nil {
			log.Warn("skipping an unreadable triage record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rule, ok := s.rules[id]; ok {
		delete(s.byRule[rule], id)
		if len(s.byRule[rule]) == 0 {
			delete(s.byRule, rule)
		}
		delete(s.rules, id)
	}
	if st == nil || st.State != schemas.TriageFalsePositive || st.SuppressUntil <= time.Now().UnixNano() {
		return
	}
	if s.byRule[st.RuleID] == nil {
		s.byRule[st.RuleID] = map[string]*schemas.TriageState{}
	}
	s.byRule[st.RuleID][id] = st
	s.rules[id] = st.RuleID
}

// suppressed reports whether a suppression in force covers an alert, and counts it if so.
func (s *suppressions) suppressed(a *schemas.Alert, now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, st := range s.byRule[a.RuleID] {
		if st.Suppresses(a.RuleID, a.Host.Name, a.GroupKey, now.UnixNano()) {
			s.countMu.Lock()
			s.count[a.RuleID]++
			s.countMu.Unlock()
			return true
		}
	}
	return false
}

// run keeps the table up to date until ctx is done. When the topic cannot be read, the
// detector goes on without suppressions, says so once, and tries again.
func (s *suppressions) run(ctx context.Context, kcfg kafka.Config, serde *avro.Serde, log *slog.Logger) {
	warned := false
	for ctx.Err() == nil {
		t, err := kafka.OpenTable(ctx, kcfg, []string{kcfg.Topics().Triage()}, func(r *kgo.Record) { s.apply(r, serde, log) }, log)
		if err == nil {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-t.Ready():
					s.once.Do(func() { close(s.ready) })
				case <-ctx.Done():
				}
			}()
			_ = t.Run(ctx)
			wg.Wait()
			return
		}
		if !warned {
			log.Warn("false positives' suppressions cannot be read; alerts are not suppressed until they can", "topic", kcfg.Topics().Triage(), "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
	}
}

// counts returns how many alerts each rule had dropped by a false positive's suppression.
func (s *suppressions) counts() map[string]uint64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	out := make(map[string]uint64, len(s.count))
	for r, n := range s.count {
		out[r] = n
	}
	return out
}
