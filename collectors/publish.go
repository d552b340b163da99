// Package collectors holds what every collector shares: the Publisher that redacts secrets
// from command lines, encodes raw events and produces them to crumbs.raw.<kind>, keyed by host
// id, with an idempotent producer and acks from all in-sync replicas; the on-disk Spool that
// keeps events while Kafka is unreachable; and health events (crumbs.health) that report
// every event lost. The collectors themselves are its subpackages.
//
// In: events from a collector (schemas values, or goavro's native form), and its kernel drop count. Out: records on
// crumbs.raw.<kind> in the order published, health events on crumbs.health, and the
// crumbs_collector_dropped_total metric.
package collectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/containers"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

const (
	// drainBatch is how many spooled records the drainer sends at once.
	drainBatch = 512
	// drainRetryMax caps the wait between attempts to reach Kafka again.
	drainRetryMax = 5 * time.Second
)

// SpoolConfig configures the spool (keys under `collectors.spool.`).
type SpoolConfig struct {
	// Dir holds one spool per collector (Dir/<collector>); empty turns spooling off, and
	// an event Kafka does not take is then lost and counted. Default /var/lib/crumbs/spool.
	Dir string `mapstructure:"dir"`
	// MaxBytes bounds each collector's spool; when it is full the newest events are dropped
	// and counted (reason spool_full). At least 1 MiB. Default 1 GiB.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// DeliveryTimeout is how long an event may wait for Kafka before it goes to the spool
	// (kgo.RecordDeliveryTimeout). At least 1s. Default 10s.
	DeliveryTimeout time.Duration `mapstructure:"delivery_timeout"`
}

// DefaultSpoolConfig returns the documented defaults.
func DefaultSpoolConfig() SpoolConfig {
	return SpoolConfig{Dir: "/var/lib/crumbs/spool", MaxBytes: 1 << 30, DeliveryTimeout: 10 * time.Second}
}

// Validate reports every invalid field, naming its key.
func (c SpoolConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("collectors.spool.max_bytes: %d: must be at least 1048576 (1 MiB)", c.MaxBytes))
	}
	if c.DeliveryTimeout < time.Second {
		errs = append(errs, fmt.Errorf("collectors.spool.delivery_timeout: %s: must be at least 1s", c.DeliveryTimeout))
	}
	return errors.Join(errs...)
}

// Option configures a Publisher.
type Option func(*options)

type options struct {
	collector   string
	host        schemas.Host
	log         *slog.Logger
	spool       *SpoolConfig
	redactor    *Redactor
	containers  *containers.Resolver
	health      *HealthConfig
	kernelDrops func() uint64
	reg         prometheus.Registerer
}

// WithCollector names the collector (its spool directory, metric label and health events)
// and the host it runs on.
func WithCollector(name string, host schemas.Host, log *slog.Logger) Option {
	return func(o *options) { o.collector, o.host, o.log = name, host, log }
}

// WithSpool keeps events in an on-disk spool while Kafka is unreachable.
func WithSpool(cfg SpoolConfig) Option { return func(o *options) { o.spool = &cfg } }

// WithRedactor redacts secrets from every event's command lines before it is encoded.
func WithRedactor(r *Redactor) Option { return func(o *options) { o.redactor = r } }

// WithContainers puts on every event what is known of its process's container
// (process.container), looked up by its container id without blocking.
func WithContainers(r *containers.Resolver) Option { return func(o *options) { o.containers = r } }

// WithHealth exports drop counts on reg and publishes health events every cfg.Interval when
// they grow; kernelDrops reads the collector's kernel ring-buffer drops (nil: none).
func WithHealth(cfg HealthConfig, kernelDrops func() uint64, reg prometheus.Registerer) Option {
	return func(o *options) { o.health, o.kernelDrops, o.reg = &cfg, kernelDrops, reg }
}

// Publisher produces raw events. Without a spool, Publish blocks when the producer's buffer
// is full (kafka.max_buffered_records): the kernel ring buffer, not crumbs' memory, absorbs
// the burst. With a spool, an event goes to the spool instead when the buffer is full or
// Kafka failed to take an earlier one, and a drainer sends the spool in order once Kafka
// answers again; then events go straight to Kafka again.
//
// Order: events published from one goroutine reach their topic in the order published,
// with one exception: an event handed to Kafka in the instant a delivery failure switches
// the publisher to spooling may land before the failed events that precede it.
type Publisher struct {
	client   *kgo.Client
	serde    *avro.Serde
	topics   kafka.Topics
	kcfg     kafka.Config
	counters *telemetry.StageCounters
	o        options
	log      *slog.Logger

	drops   dropCounts
	lastErr atomic.Value // string: the last delivery error

	// Spooling state; nil spools mean no spool.
	mu          sync.Mutex // serialises Publish against the drainer's switch back
	main, retry *Spool     // retry: events Kafka failed to take; main: events published since
	lock        *os.File   // flock on the spool directory
	spooling    atomic.Bool
	inflight    atomic.Int64 // records handed to the client and not yet resolved
	maxInflight int64

	wake   chan struct{}
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// NewPublisher connects a producer to the configured brokers. With WithSpool it opens the
// collector's spool (and resends what a previous run left there); with WithHealth it starts
// reporting drops. Close releases all of it.
func NewPublisher(kcfg kafka.Config, serde *avro.Serde, counters *telemetry.StageCounters, opts ...Option) (*Publisher, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.collector == "" {
		o.collector = "collector"
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if counters == nil {
		counters = telemetry.NewStageCounters(nil, "collect", "")
	}
	p := &Publisher{serde: serde, topics: kcfg.Topics(), kcfg: kcfg, counters: counters, o: o,
		log: o.log.With("collector", o.collector), wake: make(chan struct{}, 1),
		maxInflight: int64(max(kcfg.MaxBufferedRecords-drainBatch, 1))}
	p.drops.kernel = o.kernelDrops
	clientOpts := append(kcfg.ClientOpts(), kgo.RequiredAcks(kgo.AllISRAcks())) // idempotent by default in franz-go
	if o.spool != nil && o.spool.Dir != "" {
		clientOpts = append(clientOpts, kgo.RecordDeliveryTimeout(o.spool.DeliveryTimeout))
		if err := p.openSpools(*o.spool); err != nil {
			return nil, err
		}
	}
	cl, err := kgo.NewClient(clientOpts...)
	if err != nil {
		p.closeSpools()
		return nil, fmt.Errorf("collector producer: %w", err)
	}
	p.client = cl
	if o.health != nil {
		p.drops.register(o.reg, o.collector)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	if p.main != nil {
		p.wg.Go(func() { p.drain(ctx) })
	}
	if o.health != nil {
		p.wg.Go(func() { p.reportHealth(ctx) })
	}
	return p, nil
}

// openSpools opens Dir/<collector>/{retry,main}, locked against another crumbs process.
func (p *Publisher) openSpools(cfg SpoolConfig) error {
	dir := filepath.Join(cfg.Dir, p.o.collector)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("collectors.spool.dir: create %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("collectors.spool.dir: lock %s: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return fmt.Errorf("collectors.spool.dir: %s is in use by another crumbs process: %w", dir, err)
	}
	p.lock = lock
	if p.retry, err = OpenSpool(filepath.Join(dir, "retry"), cfg.MaxBytes); err != nil {
		p.closeSpools()
		return err
	}
	if p.main, err = OpenSpool(filepath.Join(dir, "main"), cfg.MaxBytes); err != nil {
		p.closeSpools()
		return err
	}
	if !p.retry.Empty() || !p.main.Empty() {
		p.spooling.Store(true)
		p.log.Info("resending events spooled by a previous run", "bytes", p.retry.Bytes()+p.main.Bytes())
	}
	return nil
}

func (p *Publisher) closeSpools() error {
	var errs []error
	for _, s := range []*Spool{p.retry, p.main} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if p.lock != nil {
		p.lock.Close()
		p.lock = nil
	}
	return errors.Join(errs...)
}

// Publish redacts the event's command lines, encodes it under schema and produces it to the
// raw topic of kind, keyed by hostID; with a spool, to the spool while Kafka is unreachable.
// The event is a schemas value with a generated codec (the fast path) or goavro's native
// form. An error means the event was lost (and counted).
func (p *Publisher) Publish(ctx context.Context, kind, schema, hostID string, event any) error {
	p.o.containers.Annotate(event)
	p.o.redactor.Event(event)
	return p.publish(ctx, p.topics.Raw(kind), kind, schema, hostID, event)
}

func (p *Publisher) publish(ctx context.Context, topic, kind, schema, hostID string, event any) error {
	v, err := p.serde.Encode(nil, schema, event)
	if err != nil {
		p.lose(&p.drops.unencodable, err)
		return fmt.Errorf("encode %s event: %w", kind, err)
	}
	p.counters.In(1)
	rec := &kgo.Record{Topic: topic, Key: []byte(hostID), Value: v}
	if p.main == nil {
		p.client.Produce(ctx, rec, p.doneDirect)
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.spooling.Load() && p.inflight.Load() >= p.maxInflight {
		p.startSpooling("the producer buffer is full")
	}
	if p.spooling.Load() {
		return p.spoolAppend(p.main, rec)
	}
	p.inflight.Add(1)
	p.client.TryProduce(ctx, rec, p.doneSpooled)
	return nil
}

func (p *Publisher) startSpooling(why string) {
	if p.spooling.CompareAndSwap(false, true) {
		p.log.Warn("Kafka does not take events: spooling them to disk", "reason", why)
	}
}

// spoolAppend appends rec to s; a full spool drops it, counted. Health events may use a
// reserve of 1/64 of the limit beyond it, so that the report of a full spool is not lost
// to the full spool.
func (p *Publisher) spoolAppend(s *Spool, rec *kgo.Record) error {
	r := SpoolRecord{Topic: rec.Topic, Key: rec.Key, Value: rec.Value}
	limit := p.o.spool.MaxBytes
	if rec.Topic == p.topics.Health() {
		limit += limit / 64
	}
	if p.retry.Bytes()+p.main.Bytes()+frameSize(r) > limit {
		p.lose(&p.drops.spoolFull, ErrSpoolFull)
		return ErrSpoolFull
	}
	if err := s.appendWithin(r, limit); err != nil {
		c := &p.drops.undeliverable
		if errors.Is(err, ErrSpoolFull) {
			c = &p.drops.spoolFull
		}
		p.lose(c, err)
		return fmt.Errorf("spool event: %w", err)
	}
	p.signal()
	return nil
}

func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// lose counts an event lost for a reason.
func (p *Publisher) lose(c *atomic.Uint64, err error) {
	c.Add(1)
	p.lastErr.Store(err.Error())
	p.counters.Dropped(1)
}

// doneDirect resolves a record produced without a spool.
func (p *Publisher) doneDirect(_ *kgo.Record, err error) {
	if err != nil {
		p.lose(&p.drops.undeliverable, err)
		return
	}
	p.counters.Out(1)
}

// doneSpooled resolves a record produced with a spool: one Kafka failed to take goes to the
// retry spool, which the drainer sends before the main one. Promises of one partition are
// called in order, and franz-go fails every record buffered behind a failed one, so the
// retry spool keeps their order.
func (p *Publisher) doneSpooled(rec *kgo.Record, err error) {
	defer p.inflight.Add(-1)
	if err == nil {
		p.counters.Out(1)
		return
	}
	p.lastErr.Store(err.Error())
	p.startSpooling(err.Error())
	_ = p.spoolAppend(p.retry, rec)
}

// drain sends the spools to Kafka, retry first, once no record handed to Kafka directly is
// still unresolved; when both are empty it switches the publisher back to Kafka.
func (p *Publisher) drain(ctx context.Context) {
	backoff := 100 * time.Millisecond
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tick.C:
		}
		for p.spooling.Load() && p.inflight.Load() == 0 && ctx.Err() == nil {
			sent, err := p.drainOnce(ctx)
			if err != nil {
				p.lastErr.Store(err.Error())
				p.log.Debug("Kafka still unreachable; keeping the spool", "error", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, drainRetryMax)
				continue
			}
			backoff = 100 * time.Millisecond
			if sent == 0 && p.switchBack() {
				break
			}
		}
	}
}

// drainOnce sends one batch from the first spool that has records, and commits what Kafka
// took. It returns how many records it sent.
func (p *Publisher) drainOnce(ctx context.Context) (int, error) {
	s := p.retry
	if s.Empty() {
		s = p.main
	}
	recs, _, err := s.Peek(drainBatch)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		p.client.Produce(ctx, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	ok := 0
	for ok < len(recs) && errs[ok] == nil {
		ok++
	}
	if ok > 0 {
		p.counters.Out(ok)
		if err := s.Commit(recs[ok-1].End); err != nil {
			return ok, fmt.Errorf("commit spool: %w", err)
		}
	}
	if ok < len(recs) {
		return ok, fmt.Errorf("resend spooled events: %w", errs[ok])
	}
	return ok, nil
}

// switchBack ends spooling when both spools are empty; Publish cannot append meanwhile.
func (p *Publisher) switchBack() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.retry.Empty() || !p.main.Empty() {
		return false
	}
	p.spooling.Store(false)
	p.log.Info("Kafka takes events again: spool sent")
	return true
}

// reportHealth publishes a health event for each drop reason whose count grew, every interval.
func (p *Publisher) reportHealth(ctx context.Context) {
	t := time.NewTicker(p.o.health.Interval)
	defer t.Stop()
	reported := map[string]uint64{}
	ensured := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !ensured { // retried every interval: the health topic may have to wait for Kafka
			ectx, cancel := context.WithTimeout(ctx, min(p.o.health.Interval, 5*time.Second))
			ensured = p.kcfg.EnsureTopics(ectx, p.client, p.kcfg.HealthTopics()) == nil
			cancel()
		}
		evs := p.drops.healthEvents(p.o.collector, p.o.host, time.Now(), reported)
		for _, ev := range evs {
			p.log.Warn("events lost", "reason", ev.Health.Reason, "dropped", ev.Health.Dropped, "dropped_total", ev.Health.DroppedTotal)
			if err := p.publish(ctx, p.topics.Health(), KindHealth, HealthSchema, p.o.host.ID, ev); err != nil {
				p.log.Warn("health event not published", "error", err)
			}
		}
	}
}

// PublishHealth publishes a health event to crumbs.health (spooled like any event while
// Kafka is away). An error means it was lost.
func (p *Publisher) PublishHealth(ctx context.Context, ev *HealthEvent) error {
	return p.publish(ctx, p.topics.Health(), KindHealth, HealthSchema, p.o.host.ID, ev)
}

// Failed returns how many events the publisher lost (unencodable, undeliverable, spool full),
// and the last delivery error.
func (p *Publisher) Failed() (n uint64, last string) {
	last, _ = p.lastErr.Load().(string)
	return p.drops.lost(), last
}

// Spooled returns the bytes waiting in the spool (0 without one).
func (p *Publisher) Spooled() int64 {
	if p.main == nil {
		return 0
	}
	return p.retry.Bytes() + p.main.Bytes()
}

// Close stops the drainer and health reports, flushes what is buffered (until ctx is done;
// with a spool, what Kafka does not take by then stays spooled for the next run) and closes
// the producer and the spool.
func (p *Publisher) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.stop()
	p.wg.Wait()
	err := p.client.Flush(ctx)
	if err != nil && p.main != nil {
		// Fail what is still buffered: the promises spool it.
		p.client.AbortBufferedRecords(context.WithoutCancel(ctx))
		err = nil
	}
	p.client.Close()
	if err != nil {
		return fmt.Errorf("flush collector producer: %w", err)
	}
	return p.closeSpools()
}
