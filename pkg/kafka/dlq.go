package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DLQ record headers. A dead letter carries the record as its stage received it (key, value
// and headers) plus these.
const (
	HeaderReason    = "crumbs.dlq.reason"
	HeaderStage     = "crumbs.dlq.stage"
	HeaderTopic     = "crumbs.dlq.topic"
	HeaderPartition = "crumbs.dlq.partition"
	HeaderOffset    = "crumbs.dlq.offset"
	// HeaderReplayTo names the topic a replay sends the record to, when it is not HeaderTopic:
	// a stage whose input topics other stages read too (the sink) replays through a retry
	// topic of its own, so that the others do not see the record twice.
	HeaderReplayTo = "crumbs.dlq.replay_to"
	// HeaderReplayed marks a replay marker on the dead-letter topic: its value is
	// "<partition>/<offset>" of the dead letter that was sent back. A marker has no value.
	HeaderReplayed = "crumbs.dlq.replayed"
)

// Headers on a replayed record: where it first came from, so that the stage treats it as
// the record it was (and dead-letters it under the same origin if it fails again).
const (
	HeaderReplayTopic     = "crumbs.replay.topic"
	HeaderReplayPartition = "crumbs.replay.partition"
	HeaderReplayOffset    = "crumbs.replay.offset"
)

// DeadLetter returns the dead-letter record for rec: the value and key as received, the reason
// and where it came from in headers. A replay sends it back to its original topic.
func DeadLetter(dlqTopic string, rec *kgo.Record, stage string, reason error) *kgo.Record {
	return DeadLetterReplayedTo(dlqTopic, rec, stage, reason, "")
}

// DeadLetterReplayedTo is DeadLetter for a stage that reads replays from a topic of its own,
// replayTo (empty: the original topic). A record that was itself replayed keeps its original
// topic, partition and offset.
func DeadLetterReplayedTo(dlqTopic string, rec *kgo.Record, stage string, reason error, replayTo string) *kgo.Record {
	topic, partition, offset := OriginOf(rec)
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+6)
	for _, h := range rec.Headers {
		if !strings.HasPrefix(h.Key, "crumbs.dlq.") && !strings.HasPrefix(h.Key, "crumbs.replay.") {
			hs = append(hs, h)
		}
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(offset, 10))},
	)
	if replayTo != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderReplayTo, Value: []byte(replayTo)})
	}
	return &kgo.Record{Topic: dlqTopic, Key: rec.Key, Value: rec.Value, Headers: hs}
}

// OriginOf returns the topic, partition and offset a record was first consumed at: its own,
// or for a replayed record those its replay headers name.
func OriginOf(rec *kgo.Record) (topic string, partition int32, offset int64) {
	topic, partition, offset = rec.Topic, rec.Partition, rec.Offset
	if t := Header(rec, HeaderReplayTopic); t != "" {
		topic = t
		if p, err := strconv.ParseInt(Header(rec, HeaderReplayPartition), 10, 32); err == nil {
			partition = int32(p)
		}
		if o, err := strconv.ParseInt(Header(rec, HeaderReplayOffset), 10, 64); err == nil {
			offset = o
		}
	}
	return topic, partition, offset
}

// Header returns the value of the first header named key.
func Header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// DeadLetterInfo is one dead letter as `crumbs dlq list` shows it.
type DeadLetterInfo struct {
	Partition int32     // on the dead-letter topic
	Offset    int64     // on the dead-letter topic
	Time      time.Time // when it was dead-lettered
	Stage     string    // the stage that refused it
	Reason    string
	Topic     string // where the stage consumed it
	SrcPart   int32
	SrcOffset int64
	ReplayTo  string // where a replay sends it
	Replayed  bool   // a replay sent it back already
	Key       []byte
}

// DLQFilter selects dead letters; the zero value selects every one.
type DLQFilter struct {
	Since  time.Time // dead-lettered at or after; zero: any time
	Reason string    // the reason contains this, ignoring case; empty: any
	Stage  string    // dead-lettered by this stage; empty: any
}

func (f DLQFilter) match(d DeadLetterInfo) bool {
	return (f.Since.IsZero() || !d.Time.Before(f.Since)) &&
		(f.Reason == "" || strings.Contains(strings.ToLower(d.Reason), strings.ToLower(f.Reason))) &&
		(f.Stage == "" || d.Stage == f.Stage)
}

func deadLetterInfo(r *kgo.Record) (DeadLetterInfo, bool) {
	stage := Header(r, HeaderStage)
	if stage == "" || Header(r, HeaderReplayed) != "" {
		return DeadLetterInfo{}, false
	}
	d := DeadLetterInfo{Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, Stage: stage,
		Reason: Header(r, HeaderReason), Topic: Header(r, HeaderTopic), ReplayTo: Header(r, HeaderReplayTo), Key: r.Key}
	if p, err := strconv.ParseInt(Header(r, HeaderPartition), 10, 32); err == nil {
		d.SrcPart = int32(p)
	}
	if o, err := strconv.ParseInt(Header(r, HeaderOffset), 10, 64); err == nil {
		d.SrcOffset = o
	}
	if d.ReplayTo == "" {
		d.ReplayTo = d.Topic
	}
	return d, true
}

func coordinate(partition int32, offset int64) string {
	return strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}

// scanDLQ reads the dead-letter topic from its start to its last stable offsets as they are
// when it is called, handing every record (markers included) to each.
func scanDLQ(ctx context.Context, cfg Config, each func(*kgo.Record) error) error {
	topic := cfg.Topics().DLQ()
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		cl.Close()
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	cl.Close()
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	left := map[int32]int64{} // partition: the last offset still to read
	ends.Each(func(e kadm.ListedOffset) {
		s, _ := starts.Lookup(e.Topic, e.Partition)
		if e.Offset > s.Offset {
			from[e.Partition] = kgo.NewOffset().At(s.Offset)
			left[e.Partition] = e.Offset - 1
		}
	})
	if len(left) == 0 {
		return nil
	}
	// Control records are kept so that the last offset before a partition's end is always
	// seen, even when a transaction's commit marker is the last thing in it.
	rd, err := kgo.NewClient(append(cfg.ClientOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer rd.Close()
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var eachErr error
		fs.EachRecord(func(r *kgo.Record) {
			last, ok := left[r.Partition]
			if !ok || r.Offset > last || eachErr != nil {
				return
			}
			if r.Offset == last {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				eachErr = each(r)
			}
		})
		if eachErr != nil {
			return eachErr
		}
	}
	return nil
}

// ListDeadLetters returns the dead letters on the dead-letter topic that f selects, oldest
// first per partition, each saying whether a replay already sent it back.
func ListDeadLetters(ctx context.Context, cfg Config, f DLQFilter) ([]DeadLetterInfo, error) {
	var out []DeadLetterInfo
	replayed := map[string]bool{}
	err := scanDLQ(ctx, cfg, func(r *kgo.Record) error {
		if m := Header(r, HeaderReplayed); m != "" {
			replayed[m] = true
			return nil
		}
		if d, ok := deadLetterInfo(r); ok && f.match(d) {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Replayed = replayed[coordinate(out[i].Partition, out[i].Offset)]
	}
	return out, nil
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	Replayed        int            // dead letters sent back by this replay
	AlreadyReplayed int            // selected, but an earlier replay sent them back
	ByTopic         map[string]int // replayed records per topic they were sent to
}

// replayChunk bounds the records of one replay transaction.
const replayChunk = 5000

// ReplayDeadLetters sends the dead letters f selects back to the topic their stage reads
// them from again (HeaderReplayTo, else their original topic), with their key, value and
// headers as first received plus HeaderReplay* naming their origin, and writes a marker per
// letter on the dead-letter topic. Records and markers go in one Kafka transaction (per
// chunk), under one transactional id for every replay: a replay fences any other still
// running, so a dead letter is sent back once however many replays run, one after the other
// or at once, and a replay that dies half way leaves nothing half sent.
func ReplayDeadLetters(ctx context.Context, cfg Config, f DLQFilter) (ReplayResult, error) {
	res := ReplayResult{ByTopic: map[string]int{}}
	dlq := cfg.Topics().DLQ()
	cl, err := kgo.NewClient(append(cfg.ClientOpts(),
		kgo.TransactionalID(DLQReplayTransactionalID(cfg.Topics())),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return res, fmt.Errorf("replay: kafka client: %w", err)
	}
	defer cl.Close()
	// Registering the transactional id fences (and aborts) any replay still running, before
	// this one reads which letters were replayed.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return res, fmt.Errorf("replay: register transactional id: %w", err)
	}
	replayed := map[string]bool{}
	if err := scanDLQ(ctx, cfg, func(r *kgo.Record) error {
		if m := Header(r, HeaderReplayed); m != "" {
			replayed[m] = true
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	var batch []*kgo.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		perr := cl.ProduceSync(ctx, batch...).FirstErr()
		commit := kgo.TryCommit
		if perr != nil {
			commit = kgo.TryAbort
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			return fmt.Errorf("end transaction: %w", errors.Join(perr, err))
		}
		if perr != nil {
			return fmt.Errorf("produce replayed records: %w", perr)
		}
		for _, r := range batch {
			if r.Topic != dlq {
				res.Replayed++
				res.ByTopic[r.Topic]++
			}
		}
		batch = batch[:0]
		return nil
	}
	err = scanDLQ(ctx, cfg, func(r *kgo.Record) error {
		d, ok := deadLetterInfo(r)
		if !ok || !f.match(d) {
			return nil
		}
		at := coordinate(d.Partition, d.Offset)
		if replayed[at] {
			res.AlreadyReplayed++
			return nil
		}
		batch = append(batch, replayRecord(r, d), &kgo.Record{Topic: dlq, Key: r.Key,
			Headers: []kgo.RecordHeader{{Key: HeaderReplayed, Value: []byte(at)}, {Key: HeaderStage, Value: []byte(d.Stage)}}})
		if len(batch) >= 2*replayChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	return res, nil
}

// DLQReplayTransactionalID is the one transactional id of every replay.
func DLQReplayTransactionalID(t Topics) string { return t.Prefix + "-dlq-replay" }

// replayRecord is the record a replay produces for the dead letter r.
func replayRecord(r *kgo.Record, d DeadLetterInfo) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers))
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, "crumbs.dlq.") && !strings.HasPrefix(h.Key, "crumbs.replay.") {
			hs = append(hs, h)
		}
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReplayTopic, Value: []byte(d.Topic)},
		kgo.RecordHeader{Key: HeaderReplayPartition, Value: []byte(strconv.Itoa(int(d.SrcPart)))},
		kgo.RecordHeader{Key: HeaderReplayOffset, Value: []byte(strconv.FormatInt(d.SrcOffset, 10))},
	)
	return &kgo.Record{Topic: d.ReplayTo, Key: r.Key, Value: r.Value, Headers: hs}
}
