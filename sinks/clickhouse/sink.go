package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// StageName is the stage name in counters and dead-letter headers.
const StageName = "sink"

// shutdownGrace bounds the final flush and commit once Run's context is done.
const shutdownGrace = 5 * time.Second

// insertTimeout bounds one insert attempt, which runs to its end even when the stage stops.
const insertTimeout = 30 * time.Second

// maxBackoff caps the wait between two attempts of an insert or a dead-letter produce.
const maxBackoff = 30 * time.Second

// Reasons a record is dead-lettered rather than written; they wrap the cause.
var (
	// ErrUnexpectedSchema: the record decoded, but with a schema the sink has no table for.
	ErrUnexpectedSchema = errors.New("schema has no ClickHouse table")
	// ErrInvalidRecord: the record decoded but cannot be stored (no id, time out of range).
	ErrInvalidRecord = errors.New("invalid record")
	// ErrInsertFailed: ClickHouse refused the record's batch on every attempt.
	ErrInsertFailed = errors.New("insert failed")
)

// Deps are what a Sink uses from its process; every field may be nil.
type Deps struct {
	Log      *slog.Logger             // default: discard
	Metrics  prometheus.Registerer    // default: metrics are not registered
	Counters *telemetry.StageCounters // default: new counters registered on Metrics
}

// Sink is the sink stage. Create it with New and start it with Run.
type Sink struct {
	cfg      Config
	kcfg     kafka.Config
	log      *slog.Logger
	counters *telemetry.StageCounters
	serde    *avro.Serde
	latency  *prometheus.HistogramVec
	replayed *prometheus.CounterVec
	samples  latencyReservoir
}

// New checks the configuration and prepares a Sink; it connects to nothing until Run.
func New(cfg Config, kcfg kafka.Config, deps Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("clickhouse sink config: %w", err)
	}
	if err := kcfg.Validate(); err != nil {
		return nil, fmt.Errorf("clickhouse sink kafka config: %w", err)
	}
	serde, err := schemas.NewSerde()
	if err != nil {
		return nil, fmt.Errorf("clickhouse sink: load schemas: %w", err)
	}
	s := &Sink{cfg: cfg, kcfg: kcfg, log: deps.Log, counters: deps.Counters, serde: serde}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.counters == nil {
		s.counters = telemetry.NewStageCounters(deps.Metrics, StageName, cfg.Group)
	}
	s.latency = register(deps.Metrics, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crumbs_sink_event_latency_seconds",
		Help:    "Time from an event's time to ClickHouse acknowledging its row.",
		Buckets: prometheus.ExponentialBuckets(0.001, 1.25, 60), // 1ms to ~11 min, 25% apart: fine enough for p50/p99
	}, []string{"table"}))
	s.replayed = register(deps.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crumbs_sink_replayed_rows_total",
		Help: "Consumed rows skipped because ClickHouse already held their id (replays after a restart or rebalance).",
	}, []string{"table"}))
	return s, nil
}

// register registers c on reg, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Counters returns the stage's counters: In per record consumed, Out per row written,
// DeadLettered per record sent to the dead-letter topic.
func (s *Sink) Counters() *telemetry.StageCounters { return s.counters }

// LatencySamples returns a uniform random sample (at most 16384) of the latencies observed
// since the start or the last ResetLatencySamples: the time from an event's (or alert's)
// time to ClickHouse acknowledging its row. Use Quantile to read p50 or p99.
func (s *Sink) LatencySamples() []time.Duration { return s.samples.snapshot() }

// ResetLatencySamples forgets the latency samples taken so far.
func (s *Sink) ResetLatencySamples() { s.samples.reset() }

// Run consumes, writes and commits until ctx is done; then it flushes what it holds, commits,
// closes its clients and returns nil, within a few seconds. It returns an error when it
// cannot start (ClickHouse or Kafka unreachable, migrations failing), when Kafka refuses the
// dead letters it must write before going on, or when the final flush fails (the records
// are then replayed by the next run). Bad records and batches ClickHouse keeps refusing are
// dead-lettered and do not stop it. Run may be called once.
func (s *Sink) Run(ctx context.Context) error {
	store, err := Open(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("clickhouse sink: %w", err)
	}
	defer store.Close()

	topics := s.kcfg.Topics()
	if err := s.ensureTopics(ctx); err != nil {
		return fmt.Errorf("clickhouse sink: %w", err)
	}
	writers := newWriters(topics)
	b := &batcher{
		sink: s, store: store, dlqTopic: topics.DLQ(), writers: writers, order: sortedKeys(writers),
		byTopic: map[string]tableWriter{},
		last:    map[topicPartition]*kgo.Record{}, suspect: map[topicPartition]bool{},
	}
	for _, w := range writers {
		b.byTopic[w.topic()] = w
	}
	opts := append(s.kcfg.ClientOpts(),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(consumedTopics(writers)...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(b.assigned),
		kgo.OnPartitionsRevoked(b.revoked),
		kgo.OnPartitionsLost(b.lost),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("clickhouse sink: create kafka client: %w", err)
	}
	b.client = cl
	defer cl.Close()
	s.log.Info("sink started", "group", s.cfg.Group, "database", s.cfg.Database,
		"batch_size", s.cfg.BatchSize, "batch_max_age", s.cfg.BatchMaxAge)

	rctx, stopRetention := context.WithCancel(ctx)
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		s.enforceRetention(rctx, store)
	}()
	loopErr := b.loop(ctx)
	stopRetention()
	<-retentionDone

	// Final flush: the stage's context is done, so give it a bounded one of its own.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	b.mu.Lock()
	flushErr := b.flush(fctx)
	b.mu.Unlock()
	if loopErr != nil {
		return fmt.Errorf("clickhouse sink: %w", loopErr)
	}
	if flushErr != nil {
		return fmt.Errorf("clickhouse sink: final flush (its records will be replayed): %w", flushErr)
	}
	s.log.Info("sink stopped")
	return nil
}

// ensureTopics creates the topics the sink reads and writes when they are missing, before
// the consumer first asks for them.
func (s *Sink) ensureTopics(ctx context.Context) error {
	admin, err := kgo.NewClient(s.kcfg.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("create kafka admin client: %w", err)
	}
	defer admin.Close()
	t := s.kcfg.Topics()
	specs := []kafka.TopicSpec{{Name: t.Alerts()}, {Name: t.DLQ()}}
	for _, k := range kafka.Kinds {
		specs = append(specs, kafka.TopicSpec{Name: t.Enriched(k)})
	}
	for _, k := range kafka.ContextKinds {
		specs = append(specs, kafka.TopicSpec{Name: t.Context(k), Compacted: true})
	}
	return s.kcfg.EnsureTopics(ctx, admin, specs)
}

type topicPartition struct {
	topic     string
	partition int32
}

func tpOf(r *kgo.Record) topicPartition { return topicPartition{r.Topic, r.Partition} }

// batcher is one Run's state. The poll loop holds mu from the moment a poll returns until
// it allows rebalancing again; the rebalance callbacks take it too, so they see the buffers
// only between polls.
type batcher struct {
	sink     *Sink
	store    *Store
	client   *kgo.Client
	dlqTopic string

	// writers buffer rows per table, by the schema they take; order is their flush order.
	writers map[string]tableWriter
	order   []string
	// byTopic finds the writer of a tombstone, which has no schema.
	byTopic map[string]tableWriter

	mu sync.Mutex
	// last is the last record taken per partition since the last commit: everything up to
	// it is buffered, dead-lettered, or written.
	last map[topicPartition]*kgo.Record
	// since is when the oldest uncommitted record was taken; zero when nothing is pending.
	since time.Time
	// suspect partitions may replay records already written: assigned since the last batch
	// that found none of its ids in ClickHouse, or part of a batch whose insert failed.
	suspect map[topicPartition]bool
}

func (b *batcher) loop(ctx context.Context) error {
	s := b.sink
	for ctx.Err() == nil {
		pctx, cancel := b.pollContext(ctx)
		fetches := b.client.PollRecords(pctx, b.room())
		cancel()

		b.mu.Lock()
		err := b.handle(ctx, fetches)
		if err == nil && b.due(time.Now()) {
			if ferr := b.flush(ctx); ferr != nil && ctx.Err() == nil {
				s.log.Warn("flush failed; records stay buffered", "err", ferr)
			}
		}
		b.mu.Unlock()
		b.client.AllowRebalance()
		if err != nil {
			return err
		}
	}
	return nil
}

// pollContext bounds a poll by the time the oldest pending record must be flushed.
func (b *batcher) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	b.mu.Lock()
	since := b.since
	b.mu.Unlock()
	if since.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, since.Add(b.sink.cfg.BatchMaxAge))
}

// room is how many records a poll may return without the buffers exceeding BatchSize.
func (b *batcher) room() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.sink.cfg.BatchSize-b.pending(), 1)
}

// pending is how many rows all writers buffer.
func (b *batcher) pending() int {
	n := 0
	for _, w := range b.writers {
		n += w.pending()
	}
	return n
}

func (b *batcher) due(now time.Time) bool {
	if b.pending() >= b.sink.cfg.BatchSize {
		return true
	}
	return !b.since.IsZero() && now.Sub(b.since) >= b.sink.cfg.BatchMaxAge
}

// handle takes a poll's records into the buffers and dead-letters the bad ones. It returns
// an error only when the stage must stop.
func (b *batcher) handle(ctx context.Context, fetches kgo.Fetches) error {
	s := b.sink
	for _, fe := range fetches.Errors() {
		switch {
		case errors.Is(fe.Err, kgo.ErrClientClosed):
			return fmt.Errorf("poll: %w", fe.Err)
		case errors.Is(fe.Err, context.Canceled), errors.Is(fe.Err, context.DeadlineExceeded):
		default:
			s.log.Warn("fetch error; the client retries", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
		}
	}
	var dead []*kgo.Record
	now := time.Now()
	fetches.EachRecord(func(r *kgo.Record) {
		s.counters.In(1)
		if b.since.IsZero() {
			b.since = now
		}
		b.last[tpOf(r)] = r
		if err := b.take(r); err != nil {
			s.log.Debug("dead-lettering record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", err)
			dead = append(dead, kafka.DeadLetter(b.dlqTopic, r, StageName, err))
		}
	})
	return b.deadLetter(ctx, dead)
}

// take decodes r and buffers it for its table, or says why it cannot be written. A record
// is taken only from the topic of its schema's table; a tombstone only from a context topic.
func (b *batcher) take(r *kgo.Record) error {
	if r.Value == nil {
		w, ok := b.byTopic[r.Topic]
		if !ok {
			return fmt.Errorf("%w: tombstone on %s", ErrInvalidRecord, r.Topic)
		}
		return w.take(r, nil)
	}
	sc, native, err := b.sink.serde.Decode(r.Value)
	if err != nil {
		return err
	}
	w, ok := b.writers[sc.Name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnexpectedSchema, sc.Name)
	}
	if w.topic() != r.Topic {
		return fmt.Errorf("%w: %s on %s (its table %s reads %s)", ErrUnexpectedSchema, sc.Name, r.Topic, w.table(), w.topic())
	}
	return w.take(r, native)
}

// checkRow refuses what would break idempotency or the DateTime column.
func checkRow(id string, ns int64) error {
	if id == "" {
		return fmt.Errorf("%w: empty id", ErrInvalidRecord)
	}
	if !ValidTime(ns) {
		return fmt.Errorf("%w: time %d ns is outside ClickHouse DateTime's range", ErrInvalidRecord, ns)
	}
	return nil
}

// flush writes every table's buffer, then commits every record taken so far. A batch
// ClickHouse refuses MaxRetries+1 times is dead-lettered and the other tables go on. When ctx
// ends first, the buffers are kept and nothing is committed.
func (b *batcher) flush(ctx context.Context) error {
	if len(b.last) == 0 && b.pending() == 0 {
		return nil
	}
	for _, name := range b.order {
		if err := b.flushTable(ctx, b.writers[name]); err != nil {
			return err
		}
	}
	recs := make([]*kgo.Record, 0, len(b.last))
	for _, r := range b.last {
		recs = append(recs, r)
	}
	if err := b.client.CommitRecords(ctx, recs...); err != nil {
		// The rows are written; a replay of them is filtered after the next assignment.
		return fmt.Errorf("commit offsets: %w", err)
	}
	clear(b.last)
	b.since = time.Time{}
	return nil
}

// flushTable writes one writer's buffer, retrying, then dead-lettering it.
func (b *batcher) flushTable(ctx context.Context, w tableWriter) error {
	if w.pending() == 0 {
		return nil
	}
	var written int
	err := b.retry(ctx, w.records(), func(ctx context.Context) error {
		n, err := w.write(ctx, b)
		written = n
		return err
	})
	if err != nil {
		return err
	}
	b.sink.counters.Out(written)
	w.clear()
	return nil
}

func (b *batcher) observe(table string, lat []time.Duration) {
	h := b.sink.latency.WithLabelValues(table)
	for _, d := range lat {
		h.Observe(d.Seconds())
	}
	b.sink.samples.observe(lat)
}

// dropReplayed returns rows without those of suspect partitions that table already holds.
// A suspect partition none of whose rows in the batch were found is cleared: its replay,
// which starts right at the committed offset, is over.
func dropReplayed[P any](ctx context.Context, b *batcher, table string, rows []P,
	key func(P) (*kgo.Record, string), existing func(context.Context, []P) (map[string]bool, error),
) ([]P, error) {
	var check []P
	for _, p := range rows {
		if r, _ := key(p); b.suspect[tpOf(r)] {
			check = append(check, p)
		}
	}
	if len(check) == 0 {
		return rows, nil
	}
	found, err := existing(ctx, check)
	if err != nil {
		return nil, err
	}
	still := map[topicPartition]bool{}
	out := make([]P, 0, len(rows))
	for _, p := range rows {
		r, id := key(p)
		if found[id] {
			still[tpOf(r)] = true
			continue
		}
		out = append(out, p)
	}
	for _, p := range check {
		r, _ := key(p)
		if tp := tpOf(r); !still[tp] {
			delete(b.suspect, tp)
		}
	}
	if n := len(rows) - len(out); n > 0 {
		b.sink.replayed.WithLabelValues(table).Add(float64(n))
		b.sink.log.Info("skipped replayed rows already in ClickHouse", "table", table, "rows", n)
	}
	return out, nil
}

// retry runs insert until it succeeds, backing off exponentially between attempts. After
// MaxRetries+1 failures it dead-letters recs and returns nil; when ctx ends first it returns
// ctx's error and leaves recs to the caller. A failed attempt marks recs' partitions
// suspect, since ClickHouse may have written the rows before the error reached us.
func (b *batcher) retry(ctx context.Context, recs []*kgo.Record, insert func(context.Context) error) error {
	s := b.sink
	backoff := s.cfg.RetryBackoff
	var err error
	for attempt := 0; attempt <= s.cfg.MaxRetries; attempt++ {
		if attempt > 0 {
			if werr := sleep(ctx, backoff); werr != nil {
				return fmt.Errorf("retry insert (last error: %v): %w", err, werr)
			}
			backoff = min(2*backoff, maxBackoff)
		}
		// An attempt is not cut short when the stage stops: an insert abandoned half way may
		// still land after the replay check that follows it, and be written twice.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), insertTimeout)
		err = insert(actx)
		cancel()
		if err == nil {
			return nil
		}
		for _, r := range recs {
			b.suspect[tpOf(r)] = true
		}
		if ctx.Err() != nil {
			return fmt.Errorf("insert: %w", err)
		}
		s.log.Warn("insert failed", "attempt", attempt+1, "of", s.cfg.MaxRetries+1, "err", err)
	}
	reason := fmt.Errorf("%w after %d attempts: %w", ErrInsertFailed, s.cfg.MaxRetries+1, err)
	dead := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		dead[i] = kafka.DeadLetter(b.dlqTopic, r, StageName, reason)
	}
	s.log.Error("dead-lettering batch ClickHouse refused", "records", len(recs), "err", err)
	return b.deadLetter(ctx, dead)
}

// deadLetter produces dead letters synchronously, retrying until Kafka takes them or ctx
// ends: offsets are never committed past a record that is neither written nor dead-lettered.
func (b *batcher) deadLetter(ctx context.Context, dead []*kgo.Record) error {
	if len(dead) == 0 {
		return nil
	}
	s := b.sink
	backoff := s.cfg.RetryBackoff
	for {
		err := b.client.ProduceSync(ctx, dead...).FirstErr()
		if err == nil {
			s.counters.DeadLettered(len(dead))
			return nil
		}
		s.log.Warn("produce dead letters failed; retrying", "records", len(dead), "err", err)
		if werr := sleep(ctx, backoff); werr != nil {
			return fmt.Errorf("produce %d dead letters to %s (last error: %v): %w", len(dead), b.dlqTopic, err, werr)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// assigned marks new partitions suspect: their records since the committed offset may have
// been written by an earlier owner that died before committing.
func (b *batcher) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			b.suspect[topicPartition{t, p}] = true
		}
	}
}

// revoked flushes and commits everything before partitions go to another member, so that
// it starts where this one stopped.
func (b *batcher) revoked(ctx context.Context, _ *kgo.Client, parts map[string][]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flush(ctx); err != nil {
		b.sink.log.Warn("flush on revoke failed; the next owner replays", "err", err)
		b.drop(parts)
	}
	for t, ps := range parts {
		for _, p := range ps {
			delete(b.suspect, topicPartition{t, p})
		}
	}
}

// lost drops what is buffered from partitions that are no longer ours; committing them
// would fail, and their next owner replays them.
func (b *batcher) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drop(parts)
	for t, ps := range parts {
		for _, p := range ps {
			delete(b.suspect, topicPartition{t, p})
		}
	}
}

func (b *batcher) drop(parts map[string][]int32) {
	gone := map[topicPartition]bool{}
	for t, ps := range parts {
		for _, p := range ps {
			gone[topicPartition{t, p}] = true
			delete(b.last, topicPartition{t, p})
		}
	}
	for _, w := range b.writers {
		w.drop(gone)
	}
	if len(b.last) == 0 {
		b.since = time.Time{}
	}
}
