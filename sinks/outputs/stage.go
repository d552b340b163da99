package outputs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// StageName is the stage's name in counters and dead-letter headers.
const StageName = "alerts"

// HeaderOutput names an output. On a dead letter it is the output that gave up; on a record of
// crumbs.alerts it limits delivery to that output, so a dead letter sent back to crumbs.alerts
// with its headers reaches only the output that missed it.
const HeaderOutput = "crumbs.output"

// Delivery statuses (schemas.Delivery.Status).
const (
	StatusDelivered    = "delivered"
	StatusSummarized   = "summarized"
	StatusDeadLettered = "dead_lettered"
)

// ErrBadAlert: a record of crumbs.alerts or crumbs.triage that is not an alert or triage
// state, or has no id; it is dead-lettered.
var ErrBadAlert = errors.New("not a deliverable alert")

// stateTimeout bounds one write of delivery state or of a dead letter; after the stage's
// context ended, the write in progress still gets this long.
const stateTimeout = 10 * time.Second

// Deps are what a Stage uses from its process; every field may be zero.
type Deps struct {
	Log      *slog.Logger             // default: discard
	Metrics  prometheus.Registerer    // default: metrics are not registered
	Counters *telemetry.StageCounters // default: new counters registered on Metrics
	Serde    *avro.Serde              // default: avro.NewBuiltinSerde()
	// InstanceID makes the consumer a static group member (kgo.InstanceID): an instance
	// restarted with the same id, after a crash too, gets its partitions back at once.
	// Default empty: a dynamic member.
	InstanceID string
	// Stdout is where file outputs with path `-` write. Default os.Stdout.
	Stdout io.Writer
}

// Stage is the alerts stage. Create it with New and start it with Run.
type Stage struct {
	cfg      Config
	kcfg     kafka.Config
	topics   kafka.Topics
	log      *slog.Logger
	counters *telemetry.StageCounters
	serde    *avro.Serde
	deps     Deps
	outputs  []*output

	client   *kgo.Client
	progress chan struct{} // a delivery finished: room for more records

	mu   sync.Mutex
	cond *sync.Cond // broadcast when a delivery leaves an attempt
	// parts are the partitions owned, with their records not committed yet in offset order.
	parts map[topicPartition]*partitionState
	// state is the delivery state of records not committed yet, by delivery key.
	state map[string]stateEntry
	// open counts records with deliveries not finished (the in-flight bound).
	open int
}

type topicPartition struct {
	topic     string
	partition int32
}

type partitionState struct{ pending []*pending }

// pending is a consumed record and its deliveries.
type pending struct {
	rec       *kgo.Record
	remaining int           // deliveries not finished
	busy      int           // deliveries in an attempt or writing their outcome
	cancelled bool          // partition revoked or lost: deliveries not begun are dropped
	gone      chan struct{} // closed when cancelled
}

type stateEntry struct {
	partition int32
	d         *schemas.Delivery
}

// job is one delivery: an alert (or its resolution) to one output.
type job struct {
	p         *pending
	out       *output
	alert     *schemas.Alert    // the alert, for a trigger (an incident rendered as an alert)
	incident  *schemas.Incident // the incident, for an output delivering incidents
	resolveID string            // the alert id, for a resolve
	key       string            // delivery key: see deliveryKey, or alert id "/" output "/resolve/" version
	consumed  time.Time
}

// deliveryKey is the delivery state key (and idempotency key) of version v of an alert or
// incident at an output: id "/" output for the first (as before versions were delivered
// apart), id "/" output "/v" version for a later one.
func deliveryKey(id, output string, v int64) string {
	if v <= 1 {
		return id + "/" + output
	}
	return fmt.Sprintf("%s/%s/v%d", id, output, v)
}

// wants reports whether an output's updates policy delivers version v (final: the last).
func (o *output) wants(v int64, final bool) bool {
	switch o.cfg.Updates {
	case UpdatesNone:
		return v <= 1
	case UpdatesFinal:
		return v <= 1 || final
	}
	return true
}

// deliversIncidents reports whether any output delivers incidents.
func (s *Stage) deliversIncidents() bool {
	for _, o := range s.outputs {
		if o.cfg.Deliver == DeliverIncidents {
			return true
		}
	}
	return false
}

func (j *job) action() string {
	if j.alert == nil {
		return "resolve"
	}
	return "trigger"
}

func (j *job) alertID() string {
	if j.alert == nil {
		return j.resolveID
	}
	return j.alert.AlertID
}

// output is one configured output at run time.
type output struct {
	cfg     OutputConfig
	key     string // alerts.outputs[N]
	filter  filter
	tmpl    *templates
	send    sender
	resolve resolver // nil: the output cannot resolve
	limiter *rate.Limiter
	queue   chan *job
	m       outputMetrics

	// owned by the output's worker
	held      []*job // held back by the rate limit, for the next summary
	heldSince time.Time
	failing   bool // the last attempt failed
	failures  int  // attempts failed since the last success
}

// New checks the configuration, renders every template once over a sample alert and opens
// the outputs (a file output opens its file); it connects to no receiver and no broker.
func New(cfg Config, kcfg kafka.Config, deps Deps) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := kcfg.Validate(); err != nil {
		return nil, fmt.Errorf("alerts stage kafka config: %w", err)
	}
	s := &Stage{cfg: cfg, kcfg: kcfg, topics: kcfg.Topics(), log: deps.Log, counters: deps.Counters, serde: deps.Serde, deps: deps,
		progress: make(chan struct{}, 1), parts: map[topicPartition]*partitionState{}, state: map[string]stateEntry{}}
	s.cond = sync.NewCond(&s.mu)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.counters == nil {
		s.counters = telemetry.NewStageCounters(deps.Metrics, StageName, cfg.Group)
	}
	if s.serde == nil {
		var err error
		if s.serde, err = avro.NewBuiltinSerde(); err != nil {
			return nil, fmt.Errorf("alerts stage: load schemas: %w", err)
		}
	}
	m := newMetrics(deps.Metrics)
	var errs []error
	for i, oc := range cfg.Outputs {
		key := fmt.Sprintf("alerts.outputs[%d]", i)
		oc = oc.withDefaults()
		o := &output{cfg: oc, key: key, filter: newFilter(oc), queue: make(chan *job, cfg.MaxInFlight), m: m.forOutput(oc.Name, oc.Type)}
		var err error
		if o.tmpl, err = compileTemplates(key, oc); err != nil {
			errs = append(errs, err)
			continue
		}
		if o.send, err = newSender(key, oc, deps.Stdout); err != nil {
			errs = append(errs, err)
			continue
		}
		o.resolve, _ = o.send.(resolver)
		if oc.RateLimit.PerMinute > 0 {
			o.limiter = rate.NewLimiter(rate.Limit(oc.RateLimit.PerMinute/60), oc.RateLimit.Burst)
		}
		m.queued(o)
		s.outputs = append(s.outputs, o)
	}
	if err := errors.Join(errs...); err != nil {
		s.closeOutputs()
		return nil, err
	}
	return s, nil
}

func (s *Stage) closeOutputs() {
	for _, o := range s.outputs {
		if err := o.send.Close(); err != nil {
			s.log.Warn("close output", "output", o.cfg.Name, "err", err)
		}
	}
}

// Counters returns the stage's counters: In per record consumed, Out per delivery made,
// DeadLettered per dead letter.
func (s *Stage) Counters() *telemetry.StageCounters { return s.counters }

// Run consumes and delivers until ctx is done. Then it lets the attempts in progress finish
// (each within its output's timeout), writes their outcome, commits the offsets of the
// records done with, closes the outputs and returns nil. Deliveries not begun are left to the
// next run, which consumes their records again. Run returns an error when it cannot start
// (Kafka unreachable); receivers away do not stop it. Run may be called once.
func (s *Stage) Run(ctx context.Context) error {
	defer s.closeOutputs()
	if err := s.ensureTopics(ctx); err != nil {
		return fmt.Errorf("alerts stage: %w", err)
	}
	consumed := []string{s.topics.Alerts(), s.topics.Triage()}
	if s.deliversIncidents() {
		consumed = append(consumed, s.topics.Incidents())
	}
	opts := append(s.kcfg.ClientOpts(),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(consumed...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()), // partition p of both topics on one member: their state shares crumbs.deliveries' partition p
		kgo.RecordPartitioner(statePartitioner{deliveries: s.topics.Deliveries(), hashed: kgo.StickyKeyPartitioner(nil)}),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	if s.deps.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(s.deps.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("alerts stage: create kafka client: %w", err)
	}
	s.client = cl
	defer cl.Close()
	names := make([]string, len(s.outputs))
	for i, o := range s.outputs {
		names[i] = o.cfg.Name + " (" + o.cfg.Type + ")"
	}
	s.log.Info("alerts stage started", "group", s.cfg.Group, "outputs", names)

	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, o := range s.outputs {
		wg.Add(1)
		go func() { defer wg.Done(); s.work(wctx, o) }()
	}
	s.loop(ctx, consumed)
	stopWorkers()
	wg.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	if err := s.commit(fctx, cl); err != nil {
		s.log.Warn("final commit failed; the records are consumed again by the next run, and not delivered twice", "err", err)
	}
	cl.AllowRebalance()
	s.log.Info("alerts stage stopped")
	return nil
}

// ensureTopics creates the topics the stage reads and writes when they are missing.
func (s *Stage) ensureTopics(ctx context.Context) error {
	admin, err := kgo.NewClient(s.kcfg.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("create kafka admin client: %w", err)
	}
	defer admin.Close()
	t := s.topics
	specs := []kafka.TopicSpec{{Name: t.Alerts()}, {Name: t.DLQ()}, {Name: t.Triage(), Compacted: true}, {Name: t.Deliveries(), Compacted: true}}
	if s.deliversIncidents() {
		specs = append(specs, kafka.TopicSpec{Name: t.Incidents()})
	}
	return s.kcfg.EnsureTopics(ctx, admin, specs)
}

// loop polls records and hands their deliveries to the outputs' workers until ctx is done.
// Offsets are committed here, between a poll and AllowRebalance, so never for partitions
// already revoked. With MaxInFlight records open, fetching is paused (backpressure).
func (s *Stage) loop(ctx context.Context, consumed []string) {
	cl := s.client
	lastCommit := time.Now()
	paused := false
	for {
		s.mu.Lock()
		room := s.cfg.MaxInFlight - s.open
		s.mu.Unlock()
		wait := s.cfg.CommitInterval
		switch {
		case room <= 0 && !paused:
			cl.PauseFetchTopics(consumed...)
			paused = true
		case room > 0 && paused:
			cl.ResumeFetchTopics(consumed...)
			paused = false
		}
		if paused {
			room, wait = 1, min(wait, 100*time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollRecords(pctx, room)
		cancel()
		closed := false
		for _, fe := range fetches.Errors() {
			switch {
			case errors.Is(fe.Err, kgo.ErrClientClosed):
				closed = true
			case errors.Is(fe.Err, context.Canceled), errors.Is(fe.Err, context.DeadlineExceeded):
			default:
				s.log.Warn("fetch error; the client retries", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) { s.take(ctx, r) })
		if time.Since(lastCommit) >= s.cfg.CommitInterval {
			if err := s.commit(ctx, cl); err != nil && ctx.Err() == nil {
				s.log.Warn("commit offsets failed; retrying at the next interval", "err", err)
			}
			lastCommit = time.Now()
		}
		if ctx.Err() != nil || closed {
			return // rebalancing stays blocked until Run's final commit
		}
		cl.AllowRebalance()
	}
}

// take registers a record and hands its deliveries to the outputs.
func (s *Stage) take(ctx context.Context, r *kgo.Record) {
	s.counters.In(1)
	jobs, bad := s.jobsFor(r)
	p := &pending{rec: r, gone: make(chan struct{})}
	if bad != nil {
		p.remaining = 1 // the dead letter
	} else {
		p.remaining = len(jobs)
	}
	for _, j := range jobs {
		j.p = p
	}
	s.mu.Lock()
	tp := topicPartition{r.Topic, r.Partition}
	ps := s.parts[tp]
	if ps == nil { // records of a partition assigned without the callback (cannot happen with it set)
		ps = &partitionState{}
		s.parts[tp] = ps
	}
	ps.pending = append(ps.pending, p)
	if p.remaining > 0 {
		s.open++
	}
	s.mu.Unlock()
	if bad != nil {
		s.log.Warn("dead-lettering record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", bad)
		if err := s.produceDurably(ctx, kafka.DeadLetter(s.topics.DLQ(), r, StageName, bad)); err != nil {
			s.log.Error("dead letter not written; the record is consumed again after a restart", "err", err)
			return
		}
		s.counters.DeadLettered(1)
		s.finish(p)
		return
	}
	for _, j := range jobs {
		j.out.queue <- j // never blocks: a queue holds MaxInFlight jobs, one per open record at most
	}
}

// jobsFor decodes a record and returns its deliveries, or why it cannot be delivered.
func (s *Stage) jobsFor(r *kgo.Record) ([]*job, error) {
	if r.Value == nil {
		return nil, nil // a triage tombstone
	}
	sc, native, err := s.serde.Decode(r.Value)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []*job
	switch {
	case r.Topic == s.topics.Alerts() && sc.Name == schemas.AlertSchema:
		a, err := schemas.AlertFromNative(native)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAlert, err)
		}
		if a.AlertID == "" {
			return nil, fmt.Errorf("%w: empty alert id", ErrBadAlert)
		}
		only := kafka.Header(r, HeaderOutput)
		for _, o := range s.outputs {
			if (only != "" && o.cfg.Name != only) || o.cfg.Deliver != DeliverAlerts {
				continue
			}
			if !o.filter.accepts(a) {
				o.m.filtered.Inc()
				continue
			}
			if !o.wants(a.Version, a.Final) {
				o.m.updatesSkipped.Inc()
				continue
			}
			key := deliveryKey(a.AlertID, o.cfg.Name, a.Version)
			if s.doneLocked(key, r) {
				o.m.replays.Inc()
				continue
			}
			jobs = append(jobs, &job{out: o, alert: a, key: key, consumed: now})
		}
	case r.Topic == s.topics.Incidents() && sc.Name == schemas.IncidentSchema:
		in, err := schemas.IncidentFromNative(native)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAlert, err)
		}
		if in.IncidentID == "" {
			return nil, fmt.Errorf("%w: incident with an empty id", ErrBadAlert)
		}
		only := kafka.Header(r, HeaderOutput)
		a := incidentAlert(in)
		for _, o := range s.outputs {
			if (only != "" && o.cfg.Name != only) || o.cfg.Deliver != DeliverIncidents {
				continue
			}
			if !o.filter.acceptsIncident(in) {
				o.m.filtered.Inc()
				continue
			}
			if !o.wants(in.Version, in.Final) {
				o.m.updatesSkipped.Inc()
				continue
			}
			key := deliveryKey(in.IncidentID, o.cfg.Name, in.Version)
			if s.doneLocked(key, r) {
				o.m.replays.Inc()
				continue
			}
			jobs = append(jobs, &job{out: o, alert: a, incident: in, key: key, consumed: now})
		}
	case r.Topic == s.topics.Triage() && sc.Name == schemas.TriageSchema:
		t, err := schemas.TriageFromNative(native)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAlert, err)
		}
		if t.AlertID == "" {
			return nil, fmt.Errorf("%w: triage state with an empty alert id", ErrBadAlert)
		}
		if !t.Closed() {
			return nil, nil
		}
		for _, o := range s.outputs {
			if o.resolve == nil {
				continue
			}
			key := fmt.Sprintf("%s/%s/resolve/%d", t.AlertID, o.cfg.Name, t.Version)
			if s.doneLocked(key, r) {
				o.m.replays.Inc()
				continue
			}
			jobs = append(jobs, &job{out: o, resolveID: t.AlertID, key: key, consumed: now})
		}
	default:
		return nil, fmt.Errorf("%w: schema %s on %s", ErrBadAlert, sc.Name, r.Topic)
	}
	return jobs, nil
}

// doneLocked reports whether the delivery key is done with for record r: delivered or
// summarized, or dead-lettered from this very record (consumed again after a restart). A
// dead letter sent back (crumbs dlq replay) is a new record, and is delivered again.
func (s *Stage) doneLocked(key string, r *kgo.Record) bool {
	e, ok := s.state[key]
	if !ok {
		return false
	}
	return e.d.Status != StatusDeadLettered || (e.d.SourceTopic == r.Topic && e.d.SourceOffset == r.Offset && e.partition == r.Partition)
}

// finish counts one delivery of p as done.
func (s *Stage) finish(p *pending) {
	s.mu.Lock()
	p.remaining--
	if p.remaining == 0 && !p.cancelled {
		s.open--
	}
	s.mu.Unlock()
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

// commit commits, per partition, the offset after the last record of the prefix done with,
// and deletes the delivery state of those records (tombstones on crumbs.deliveries). The
// group callbacks pass their client: they may run before Run has stored it.
func (s *Stage) commit(ctx context.Context, cl *kgo.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var recs []*kgo.Record
	upTo := map[topicPartition]int64{}
	for tp, ps := range s.parts {
		n := 0
		for n < len(ps.pending) && ps.pending[n].remaining == 0 {
			n++
		}
		if n == 0 {
			continue
		}
		last := ps.pending[n-1].rec
		recs = append(recs, last)
		upTo[tp] = last.Offset
	}
	if len(recs) == 0 {
		return nil
	}
	if err := cl.CommitRecords(ctx, recs...); err != nil {
		return err
	}
	for tp, off := range upTo {
		ps := s.parts[tp]
		n := 0
		for n < len(ps.pending) && ps.pending[n].rec.Offset <= off {
			n++
		}
		ps.pending = slices.Delete(ps.pending, 0, n)
	}
	for key, e := range s.state {
		if off, ok := upTo[topicPartition{e.d.SourceTopic, e.partition}]; ok && e.d.SourceOffset <= off {
			s.forgetLocked(ctx, cl, key, e.partition)
		}
	}
	return nil
}

// forgetLocked deletes a delivery's state, in memory and on crumbs.deliveries; with s.mu held.
// A tombstone lost is harmless: the state of a committed record is never looked up again.
func (s *Stage) forgetLocked(ctx context.Context, cl *kgo.Client, key string, partition int32) {
	delete(s.state, key)
	cl.Produce(ctx, &kgo.Record{Topic: s.topics.Deliveries(), Partition: partition, Key: []byte(key)},
		func(_ *kgo.Record, err error) {
			if err != nil {
				s.log.Debug("delivery state tombstone not written", "key", key, "err", err)
			}
		})
}

// produceDurably produces rec, retrying until Kafka acknowledged it (acks=all) or ctx is done;
// the attempt in progress when ctx ends gets stateTimeout.
func (s *Stage) produceDurably(ctx context.Context, rec *kgo.Record) error {
	backoff := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
		err := s.client.ProduceSync(pctx, rec).FirstErr()
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		s.log.Warn("produce to kafka failed; retrying", "topic", rec.Topic, "err", err)
		if sleep(ctx, backoff, nil) != nil {
			return err
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// sleep waits d, or until ctx is done or gone is closed.
func sleep(ctx context.Context, d time.Duration, gone <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-gone:
		return errCancelled
	case <-t.C:
		return nil
	}
}

var errCancelled = errors.New("partition revoked")

// assigned reads back the delivery state of newly owned partitions before their records are
// polled; state of records already committed is deleted instead.
func (s *Stage) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owned := s.ownedLocked()
	var fresh []int32
	for topic, ps := range m {
		for _, p := range ps {
			if !owned[p] && !slices.Contains(fresh, p) {
				fresh = append(fresh, p)
			}
			if s.parts[topicPartition{topic, p}] == nil {
				s.parts[topicPartition{topic, p}] = &partitionState{}
			}
		}
	}
	if len(fresh) == 0 {
		return
	}
	slices.Sort(fresh)
	committed := map[topicPartition]int64{}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, s.cfg.Group)
	if err != nil {
		s.log.Warn("fetch committed offsets; delivery state of committed records is kept until the next commit", "err", err)
	}
	offs.Each(func(o kadm.OffsetResponse) { committed[topicPartition{o.Topic, o.Partition}] = o.At })
	n, stale := 0, 0
	err = kafka.ReadPartitions(ctx, s.kcfg, s.topics.Deliveries(), fresh, func(r *kgo.Record) error {
		key := string(r.Key)
		if r.Value == nil {
			delete(s.state, key)
			return nil
		}
		_, native, err := s.serde.Decode(r.Value)
		if err != nil {
			s.log.Warn("skipping unreadable delivery state", "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		d, err := schemas.DeliveryFromNative(native)
		if err != nil {
			s.log.Warn("skipping unreadable delivery state", "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		n++
		s.state[key] = stateEntry{partition: r.Partition, d: d}
		return nil
	})
	if err != nil {
		s.log.Error("read delivery state; records consumed again may be delivered again", "partitions", fresh, "err", err)
	}
	for key, e := range s.state {
		if at, ok := committed[topicPartition{e.d.SourceTopic, e.partition}]; ok && slices.Contains(fresh, e.partition) && e.d.SourceOffset < at {
			s.forgetLocked(ctx, cl, key, e.partition)
			stale++
		}
	}
	s.log.Info("delivery state read", "partitions", fresh, "records", n, "kept", len(s.state), "forgotten", stale)
}

// revoked cancels the deliveries of revoked partitions that have not begun, waits for those in
// an attempt to finish and write their outcome, commits what is done with, and forgets the
// partitions. Their next owner reads the outcomes back and delivers the rest.
func (s *Stage) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.drop(ctx, cl, m, true)
}

// lost forgets partitions no longer ours; committing them would fail.
func (s *Stage) lost(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.drop(ctx, cl, m, false)
}

func (s *Stage) drop(ctx context.Context, cl *kgo.Client, m map[string][]int32, commit bool) {
	s.mu.Lock()
	gone := map[topicPartition]bool{}
	for topic, ps := range m {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			gone[tp] = true
			if st := s.parts[tp]; st != nil {
				for _, pd := range st.pending {
					if !pd.cancelled {
						pd.cancelled = true
						close(pd.gone)
						if pd.remaining > 0 {
							s.open--
						}
					}
				}
			}
		}
	}
	busy := func() bool {
		for tp := range gone {
			if st := s.parts[tp]; st != nil {
				for _, pd := range st.pending {
					if pd.busy > 0 {
						return true
					}
				}
			}
		}
		return false
	}
	for busy() {
		s.cond.Wait()
	}
	s.mu.Unlock()
	if commit {
		if err := s.commit(ctx, cl); err != nil {
			s.log.Warn("commit on revoke failed; the next owner consumes the records again, and does not deliver them twice", "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp := range gone {
		delete(s.parts, tp)
	}
	owned := s.ownedLocked()
	for key, e := range s.state {
		if !owned[e.partition] {
			delete(s.state, key)
		}
	}
}

// ownedLocked returns the partition numbers owned in any consumed topic.
func (s *Stage) ownedLocked() map[int32]bool {
	out := map[int32]bool{}
	for tp := range s.parts {
		out[tp.partition] = true
	}
	return out
}

// statePartitioner puts delivery state in the partition of the record it belongs to
// (Record.Partition), and hashes other records (dead letters) by key.
type statePartitioner struct {
	deliveries string
	hashed     kgo.Partitioner
}

func (p statePartitioner) ForTopic(t string) kgo.TopicPartitioner {
	if t == p.deliveries {
		return kgo.ManualPartitioner().ForTopic(t)
	}
	return p.hashed.ForTopic(t)
}
