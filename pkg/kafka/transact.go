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
		kgo.RequireStableFetchOffsets(),
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
		in, out, dead, err := runStatefulOne(tctx, sess, fetches, transform, nil, tc.Stage, dlq, log)
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
