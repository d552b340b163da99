// Package tlsfiles builds a server's TLS configuration from PEM files named in configuration:
// a certificate chain and its key in, a *tls.Config out (TLS 1.2 at least, mutual TLS when a
// client CA bundle is given). The certificate is read again when its file changes, so a
// renewed certificate takes effect without a restart.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a server; Key is the prefix of the configuration keys that name
// them (e.g. "enricher.api.tls"), used in error messages.
type Files struct {
	Key          string
	CertFile     string
	KeyFile      string
	ClientCAFile string // empty: no client certificate asked
}

// ServerConfig loads the files and returns a TLS configuration for a server. An error names
// the key and file at fault.
func ServerConfig(f Files, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.Default()
	}
	kp := &keyPair{files: f, log: log, every: time.Second}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.client_ca_file: %w", f.Key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.client_ca_file: %s: no PEM certificate in it", f.Key, f.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// keyPair holds the loaded certificate and reloads it when the certificate or key file's
// modification time or size changes (checked at most once a second).
type keyPair struct {
	files Files
	log   *slog.Logger
	every time.Duration // how often the files are checked for a change

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   stamp // of the files when last read
	checked time.Time
}

func (k *keyPair) load() error {
	cert, stamp, err := k.read()
	if err != nil {
		return err
	}
	k.cert, k.stamp = cert, stamp
	return nil
}

// stamp is the modification time and size of the certificate and key files.
type stamp [4]int64

func stampOf(f Files) stamp {
	var s stamp
	for i, name := range []string{f.CertFile, f.KeyFile} {
		if st, err := os.Stat(name); err == nil {
			s[2*i], s[2*i+1] = st.ModTime().UnixNano(), st.Size()
		}
	}
	return s
}

func (k *keyPair) read() (*tls.Certificate, stamp, error) {
	stamp := stampOf(k.files)
	cert, err := tls.LoadX509KeyPair(k.files.CertFile, k.files.KeyFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("%s.cert_file and %s.key_file: %s, %s: %w", k.files.Key, k.files.Key, k.files.CertFile, k.files.KeyFile, err)
	}
	return &cert, stamp, nil
}

// get serves the current certificate. A certificate file that changed and does not load (a
// renewal caught halfway, a key that does not match) is logged once and the previous
// certificate kept.
func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.checked) >= k.every {
		k.checked = now
		if stampOf(k.files) != k.stamp {
			cert, stamp, err := k.read()
			k.stamp = stamp
			if err != nil {
				k.log.Warn("renewed TLS certificate not loaded; serving the previous one", "err", err)
			} else {
				k.cert = cert
				k.log.Info("TLS certificate reloaded", "cert_file", k.files.CertFile)
			}
		}
	}
	if k.cert == nil {
		return nil, errors.New("no certificate")
	}
	return k.cert, nil
}
