package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

// SchemaRegistryConfig connects crumbs to a Confluent-compatible schema registry (keys under
// `kafka.schema_registry.`). With a URL, every process registers the schemas of the topics
// it may write at start, under the subject <topic>-value (TopicNameStrategy), writes records
// with the Confluent framing (0x00, the 4-byte schema id, the Avro body) so that Kafka
// Connect's AvroConverter, ksqlDB and Flink read them, and asks the registry about schema
// ids it meets in records that other producers wrote. Without one, records carry Avro
// single-object encoding. Decoders accept both framings either way.
type SchemaRegistryConfig struct {
	// URL of the registry (sr.URLs), e.g. https://registry:8081; empty turns it off. Default empty.
	URL string `mapstructure:"url"`
	// Username for HTTP basic auth (sr.BasicAuth), with the password in PasswordFile. Default empty.
	Username string `mapstructure:"username"`
	// PasswordFile holds the basic-auth password. Default empty.
	PasswordFile string `mapstructure:"password_file"`
	// CAFile is a PEM file of the CAs that sign the registry's certificate; empty: the
	// system's. Default empty.
	CAFile string `mapstructure:"ca_file"`
	// Timeout bounds each request to the registry; registering at start is retried until
	// StartTimeout. Default 10s.
	Timeout time.Duration `mapstructure:"timeout"`
	// StartTimeout bounds how long a process waits at start for the registry to take its
	// schemas; after it, the process writes single-object encoding (logged and said in
	// crumbs doctor) rather than not running. Default 60s.
	StartTimeout time.Duration `mapstructure:"start_timeout"`
}

// DefaultSchemaRegistryConfig returns the documented defaults.
func DefaultSchemaRegistryConfig() SchemaRegistryConfig {
	return SchemaRegistryConfig{Timeout: 10 * time.Second, StartTimeout: 60 * time.Second}
}

// Validate reports every invalid field, naming its key.
func (c SchemaRegistryConfig) Validate() error {
	var errs []error
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("kafka.schema_registry.url: %q: must be an http:// or https:// URL", c.URL))
		} else if u.Scheme == "http" && c.PasswordFile != "" && !isLoopback(u.Hostname()) {
			errs = append(errs, fmt.Errorf("kafka.schema_registry.url: %q: a password goes only over https (or to loopback)", c.URL))
		}
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		errs = append(errs, errors.New("kafka.schema_registry.username and kafka.schema_registry.password_file: set both or neither"))
	}
	if c.Timeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("kafka.schema_registry.timeout: %s: must be at least 100ms", c.Timeout))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("kafka.schema_registry.start_timeout: %s: must not be negative", c.StartTimeout))
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// Subject is the registry subject of a topic's values (Confluent's TopicNameStrategy).
func Subject(topic string) string { return topic + "-value" }

// TopicSchemas returns the Avro schema of the values of each topic crumbs writes Avro to:
// the raw and enriched topic of every event kind, the context topics, alerts, incidents,
// health, deliveries and triage. Dead letters (the bytes as received) and detector state
// are not Avro records of one schema, and are left out.
func (c Config) TopicSchemas() map[string]string {
	t := c.Topics()
	out := map[string]string{}
	for _, k := range schemas.Kinds {
		out[t.Raw(k.Name)], out[t.Enriched(k.Name)] = k.Codec.Schema, k.Codec.Schema
	}
	for kind, schema := range schemas.ContextSchemas {
		out[t.Context(kind)] = schema
	}
	out[t.Alerts()] = schemas.AlertSchema
	out[t.Incidents()] = schemas.IncidentSchema
	out[t.Health()] = "crumbs.HealthEvent"
	out[t.Deliveries()] = schemas.DeliverySchema
	out[t.Triage()] = schemas.TriageSchema
	return out
}

// SchemaRegistry is crumbs' client of a Confluent-compatible schema registry.
type SchemaRegistry struct {
	cfg    SchemaRegistryConfig
	client *sr.Client
	ctx    context.Context // the process's: ends the questions decoding asks
}

// NewSchemaRegistry returns a client of the configured registry; it asks nothing yet.
func NewSchemaRegistry(ctx context.Context, cfg SchemaRegistryConfig) (*SchemaRegistry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.schema_registry.ca_file: %w", err)
		}
		tlsCfg.RootCAs = x509.NewCertPool()
		if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.schema_registry.ca_file: %s: no PEM certificate", cfg.CAFile)
		}
	}
	opts := []sr.ClientOpt{sr.URLs(cfg.URL), sr.UserAgent("crumbs"),
		sr.HTTPClient(&http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{TLSClientConfig: tlsCfg,
			Proxy: http.ProxyFromEnvironment, MaxIdleConns: 4, IdleConnTimeout: 90 * time.Second}})}
	if cfg.Username != "" {
		pw, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.schema_registry.password_file: %w", err)
		}
		opts = append(opts, sr.BasicAuth(cfg.Username, strings.TrimSpace(string(pw))))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka.schema_registry: %w", err)
	}
	return &SchemaRegistry{cfg: cfg, client: cl, ctx: ctx}, nil
}

// Register registers the schema of each topic under its subject, and tells serde the ids,
// so that it writes the Confluent framing from then on and decodes the ids the registry
// gives other producers. A registry that refuses a schema as incompatible with a subject's
// earlier versions is a permanent error; one that does not answer is retried until
// StartTimeout, with a warning per failed round. Register returns the subjects registered.
func (r *SchemaRegistry) Register(ctx context.Context, serde *avro.Serde, topicSchemas map[string]string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	serde.UseRegistry(r.SchemaByID)
	topics := make([]string, 0, len(topicSchemas))
	for t := range topicSchemas {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	ids := map[string]int32{} // schema name -> id
	var done []string
	for _, topic := range topics {
		name := topicSchemas[topic]
		sc, ok := serde.Lookup(name)
		if !ok {
			return done, fmt.Errorf("register %s: %w", name, avro.ErrUnknownSchema)
		}
		subject := Subject(topic)
		for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
			ss, err := r.client.CreateSchema(ctx, subject, sr.Schema{Schema: sc.Text, Type: sr.TypeAvro})
			if err == nil {
				if id, ok := ids[name]; ok && id != int32(ss.ID) {
					// Two subjects gave one schema two ids: both decode; records carry the first.
					log.Debug("schema registered under two ids", "schema", name, "ids", []int32{id, int32(ss.ID)})
				} else {
					ids[name] = int32(ss.ID)
				}
				done = append(done, subject)
				break
			}
			var re *sr.ResponseError
			if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests && re.StatusCode != http.StatusRequestTimeout {
				return done, fmt.Errorf("register %s under subject %s at %s: %w", name, subject, r.cfg.URL, err)
			}
			log.Warn("schema registry does not answer; retrying", "subject", subject, "error", err)
			select {
			case <-ctx.Done():
				return done, fmt.Errorf("register %s under subject %s at %s: %w (last: %v)", name, subject, r.cfg.URL, ctx.Err(), err)
			case <-time.After(backoff):
			}
		}
	}
	for name, id := range ids {
		if err := serde.SetRegistryID(name, id); err != nil {
			return done, err
		}
	}
	return done, nil
}

// SchemaByID asks the registry for the schema text of an id (avro.SchemaByID).
func (r *SchemaRegistry) SchemaByID(id int32) (string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	s, err := r.client.SchemaByID(ctx, int(id))
	var re *sr.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("%w: %v", avro.ErrUnknownSchema, err)
	case err != nil:
		return "", err
	case s.Type != sr.TypeAvro:
		return "", fmt.Errorf("%w: schema id %d is %s, not Avro", avro.ErrUnknownSchema, id, s.Type)
	}
	return s.Schema, nil
}

// Check asks the registry for its subjects: whether it answers with these credentials.
func (r *SchemaRegistry) Check(ctx context.Context) (subjects int, err error) {
	ss, err := r.client.Subjects(ctx)
	return len(ss), err
}
