package clickhouse

import (
	"errors"
	"fmt"
	"regexp"
	"time"
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
	// once (kgo PollRecords max). Default 10000.
	BatchSize int `mapstructure:"batch_size"`
	// BatchMaxAge is how long a consumed record waits at most before its batch is flushed.
	// Default 1s.
	BatchMaxAge time.Duration `mapstructure:"batch_max_age"`
	// MaxRetries is how many times a failed insert is retried before its batch is
	// dead-lettered. Default 5.
	MaxRetries int `mapstructure:"max_retries"`
	// RetryBackoff is the wait before the first retry; it doubles with every retry, up to
	// 30s. Default 500ms.
	RetryBackoff time.Duration `mapstructure:"retry_backoff"`
	// DialTimeout bounds connecting to ClickHouse (clickhouse.Options.DialTimeout). Default 5s.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Addr:         []string{"127.0.0.1:9000"},
		Database:     "crumbs",
		Username:     "default",
		Group:        "crumbs-sink",
		BatchSize:    10000,
		BatchMaxAge:  time.Second,
		MaxRetries:   5,
		RetryBackoff: 500 * time.Millisecond,
		DialTimeout:  5 * time.Second,
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
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("clickhouse.max_retries: %d: must not be negative", c.MaxRetries))
	}
	if c.RetryBackoff <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.retry_backoff: %s: must be positive", c.RetryBackoff))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("clickhouse.dial_timeout: %s: must be positive", c.DialTimeout))
	}
	return errors.Join(errs...)
}
