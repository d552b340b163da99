package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrBadRecord marks a record a Transform cannot handle (undecodable, unknown schema): it is
// dead-lettered with the error as reason, and the stage goes on. Any other error from a
// Transform is treated the same way, since one record must never stop a stage.
var ErrBadRecord = errors.New("bad record")

// Transform turns one consumed record into the records to produce. It must not keep rec.
// An error dead-letters the record with the error as its reason.
type Transform func(rec *kgo.Record) ([]*kgo.Record, error)

// BatchTransform turns a polled batch into the records to produce: outs[i] and errs[i] are
// what a Transform returns for recs[i]. A stage that works better on many records at once
// (the enricher overlaps their memory lookups) gives one instead of a Transform. It must not
// keep recs.
type BatchTransform func(recs []*kgo.Record) (outs [][]*kgo.Record, errs []error)

// Batch makes a BatchTransform of a Transform.
func (t Transform) Batch() BatchTransform {
	return func(recs []*kgo.Record) ([][]*kgo.Record, []error) {
		outs, errs := make([][]*kgo.Record, len(recs)), make([]error, len(recs))
		for i, r := range recs {
			outs[i], errs[i] = t(r)
		}
		return outs, errs
	}
}

// TransactConfig configures an exactly-once consume-transform-produce loop.
type TransactConfig struct {
	Stage           string   // stage name, for logs and dead-letter headers
	Group           string   // consumer group
	TransactionalID string   // stable per instance, so a restarted instance fences its predecessor
	Topics          []string // topics to consume
	MaxPollRecords  int      // records per transaction; default 10000
	Log             *slog.Logger
	// OnRecords, when set, is told how many records each committed transaction consumed
	// and produced, and how many went to the dead-letter topic.
	OnRecords func(in, out, dlq int)
	// Batch, when set, transforms each polled batch instead of the Transform RunTransact is
	// given (which may then be nil).
	Batch BatchTransform
}

// RunTransact consumes the topics as a consumer group and, for each polled batch, produces
// the transformed records and commits the consumed offsets in one Kafka transaction (exactly
// once: KIP-447 group-fenced transactions through kgo.GroupTransactSession). It returns nil
// when ctx is done, after finishing the transaction in flight.
func RunTransact(ctx context.Context, cfg Config, tc TransactConfig, transform Transform, extra ...kgo.Opt) error {
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
	)
	opts = append(opts, extra...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("%s: create transactional session: %w", tc.Stage, err)
	}
	defer sess.Close()
	// Registering the transactional id before consuming fences a predecessor that died with a
	// transaction open and aborts it, instead of waiting out the transaction timeout.
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: register transactional id %s: %w", tc.Stage, tc.TransactionalID, err)
	}
	dlq := cfg.Topics().DLQ()
	batch := tc.Batch
	if batch == nil {
		batch = transform.Batch()
	}

	for {
		fetches := sess.PollRecords(ctx, tc.MaxPollRecords)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			log.Warn("fetch error", "stage", tc.Stage, "topic", topic, "partition", p, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		// The transaction in flight is finished even when ctx is cancelled meanwhile, within
		// the transaction timeout, so a shutdown never leaves half a batch.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TransactionTimeout)
		in, out, dead, err := runStatefulOne(tctx, sess, fetches, batch, nil, tc.Stage, dlq, log)
		cancel()
		if err != nil {
			log.Warn("transaction aborted; the batch will be consumed again", "stage", tc.Stage, "err", err)
			continue
		}
		if tc.OnRecords != nil {
			tc.OnRecords(in, out, dead)
		}
	}
}
