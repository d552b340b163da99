package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/retry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// tableWriter buffers the rows of one table and writes them in one INSERT. A batcher holds
// one per schema it consumes and calls it with its mutex held.
type tableWriter interface {
	// table is the ClickHouse table the rows go to.
	table() string
	// topic is the only topic whose records this writer takes.
	topic() string
	// take buffers the row of one decoded record (the generated schemas value the Serde's
	// DecodeRecord gives; nil: a tombstone), or says why it cannot be written.
	take(r *kgo.Record, rec any) error
	// pending is how many rows are buffered.
	pending() int
	// write inserts the buffered rows, without those ClickHouse already holds (see
	// dropReplayed), and forgets every row that is settled: written, found written, or
	// refused by ClickHouse for its content, whose record it returns as a dead letter. It
	// returns a transient error (pkg/retry) when ClickHouse cannot take rows now; the rows
	// not yet settled stay buffered for the next call.
	write(ctx context.Context, b *batcher) (written int, dead []pendingDead, err error)
	// drop forgets the rows of the given partitions.
	drop(gone map[topicPartition]bool)
}

// rowWriter is the tableWriter of rows of type T.
type rowWriter[T any] struct {
	tbl, src string
	// idCol is the id column replays are looked up by; empty for versioned tables
	// (ReplacingMergeTree(updated_at), read with FINAL), where a replay is harmless.
	idCol  string
	decode func(r *kgo.Record, rec any) (T, error)
	// key returns a row's id and time (ns); a zero time means: no latency to observe.
	key    func(T) (string, int64)
	insert func(*Store, context.Context, []T) error
	rows   []pendingRow[T]
}

type pendingRow[T any] struct {
	rec *kgo.Record
	row T
}

func (w *rowWriter[T]) table() string { return w.tbl }
func (w *rowWriter[T]) topic() string { return w.src }
func (w *rowWriter[T]) pending() int  { return len(w.rows) }

func (w *rowWriter[T]) take(r *kgo.Record, rec any) error {
	row, err := w.decode(r, rec)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidRecord, w.tbl, err)
	}
	id, ns := w.key(row)
	if w.idCol != "" {
		if err := checkRow(id, ns); err != nil {
			return fmt.Errorf("%s: %w", w.tbl, err)
		}
	} else if id == "" {
		return fmt.Errorf("%s: %w: empty id", w.tbl, ErrInvalidRecord)
	}
	w.rows = append(w.rows, pendingRow[T]{rec: r, row: row})
	return nil
}

// writeRun is one write call's progress over the buffered rows.
type writeRun struct {
	settled []bool // by index in rows
	written int
	dead    []pendingDead
}

func (w *rowWriter[T]) write(ctx context.Context, b *batcher) (int, []pendingDead, error) {
	run := &writeRun{settled: make([]bool, len(w.rows))}
	idx := make([]int, len(w.rows))
	for i := range idx {
		idx[i] = i
	}
	err := w.writeRange(ctx, b, run, idx, false)
	kept := w.rows[:0]
	for i, p := range w.rows {
		if !run.settled[i] {
			kept = append(kept, p)
		}
	}
	clear(w.rows[len(kept):]) // let the settled records go
	w.rows = kept
	return run.written, run.dead, err
}

// writeRange inserts the rows at idx in one INSERT. When ClickHouse refuses it for its
// content, it splits the rows in halves and writes each, down to single rows, which it
// dead-letters: a few bad rows cost about 2·log2(len(idx)) inserts each, and every good row
// lands. split says an attempt on these rows (or rows around them) failed in this write, so
// some may have landed: each is looked up before it is inserted again.
func (w *rowWriter[T]) writeRange(ctx context.Context, b *batcher, run *writeRun, idx []int, split bool) error {
	if w.idCol != "" {
		in := make([]pendingRow[T], len(idx))
		for i, j := range idx {
			in[i] = w.rows[j]
		}
		todo, err := dropReplayed(ctx, b, w.tbl, in, split,
			func(p pendingRow[T]) (*kgo.Record, string) { id, _ := w.key(p.row); return p.rec, id },
			func(ctx context.Context, ps []pendingRow[T]) (map[string]bool, error) {
				ids, times := make([]string, len(ps)), make([]int64, len(ps))
				for i, p := range ps {
					ids[i], times[i] = w.key(p.row)
				}
				return b.store.ExistingIDs(ctx, w.tbl, w.idCol, ids, times)
			})
		if err != nil {
			return err
		}
		if len(todo) != len(in) {
			unwritten := make(map[*kgo.Record]bool, len(todo))
			for _, p := range todo {
				unwritten[p.rec] = true
			}
			kept := idx[:0:0]
			for _, j := range idx {
				if unwritten[w.rows[j].rec] {
					kept = append(kept, j)
				} else {
					run.settled[j] = true // already in ClickHouse
				}
			}
			idx = kept
		}
	}
	if len(idx) == 0 {
		return nil
	}
	rows := make([]T, len(idx))
	recs := make([]*kgo.Record, len(idx))
	for i, j := range idx {
		rows[i], recs[i] = w.rows[j].row, w.rows[j].rec
	}
	err := b.attempt(ctx, recs, func(ctx context.Context) error { return w.insert(b.store, ctx, rows) })
	if err == nil {
		for _, j := range idx {
			run.settled[j] = true
		}
		run.written += len(rows)
		w.observe(b, rows)
		return nil
	}
	if ctx.Err() != nil || retry.Classify(err) == retry.Transient {
		return err
	}
	if len(idx) == 1 {
		run.settled[idx[0]] = true
		run.dead = append(run.dead, b.deadLetter(recs[0], fmt.Errorf("%w: %s: %w", ErrRefused, w.tbl, err)))
		b.sink.log.Warn("ClickHouse refused a row; dead-lettering it", "table", w.tbl,
			"topic", recs[0].Topic, "partition", recs[0].Partition, "offset", recs[0].Offset, "err", err)
		return nil
	}
	mid := len(idx) / 2
	if err := w.writeRange(ctx, b, run, idx[:mid], true); err != nil {
		return err
	}
	return w.writeRange(ctx, b, run, idx[mid:], true)
}

// observe records the latency of rows just written.
func (w *rowWriter[T]) observe(b *batcher, rows []T) {
	now := time.Now()
	lat := make([]time.Duration, 0, len(rows))
	for _, r := range rows {
		if _, ns := w.key(r); ns != 0 {
			lat = append(lat, now.Sub(time.Unix(0, ns)))
		}
	}
	if len(lat) > 0 {
		b.observe(w.tbl, lat)
	}
}

func (w *rowWriter[T]) drop(gone map[topicPartition]bool) {
	kept := w.rows[:0]
	for _, p := range w.rows {
		if !gone[tpOf(p.rec)] {
			kept = append(kept, p)
		}
	}
	w.rows = kept
}

// eventWriter returns the writer of events of a kind whose generated Go type is E.
func eventWriter[E any](topic, table string, envelope func(*E) *schemas.Envelope, insert func(*Store, context.Context, []*E) error) *rowWriter[*E] {
	return &rowWriter[*E]{
		tbl: table, src: topic, idCol: "event_id",
		decode: decodedAs[E]("an event"),
		key:    func(e *E) (string, int64) { env := envelope(e); return env.EventID, env.Time },
		insert: insert,
	}
}

// decodedAs returns the decoded record as a *T; a tombstone or a value of another type is an
// error.
func decodedAs[T any](what string) func(*kgo.Record, any) (*T, error) {
	return func(_ *kgo.Record, rec any) (*T, error) {
		if rec == nil {
			return nil, fmt.Errorf("tombstone on %s topic", what)
		}
		v, ok := rec.(*T)
		if !ok {
			return nil, fmt.Errorf("decoded a %T, want a %T", rec, v)
		}
		return v, nil
	}
}

// newWriters returns the sink's writers by the full name of the schema they take; tombstones
// on a context topic go to the writer of that topic.
func newWriters(t kafka.Topics) map[string]tableWriter {
	w := map[string]tableWriter{
		schemas.ProcessSchema: eventWriter(t.Enriched(schemas.KindProcess), ProcessEventsTable,
			func(e *schemas.ProcessEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertProcessEvents),
		schemas.NetworkSchema: eventWriter(t.Enriched(schemas.KindNetwork), NetworkEventsTable,
			func(e *schemas.NetworkEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertNetworkEvents),
		schemas.FileSchema: eventWriter(t.Enriched(schemas.KindFile), FileEventsTable,
			func(e *schemas.FileEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertFileEvents),
		schemas.IdentitySchema: eventWriter(t.Enriched(schemas.KindIdentity), IdentityEventsTable,
			func(e *schemas.IdentityEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertIdentityEvents),
		schemas.SystemSchema: eventWriter(t.Enriched(schemas.KindSystem), SystemEventsTable,
			func(e *schemas.SystemEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertSystemEvents),
		schemas.AlertSchema: &rowWriter[*schemas.Alert]{
			// A replay is an alert id and version already written: the final version of
			// an early alert has the id of a row already there.
			tbl: AlertsTable, src: t.Alerts(), idCol: "concat(alert_id, '/', toString(version))",
			decode: decodedAs[schemas.Alert]("the alerts"),
			key: func(a *schemas.Alert) (string, int64) {
				return a.AlertID + "/" + strconv.FormatInt(a.Version, 10), a.Time
			},
			insert: (*Store).InsertAlerts,
		},
		// Triage is versioned (ReplacingMergeTree(version), read by the highest version): a
		// replayed record writes a row equal to one already there, which is harmless.
		schemas.TriageSchema: &rowWriter[*TriageRow]{
			tbl: AlertTriageTable, src: t.Triage(),
			decode: triageRow,
			key:    func(r *TriageRow) (string, int64) { return r.AlertID, 0 },
			insert: (*Store).InsertTriage,
		},
	}
	for schema, kind := range contextKindOfSchema {
		w[schema] = &rowWriter[*ContextRow]{
			tbl: contextTables[kind].table, src: t.Context(kind),
			decode: func(r *kgo.Record, rec any) (*ContextRow, error) {
				if rec == nil { // a tombstone deletes the record its key names
					return &ContextRow{Kind: kind, ID: string(r.Key), Deleted: true,
						UpdatedAt: uint64(max(r.Timestamp.UnixNano(), 0))}, nil
				}
				nr, ok := rec.(schemas.Record)
				if !ok {
					return nil, fmt.Errorf("decoded a %T, not a context record", rec)
				}
				return ContextRowFromNative(kind, nr.Native(), r.Timestamp) // few records: the native form serves
			},
			key:    func(c *ContextRow) (string, int64) { return c.ID, 0 },
			insert: (*Store).InsertContext,
		}
	}
	return w
}

// consumedTopics are the topics the writers take records from.
func consumedTopics(ws map[string]tableWriter) []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range sortedKeys(ws) {
		if t := ws[name].topic(); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
