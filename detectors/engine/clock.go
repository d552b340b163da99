package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Event-time clocks. Each partition carries the same partition number of the five enriched
// topics (all keyed by host id), so its events come in several streams, one per kind, that
// may be read at different speeds (a backlog of network events ahead of identity events after
// a restart). As stream processors do with several inputs, the engine keeps:
//
//   - a clock per (partition, kind): the highest event time seen of that kind. An event is
//     late only against its own kind's clock: t < clock[kind] - allowed_lateness. A kind not
//     seen yet has the partition's shared clock (set by Advance or by an old single-clock
//     changelog record), or none: its first event is never late.
//   - one watermark per partition, which closes windows: the minimum of the active clocks less
//     the allowed lateness. A clock more than Options.IdleTimeout behind the partition's
//     highest clock is idle and left out, so a rarely used kind does not hold back the windows
//     of the others. The watermark never moves backwards: a kind coming back from idleness
//     behind it does not reopen windows already closed (its events still count in windows
//     that are open).

// partition is the event-time state of one partition.
type partition struct {
	kinds   map[string]int64 // highest event time seen per kind
	all     int64            // clock of every kind without its own; math.MinInt64 when unset
	closed  int64            // the watermark windows were last closed at; math.MinInt64 before
	wmDirty bool             // a clock changed since the last Changes
	timers  timerHeap
}

func newPartition() *partition {
	return &partition{kinds: map[string]int64{}, all: math.MinInt64, closed: math.MinInt64}
}

// clock is the clock of a kind: its own, else the shared one (math.MinInt64 when none).
func (p *partition) clock(kind string) int64 {
	if t, ok := p.kinds[kind]; ok {
		return t
	}
	return p.all
}

// observe raises a kind's clock to t.
func (p *partition) observe(kind string, t int64) {
	if t > p.clock(kind) {
		p.kinds[kind], p.wmDirty = t, true
	}
}

// advance raises every clock of the partition, and the shared one, to t.
func (p *partition) advance(t int64) {
	if t > p.all {
		p.all, p.wmDirty = t, true
	}
	for k, c := range p.kinds {
		if t > c {
			p.kinds[k], p.wmDirty = t, true
		}
	}
}

// watermark is the minimum of the active clocks less lateness (never below the watermark
// windows were closed at), and false before any clock is set.
func (p *partition) watermark(lateness, idle time.Duration) (int64, bool) {
	hi := p.all
	for _, c := range p.kinds {
		hi = max(hi, c)
	}
	if hi == math.MinInt64 {
		return 0, false
	}
	lo := hi
	active := func(c int64) {
		if c != math.MinInt64 && c >= hi-int64(idle) {
			lo = min(lo, c)
		}
	}
	active(p.all)
	for _, c := range p.kinds {
		active(c)
	}
	return max(lo-int64(lateness), p.closed), true
}

// clockRecord is the changelog value of a partition's clocks (JSON). Older engines wrote one
// decimal integer, the clock of every kind; Restore still reads it.
type clockRecord struct {
	All    *int64           `json:"all,omitempty"`    // clock of every kind without its own
	Kinds  map[string]int64 `json:"kinds,omitempty"`  // clock per kind
	Closed *int64           `json:"closed,omitempty"` // watermark windows were closed at
}

// record encodes the clocks for the changelog.
func (p *partition) record() ([]byte, error) {
	var rec clockRecord
	if p.all != math.MinInt64 {
		rec.All = &p.all
	}
	if len(p.kinds) > 0 {
		rec.Kinds = p.kinds
	}
	if p.closed != math.MinInt64 {
		rec.Closed = &p.closed
	}
	return json.Marshal(&rec) // map keys sorted: deterministic
}

// restore raises the clocks to those of a changelog value, new (JSON) or old (an integer).
func (p *partition) restore(value []byte) error {
	var rec clockRecord
	if len(value) > 0 && value[0] == '{' {
		if err := json.Unmarshal(value, &rec); err != nil {
			return fmt.Errorf("decode clocks: %w", err)
		}
	} else {
		t, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil {
			return fmt.Errorf("decode clock: %w", err)
		}
		rec.All = &t
	}
	if rec.All != nil {
		p.all = max(p.all, *rec.All)
	}
	for k, t := range rec.Kinds {
		if t > p.clock(k) {
			p.kinds[k] = t
		}
	}
	if rec.Closed != nil {
		p.closed = max(p.closed, *rec.Closed)
	}
	return nil
}
