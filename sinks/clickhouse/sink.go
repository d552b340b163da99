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
		Help:    "Time from an event's time to ClickHouse acknowledging its row.",
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
	writers := newWriters(topics, s.kinds, s.serde)
	b := &batcher{
		sink: s, store: store, dlqTopic: topics.DLQ(), retryTopic: topics.Retry(StageName),
		writers: writers, order: sortedKeys(writers),
		byTopic: map[string]tableWriter{},
		last:    map[topicPartition]*kgo.Record{}, suspect: map[topicPartition]bool{},
		backoff: retry.Backoff{Initial: s.cfg.RetryBackoff, Max: s.cfg.MaxBackoff},
	}
	for _, w := range writers {
		b.byTopic[w.topic()] = w
	}
	b.consumed = append(consumedTopics(writers), b.retryTopic)
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
	held := b.pending() + len(b.dead)
	flushErr := b.flush(fctx)
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

// batcher is one Run's state. The poll loop holds mu from the moment a poll returns until
// it allows rebalancing again; the rebalance callbacks take it too, so they see the buffers
// only between polls.
type batcher struct {
	sink       *Sink
	store      *Store
	client     *kgo.Client
	dlqTopic   string
	retryTopic string
	consumed   []string

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
	// suspectMu guards suspect while the tables' writes run at once (flushTables).
	suspectMu sync.Mutex
	// dead are dead letters not yet on the dead-letter topic; offsets are committed only
	// once they are.
	dead []pendingDead

	// waiting is when the first of the failed flushes in a row failed; zero when the last
	// flush went through. While waiting, fetching is paused and the next flush is tried at
	// retryAt.
	waiting time.Time
	retryAt time.Time
	backoff retry.Backoff
}

func (b *batcher) loop(ctx context.Context) error {
	for ctx.Err() == nil {
		pctx, cancel := b.pollContext(ctx)
		fetches := b.client.PollRecords(pctx, b.room())
		cancel()

		b.mu.Lock()
		err := b.handle(fetches)
		if err == nil && b.due(time.Now()) {
			b.flushOrWait(ctx)
		}
		b.mu.Unlock()
		b.client.AllowRebalance()
		if err != nil {
			return err
		}
	}
	return nil
}

// pollContext bounds a poll by the time the oldest pending record must be flushed, or while
// waiting, by the next attempt.
func (b *batcher) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	b.mu.Lock()
	deadline := b.since.Add(b.sink.cfg.BatchMaxAge)
	if !b.waiting.IsZero() {
		deadline = b.retryAt
	}
	pending := !b.since.IsZero() || !b.waiting.IsZero()
	b.mu.Unlock()
	if !pending {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline)
}

// room is how many records a poll may return without the buffers exceeding BatchSize.
func (b *batcher) room() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.sink.cfg.BatchSize-b.pending()-len(b.dead), 1)
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
	if !b.waiting.IsZero() {
		return !now.Before(b.retryAt)
	}
	if b.pending()+len(b.dead) >= b.sink.cfg.BatchSize {
		return true
	}
	return !b.since.IsZero() && now.Sub(b.since) >= b.sink.cfg.BatchMaxAge
}

// flushOrWait flushes; when the flush fails (transiently: flush settles content refusals
// itself) it starts or goes on waiting: fetching paused, the next attempt after a backoff.
func (b *batcher) flushOrWait(ctx context.Context) {
	s := b.sink
	err := b.flush(ctx)
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
		return
	}
	if ctx.Err() != nil {
		return
	}
	s.attempts.WithLabelValues(retry.Transient.String()).Inc()
	if b.waiting.IsZero() {
		b.waiting = now
		b.client.PauseFetchTopics(b.consumed...)
		s.log.Warn("ClickHouse cannot take rows now; the sink holds its batch and retries until it can",
			"rows", b.pending(), "err", err)
	} else {
		s.log.Debug("retry failed", "err", err)
	}
	b.retryAt = now.Add(b.backoff.Next())
	s.counters.Waiting(b.waiting, waitReason(err))
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

// handle takes a poll's records into the buffers; bad ones become dead letters. It returns
// an error only when the stage must stop.
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
	now := time.Now()
	fetches.EachRecord(func(r *kgo.Record) {
		s.counters.In(1)
		if b.since.IsZero() {
			b.since = now
		}
		b.last[tpOf(r)] = r
		if err := b.take(r); err != nil {
			s.log.Debug("dead-lettering record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", err)
			b.dead = append(b.dead, b.deadLetter(r, err))
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

// take decodes r and buffers it for its table, or says why it cannot be written. A record
// is taken only from the topic of its schema's table (a replayed one: the topic it was first
// consumed from); a tombstone only from a context topic or crumbs.triage.
func (b *batcher) take(r *kgo.Record) error {
	topic := r.Topic
	if topic == b.retryTopic {
		topic, _, _ = kafka.OriginOf(r)
	}
	if r.Value == nil {
		w, ok := b.byTopic[topic]
		if !ok {
			return fmt.Errorf("%w: tombstone on %s", ErrInvalidRecord, topic)
		}
		return w.take(r, nil)
	}
	sc, _, err := b.sink.serde.Frame(r.Value)
	if err != nil {
		return err
	}
	w, ok := b.writers[sc.Name]
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

// flush writes every table's buffer, produces the dead letters (records ClickHouse refused
// for their content among them), then commits every record taken so far. It returns a
// transient error when ClickHouse or Kafka could not take the writes now; what is not yet
// written stays buffered, nothing is committed, and the next flush goes on from there.
func (b *batcher) flush(ctx context.Context) error {
	if len(b.last) == 0 && b.pending() == 0 && len(b.dead) == 0 {
		return nil
	}
	if err := b.flushTables(ctx); err != nil {
		return err
	}
	if err := b.produceDead(ctx); err != nil {
		return err
	}
	recs := make([]*kgo.Record, 0, len(b.last))
	for _, r := range b.last {
		recs = append(recs, r)
	}
	if err := b.client.CommitRecords(ctx, recs...); err != nil {
		// The rows are written; a replay of them is filtered after the next assignment.
		return &kafkaError{"commit offsets", err}
	}
	clear(b.last)
	b.since = time.Time{}
	return nil
}

// flushTables writes every table's buffer, the tables' inserts at once, each on a
// connection of its own: ClickHouse writes a part per insert (and one per materialised view
// over the table), and the sink would otherwise wait for each table in turn. Rows refused
// for content join the dead letters. The error is the first table's that failed; the
// others' rows are written and forgotten all the same.
func (b *batcher) flushTables(ctx context.Context) error {
	type result struct {
		written int
		dead    []pendingDead
		err     error
	}
	results := make([]result, len(b.order))
	var wg sync.WaitGroup
	for i, name := range b.order {
		w := b.writers[name]
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
		b.dead = append(b.dead, res.dead...)
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

// produceDead produces the pending dead letters synchronously. A dead letter Kafka refuses
// for good (too large for the topic) is counted as dropped and logged with where it came
// from, so that it can still be found there.
func (b *batcher) produceDead(ctx context.Context) error {
	if len(b.dead) == 0 {
		return nil
	}
	s := b.sink
	from := make(map[*kgo.Record]topicPartition, len(b.dead))
	letters := make([]*kgo.Record, len(b.dead))
	for i, d := range b.dead {
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
	b.dead = kept
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
	kept := b.dead[:0]
	for _, d := range b.dead {
		if !gone[d.from] {
			kept = append(kept, d)
		}
	}
	b.dead = kept
	if len(b.last) == 0 {
		b.since = time.Time{}
	}
}
