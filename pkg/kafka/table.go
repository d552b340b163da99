package kafka

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Table materialises compacted topics in full — every partition, from the start, without a
// consumer group — like a global table: each instance of a stage holds all of it.
type Table struct {
	client *kgo.Client
	topics []string
	apply  func(*kgo.Record)
	log    *slog.Logger
	ready  chan struct{}
	start  map[string]map[int32]int64 // end offsets when the table was opened
}

// OpenTable starts reading topics from the beginning; apply is called for every record (a nil
// Value is a tombstone) from the one goroutine that Run owns.
func OpenTable(ctx context.Context, cfg Config, topics []string, apply func(*kgo.Record), log *slog.Logger) (*Table, error) {
	opts := append(cfg.ClientOpts(),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Commit markers are delivered so that a topic written with transactions, whose
		// last offset is a marker, is seen to be read to its end.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("open context table: %w", err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("open context table: list end offsets of %v: %w", topics, err)
	}
	start := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset <= 0 {
			return
		}
		if start[o.Topic] == nil {
			start[o.Topic] = map[int32]int64{}
		}
		start[o.Topic][o.Partition] = o.Offset
	})
	if log == nil {
		log = slog.Default()
	}
	return &Table{client: cl, topics: topics, apply: apply, log: log, ready: make(chan struct{}), start: start}, nil
}

// Ready is closed once every record that existed when the table was opened has been applied.
func (t *Table) Ready() <-chan struct{} { return t.ready }

// Run applies records until ctx is done, then closes the client.
func (t *Table) Run(ctx context.Context) error {
	defer t.client.Close()
	t.checkReady(nil)
	for {
		fetches := t.client.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.log.Warn("context table fetch error", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				t.apply(r)
			}
			t.checkReady(r)
		})
	}
}

// checkReady marks progress and closes ready once every partition reached its start end.
func (t *Table) checkReady(r *kgo.Record) {
	select {
	case <-t.ready:
		return
	default:
	}
	if r != nil {
		if ps := t.start[r.Topic]; ps != nil {
			if end, ok := ps[r.Partition]; ok && r.Offset+1 >= end {
				delete(ps, r.Partition)
			}
			if len(ps) == 0 {
				delete(t.start, r.Topic)
			}
		}
	}
	if len(t.start) == 0 {
		close(t.ready)
	}
}
