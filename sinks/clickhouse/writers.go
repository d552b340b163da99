package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
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
	// take buffers the row of one record, written with sc (nil: a tombstone), or says why
	// it cannot be written.
	take(r *kgo.Record, sc *avro.Schema) error
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

// rowSet is what writeRows needs of a writer's buffered rows.
type rowSet interface {
	len() int
	// rec is the record of row i.
	rec(i int) *kgo.Record
	// key returns row i's id and time (ns).
	key(i int) (string, int64)
	// since is the time (ns) row i's latency is measured from; zero: none to observe.
	since(i int) int64
	// insert writes the rows at idx (in increasing order) in one INSERT.
	insert(ctx context.Context, st *Store, idx []int) error
}

// writeRun is one write call's progress over the buffered rows.
type writeRun struct {
	settled []bool // by index in rows
	written int
	dead    []pendingDead
	err     error // a transient failure that stopped the write
}

// writeRows inserts every row of rows, without those ClickHouse already holds when idCol is
// set, and returns which rows are settled.
func writeRows(ctx context.Context, b *batcher, table, idCol string, rows rowSet) *writeRun {
	run := &writeRun{settled: make([]bool, rows.len())}
	idx := make([]int, rows.len())
	for i := range idx {
		idx[i] = i
	}
	run.err = writeRange(ctx, b, table, idCol, rows, run, idx, false)
	return run
}

// writeRange inserts the rows at idx in one INSERT. When ClickHouse refuses it for its
// content, it splits the rows in halves and writes each, down to single rows, which it
// dead-letters: a few bad rows cost about 2·log2(len(idx)) inserts each, and every good row
// lands. split says an attempt on these rows (or rows around them) failed in this write, so
// some may have landed: each is looked up before it is inserted again.
func writeRange(ctx context.Context, b *batcher, table, idCol string, rows rowSet, run *writeRun, idx []int, split bool) error {
	if idCol != "" {
		todo, err := dropReplayed(ctx, b, table, idx, split,
			func(i int) (*kgo.Record, string) { id, _ := rows.key(i); return rows.rec(i), id },
			func(ctx context.Context, check []int) (map[string]bool, error) {
				ids, times := make([]string, len(check)), make([]int64, len(check))
				for k, i := range check {
					ids[k], times[k] = rows.key(i)
				}
				return b.store.ExistingIDs(ctx, table, idCol, ids, times)
			})
		if err != nil {
			return err
		}
		if len(todo) != len(idx) {
			left := make(map[int]bool, len(todo))
			for _, i := range todo {
				left[i] = true
			}
			for _, i := range idx {
				if !left[i] {
					run.settled[i] = true // already in ClickHouse
				}
			}
			idx = todo
		}
	}
	if len(idx) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(idx))
	for k, i := range idx {
		recs[k] = rows.rec(i)
	}
	err := b.attempt(ctx, recs, func(ctx context.Context) error { return rows.insert(ctx, b.store, idx) })
	if err == nil {
		for _, i := range idx {
			run.settled[i] = true
		}
		run.written += len(idx)
		observe(b, table, rows, idx)
		return nil
	}
	if ctx.Err() != nil || retry.Classify(err) == retry.Transient {
		return err
	}
	if len(idx) == 1 {
		run.settled[idx[0]] = true
		run.dead = append(run.dead, b.deadLetter(recs[0], fmt.Errorf("%w: %s: %w", ErrRefused, table, err)))
		b.sink.log.Warn("ClickHouse refused a row; dead-lettering it", "table", table,
			"topic", recs[0].Topic, "partition", recs[0].Partition, "offset", recs[0].Offset, "err", err)
		return nil
	}
	mid := len(idx) / 2
	if err := writeRange(ctx, b, table, idCol, rows, run, idx[:mid], true); err != nil {
		return err
	}
	return writeRange(ctx, b, table, idCol, rows, run, idx[mid:], true)
}

// observe records the latency of rows just written.
func observe(b *batcher, table string, rows rowSet, idx []int) {
	now := time.Now()
	lat := make([]time.Duration, 0, len(idx))
	for _, i := range idx {
		if ns := rows.since(i); ns != 0 {
			lat = append(lat, now.Sub(time.Unix(0, ns)))
		}
	}
	if len(lat) > 0 {
		b.observe(table, lat)
	}
}

// rowWriter is the tableWriter of rows of type T decoded one by one: alerts and context
// records, which are few.
type rowWriter[T any] struct {
	tbl, src string
	// idCol is the id column replays are looked up by; empty for versioned tables
	// (ReplacingMergeTree(updated_at), read with FINAL), where a replay is harmless.
	idCol  string
	serde  *avro.Serde
	decode func(r *kgo.Record, rec any) (T, error)
	// key returns a row's id and time (ns); a zero time means: no latency to observe
	// (unless since says otherwise).
	key func(T) (string, int64)
	// since, when set, is the time (ns) a row's latency is measured from; zero: none.
	since  func(T) int64
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

func (w *rowWriter[T]) take(r *kgo.Record, sc *avro.Schema) error {
	var rec any
	if sc != nil {
		_, decoded, err := w.serde.DecodeRecord(r.Value)
		if err != nil {
			return err
		}
		rec = decoded
	}
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

func (w *rowWriter[T]) insertRows(ctx context.Context, st *Store, idx []int) error {
	rows := make([]T, len(idx))
	for k, i := range idx {
		rows[k] = w.rows[i].row
	}
	return w.insert(st, ctx, rows)
}

func (w *rowWriter[T]) write(ctx context.Context, b *batcher) (int, []pendingDead, error) {
	run := writeRows(ctx, b, w.tbl, w.idCol, rowWriterSet[T]{w})
	kept := w.rows[:0]
	for i, p := range w.rows {
		if !run.settled[i] {
			kept = append(kept, p)
		}
	}
	clear(w.rows[len(kept):]) // let the settled records go
	w.rows = kept
	return run.written, run.dead, run.err
}

// rowWriterSet is a rowWriter as a rowSet (its method names take the set's).
type rowWriterSet[T any] struct{ w *rowWriter[T] }

func (s rowWriterSet[T]) len() int                  { return len(s.w.rows) }
func (s rowWriterSet[T]) rec(i int) *kgo.Record     { return s.w.rows[i].rec }
func (s rowWriterSet[T]) key(i int) (string, int64) { return s.w.key(s.w.rows[i].row) }
func (s rowWriterSet[T]) since(i int) int64 {
	if s.w.since != nil {
		return s.w.since(s.w.rows[i].row)
	}
	_, ns := s.w.key(s.w.rows[i].row)
	return ns
}
func (s rowWriterSet[T]) insert(ctx context.Context, st *Store, idx []int) error {
	return s.w.insertRows(ctx, st, idx)
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

// newWriters returns the sink's writers by the full name of the schema they take: one per
// event kind (eventWriter, over the kind's columns), alerts and the context kinds; tombstones
// on a context topic go to the writer of that topic.
func newWriters(t kafka.Topics, kinds schemas.KindTable, serde *avro.Serde) map[string]tableWriter {
	w := map[string]tableWriter{
		schemas.AlertSchema: &rowWriter[*schemas.Alert]{
			// A replay is an alert id and version already written: the final version of
			// an early alert has the id of a row already there.
			tbl: AlertsTable, src: t.Alerts(), idCol: "concat(alert_id, '/', toString(version))", serde: serde,
			decode: decodedAs[schemas.Alert]("the alerts"),
			key: func(a *schemas.Alert) (string, int64) {
				return a.AlertID + "/" + strconv.FormatInt(a.Version, 10), a.Time
			},
			// An alert's latency runs from its first event to its first version in
			// ClickHouse: a later version (a grown count, a window's final figures) would
			// count the time the alert stayed open.
			since: func(a *schemas.Alert) int64 {
				if a.Version > 1 {
					return 0
				}
				return a.Time
			},
			insert: (*Store).InsertAlerts,
		},
		// Triage is versioned (ReplacingMergeTree(version), read by the highest version): a
		// replayed record writes a row equal to one already there, which is harmless.
		schemas.TriageSchema: &rowWriter[*TriageRow]{
			tbl: AlertTriageTable, src: t.Triage(), serde: serde,
			decode: triageRow,
			key:    func(r *TriageRow) (string, int64) { return r.AlertID, 0 },
			insert: (*Store).InsertTriage,
		},
	}
	for _, k := range kinds {
		w[k.Codec.Schema] = newEventWriter(k, t.Enriched(k.Name), serde)
	}
	for schema, kind := range contextKindOfSchema {
		w[schema] = &rowWriter[*ContextRow]{
			tbl: contextTables[kind].table, src: t.Context(kind), serde: serde,
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
