// Package collectors holds what every collector shares: the Publisher that encodes raw events
// and produces them to crumbs.raw.<kind>, keyed by host id, with an idempotent producer and
// acks from all in-sync replicas. The collectors themselves are its subpackages.
package collectors

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
)

// Publisher produces raw events. Publish blocks when the producer's buffer is full
// (kafka.max_buffered_records): the collector falls behind and the kernel ring buffer, not
// crumbs' memory, absorbs the burst; what it cannot hold is counted as dropped there.
type Publisher struct {
	client   *kgo.Client
	serde    *avro.Serde
	topics   kafka.Topics
	counters *telemetry.StageCounters
	failed   atomic.Uint64
	lastErr  atomic.Value // string: the last delivery error
}

// NewPublisher connects a producer to the configured brokers.
func NewPublisher(kcfg kafka.Config, serde *avro.Serde, counters *telemetry.StageCounters) (*Publisher, error) {
	opts := append(kcfg.ClientOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent by default in franz-go
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("collector producer: %w", err)
	}
	if counters == nil {
		counters = telemetry.NewStageCounters(nil, "collect", "")
	}
	return &Publisher{client: cl, serde: serde, topics: kcfg.Topics(), counters: counters}, nil
}

// Publish encodes native under schema and produces it to the raw topic of kind, keyed by hostID.
func (p *Publisher) Publish(ctx context.Context, kind, schema, hostID string, native any) error {
	v, err := p.serde.Encode(nil, schema, native)
	if err != nil {
		p.counters.Dropped(1)
		return fmt.Errorf("encode %s event: %w", kind, err)
	}
	p.counters.In(1)
	p.client.Produce(ctx, &kgo.Record{Topic: p.topics.Raw(kind), Key: []byte(hostID), Value: v}, p.done)
	return nil
}

func (p *Publisher) done(_ *kgo.Record, err error) {
	if err != nil {
		p.lastErr.Store(err.Error())
		p.failed.Add(1)
		p.counters.Dropped(1)
		return
	}
	p.counters.Out(1)
}

// Failed returns how many records could not be delivered, and the last delivery error.
func (p *Publisher) Failed() (n uint64, last string) {
	last, _ = p.lastErr.Load().(string)
	return p.failed.Load(), last
}

// Close flushes what is buffered (until ctx is done) and closes the producer.
func (p *Publisher) Close(ctx context.Context) error {
	err := p.client.Flush(ctx)
	p.client.Close()
	if err != nil {
		return fmt.Errorf("flush collector producer: %w", err)
	}
	return nil
}
