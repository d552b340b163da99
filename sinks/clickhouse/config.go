package clickhouse

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Config configures the ClickHouse sink (key prefix `clickhouse.`).
type Config struct {
	// Addr lists the native-protocol addresses of the servers (clickhouse.Options.Addr).
	// Default ["127.0.0.1:9000"].
	Addr []string `mapstructure:"addr"`
	// Database holds crumbs' tables; created by the migrations when missing
	// (clickhouse.Options.Auth.Database). Default "crumbs".
	Database string `mapstructure:"database"`
	// Username to log in as (clickhouse.Options.Auth.Username). Default "default".
	Username string `mapstructure:"username"`
	// Password to log in with (clickhouse.Options.Auth.Password). Default empty.
	Password string `mapstructure:"password"`
	// Group is the Kafka consumer group of the sink (kgo.ConsumerGroup). Default "crumbs-sink".
	Group string `mapstructure:"group"`
	// BatchSize is the most rows buffered before a flush, and the most records polled at
	// once (kgo PollRecords max). One batch is written while the next fills, so the sink
	// holds at most two: about 2.2 KB per buffered process event, some 220 MB at the default
	// under a burst. ClickHouse pays a fixed cost per INSERT (a part per table and per
	// materialised view), so larger batches write more rows per second (BENCHMARKS.md).
	// Default 50000.
	BatchSize int `mapstructure:"batch_size"`
	// BatchMaxAge is how long a consumed record waits at most before its batch is flushed.
	// Default 1s.
	BatchMaxAge time.Duration `mapstructure:"batch_max_age"`
	// RetryBackoff bounds the wait before the first retry of a write ClickHouse could not
	// take (away, overloaded, read-only: a transient failure). Each wait is drawn between half
	// and all of its bound, which doubles with every failure in a row, up to MaxBackoff. The
	// sink retries without limit, holding its batch and offsets. Default 500ms.
	RetryBackoff time.Duration `mapstructure:"retry_backoff"`
	// MaxBackoff caps the wait between two retries. Default 30s.
	MaxBackoff time.Duration `mapstructure:"max_backoff"`
	// DialTimeout bounds connecting to ClickHouse (clickhouse.Options.DialTimeout). Default 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// Compression of the blocks sent to ClickHouse (clickhouse.Options.Compression): lz4,
	// none, or auto: none when every address is a loopback one (compressing costs both ends
	// CPU and saves nothing there), lz4 otherwise. Default auto.
	Compression string `mapstructure:"compression"`
	// Cluster, when set, makes the migrations create every table ON CLUSTER with a Replicated
	// engine and a Distributed table in front (docs/clickhouse.md). The servers need the cluster
	// in remote_servers and the {shard} and {replica} macros. Default empty: one server.
	Cluster string `mapstructure:"cluster"`
	// TLS configures TLS to the servers (clickhouse.Options.TLS); off by default.
	TLS TLSConfig `mapstructure:"tls"`
	// Retention is how many days each table keeps.
	Retention RetentionConfig `mapstructure:"retention"`
	// RetentionInterval is how often the sink drops partitions past retention. Default 1h.
	RetentionInterval time.Duration `mapstructure:"retention_interval"`
}

// Values of Config.Compression.
const (
	CompressionAuto = "auto"
	CompressionLZ4  = "lz4"
	CompressionNone = "none"
)

// compressed reports whether blocks are compressed under c.
func (c Config) compressed() bool {
	switch c.Compression {
	case CompressionNone:
		return false
	case CompressionLZ4:
		return true
	}
	for _, a := range c.Addr {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return true
		}
	}
	return false
}

// TLSConfig configures TLS to ClickHouse's secure native port (9440 by default).
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM file of the CAs to trust; empty: the system's. Default empty.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key, for servers that require
	// one. Default empty.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the client certificate's key (see CertFile). Default empty.
	KeyFile string `mapstructure:"key_file"`
	// ServerName overrides the name checked in the server's certificate. Default empty.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify skips checking the server's certificate (tests only). Default false.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// RetentionConfig is how many days of data each table keeps, by table name (keys
// `clickhouse.retention.<table>`); 0 keeps a table's data forever. The sink drops whole
// partitions (days or months) older than that on every server version, and sets a TTL on
// servers that have TTL (19.6 and later). Defaults: each event kind's table its entry's
// RetentionDays (schemas.Kinds: process_events 30, network_events 30, file_events 90,
// identity_events 180, system_events 30); alerts 365 (monthly partitions: a month goes once its
// last day is past), alerts_hourly 365, service_graph_minute 90, executions_by_service 365
// (monthly partitions), logins_by_account 365 (monthly partitions), service_activity 90;
// alerts_first and alerts_facets_hourly (the console's) what alerts keeps.
type RetentionConfig map[string]int

// otherRetention are the tables with a retention besides the event kinds', with their
// defaults, and the Date expression their TTL is on.
var otherRetention = map[string]struct {
	days   int
	dateOf string
}{
	AlertsTable: {365, "date"}, "alerts_hourly": {365, "toDate(hour)"}, "service_graph_minute": {90, "toDate(minute)"},
	"executions_by_service": {365, "month"}, "logins_by_account": {365, "toDate(hour)"}, "service_activity": {90, "toDate(minute)"},
}

// DefaultRetention returns the retention defaults documented on RetentionConfig.
func DefaultRetention() RetentionConfig {
	r := RetentionConfig{}
	for _, k := range schemas.Kinds {
		r[k.Table] = k.RetentionDays
	}
	for t, o := range otherRetention {
		r[t] = o.days
	}
	return r
}

// Days returns the retention of every table that has one, by table name: kinds' tables at
// their entry's default unless r sets them, the others at r's value or their default.
func (r RetentionConfig) Days(kinds schemas.KindTable) map[string]int {
	out := map[string]int{}
	for _, k := range kinds {
		out[k.Table] = k.RetentionDays
	}
	for t, o := range otherRetention {
		out[t] = o.days
	}
	for t, d := range r {
		out[t] = d
	}
	// The console's alerts_first and alerts_facets_hourly keep what alerts keeps.
	for _, t := range []string{"alerts_first", "alerts_facets_hourly"} {
		if _, set := r[t]; !set {
			out[t] = out[AlertsTable]
		}
	}
	return out
}

// retentionDateOf is the Date expression a table's TTL is on: date for event tables.
func retentionDateOf(table string) string {
	if o, ok := otherRetention[table]; ok {
		return o.dateOf
	}
	if table == "alerts_facets_hourly" {
		return "toDate(hour)"
	}
	return "date"
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Addr:         []string{"127.0.0.1:9000"},
		Database:     "crumbs",
		Username:     "default",
		Group:        "crumbs-sink",
		BatchSize:    50000,
		BatchMaxAge:  time.Second,
		RetryBackoff: 500 * time.Millisecond,
		MaxBackoff:   30 * time.Second,
		DialTimeout:  5 * time.Second,
		Compression:  CompressionAuto,

		Retention:         DefaultRetention(),
		RetentionInterval: time.Hour,
	}
}

// identifier is what Database may be: it is written into SQL unquoted.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every invalid key, each named.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addr) == 0 {
		errs = append(errs, errors.New("clickhouse.addr: must name at least one server"))
	}
	for _, a := range c.Addr {
		if a == "" {
			errs = append(errs, errors.New("clickhouse.addr: empty address"))
		}
	}
	if !identifier.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse.database: %q: must be letters, digits and underscores, not starting with a digit", c.Database))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("clickhouse.username: must not be empty"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("clickhouse.group: must not be empty"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("clickhouse.batch_size: %d: must be at least 1", c.BatchSize))
	}
	if c.BatchMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.batch_max_age: %s: must be positive", c.BatchMaxAge))
	}
	if c.RetryBackoff <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.retry_backoff: %s: must be positive", c.RetryBackoff))
	}
	if c.MaxBackoff < c.RetryBackoff {
		errs = append(errs, fmt.Errorf("clickhouse.max_backoff: %s: must be at least clickhouse.retry_backoff (%s)", c.MaxBackoff, c.RetryBackoff))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.dial_timeout: %s: must be positive", c.DialTimeout))
	}
	switch c.Compression {
	case CompressionAuto, CompressionLZ4, CompressionNone:
	default:
		errs = append(errs, fmt.Errorf("clickhouse.compression: %q: must be auto, lz4 or none", c.Compression))
	}
	if c.Cluster != "" && !identifier.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster: %q: must be letters, digits and underscores, not starting with a digit", c.Cluster))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("clickhouse.tls.cert_file, clickhouse.tls.key_file: set both or neither"))
	}
	known := DefaultRetention()
	for _, table := range sortedKeys(c.Retention) {
		if _, ok := known[table]; !ok {
			errs = append(errs, fmt.Errorf("clickhouse.retention.%s: no such table (have: %s)", table, strings.Join(sortedKeys(known), ", ")))
		}
		if d := c.Retention[table]; d < 0 {
			errs = append(errs, fmt.Errorf("clickhouse.retention.%s: %d: must not be negative (0 keeps forever)", table, d))
		}
	}
	if c.RetentionInterval < time.Minute {
		errs = append(errs, fmt.Errorf("clickhouse.retention_interval: %s: must be at least 1m", c.RetentionInterval))
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Config returns the *tls.Config for the driver, nil when TLS is off.
func (t TLSConfig) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("clickhouse.tls.ca_file: %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls.cert_file, clickhouse.tls.key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
