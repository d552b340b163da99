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
	// Tick, when set, is called about every TickInterval from the loop, between batches
	// (also when no record arrives: the stage closes windows of idle partitions here). It
	// returns output records (counted as produced, like a Transform's) and state records
	// (like Flush's); both are produced in one transaction of their own, without consumed
	// offsets. An error, or that transaction aborting, calls OnAborted. ctx is the loop's:
	// done when the stage stops.
	Tick func(ctx context.Context) (out, state []*kgo.Record, err error)
	// TickInterval is how often Tick is called at least. Default 1s.
	TickInterval time.Duration
	// InstanceID, when set, makes the consumer a static group member (KIP-345,
	// kgo.InstanceID): an instance restarted with the same id (after a crash too) gets its
	// partitions back at once instead of after the session timeout of its dead predecessor;
	// an instance stopped for good keeps its partitions until that timeout (45s). Empty: a
	// dynamic member that leaves the group when it stops.
	InstanceID string
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
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(manualFor(sc.ManualPartitionTopics)),
	)
	if sc.OnAssigned != nil {
		opts = append(opts, kgo.OnPartitionsAssigned(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { sc.OnAssigned(ctx, m) }))
	}
	if sc.OnRevoked != nil {
		opts = append(opts, kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { sc.OnRevoked(ctx, m) }))
	}
	if sc.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(sc.InstanceID))
	}
	opts = append(opts, extra...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("%s: create transactional session: %w", tc.Stage, err)
	}
	defer sess.Close()
	// Fence a dead predecessor with the same transactional id now: that aborts its open
	// transaction, whose pending offset commit would otherwise keep this group from fetching
	// stable offsets (require-stable is always on in franz-go) until the transaction timeout.
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: initialise transactional producer %s: %w", tc.Stage, tc.TransactionalID, err)
	}
	if sc.TickInterval <= 0 {
		sc.TickInterval = time.Second
	}
	dlq := cfg.Topics().DLQ()
	lastTick := time.Now()
	for {
		fetches := poll(ctx, sess, tc.MaxPollRecords, sc.Tick != nil, sc.TickInterval)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				return // the poll's own timeout, for the next tick
			}
			log.Warn("fetch error", "stage", tc.Stage, "topic", topic, "partition", p, "err", err)
		})
		if fetches.NumRecords() > 0 {
			runStatefulBatch(ctx, cfg, sc, sess, fetches, transform, dlq, log)
		}
		if sc.Tick != nil && time.Since(lastTick) >= sc.TickInterval {
			lastTick = time.Now()
			runTick(ctx, cfg, sc, sess, log)
		}
	}
}

// poll waits for records; with a tick, no longer than the tick interval.
func poll(ctx context.Context, sess *kgo.GroupTransactSession, max int, tick bool, every time.Duration) kgo.Fetches {
	if !tick {
		return sess.PollRecords(ctx, max)
	}
	pctx, cancel := context.WithTimeout(ctx, every)
	defer cancel()
	return sess.PollRecords(pctx, max)
}

// runStatefulBatch runs one polled batch in a transaction, rolling the stage back on abort.
func runStatefulBatch(ctx context.Context, cfg Config, sc StatefulConfig, sess *kgo.GroupTransactSession, fetches kgo.Fetches,
	transform Transform, dlq string, log *slog.Logger) {
	tc := sc.TransactConfig
	if sc.BeforeBatch != nil {
		sc.BeforeBatch()
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TransactionTimeout)
	batch := tc.Batch
	if batch == nil {
		batch = transform.Batch()
	}
	in, out, dead, err := runStatefulOne(tctx, sess, fetches, batch, sc.Flush, tc.Stage, dlq, log)
	cancel()
	if err != nil {
		log.Warn("transaction aborted; the batch will be consumed again", "stage", tc.Stage, "err", err)
		if sc.OnAborted != nil {
			sc.OnAborted(ctx)
		}
		return
	}
	if tc.OnRecords != nil {
		tc.OnRecords(in, out, dead)
	}
}

// runTick calls Tick and produces what it returns in a transaction of its own (no offsets),
// rolling the stage back when Tick fails or the transaction aborts.
func runTick(ctx context.Context, cfg Config, sc StatefulConfig, sess *kgo.GroupTransactSession, log *slog.Logger) {
	tc := sc.TransactConfig
	out, state, err := sc.Tick(ctx)
	if err == nil && len(out)+len(state) == 0 {
		return
	}
	if err == nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TransactionTimeout)
		err = produceInTransaction(tctx, sess, append(out, state...))
		cancel()
	}
	if err != nil {
		log.Warn("tick transaction aborted; the stage rolls back to its changelog", "stage", tc.Stage, "err", err)
		if sc.OnAborted != nil {
			sc.OnAborted(ctx)
		}
		return
	}
	if tc.OnRecords != nil {
		tc.OnRecords(0, len(out), 0)
	}
}

// produceInTransaction produces records in one transaction that consumes nothing.
func produceInTransaction(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record) error {
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var (
		mu      sync.Mutex
		prodErr error
	)
	for _, r := range recs {
		sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				prodErr = errors.Join(prodErr, err)
				mu.Unlock()
			}
		})
	}
	if err := sess.Client().Flush(ctx); err != nil {
		mu.Lock()
		prodErr = errors.Join(prodErr, err)
		mu.Unlock()
	}
	mu.Lock()
	commit := kgo.TransactionEndTry(prodErr == nil)
	mu.Unlock()
	committed, err := sess.End(ctx, commit)
	if err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		if prodErr != nil {
			return fmt.Errorf("produce: %w", prodErr)
		}
		return errors.New("transaction not committed (group rebalanced)")
	}
	return nil
}

// runStatefulOne transforms one batch and produces its output and the flushed records (flush
// may be nil, as for RunTransact) in one transaction.
func runStatefulOne(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches, transform BatchTransform,
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
	recs := fetches.Records()
	outs, errs := transform(recs)
	for i, rec := range recs {
		in++
		if terr := errs[i]; terr != nil {
			dead++
			log.Debug("dead-lettering record", "stage", stage, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", terr)
			sess.Produce(ctx, DeadLetter(dlq, rec, stage, terr), promise)
			continue
		}
		for _, o := range outs[i] {
			out++
			sess.Produce(ctx, o, promise)
		}
	}
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
