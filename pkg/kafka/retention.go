package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TopicRetention bounds what a family of topics keeps (keys kafka.retention.<family>.*).
type TopicRetention struct {
	// Hours a record is kept (retention.ms); 0 keeps records by time forever (-1). Compacted
	// families keep their latest record per key however old, so theirs is always 0.
	Hours int `mapstructure:"hours"`
	// Bytes kept per partition (retention.bytes); the oldest records go first once a
	// partition holds more. 0: no limit (-1), which lets whoever may write the topic fill
	// the disk. Segments (segment.bytes) are an eighth of it, so what a partition holds on
	// disk stays within an eighth above it.
	Bytes int64 `mapstructure:"bytes"`
}

// RetentionConfig is the retention of each family of topics (key prefix kafka.retention.).
// The defaults hold a week of events and at most about 22 GiB on disk (an eighth more with
// open segments) when every partition of every topic is full, with the default 3 partitions:
// raw and enriched 5 kinds x 3 x 512 MiB each, context 4 x 3 x 256 MiB, state 3 x 512 MiB,
// the rest 3 partitions each. At 5,000 events/s on one kind (about 2 MB/s) a kind's 1.5 GiB
// holds about 13 minutes: the time a stage may be away (ClickHouse down, for the sink's
// enriched topics) before its oldest records are deleted unread. Raise Bytes where the disk
// allows longer outages.
type RetentionConfig struct {
	// Raw events, crumbs.raw.*. Default 168 hours, 512 MiB.
	Raw TopicRetention `mapstructure:"raw"`
	// Enriched events, crumbs.enriched.*. Default 168 hours, 512 MiB.
	Enriched TopicRetention `mapstructure:"enriched"`
	// Alerts, crumbs.alerts. Default 720 hours, 256 MiB.
	Alerts TopicRetention `mapstructure:"alerts"`
	// Incidents, crumbs.incidents. Default 720 hours, 64 MiB.
	Incidents TopicRetention `mapstructure:"incidents"`
	// Dead letters, crumbs.dlq, and the replayed ones on the retry topics (crumbs.retry.*):
	// kept long enough to mend the cause and replay them. Default 720 hours, 256 MiB.
	DLQ TopicRetention `mapstructure:"dlq"`
	// Collectors' health events, crumbs.health. Default 168 hours, 64 MiB.
	Health TopicRetention `mapstructure:"health"`
	// Context records, crumbs.context.* (compacted). Default 256 MiB.
	Context TopicRetention `mapstructure:"context"`
	// Detector window state, crumbs.state.* (compacted). Default 512 MiB.
	State TopicRetention `mapstructure:"state"`
	// Triage state, crumbs.triage (compacted). Default 64 MiB.
	Triage TopicRetention `mapstructure:"triage"`
	// Delivery state of the alerts stage, crumbs.deliveries (compacted). Default 64 MiB.
	Deliveries TopicRetention `mapstructure:"deliveries"`
}

const mib = 1 << 20

// DefaultRetention returns the defaults documented on RetentionConfig.
func DefaultRetention() RetentionConfig {
	return RetentionConfig{
		Raw:        TopicRetention{Hours: 168, Bytes: 512 * mib},
		Enriched:   TopicRetention{Hours: 168, Bytes: 512 * mib},
		Alerts:     TopicRetention{Hours: 720, Bytes: 256 * mib},
		Incidents:  TopicRetention{Hours: 720, Bytes: 64 * mib},
		DLQ:        TopicRetention{Hours: 720, Bytes: 256 * mib},
		Health:     TopicRetention{Hours: 168, Bytes: 64 * mib},
		Context:    TopicRetention{Bytes: 256 * mib},
		State:      TopicRetention{Bytes: 512 * mib},
		Triage:     TopicRetention{Bytes: 64 * mib},
		Deliveries: TopicRetention{Bytes: 64 * mib},
	}
}

// families pairs each family's key with its retention and whether it is compacted.
func (r RetentionConfig) families() []struct {
	key       string
	ret       TopicRetention
	compacted bool
} {
	return []struct {
		key       string
		ret       TopicRetention
		compacted bool
	}{
		{"raw", r.Raw, false}, {"enriched", r.Enriched, false}, {"alerts", r.Alerts, false}, {"incidents", r.Incidents, false},
		{"dlq", r.DLQ, false}, {"health", r.Health, false}, {"context", r.Context, true},
		{"state", r.State, true}, {"triage", r.Triage, true}, {"deliveries", r.Deliveries, true},
	}
}

// minRetentionBytes keeps a partition able to hold at least a few maximal batches.
const minRetentionBytes = 8 * mib

// Validate reports every invalid key.
func (r RetentionConfig) Validate() error {
	var errs []error
	for _, f := range r.families() {
		if f.ret.Hours < 0 {
			errs = append(errs, fmt.Errorf("kafka.retention.%s.hours: %d: must not be negative (0 keeps by time forever)", f.key, f.ret.Hours))
		}
		if f.compacted && f.ret.Hours != 0 {
			errs = append(errs, fmt.Errorf("kafka.retention.%s.hours: %d: a compacted family keeps its latest record per key however old: must be 0", f.key, f.ret.Hours))
		}
		if f.ret.Bytes != 0 && f.ret.Bytes < minRetentionBytes {
			errs = append(errs, fmt.Errorf("kafka.retention.%s.bytes: %d: must be 0 (no limit) or at least %d (8 MiB)", f.key, f.ret.Bytes, minRetentionBytes))
		}
	}
	return errors.Join(errs...)
}

// family returns the family of a topic of this prefix, and whether it is compacted; a topic
// of no family (tests' own) is treated as raw.
func (r RetentionConfig) family(t Topics, name string) (TopicRetention, bool) {
	rest, ok := strings.CutPrefix(name, t.Prefix+".")
	if ok {
		key, _, _ := strings.Cut(rest, ".")
		if key == "retry" {
			key = "dlq"
		}
		for _, f := range r.families() {
			if f.key == key {
				return f.ret, f.compacted
			}
		}
	}
	return r.Raw, false
}

// topicConfigs returns the topic-level configs of a topic: cleanup.policy, retention.ms,
// retention.bytes and segment.bytes.
func (r RetentionConfig) topicConfigs(t Topics, s TopicSpec) map[string]*string {
	ret, _ := r.family(t, s.Name)
	policy := "delete"
	if s.Compacted {
		policy = "compact"
		// The embedded broker applies retention.ms to compacted topics too; Kafka ignores
		// it there. -1 keeps them the same on both.
		ret.Hours = 0
	}
	ms, bytes, segment := int64(-1), int64(-1), int64(-1)
	if ret.Hours > 0 {
		ms = int64(ret.Hours) * 3600 * 1000
	}
	if ret.Bytes > 0 {
		bytes = ret.Bytes
		segment = min(max(ret.Bytes/8, mib), 1<<30) // Kafka: at least 1 MiB, an int32
	}
	str := func(n int64) *string { s := strconv.FormatInt(n, 10); return &s }
	cfg := map[string]*string{"cleanup.policy": &policy, "retention.ms": str(ms), "retention.bytes": str(bytes)}
	if segment > 0 {
		cfg["segment.bytes"] = str(segment)
	}
	return cfg
}
