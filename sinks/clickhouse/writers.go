package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// tableWriter buffers the rows of one table and writes them in one INSERT. A batcher holds
// one per schema it consumes and calls it with its mutex held.
type tableWriter interface {
	// table is the ClickHouse table the rows go to.
	table() string
	// topic is the only topic whose records this writer takes.
	topic() string
	// take decodes one record (nil native: a tombstone) and buffers its row, or says why
	// it cannot be written.
	take(r *kgo.Record, native any) error
	// pending is how many rows are buffered.
	pending() int
	// records returns the records of the buffered rows.
	records() []*kgo.Record
	// write inserts the buffered rows, without those a suspect partition replays, and
	// returns how many were written; the buffer is kept (see clear).
	write(ctx context.Context, b *batcher) (int, error)
	// clear forgets the buffered rows.
	clear()
	// drop forgets the rows of the given partitions.
	drop(gone map[topicPartition]bool)
}

// rowWriter is the tableWriter of rows of type T.
type rowWriter[T any] struct {
	tbl, src string
	// idCol is the id column replays are looked up by; empty for versioned tables
	// (ReplacingMergeTree(updated_at), read with FINAL), where a replay is harmless.
	idCol  string
	decode func(r *kgo.Record, native any) (T, error)
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
func (w *rowWriter[T]) clear()        { w.rows = w.rows[:0] }

func (w *rowWriter[T]) take(r *kgo.Record, native any) error {
	row, err := w.decode(r, native)
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

func (w *rowWriter[T]) records() []*kgo.Record {
	out := make([]*kgo.Record, len(w.rows))
	for i, p := range w.rows {
		out[i] = p.rec
	}
	return out
}

func (w *rowWriter[T]) write(ctx context.Context, b *batcher) (int, error) {
	todo := w.rows
	if w.idCol != "" {
		var err error
		todo, err = dropReplayed(ctx, b, w.tbl, w.rows,
			func(p pendingRow[T]) (*kgo.Record, string) { id, _ := w.key(p.row); return p.rec, id },
			func(ctx context.Context, ps []pendingRow[T]) (map[string]bool, error) {
				ids, times := make([]string, len(ps)), make([]int64, len(ps))
				for i, p := range ps {
					ids[i], times[i] = w.key(p.row)
				}
				return b.store.ExistingIDs(ctx, w.tbl, w.idCol, ids, times)
			})
		if err != nil {
			return 0, err
		}
	}
	rows := make([]T, len(todo))
	for i, p := range todo {
		rows[i] = p.row
	}
	if err := w.insert(b.store, ctx, rows); err != nil {
		return 0, err
	}
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
	return len(rows), nil
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

// eventWriter returns the writer of events of a kind whose Go type E is filled from the
// native form by schemas.FromNative.
func eventWriter[E any](topic, table string, envelope func(*E) *schemas.Envelope, insert func(*Store, context.Context, []*E) error) *rowWriter[*E] {
	return &rowWriter[*E]{
		tbl: table, src: topic, idCol: "event_id",
		decode: func(_ *kgo.Record, native any) (*E, error) {
			if native == nil {
				return nil, fmt.Errorf("tombstone on an event topic")
			}
			ev := new(E)
			return ev, schemas.FromNative(native, ev)
		},
		key:    func(e *E) (string, int64) { env := envelope(e); return env.EventID, env.Time },
		insert: insert,
	}
}

// newWriters returns the sink's writers by the full name of the schema they take; tombstones
// on a context topic go to the writer of that topic.
func newWriters(t kafka.Topics) map[string]tableWriter {
	w := map[string]tableWriter{
		schemas.ProcessSchema: &rowWriter[*schemas.ProcessEvent]{
			tbl: ProcessEventsTable, src: t.Enriched(schemas.KindProcess), idCol: "event_id",
			decode: func(_ *kgo.Record, native any) (*schemas.ProcessEvent, error) {
				if native == nil {
					return nil, fmt.Errorf("tombstone on an event topic")
				}
				return schemas.ProcessEventFromNative(native)
			},
			key:    func(e *schemas.ProcessEvent) (string, int64) { return e.EventID, e.Time },
			insert: (*Store).InsertProcessEvents,
		},
		schemas.NetworkSchema: eventWriter(t.Enriched(schemas.KindNetwork), NetworkEventsTable,
			func(e *schemas.NetworkEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertNetworkEvents),
		schemas.FileSchema: eventWriter(t.Enriched(schemas.KindFile), FileEventsTable,
			func(e *schemas.FileEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertFileEvents),
		schemas.IdentitySchema: eventWriter(t.Enriched(schemas.KindIdentity), IdentityEventsTable,
			func(e *schemas.IdentityEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertIdentityEvents),
		schemas.SystemSchema: eventWriter(t.Enriched(schemas.KindSystem), SystemEventsTable,
			func(e *schemas.SystemEvent) *schemas.Envelope { return &e.Envelope }, (*Store).InsertSystemEvents),
		schemas.AlertSchema: &rowWriter[*schemas.Alert]{
			tbl: AlertsTable, src: t.Alerts(), idCol: "alert_id",
			decode: func(_ *kgo.Record, native any) (*schemas.Alert, error) {
				if native == nil {
					return nil, fmt.Errorf("tombstone on the alerts topic")
				}
				return schemas.AlertFromNative(native)
			},
			key:    func(a *schemas.Alert) (string, int64) { return a.AlertID, a.Time },
			insert: (*Store).InsertAlerts,
		},
	}
	for schema, kind := range contextKindOfSchema {
		w[schema] = &rowWriter[*ContextRow]{
			tbl: contextTables[kind].table, src: t.Context(kind),
			decode: func(r *kgo.Record, native any) (*ContextRow, error) {
				if native == nil { // a tombstone deletes the record its key names
					return &ContextRow{Kind: kind, ID: string(r.Key), Deleted: true,
						UpdatedAt: uint64(max(r.Timestamp.UnixNano(), 0))}, nil
				}
				return ContextRowFromNative(kind, native, r.Timestamp)
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
