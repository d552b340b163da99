package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms crumbs' clients speak.
const (
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
	MechanismPlain       = "PLAIN"
)

// SecurityConfig is how clients encrypt and authenticate their connections to the brokers
// (key prefix `kafka.security.`). Both are off by default; the password is best given by
// the environment (CRUMBS_KAFKA_SECURITY_SASL_PASSWORD), never in a file under version control.
type SecurityConfig struct {
	// TLS encrypts connections to the brokers (kgo.DialTLSConfig).
	TLS TLSConfig `mapstructure:"tls"`
	// SASL authenticates the client (kgo.SASL).
	SASL SASLConfig `mapstructure:"sasl"`
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM file of the CAs that sign the brokers' certificates; empty: the
	// system's. Default empty.
	CAFile string `mapstructure:"ca_file"`
	// CertFile is a PEM client certificate, for brokers that require mutual TLS. Default empty.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is CertFile's key. Default empty.
	KeyFile string `mapstructure:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates. Default empty.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify skips checking the brokers' certificates (tests only). Default false.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	// Mechanism is SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (PLAIN only over TLS); empty turns
	// SASL off. Default empty.
	Mechanism string `mapstructure:"mechanism"`
	// Username to authenticate as. Default empty.
	Username string `mapstructure:"username"`
	// Password to authenticate with; set it with CRUMBS_KAFKA_SECURITY_SASL_PASSWORD.
	// Default empty.
	Password string `mapstructure:"password"`
}

// Validate reports every invalid key, and TLS files that cannot be read.
func (s SecurityConfig) Validate() error {
	var errs []error
	switch strings.ToUpper(s.SASL.Mechanism) {
	case "":
	case MechanismScramSHA256, MechanismScramSHA512, MechanismPlain:
		if s.SASL.Username == "" {
			errs = append(errs, errors.New("kafka.security.sasl.username: must be set with a SASL mechanism"))
		}
		if s.SASL.Password == "" {
			errs = append(errs, errors.New("kafka.security.sasl.password: must be set with a SASL mechanism (env CRUMBS_KAFKA_SECURITY_SASL_PASSWORD)"))
		}
		if strings.ToUpper(s.SASL.Mechanism) == MechanismPlain && !s.TLS.Enabled {
			errs = append(errs, errors.New("kafka.security.sasl.mechanism: PLAIN sends the password in the clear: enable kafka.security.tls.enabled"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka.security.sasl.mechanism: %q: must be SCRAM-SHA-256, SCRAM-SHA-512, PLAIN or empty", s.SASL.Mechanism))
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		errs = append(errs, errors.New("kafka.security.tls.cert_file, kafka.security.tls.key_file: set both or neither"))
	}
	if s.TLS.Enabled {
		if _, err := s.TLS.Config(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Config returns the *tls.Config the settings describe.
func (t TLSConfig) Config() (*tls.Config, error) {
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.security.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.security.tls.ca_file: %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.security.tls.cert_file, kafka.security.tls.key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Mechanism returns the SASL mechanism configured, nil when SASL is off.
func (s SASLConfig) mechanism() sasl.Mechanism {
	switch strings.ToUpper(s.Mechanism) {
	case MechanismScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case MechanismScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	case MechanismPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	}
	return nil
}

// ClientOpts returns the client options for TLS and SASL. Validate reports files that cannot
// be read; should one become unreadable after, TLS still goes on with no trusted CA, so
// connections fail rather than go out unverified.
func (s SecurityConfig) ClientOpts() []kgo.Opt {
	var opts []kgo.Opt
	if s.TLS.Enabled {
		c, err := s.TLS.Config()
		if err != nil {
			c = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
		}
		opts = append(opts, kgo.DialTLSConfig(c))
	}
	if m := s.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}
