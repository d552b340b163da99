package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

// eventWriter is the tableWriter of one event kind: each record's body is decoded straight
// into the kind's column buffer (one slice per field, no value per event), and a write
// inserts the columns the kind's entry lists, whole.
type eventWriter struct {
	kind *schemas.Kind
	src  string
	// serde frames the records: a body written with another version of the schema is
	// decoded through goavro and encoded again with the codec's (avro.Serde.CurrentBody).
	serde *avro.Serde
	cols  schemas.ColumnBuffer
	// Per row, in the order of cols: the record, its body (what cols views), its id and time.
	recs   []*kgo.Record
	bodies [][]byte
	ids    []string
	times  []int64
	// part is a second buffer, for inserting some of the rows (a split, or without replays).
	part schemas.ColumnBuffer
}

func newEventWriter(k *schemas.Kind, topic string, serde *avro.Serde) *eventWriter {
	return &eventWriter{kind: k, src: topic, serde: serde, cols: k.Codec.NewColumns()}
}

func (w *eventWriter) table() string { return w.kind.Table }
func (w *eventWriter) topic() string { return w.src }
func (w *eventWriter) pending() int  { return len(w.recs) }

func (w *eventWriter) take(r *kgo.Record, sc *avro.Schema) error {
	if sc == nil {
		return fmt.Errorf("%w: %s: tombstone on an event topic", ErrInvalidRecord, w.kind.Table)
	}
	_, body, err := w.serde.CurrentBody(r.Value)
	if err != nil {
		return err
	}
	id, ns, err := schemas.EventKey(body)
	if err == nil {
		err = checkRow(id, ns)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidRecord, w.kind.Table, err)
	}
	if err := w.cols.Append(body); err != nil {
		return &avro.DecodeError{Schema: sc.Name, Err: err}
	}
	w.recs, w.bodies = append(w.recs, r), append(w.bodies, body)
	w.ids, w.times = append(w.ids, id), append(w.times, ns)
	return nil
}

// eventWriter as a rowSet.
func (w *eventWriter) len() int                  { return len(w.recs) }
func (w *eventWriter) rec(i int) *kgo.Record     { return w.recs[i] }
func (w *eventWriter) key(i int) (string, int64) { return w.ids[i], w.times[i] }
func (w *eventWriter) since(i int) int64         { return w.times[i] }

// insert writes the rows at idx: the column buffer as it is when idx is every row, else the
// rows decoded again into the second buffer.
func (w *eventWriter) insert(ctx context.Context, st *Store, idx []int) error {
	if len(idx) == len(w.recs) {
		return st.InsertColumns(ctx, w.kind, w.cols)
	}
	if w.part == nil {
		w.part = w.kind.Codec.NewColumns()
	}
	w.part.Reset()
	for _, i := range idx {
		if err := w.part.Append(w.bodies[i]); err != nil {
			return fmt.Errorf("decode row %d again: %w", i, err) // it decoded when taken
		}
	}
	return st.InsertColumns(ctx, w.kind, w.part)
}

func (w *eventWriter) write(ctx context.Context, b *batcher) (int, []pendingDead, error) {
	run := writeRows(ctx, b, w.kind.Table, "event_id", w)
	w.keep(func(i int) bool { return !run.settled[i] })
	return run.written, run.dead, run.err
}

func (w *eventWriter) drop(gone map[topicPartition]bool) {
	w.keep(func(i int) bool { return !gone[tpOf(w.recs[i])] })
}

// keep forgets the rows keep says no to; the rows kept are decoded again.
func (w *eventWriter) keep(keep func(i int) bool) {
	n := 0
	for i := range w.recs {
		if keep(i) {
			w.recs[n], w.bodies[n], w.ids[n], w.times[n] = w.recs[i], w.bodies[i], w.ids[i], w.times[i]
			n++
		}
	}
	if n == len(w.recs) {
		return
	}
	clear(w.recs[n:])
	clear(w.bodies[n:])
	clear(w.ids[n:])
	w.recs, w.bodies, w.ids, w.times = w.recs[:n], w.bodies[:n], w.ids[:n], w.times[:n]
	w.cols.Reset()
	for _, body := range w.bodies {
		_ = w.cols.Append(body) // each decoded when it was taken
	}
	if w.part != nil {
		w.part.Reset()
	}
}

// InsertColumns writes the rows of cols, a column buffer of kind's codec, into the kind's
// table in one INSERT of the columns its entry lists. It returns when ClickHouse acknowledged
// the rows, or with an error, in which case none, some or all of them may have been written.
func (s *Store) InsertColumns(ctx context.Context, k *schemas.Kind, cols schemas.ColumnBuffer) error {
	if cols.Len() == 0 {
		return nil
	}
	plan, err := s.insertPlan(k)
	if err != nil {
		return err
	}
	fields := cols.Columns()
	values := make([]any, len(plan.cols))
	for i, c := range plan.cols {
		if values[i], err = convert(fields[c.field].Values, c.as); err != nil {
			return fmt.Errorf("insert into %s: column %s: %w", k.Table, c.name, err)
		}
	}
	return s.insertColumns(ctx, k.Table, plan.names, values)
}

// InsertEvents writes events of kind k (values of its codec's type) into its table in one
// INSERT, as InsertColumns does.
func (s *Store) InsertEvents(ctx context.Context, k *schemas.Kind, evs ...schemas.Record) error {
	cols := k.Codec.NewColumns()
	var body []byte
	for _, e := range evs {
		body = e.AppendAvro(body[:0:0]) // the columns view each body: a new one per event
		if err := cols.Append(body); err != nil {
			return fmt.Errorf("insert into %s: %w", k.Table, err)
		}
	}
	return s.InsertColumns(ctx, k, cols)
}

// insertPlan is how the columns of a kind's table are filled from its column buffer.
type insertPlan struct {
	names []string
	cols  []planColumn
}

type planColumn struct {
	name  string
	field int // index in the codec's Fields (and ColumnBuffer.Columns)
	as    schemas.Conversion
}

// insertPlan returns the plan of kind k, made once per Store.
func (s *Store) insertPlan(k *schemas.Kind) (*insertPlan, error) {
	if p, ok := s.plans.Load(k); ok {
		return p.(*insertPlan), nil
	}
	index := make(map[string]int, len(k.Codec.Fields))
	for i, f := range k.Codec.Fields {
		index[f.Path] = i
	}
	p := &insertPlan{}
	for _, c := range k.Columns {
		i, ok := index[c.Path]
		if !ok {
			return nil, fmt.Errorf("kind %s: column %s: no field %s", k.Name, c.Name, c.Path)
		}
		p.names = append(p.names, c.Name)
		p.cols = append(p.cols, planColumn{name: c.Name, field: i, as: c.As})
	}
	s.plans.Store(k, p)
	return p, nil
}

// convert returns a column buffer's values as the driver appends them to their column: as they
// are, booleans as UInt8, and event times as the conversion says.
func convert(v any, as schemas.Conversion) (any, error) {
	if as != schemas.AsIs {
		ns, ok := v.([]int64)
		if !ok {
			return nil, fmt.Errorf("%s of %T, want nanoseconds ([]int64)", as, v)
		}
		return convertTime(ns, as), nil
	}
	switch x := v.(type) {
	case []bool:
		out := make([]uint8, len(x))
		for i, b := range x {
			out[i] = boolUInt8(b)
		}
		return out, nil
	case [][]string:
		for i, s := range x {
			if s == nil {
				x[i] = []string{}
			}
		}
	}
	return v, nil
}

// convertTime converts event times (ns since the epoch), clamped into DateTime's range.
func convertTime(ns []int64, as schemas.Conversion) any {
	switch as {
	case schemas.AsDateTime:
		out := make([]int64, len(ns)) // the driver takes int64 DateTimes as seconds
		for i, t := range ns {
			out[i] = clampNs(t) / int64(time.Second)
		}
		return out
	case schemas.AsDate:
		out := make([]time.Time, len(ns))
		for i, t := range ns {
			sec := clampNs(t) / int64(time.Second)
			out[i] = time.Unix(sec-sec%86400, 0).UTC()
		}
		return out
	default: // AsUInt64
		out := make([]uint64, len(ns))
		for i, t := range ns {
			out[i] = uint64(clampNs(t))
		}
		return out
	}
}

func clampNs(ns int64) int64 { return min(max(ns, 0), maxDateTimeNs) }
