// Package kafka is crumbs' Kafka plumbing: client options from configuration, topic names and
// creation, the embedded broker (franz-go's kfake), dead-lettering, and the transactional
// consume-transform-produce loop that exactly-once stages run on. It knows nothing of the
// stages themselves.
package kafka

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is the Kafka configuration shared by every stage (key prefix `kafka.`).
type Config struct {
	// Brokers are the seed brokers (kgo.SeedBrokers). Empty under `crumbs up` means: run the
	// embedded broker and use it. Default empty.
	Brokers []string `mapstructure:"brokers"`
	// ClientID is sent to the brokers (kgo.ClientID). Default "crumbs".
	ClientID string `mapstructure:"client_id"`
	// TopicPrefix starts every topic name. Default "crumbs".
	TopicPrefix string `mapstructure:"topic_prefix"`
	// Partitions is the partition count of the topics crumbs creates. Default 3.
	Partitions int32 `mapstructure:"partitions"`
	// ReplicationFactor of the topics crumbs creates (-1: the broker's default). Default -1.
	ReplicationFactor int16 `mapstructure:"replication_factor"`
	// Retention bounds what each family of topics keeps, by time and by size, so that nothing
	// written to Kafka can fill the disk (see RetentionConfig for the defaults).
	Retention RetentionConfig `mapstructure:"retention"`
	// TransactionTimeout of exactly-once stages (kgo.TransactionTimeout). Default 60s.
	TransactionTimeout time.Duration `mapstructure:"transaction_timeout"`
	// SessionTimeout of consumer group members (kgo.SessionTimeout, Kafka's
	// session.timeout.ms): how long a member that died without leaving keeps its partitions
	// before the group gives them to the others. Default 45s.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
	// MaxBufferedRecords bounds a producer's buffer (kgo.MaxBufferedRecords); a full buffer
	// blocks the stage (backpressure). Default 100000.
	MaxBufferedRecords int `mapstructure:"max_buffered_records"`
	// Embedded configures the broker `crumbs up` runs when Brokers is empty.
	Embedded EmbeddedConfig `mapstructure:"embedded"`
	// Security configures TLS and SASL to the brokers; off by default.
	Security SecurityConfig `mapstructure:"security"`
	// SchemaRegistry switches records to the Confluent framing with ids from a registry; off
	// by default (Avro single-object encoding).
	SchemaRegistry SchemaRegistryConfig `mapstructure:"schema_registry"`
}

// EmbeddedConfig configures the embedded broker (franz-go kfake).
type EmbeddedConfig struct {
	// DataDir persists the embedded broker's log (kfake.DataDir). Default /var/lib/crumbs/kafka.
	DataDir string `mapstructure:"data_dir"`
	// Port the embedded broker listens on, on 127.0.0.1 (kfake.Ports); 0 picks a free one.
	// While the port is still held (a previous crumbs still exiting), the start waits for it,
	// up to PortWait. Default 9092.
	Port int `mapstructure:"port"`
	// PortWait bounds how long the start waits for Port to be free. Default 30s.
	PortWait time.Duration `mapstructure:"port_wait"`
	// CredentialsDir keeps each role's SASL credentials, one file per role, readable by root
	// only (directory 0700, files 0600); generated at the first start. Empty: DataDir/credentials.
	// Default empty.
	CredentialsDir string `mapstructure:"credentials_dir"`
	// RetentionInterval is how often the embedded broker deletes what is past its topics'
	// retention.ms and retention.bytes. Default 30s.
	RetentionInterval time.Duration `mapstructure:"retention_interval"`
}

// CredentialsPath returns the credentials directory: CredentialsDir, else DataDir/credentials;
// empty when both are (an in-memory broker keeps its credentials in memory).
func (e EmbeddedConfig) CredentialsPath() string {
	if e.CredentialsDir != "" || e.DataDir == "" {
		return e.CredentialsDir
	}
	return filepath.Join(e.DataDir, "credentials")
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		ClientID:           "crumbs",
		TopicPrefix:        "crumbs",
		Partitions:         3,
		ReplicationFactor:  -1,
		Retention:          DefaultRetention(),
		TransactionTimeout: 60 * time.Second,
		SessionTimeout:     45 * time.Second,
		MaxBufferedRecords: 100000,
		Embedded: EmbeddedConfig{DataDir: "/var/lib/crumbs/kafka", Port: 9092, PortWait: 30 * time.Second,
			RetentionInterval: 30 * time.Second},
		SchemaRegistry: DefaultSchemaRegistryConfig(),
	}
}

// Validate reports the first invalid key.
func (c Config) Validate() error {
	var errs []error
	if c.TopicPrefix == "" {
		errs = append(errs, errors.New("kafka.topic_prefix: must not be empty"))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka.partitions: %d: must be at least 1", c.Partitions))
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		errs = append(errs, fmt.Errorf("kafka.replication_factor: %d: must be -1 or at least 1", c.ReplicationFactor))
	}
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("kafka.session_timeout: %s: must be between 6s and 5m (the brokers' group.min/max.session.timeout.ms)", c.SessionTimeout))
	}
	if c.TransactionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("kafka.transaction_timeout: %s: must be at least 1s", c.TransactionTimeout))
	}
	if c.MaxBufferedRecords < 1 {
		errs = append(errs, fmt.Errorf("kafka.max_buffered_records: %d: must be at least 1", c.MaxBufferedRecords))
	}
	if c.Embedded.Port < 0 || c.Embedded.Port > 65535 {
		errs = append(errs, fmt.Errorf("kafka.embedded.port: %d: not a port", c.Embedded.Port))
	}
	if c.Embedded.PortWait < 0 {
		errs = append(errs, fmt.Errorf("kafka.embedded.port_wait: %s: must not be negative", c.Embedded.PortWait))
	}
	if c.Embedded.RetentionInterval < time.Second {
		errs = append(errs, fmt.Errorf("kafka.embedded.retention_interval: %s: must be at least 1s", c.Embedded.RetentionInterval))
	}
	if err := c.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.SchemaRegistry.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ClientOpts returns the options every crumbs client starts from.
func (c Config) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(5 * time.Millisecond),
	}
	if c.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(c.SessionTimeout))
	}
	return append(opts, c.Security.ClientOpts()...)
}

// Topics returns the topic names under this configuration.
func (c Config) Topics() Topics { return Topics{Prefix: c.TopicPrefix} }

// Topics names crumbs' topics (DESIGN.md, Data flow).
type Topics struct{ Prefix string }

// Raw is the topic of raw events of a kind, keyed by host id.
func (t Topics) Raw(kind string) string { return t.Prefix + ".raw." + kind }

// Enriched is the topic of enriched events of a kind, keyed by host id.
func (t Topics) Enriched(kind string) string { return t.Prefix + ".enriched." + kind }

// Context is the compacted topic of context records of a kind, keyed by entity id.
func (t Topics) Context(kind string) string { return t.Prefix + ".context." + kind }

// Alerts is the topic of alerts, keyed by rule id and group key.
func (t Topics) Alerts() string { return t.Prefix + ".alerts" }

// Incidents is the topic of incidents (alerts of one process tree tied together), keyed by
// incident id.
func (t Topics) Incidents() string { return t.Prefix + ".incidents" }

// DLQ is the dead-letter topic.
func (t Topics) DLQ() string { return t.Prefix + ".dlq" }

// Retry is the topic a stage reads replayed dead letters from, when other stages read its
// input topics too (the sink: `crumbs dlq replay` sends its dead letters there).
func (t Topics) Retry(stage string) string { return t.Prefix + ".retry." + stage }

// Deliveries is the compacted topic of the alerts stage's delivery state, keyed by alert id
// and output name.
func (t Topics) Deliveries() string { return t.Prefix + ".deliveries" }

// Triage is the compacted topic of alerts' triage state, keyed by alert id.
func (t Topics) Triage() string { return t.Prefix + ".triage" }

// State is the compacted changelog topic of a detector group's window state.
func (t Topics) State(group string) string { return t.Prefix + ".state." + group }
