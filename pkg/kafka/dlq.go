package kafka

import (
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DLQ record headers.
const (
	HeaderReason    = "crumbs.dlq.reason"
	HeaderStage     = "crumbs.dlq.stage"
	HeaderTopic     = "crumbs.dlq.topic"
	HeaderPartition = "crumbs.dlq.partition"
	HeaderOffset    = "crumbs.dlq.offset"
)

// DeadLetter returns the dead-letter record for rec: the value and key as received, the reason
// and where it came from in headers.
func DeadLetter(dlqTopic string, rec *kgo.Record, stage string, reason error) *kgo.Record {
	hs := append([]kgo.RecordHeader(nil), rec.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
	)
	return &kgo.Record{Topic: dlqTopic, Key: rec.Key, Value: rec.Value, Headers: hs}
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
