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
	"github.com/threatcrumbs/crumbs/pkg/retry"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// StageName is the stage name in counters and dead-letter headers.
const StageName = "sink"

// shutdownGrace bounds the final flush and commit once Run's context is done.
const shutdownGrace = 5 * time.Second

// insertTimeout bounds one insert attempt, which runs to its end even when the stage stops.
const insertTimeout = 30 * time.Second

// Reasons a record is dead-lettered rather than written; they wrap the cause.
var (
	// ErrUnexpectedSchema: the record decoded, but with a schema the sink has no table for.
	ErrUnexpectedSchema = errors.New("schema has no ClickHouse table")
	// ErrInvalidRecord: the record decoded but cannot be stored (no id, time out of range).
	ErrInvalidRecord = errors.New("invalid record")
	// ErrRefused: ClickHouse refused the record's row for its content (the row alone, once
	// its batch was split down to it); the cause says what ClickHouse answered.
	ErrRefused = errors.New("clickhouse refused the row")
)

// Deps are what a Sink uses from its process; every field may be nil.
type Deps struct {
	Log      *slog.Logger             // default: discard
	Metrics  prometheus.Registerer    // default: metrics are not registered
	Counters *telemetry.StageCounters // default: new counters registered on Metrics
	// Kinds are the event kinds written, each into its table (which a migration must have
	// created). Default schemas.Kinds.
	Kinds schemas.KindTable
	// Serde decodes the records; it must hold the kinds' schemas. Default
	// avro.NewBuiltinSerde().
	Serde *avro.Serde
}

// Sink is the sink stage. Create it with New and start it with Run.
type Sink struct {
	cfg      Config
	kcfg     kafka.Config
	log      *slog.Logger
	counters *telemetry.StageCounters
	serde    *avro.Serde
	kinds    schemas.KindTable
	latency  *prometheus.HistogramVec
	replayed *prometheus.CounterVec
	attempts *prometheus.CounterVec
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
	serde := deps.Serde
	if serde == nil {
		var err error
		if serde, err = avro.NewBuiltinSerde(); err != nil {
			return nil, fmt.Errorf("clickhouse sink: load schemas: %w", err)
		}
	}
	kinds := deps.Kinds
	if kinds == nil {
		kinds = schemas.Kinds
	}
	if err := kinds.Check(); err != nil {
		return nil, fmt.Errorf("clickhouse sink: %w", err)
	}
	for _, k := range kinds {
		if _, ok := serde.Lookup(k.Codec.Schema); !ok {
			return nil, fmt.Errorf("clickhouse sink: kind %s: schema %s is not known to the serde", k.Name, k.Codec.Schema)
		}
	}
	s := &Sink{cfg: cfg, kcfg: kcfg, log: deps.Log, counters: deps.Counters, serde: serde, kinds: kinds}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.counters == nil {
		s.counters = telemetry.NewStageCounters(deps.Metrics, StageName, cfg.Group)
	}
	s.latency = register(deps.Metrics, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crumbs_sink_event_latency_seconds",
		Help:    "Time from an event's time to ClickHouse acknowledging its row; for the alerts table, from an alert's first event to its first version's row.",
		Buckets: prometheus.ExponentialBuckets(0.001, 1.25, 60), // 1ms to ~11 min, 25% apart: fine enough for p50/p99
	}, []string{"table"}))
	s.replayed = register(deps.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crumbs_sink_replayed_rows_total",
		Help: "Consumed rows skipped because ClickHouse already held their id (replays after a restart or rebalance).",
	}, []string{"table"}))
	s.attempts = register(deps.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crumbs_sink_failed_writes_total",
		Help: "Failed writes by class: transient (ClickHouse or Kafka could not take them; the batch is retried) or permanent (ClickHouse refused an INSERT for its content; the batch is split to find the refused rows).",
	}, []string{"class"}))
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
// closes its clients and returns nil, within a few seconds.
//
// When ClickHouse is away, overloaded or read-only (a transient failure, pkg/retry), the
// sink holds its batch and its offsets, stops fetching, and tries again with backoff and
// jitter, without limit: Kafka keeps the records meanwhile. Counters().Snapshot() and the
// crumbs_stage_waiting_seconds metric show it waiting, and why. That holds at start too: Run
// waits for ClickHouse to answer before it consumes. When ClickHouse refuses a batch for its
// content, the sink splits the batch until it has the refused rows, writes the others, and
// dead-letters only those (ErrRefused, with ClickHouse's answer). Undecodable records are
// dead-lettered too; every dead letter replays through Topics.Retry(StageName).
//
// Run returns an error only when the Kafka client fails for good or a migration fails; a
// stop while ClickHouse is away is not an error (the records held are consumed again by the
// next run). Run may be called once.
func (s *Sink) Run(ctx context.Context) error {
	store, err := s.open(ctx)
	if err != nil {
		return fmt.Errorf("clickhouse sink: %w", err)
	}
	if store == nil { // stopped while waiting for ClickHouse
		return nil
	}
	defer store.Close()

	topics := s.kcfg.Topics()
	if err := s.ensureTopics(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("clickhouse sink: %w", err)
	}
	b := &batcher{
		sink: s, store: store, dlqTopic: topics.DLQ(), retryTopic: topics.Retry(StageName),
		newBatch: func() *batch { return newBatch(newWriters(topics, s.kinds, s.serde)) },
		suspect:  map[topicPartition]bool{},
		backoff:  retry.Backoff{Initial: s.cfg.RetryBackoff, Max: s.cfg.MaxBackoff},
	}
	b.cur = b.newBatch()
	b.consumed = append(consumedTopics(b.cur.writers), b.retryTopic)
	opts := append(s.kcfg.ClientOpts(),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(b.consumed...),
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
	held := b.held()
	flushErr := b.flushAll(fctx)
	b.mu.Unlock()
	if loopErr != nil {
		return fmt.Errorf("clickhouse sink: %w", loopErr)
	}
	if flushErr != nil {
		// Nothing is lost: the records are not committed, and the next run consumes them again.
		s.log.Warn("sink stopped without writing what it held; the next run writes it",
			"records", held, "err", flushErr)
		return nil
	}
	s.counters.Resumed()
	s.log.Info("sink stopped")
	return nil
}

// open connects to ClickHouse and migrates, waiting for as long as ClickHouse is away (a
// transient failure). It returns a nil Store when ctx ends first.
func (s *Sink) open(ctx context.Context) (*Store, error) {
	bo := retry.Backoff{Initial: s.cfg.RetryBackoff, Max: s.cfg.MaxBackoff}
	var since time.Time
	for {
		store, err := Open(ctx, s.cfg)
		if err == nil {
			if !since.IsZero() {
				s.log.Info("ClickHouse answers; the sink starts", "waited", time.Since(since).Round(time.Millisecond))
				s.counters.Resumed()
			}
			return store, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if retry.Classify(err) == retry.Permanent {
			return nil, err
		}
		if since.IsZero() {
			since = time.Now()
			s.log.Warn("ClickHouse is not answering; the sink waits for it before consuming", "addr", s.cfg.Addr, "err", err)
		}
		s.counters.Waiting(since, "clickhouse: "+retry.Reason(err))
		if sleep(ctx, bo.Next()) != nil {
			return nil, nil
		}
	}
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
	specs := []kafka.TopicSpec{{Name: t.Alerts()}, {Name: t.DLQ()}, {Name: t.Retry(StageName)}, {Name: t.Triage(), Compacted: true}}
	for _, k := range s.kinds {
		specs = append(specs, kafka.TopicSpec{Name: t.Enriched(k.Name)})
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

// batch is the rows of one flush: the writers' buffers, the records taken into them, and the
// dead letters of records that cannot be written.
type batch struct {
	// writers buffer rows per table, by the schema they take; order is their flush order.
	writers map[string]tableWriter
	order   []string
	// byTopic finds the writer of a tombstone, which has no schema.
	byTopic map[string]tableWriter
	// last is the last record taken per partition: everything of the batch up to it is
	// buffered, dead-lettered, or written.
	last map[topicPartition]*kgo.Record
	// since is when the batch's oldest record was taken; zero when it holds none.
	since time.Time
	// dead are dead letters not yet on the dead-letter topic; the batch's offsets are
	// committed only once they are.
	dead []pendingDead
}

func newBatch(writers map[string]tableWriter) *batch {
	bt := &batch{writers: writers, order: sortedKeys(writers), byTopic: map[string]tableWriter{},
		last: map[topicPartition]*kgo.Record{}}
	for _, w := range writers {
		bt.byTopic[w.topic()] = w
	}
	return bt
}

// pending is how many rows the batch's writers buffer.
func (bt *batch) pending() int {
	n := 0
	for _, w := range bt.writers {
		n += w.pending()
	}
	return n
}

// held is how many records the batch holds: rows and dead letters.
func (bt *batch) held() int { return bt.pending() + len(bt.dead) }

func (bt *batch) empty() bool { return len(bt.last) == 0 && bt.held() == 0 }

// batcher is one Run's state. It holds at most two batches: cur takes the records polled,
// and inflight, the batch before it, is written meanwhile (by a goroutine of its own while
// writing is set) and committed once written. The poll loop holds mu from the moment a poll
// returns until it allows rebalancing again; the rebalance callbacks take it too, so they
// see the batches only between polls. The writing goroutine touches only inflight's writers
// and, under suspectMu, suspect; offsets are committed by the loop (or a callback) alone,
// batch after batch, each once every row of it is written or dead-lettered.
type batcher struct {
	sink       *Sink
	store      *Store
	client     *kgo.Client
	dlqTopic   string
	retryTopic string
	consumed   []string
	newBatch   func() *batch

	mu       sync.Mutex
	cur      *batch
	inflight *batch // nil when every batch before cur is committed
	// writing receives the result of inflight's write while it runs; nil otherwise. A
	// batch whose write failed stays inflight, writing nil, until it is tried again.
	writing chan error
	wg      sync.WaitGroup // the writing goroutine
	spare   *batch         // a committed batch, its buffers reused for the next one
	// wake ends the poll under way once a write ends, so that its batch is committed
	// without waiting for records; written says the write ended already.
	wakeMu  sync.Mutex
	wake    context.CancelFunc
	written bool
	// suspect partitions may replay records already written: assigned since the last batch
	// that found none of its ids in ClickHouse, or part of a batch whose insert failed.
	suspect map[topicPartition]bool
	// suspectMu guards suspect while the tables' writes run (flushTables).
	suspectMu sync.Mutex

	// waiting is when the first of the failed flushes in a row failed; zero when the last
	// flush went through. While waiting, fetching is paused and the next flush is tried at
	// retryAt.
	waiting time.Time
	retryAt time.Time
	backoff retry.Backoff
}

// held is how many records the batches hold, written or not.
func (b *batcher) held() int {
	n := b.cur.held()
	if b.inflight != nil {
		n += b.inflight.held()
	}
	return n
}

func (b *batcher) loop(ctx context.Context) error {
	for ctx.Err() == nil {
		pctx, cancel := b.pollContext(ctx)
		fetches := b.client.PollRecords(pctx, b.room())
		b.wakeMu.Lock()
		b.wake = nil
		b.wakeMu.Unlock()
		cancel()

		b.mu.Lock()
		err := b.handle(fetches)
		if err == nil {
			b.step(ctx)
		}
		b.mu.Unlock()
		b.client.AllowRebalance()
		if err != nil {
			return err
		}
	}
	return nil
}

// pollContext bounds a poll by the time cur must be flushed, or while waiting, by the next
// attempt; while a batch is written, the poll also ends when the write does.
func (b *batcher) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	b.mu.Lock()
	var deadline time.Time
	writing := b.writing != nil
	switch {
	case !b.waiting.IsZero():
		deadline = b.retryAt
	case !b.cur.since.IsZero() && !writing: // while a write runs, its end wakes the poll
		deadline = b.cur.since.Add(b.sink.cfg.BatchMaxAge)
	}
	b.mu.Unlock()
	pctx, cancel := context.WithCancel(ctx)
	if !deadline.IsZero() {
		pctx, cancel = context.WithDeadline(ctx, deadline)
	}
	if writing {
		b.wakeMu.Lock()
		if b.written {
			cancel()
		} else {
			b.wake = cancel
		}
		b.wakeMu.Unlock()
	}
	return pctx, cancel
}

// room is how many records a poll may return without cur exceeding BatchSize.
func (b *batcher) room() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.sink.cfg.BatchSize-b.cur.held(), 1)
}

// due reports whether cur is full or its oldest record waited BatchMaxAge.
func (b *batcher) due(now time.Time) bool {
	if b.cur.held() >= b.sink.cfg.BatchSize {
		return true
	}
	return !b.cur.since.IsZero() && now.Sub(b.cur.since) >= b.sink.cfg.BatchMaxAge
}

// step moves the batches on after a poll: it commits inflight once its write ended (waiting
// for it when cur is full, so that at most one batch is written while another fills), tries a
// failed one again when its backoff is over, and starts writing cur when it is due and the
// batch before it is committed. While a write runs, cur goes on filling past its age, up to
// BatchSize: when ClickHouse is slower than the records come, the inserts grow instead of
// queueing, and each costs ClickHouse about the same whatever its rows (a part per table and
// view). A record still waits no longer than its age and the write before it.
func (b *batcher) step(ctx context.Context) {
	if b.writing != nil {
		select {
		case err := <-b.writing:
			b.settle(ctx, err)
		default:
			if b.cur.held() < b.sink.cfg.BatchSize {
				return
			}
			b.settle(ctx, <-b.writing)
		}
	}
	if b.inflight != nil {
		if time.Now().Before(b.retryAt) {
			return
		}
		b.settle(ctx, b.flushTables(ctx, b.inflight))
		if b.inflight != nil {
			return
		}
	}
	if !b.due(time.Now()) {
		return
	}
	b.inflight, b.cur = b.cur, b.spare
	if b.cur == nil {
		b.cur = b.newBatch()
	}
	b.spare = nil
	b.startWrite(ctx)
}

// startWrite writes inflight's tables in a goroutine, which sends the result on writing.
func (b *batcher) startWrite(ctx context.Context) {
	bt, done := b.inflight, make(chan error, 1)
	b.writing = done
	b.wakeMu.Lock()
	b.written = false
	b.wakeMu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		done <- b.flushTables(ctx, bt)
		b.wakeMu.Lock()
		b.written = true
		if b.wake != nil {
			b.wake()
		}
		b.wakeMu.Unlock()
	}()
}

// join waits for the write under way, if any; its batch stays inflight, committed (or
// written again, if the write failed) by the next flush.
func (b *batcher) join() {
	if b.writing != nil {
		<-b.writing
		b.writing = nil
	}
	b.wg.Wait()
}

// settle ends inflight's write, which returned err: when it went through, it produces the
// batch's dead letters and commits its records; then it goes on, or starts or goes on waiting
// (see flushed).
func (b *batcher) settle(ctx context.Context, err error) {
	b.writing = nil
	b.wg.Wait()
	if err == nil {
		err = b.commit(ctx, b.inflight)
	}
	if b.flushed(ctx, err) {
		b.spare, b.inflight = b.inflight, nil
	}
}

// flushed takes the result of a flush: when it failed (transiently: a flush settles content
// refusals itself) it starts or goes on waiting, fetching paused and the next attempt after a
// backoff; it reports whether the flush went through.
func (b *batcher) flushed(ctx context.Context, err error) bool {
	s := b.sink
	now := time.Now()
	if err == nil {
		if !b.waiting.IsZero() {
			s.log.Info("ClickHouse takes rows again; the sink goes on", "waited", now.Sub(b.waiting).Round(time.Millisecond),
				"attempts", b.backoff.Attempts()+1)
			b.client.ResumeFetchTopics(b.consumed...)
			s.counters.Resumed()
		}
		b.waiting = time.Time{}
		b.backoff.Reset()
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	s.attempts.WithLabelValues(retry.Transient.String()).Inc()
	if b.waiting.IsZero() {
		b.waiting = now
		b.client.PauseFetchTopics(b.consumed...)
		s.log.Warn("ClickHouse cannot take rows now; the sink holds its batch and retries until it can",
			"rows", b.held(), "err", err)
	} else {
		s.log.Debug("retry failed", "err", err)
	}
	b.retryAt = now.Add(b.backoff.Next())
	s.counters.Waiting(b.waiting, waitReason(err))
	return false
}

// waitReason is the status line's account of a failed flush.
func waitReason(err error) string {
	var ke *kafkaError
	if errors.As(err, &ke) {
		return "kafka: " + retry.Reason(ke.err)
	}
	return "clickhouse: " + retry.Reason(err)
}

// kafkaError marks a flush that failed on Kafka (dead letters or the commit), not ClickHouse.
type kafkaError struct {
	what string
	err  error
}

func (e *kafkaError) Error() string { return e.what + ": " + e.err.Error() }
func (e *kafkaError) Unwrap() error { return e.err }

// handle takes a poll's records into cur; bad ones become dead letters. It returns an error
// only when the stage must stop.
func (b *batcher) handle(fetches kgo.Fetches) error {
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
	now, bt := time.Now(), b.cur
	fetches.EachRecord(func(r *kgo.Record) {
		s.counters.In(1)
		if bt.since.IsZero() {
			bt.since = now
		}
		bt.last[tpOf(r)] = r
		if err := b.take(bt, r); err != nil {
			s.log.Debug("dead-lettering record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", err)
			bt.dead = append(bt.dead, b.deadLetter(r, err))
		}
	})
	return nil
}

// pendingDead is a dead letter not yet produced, and the partition its record came from.
type pendingDead struct {
	letter *kgo.Record
	from   topicPartition
}

// deadLetter is r's dead letter; a replay sends it to the sink's retry topic.
func (b *batcher) deadLetter(r *kgo.Record, reason error) pendingDead {
	return pendingDead{kafka.DeadLetterReplayedTo(b.dlqTopic, r, StageName, reason, b.retryTopic), tpOf(r)}
}

// take decodes r and buffers it in bt for its table, or says why it cannot be written. A
// record is taken only from the topic of its schema's table (a replayed one: the topic it
// was first consumed from); a tombstone only from a context topic or crumbs.triage.
func (b *batcher) take(bt *batch, r *kgo.Record) error {
	topic := r.Topic
	if topic == b.retryTopic {
		topic, _, _ = kafka.OriginOf(r)
	}
	if r.Value == nil {
		w, ok := bt.byTopic[topic]
		if !ok {
			return fmt.Errorf("%w: tombstone on %s", ErrInvalidRecord, topic)
		}
		return w.take(r, nil)
	}
	sc, _, err := b.sink.serde.Frame(r.Value)
	if err != nil {
		return err
	}
	w, ok := bt.writers[sc.Name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnexpectedSchema, sc.Name)
	}
	if w.topic() != topic {
		return fmt.Errorf("%w: %s on %s (its table %s reads %s)", ErrUnexpectedSchema, sc.Name, topic, w.table(), w.topic())
	}
	return w.take(r, sc)
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

// flushAll writes and commits every batch held, in their order, waiting for the write under
// way first. It returns a transient error when ClickHouse or Kafka could not take the writes
// now; what is not yet written stays buffered, nothing after it is committed, and the next
// flush goes on from there.
func (b *batcher) flushAll(ctx context.Context) error {
	b.join()
	if b.inflight != nil {
		if err := b.flush(ctx, b.inflight); err != nil {
			return err
		}
		b.spare, b.inflight = b.inflight, nil
	}
	return b.flush(ctx, b.cur)
}

// flush writes every table's buffer of bt, produces its dead letters (records ClickHouse
// refused for their content among them), then commits every record of it. It returns a
// transient error when ClickHouse or Kafka could not take the writes now.
func (b *batcher) flush(ctx context.Context, bt *batch) error {
	if bt.empty() {
		return nil
	}
	if err := b.flushTables(ctx, bt); err != nil {
		return err
	}
	return b.commit(ctx, bt)
}

// commit produces bt's dead letters, then commits every record taken into bt, whose rows are
// all written.
func (b *batcher) commit(ctx context.Context, bt *batch) error {
	if err := b.produceDead(ctx, bt); err != nil {
		return err
	}
	if len(bt.last) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, 0, len(bt.last))
	for _, r := range bt.last {
		recs = append(recs, r)
	}
	if err := b.client.CommitRecords(ctx, recs...); err != nil {
		// The rows are written; a replay of them is filtered after the next assignment.
		return &kafkaError{"commit offsets", err}
	}
	clear(bt.last)
	bt.since = time.Time{}
	return nil
}

// flushTables writes every table's buffer of bt, the tables' inserts at once, each on a
// connection of its own: ClickHouse writes a part per insert (and one per materialised view
// over the table), and the sink would otherwise wait for each table in turn. Rows refused
// for content join bt's dead letters. The error is the first table's that failed; the
// others' rows are written and forgotten all the same.
func (b *batcher) flushTables(ctx context.Context, bt *batch) error {
	type result struct {
		written int
		dead    []pendingDead
		err     error
	}
	results := make([]result, len(bt.order))
	var wg sync.WaitGroup
	for i, name := range bt.order {
		w := bt.writers[name]
		if w.pending() == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[i]
			res.written, res.dead, res.err = w.write(ctx, b)
		}()
	}
	wg.Wait()
	var first error
	for _, res := range results {
		b.sink.counters.Out(res.written)
		bt.dead = append(bt.dead, res.dead...)
		if first == nil {
			first = res.err
		}
	}
	return first
}

// attempt runs one insert. An attempt is not cut short when the stage stops: an insert
// abandoned half way may still land after the replay check that follows it, and be written
// twice. A failed attempt marks recs' partitions suspect, since ClickHouse may have written
// some rows before the error reached us.
func (b *batcher) attempt(ctx context.Context, recs []*kgo.Record, insert func(context.Context) error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), insertTimeout)
	err := insert(actx)
	cancel()
	if err == nil {
		return nil
	}
	b.suspectMu.Lock()
	for _, r := range recs {
		b.suspect[tpOf(r)] = true
	}
	b.suspectMu.Unlock()
	if retry.Classify(err) == retry.Permanent {
		b.sink.attempts.WithLabelValues(retry.Permanent.String()).Inc()
	}
	return err
}

func (b *batcher) observe(table string, lat []time.Duration) {
	h := b.sink.latency.WithLabelValues(table)
	for _, d := range lat {
		h.Observe(d.Seconds())
	}
	b.sink.samples.observe(lat)
}

// checkedAlways reports whether r's row is looked up in ClickHouse before every insert:
// replayed dead letters may have landed already (their stage wrote them before it failed).
func (b *batcher) checkedAlways(r *kgo.Record) bool { return r.Topic == b.retryTopic }

// dropReplayed returns rows without those ClickHouse already holds, looking up the rows of
// suspect partitions (or, with all, every row). Without all, a suspect partition none of
// whose rows in the batch were found is cleared: its replay, which starts right at the
// committed offset, is over.
func dropReplayed[P any](ctx context.Context, b *batcher, table string, rows []P, all bool,
	key func(P) (*kgo.Record, string), existing func(context.Context, []P) (map[string]bool, error),
) ([]P, error) {
	var check []P
	b.suspectMu.Lock()
	for _, p := range rows {
		if r, _ := key(p); all || b.suspect[tpOf(r)] || b.checkedAlways(r) {
			check = append(check, p)
		}
	}
	b.suspectMu.Unlock()
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
	if !all {
		b.suspectMu.Lock()
		for _, p := range check {
			r, _ := key(p)
			if tp := tpOf(r); !still[tp] {
				delete(b.suspect, tp)
			}
		}
		b.suspectMu.Unlock()
	}
	if n := len(rows) - len(out); n > 0 {
		b.sink.replayed.WithLabelValues(table).Add(float64(n))
		b.sink.log.Info("skipped replayed rows already in ClickHouse", "table", table, "rows", n)
	}
	return out, nil
}

// produceDead produces bt's pending dead letters synchronously. A dead letter Kafka refuses
// for good (too large for the topic) is counted as dropped and logged with where it came
// from, so that it can still be found there.
func (b *batcher) produceDead(ctx context.Context, bt *batch) error {
	if len(bt.dead) == 0 {
		return nil
	}
	s := b.sink
	from := make(map[*kgo.Record]topicPartition, len(bt.dead))
	letters := make([]*kgo.Record, len(bt.dead))
	for i, d := range bt.dead {
		from[d.letter], letters[i] = d.from, d.letter
	}
	results := b.client.ProduceSync(ctx, letters...)
	var kept []pendingDead
	var firstErr error
	produced, dropped := 0, 0
	for _, res := range results {
		switch {
		case res.Err == nil:
			produced++
		case retry.Classify(res.Err) == retry.Permanent:
			dropped++
			topic, p, o := kafka.OriginOf(res.Record)
			s.log.Error("Kafka refused a dead letter; the record stays only where it was consumed",
				"topic", topic, "partition", p, "offset", o, "reason", kafka.Header(res.Record, kafka.HeaderReason), "err", res.Err)
		default:
			kept = append(kept, pendingDead{res.Record, from[res.Record]})
			if firstErr == nil {
				firstErr = res.Err
			}
		}
	}
	s.counters.DeadLettered(produced)
	s.counters.Dropped(dropped)
	bt.dead = kept
	if firstErr != nil {
		return &kafkaError{fmt.Sprintf("produce %d dead letters to %s", len(kept), b.dlqTopic), firstErr}
	}
	return nil
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
	b.suspectMu.Lock()
	defer b.suspectMu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			b.suspect[topicPartition{t, p}] = true
		}
	}
}

// revoked flushes and commits everything before partitions go to another member, so that
// it starts where this one stopped; if that fails (ClickHouse away), what was taken from
// them is dropped, uncommitted, for their next owner to consume again.
func (b *batcher) revoked(ctx context.Context, _ *kgo.Client, parts map[string][]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flushAll(ctx); err != nil {
		b.sink.log.Warn("flush on revoke failed; the next owner replays", "err", err)
		b.drop(parts)
	}
	b.forget(parts)
}

// lost drops what is buffered from partitions that are no longer ours, once the write under
// way ended; committing them would fail, and their next owner replays them (and finds the
// rows that write put in ClickHouse already there).
func (b *batcher) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.join()
	b.drop(parts)
	b.forget(parts)
}

// forget clears the suspicion of partitions that are no longer ours.
func (b *batcher) forget(parts map[string][]int32) {
	b.suspectMu.Lock()
	defer b.suspectMu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			delete(b.suspect, topicPartition{t, p})
		}
	}
}

// drop forgets what the batches hold from parts; no write may be under way.
func (b *batcher) drop(parts map[string][]int32) {
	gone := map[topicPartition]bool{}
	for t, ps := range parts {
		for _, p := range ps {
			gone[topicPartition{t, p}] = true
		}
	}
	b.cur.drop(gone)
	if b.inflight != nil {
		b.inflight.drop(gone) // even when empty, the next flush settles it (and resumes fetching if waiting)
	}
}

// drop forgets what bt holds from the partitions in gone.
func (bt *batch) drop(gone map[topicPartition]bool) {
	for tp := range gone {
		delete(bt.last, tp)
	}
	for _, w := range bt.writers {
		w.drop(gone)
	}
	kept := bt.dead[:0]
	for _, d := range bt.dead {
		if !gone[d.from] {
			kept = append(kept, d)
		}
	}
	bt.dead = kept
	if len(bt.last) == 0 {
		bt.since = time.Time{}
	}
}
