// Package enrichers joins raw events with what the organisation planned. Context records
// (change, deploy, inventory, account) come in through `crumbs context publish`, the context
// HTTP API (ContextAPI) or a directory kept in sync (ContextDir), are validated and published
// to the compacted topics crumbs.context.<kind>; every enricher instance materialises those
// topics in full (ContextTables), and each raw event from crumbs.raw.<kind> goes out to
// crumbs.enriched.<kind> with its enrichment set (service, environment and role; active change
// windows; the current deploy; the artifact verdict; the account policy), exactly once.
package enrichers

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Config configures the enricher, the context API and the context directory sync (keys under
// `enricher.`).
type Config struct {
	// Group is the enricher's consumer group. Default "crumbs-enrich".
	Group string `mapstructure:"group"`
	// Kinds are the event kinds enriched (raw topics consumed). Default every kind of
	// schemas.Kinds: process, network, file, identity, system.
	Kinds []string `mapstructure:"kinds"`
	// MaxContextRecords bounds the records held per context kind; beyond it the oldest are
	// evicted and counted. Default 1000000.
	MaxContextRecords int `mapstructure:"max_context_records"`
	// DeployHistory is how many deploys are kept per service (and per host, for deploys that
	// name hosts), so events are judged against the deploy current at their time. Default 16.
	DeployHistory int `mapstructure:"deploy_history"`
	// MaxPollRecords is how many records one transaction carries at most. Default 5000.
	MaxPollRecords int `mapstructure:"max_poll_records"`
	// API configures the context HTTP API.
	API APIConfig `mapstructure:"api"`
	// ContextDir is a directory of context files (JSON or YAML) kept in sync with the
	// context topics: files added or changed are published, records of removed files are
	// deleted. Empty turns it off. Default empty.
	ContextDir string `mapstructure:"context_dir"`
	// ContextDirInterval is how often ContextDir is read. Default 10s.
	ContextDirInterval time.Duration `mapstructure:"context_dir_interval"`
}

// APIConfig configures the context HTTP API (keys under `enricher.api.`).
type APIConfig struct {
	// Listen is the address serving /v1/context; empty turns the API off. Default empty.
	Listen string `mapstructure:"listen"`
	// Tokens are the bearer tokens accepted (Authorization: Bearer <token>). Required when
	// Listen is set. Default none.
	Tokens []string `mapstructure:"tokens"`
	// MaxBodyBytes bounds a request body. Default 8388608 (8 MiB).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// TLS serves the API over TLS (keys under `enricher.api.tls.`). Required when Listen is
	// not a loopback address: tokens that can suppress alerts never cross a network in clear.
	TLS TLSConfig `mapstructure:"tls"`
}

// TLSConfig configures TLS for an HTTP endpoint (keys under `enricher.api.tls.`).
type TLSConfig struct {
	// CertFile is the PEM certificate chain the server presents; set with KeyFile, it turns
	// TLS on (TLS 1.2 at least). The files are read again when the certificate file changes,
	// so a renewed certificate needs no restart. Default empty (no TLS).
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default empty.
	KeyFile string `mapstructure:"key_file"`
	// ClientCAFile is a PEM bundle of CAs; when set, every client must present a certificate
	// they signed (mutual TLS), in addition to its bearer token. Default empty (no client
	// certificate asked).
	ClientCAFile string `mapstructure:"client_ca_file"`
}

// Enabled says whether TLS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// loopbackListen says whether a listen address (host:port) can only be reached from this
// host: localhost or a loopback IP. An empty host (every interface) or any other name is not.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Group: "crumbs-enrich", Kinds: schemas.Kinds.Names(), MaxContextRecords: 1_000_000,
		DeployHistory: 16, MaxPollRecords: 5000,
		API:                APIConfig{MaxBodyBytes: 8 << 20},
		ContextDirInterval: 10 * time.Second,
	}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("enricher.group: must not be empty"))
	}
	if len(c.Kinds) == 0 {
		errs = append(errs, errors.New("enricher.kinds: must name at least one kind"))
	}
	for i, k := range c.Kinds {
		if slices.Contains(c.Kinds[:i], k) {
			errs = append(errs, fmt.Errorf("enricher.kinds: %q: named twice", k))
		}
	}
	if c.MaxContextRecords < 1 {
		errs = append(errs, fmt.Errorf("enricher.max_context_records: %d: must be at least 1", c.MaxContextRecords))
	}
	if c.DeployHistory < 1 {
		errs = append(errs, fmt.Errorf("enricher.deploy_history: %d: must be at least 1", c.DeployHistory))
	}
	if c.MaxPollRecords < 1 {
		errs = append(errs, fmt.Errorf("enricher.max_poll_records: %d: must be at least 1", c.MaxPollRecords))
	}
	if c.API.Listen != "" {
		if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
			errs = append(errs, fmt.Errorf("enricher.api.listen: %q: not host:port: %v", c.API.Listen, err))
		}
		if len(c.API.Tokens) == 0 {
			errs = append(errs, errors.New("enricher.api.tokens: must name at least one token when enricher.api.listen is set"))
		}
		if !c.API.TLS.Enabled() && !loopbackListen(c.API.Listen) {
			errs = append(errs, fmt.Errorf("enricher.api.listen: %q is not a loopback address: set enricher.api.tls.cert_file and enricher.api.tls.key_file (TLS is required off loopback, the tokens can suppress alerts), or listen on 127.0.0.1", c.API.Listen))
		}
	}
	tls := c.API.TLS
	if (tls.CertFile == "") != (tls.KeyFile == "") {
		errs = append(errs, errors.New("enricher.api.tls.cert_file and enricher.api.tls.key_file: set both or neither"))
	}
	if tls.ClientCAFile != "" && !tls.Enabled() {
		errs = append(errs, errors.New("enricher.api.tls.client_ca_file: needs enricher.api.tls.cert_file and enricher.api.tls.key_file"))
	}
	for i, tok := range c.API.Tokens {
		if len(tok) < 16 {
			errs = append(errs, fmt.Errorf("enricher.api.tokens[%d]: must be at least 16 characters", i))
		}
	}
	if c.API.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("enricher.api.max_body_bytes: %d: must be at least 1024", c.API.MaxBodyBytes))
	}
	if c.ContextDir != "" && c.ContextDirInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("enricher.context_dir_interval: %s: must be at least 100ms", c.ContextDirInterval))
	}
	return errors.Join(errs...)
}
