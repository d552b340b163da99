package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// StatefulConfig configures RunStateful: an exactly-once loop whose stage keeps state per
// partition and writes it to a changelog in the same transaction as its output and offsets.
type StatefulConfig struct {
	TransactConfig
	// ManualPartitionTopics are topics whose produced records go to the record's Partition
	// (a changelog partition mirrors the input partition); others are hashed by key.
	ManualPartitionTopics []string
	// OnAssigned is called with newly assigned partitions, before any of their records are
	// polled: the stage restores their state here.
	OnAssigned func(ctx context.Context, assigned map[string][]int32)
	// OnRevoked is called with partitions revoked or lost: the stage forgets their state.
	OnRevoked func(ctx context.Context, revoked map[string][]int32)
	// BeforeBatch, when set, is called before each polled batch is transformed.
	BeforeBatch func()
	// Flush is called after a batch was transformed; the records it returns are produced in
	// the same transaction. An error aborts the transaction.
	Flush func() ([]*kgo.Record, error)
	// OnAborted is called after a transaction was aborted: consumption rewinds to the last
	// committed offsets, so the stage must roll its state back to the changelog.
	OnAborted func(ctx context.Context)
}

// RunStateful is RunTransact with partition hooks and a per-batch flush (see StatefulConfig).
// It returns nil when ctx is done, after finishing the transaction in flight.
func RunStateful(ctx context.Context, cfg Config, sc StatefulConfig, transform Transform, extra ...kgo.Opt) error {
	tc := sc.TransactConfig
	log := tc.Log
	if log == nil {
		log = slog.Default()
	}
	if tc.MaxPollRecords <= 0 {
		tc.MaxPollRecords = 10000
	}
	opts := append(cfg.ClientOpts(),
		kgo.ConsumerGroup(tc.Group),
		kgo.ConsumeTopics(tc.Topics...),
		kgo.TransactionalID(tc.TransactionalID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(manualFor(sc.ManualPartitionTopics)),
	)
	if sc.OnAssigned != nil {
		opts = append(opts, kgo.OnPartitionsAssigned(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { sc.OnAssigned(ctx, m) }))
	}
	if sc.OnRevoked != nil {
		opts = append(opts, kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { sc.OnRevoked(ctx, m) }))
	}
	opts = append(opts, extra...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("%s: create transactional session: %w", tc.Stage, err)
	}
	defer sess.Close()
	dlq := cfg.Topics().DLQ()
	for {
		fetches := sess.PollRecords(ctx, tc.MaxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			log.Warn("fetch error", "stage", tc.Stage, "topic", topic, "partition", p, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		if sc.BeforeBatch != nil {
			sc.BeforeBatch()
		}
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TransactionTimeout)
		in, out, dead, err := runStatefulOne(tctx, sess, fetches, transform, sc.Flush, tc.Stage, dlq, log)
		cancel()
		if err != nil {
			log.Warn("transaction aborted; the batch will be consumed again", "stage", tc.Stage, "err", err)
			if sc.OnAborted != nil {
				sc.OnAborted(ctx)
			}
			continue
		}
		if tc.OnRecords != nil {
			tc.OnRecords(in, out, dead)
		}
	}
}

// runStatefulOne transforms one batch and produces its output and the flushed records in one
// transaction.
func runStatefulOne(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches, transform Transform,
	flush func() ([]*kgo.Record, error), stage, dlq string, log *slog.Logger) (in, out, dead int, err error) {
	if err := sess.Begin(); err != nil {
		return 0, 0, 0, fmt.Errorf("begin transaction: %w", err)
	}
	var (
		mu      sync.Mutex
		prodErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			prodErr = errors.Join(prodErr, err)
			mu.Unlock()
		}
	}
	fetches.EachRecord(func(rec *kgo.Record) {
		in++
		outs, terr := transform(rec)
		if terr != nil {
			dead++
			log.Debug("dead-lettering record", "stage", stage, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", terr)
			sess.Produce(ctx, DeadLetter(dlq, rec, stage, terr), promise)
			return
		}
		for _, o := range outs {
			out++
			sess.Produce(ctx, o, promise)
		}
	})
	if flush != nil {
		recs, ferr := flush()
		if ferr != nil {
			prodErr = errors.Join(prodErr, fmt.Errorf("flush state: %w", ferr))
		}
		for _, r := range recs {
			sess.Produce(ctx, r, promise)
		}
	}
	if err := sess.Client().Flush(ctx); err != nil {
		prodErr = errors.Join(prodErr, err)
	}
	mu.Lock()
	commit := kgo.TransactionEndTry(prodErr == nil)
	mu.Unlock()
	committed, err := sess.End(ctx, commit)
	if err != nil {
		return in, out, dead, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		if prodErr != nil {
			return in, out, dead, fmt.Errorf("produce: %w", prodErr)
		}
		return in, out, dead, errors.New("transaction not committed (group rebalanced)")
	}
	return in, out, dead, nil
}

// manualPartitioner sends records of some topics to their Partition, others by key hash.
type manualPartitioner struct {
	topics []string
	manual kgo.Partitioner
	hashed kgo.Partitioner
}

func manualFor(topics []string) kgo.Partitioner {
	return &manualPartitioner{topics: topics, manual: kgo.ManualPartitioner(), hashed: kgo.StickyKeyPartitioner(nil)}
}

func (p *manualPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	if slices.Contains(p.topics, t) {
		return p.manual.ForTopic(t)
	}
	return p.hashed.ForTopic(t)
}

// ReadPartitions reads partitions of a topic from their start to their last stable offset
// (committed transactions only), calling fn for every record in offset order per partition.
// It is how a stateful stage restores a changelog partition.
func ReadPartitions(ctx context.Context, cfg Config, topic string, partitions []int32, fn func(*kgo.Record) error) error {
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return fmt.Errorf("read %s: create client: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("read %s: list last stable offsets: %w", topic, err)
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("read %s: list start offsets: %w", topic, err)
	}
	want := map[int32]int64{} // partition -> last stable offset still to reach
	assign := map[int32]kgo.Offset{}
	for _, p := range partitions {
		end, ok := ends.Lookup(topic, p)
		if !ok || end.Err != nil {
			continue
		}
		start, _ := starts.Lookup(topic, p)
		if end.Offset > start.Offset {
			want[p] = end.Offset
			assign[p] = kgo.NewOffset().At(start.Offset)
		}
	}
	if len(want) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})
	idle := 0
	nearEnd := map[int32]bool{} // only a commit marker can remain
	for len(want) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("read %s: %w", topic, ctx.Err())
		}
		if fetches.NumRecords() == 0 {
			// The tail before the last stable offset may be only transaction markers or
			// aborted records, which are never returned: a few empty polls mean we are done.
			idle++
			if idle >= 4 || (idle >= 1 && len(nearEnd) == len(want)) {
				return nil
			}
			continue
		}
		idle = 0
		var ferr error
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end || ferr != nil {
				return
			}
			ferr = fn(r)
			if r.Offset+1 >= end {
				delete(want, r.Partition)
				delete(nearEnd, r.Partition)
			} else if r.Offset+2 >= end {
				nearEnd[r.Partition] = true
			}
		})
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
	}
	return nil
}
