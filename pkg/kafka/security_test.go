package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testCA writes a CA certificate to dir and returns it with a server TLS config for
// 127.0.0.1 signed by it.
func testCA(t *testing.T, dir string) (caFile string, server *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crumbs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// TestSecurityAgainstEmbeddedBroker runs a client with the configured TLS and SASL/SCRAM
// options against kfake with SASL (and TLS) on: the right credentials produce and consume,
// wrong ones and missing TLS are refused.
func TestSecurityAgainstEmbeddedBroker(t *testing.T) {
	caFile, serverTLS := testCA(t, t.TempDir())
	const user, pass = "crumbs", "s3cret-from-env"
	tests := []struct {
		name     string
		tls      bool
		mech     string
		security SecurityConfig
		wantErr  bool
	}{
		{name: "scram-sha-256", mech: MechanismScramSHA256,
			security: SecurityConfig{SASL: SASLConfig{Mechanism: MechanismScramSHA256, Username: user, Password: pass}}},
		{name: "scram-sha-512 over tls", tls: true, mech: MechanismScramSHA512,
			security: SecurityConfig{TLS: TLSConfig{Enabled: true, CAFile: caFile}, SASL: SASLConfig{Mechanism: MechanismScramSHA512, Username: user, Password: pass}}},
		{name: "wrong password", mech: MechanismScramSHA256, wantErr: true,
			security: SecurityConfig{SASL: SASLConfig{Mechanism: MechanismScramSHA256, Username: user, Password: "wrong"}}},
		{name: "untrusted broker certificate", tls: true, mech: MechanismScramSHA256, wantErr: true,
			security: SecurityConfig{TLS: TLSConfig{Enabled: true}, SASL: SASLConfig{Mechanism: MechanismScramSHA256, Username: user, Password: pass}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(tc.mech, user, pass)}
			if tc.tls {
				opts = append(opts, kfake.TLS(serverTLS))
			}
			emb, err := StartEmbedded(EmbeddedConfig{Port: 0}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer emb.Close()
			cfg := DefaultConfig()
			cfg.Brokers, cfg.Security = emb.Addrs(), tc.security
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			err = roundTrip(cfg)
			if tc.wantErr != (err != nil) {
				t.Fatalf("round trip: %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// roundTrip creates a topic, produces a record and consumes it back.
func roundTrip(cfg Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.ConsumeTopics("secure"), kgo.RequestRetries(1))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cfg.EnsureTopics(ctx, cl, []TopicSpec{{Name: "secure"}}); err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: []byte("hello")}).FirstErr(); err != nil {
		return err
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		return err
	}
	if got := fs.Records(); len(got) != 1 || string(got[0].Value) != "hello" {
		return context.DeadlineExceeded
	}
	return nil
}

func TestSecurityValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       SecurityConfig
		wantErr string
	}{
		{name: "off"},
		{name: "unknown mechanism", s: SecurityConfig{SASL: SASLConfig{Mechanism: "GSSAPI"}}, wantErr: "kafka.security.sasl.mechanism"},
		{name: "no password", s: SecurityConfig{SASL: SASLConfig{Mechanism: MechanismScramSHA256, Username: "u"}}, wantErr: "kafka.security.sasl.password"},
		{name: "plain without tls", s: SecurityConfig{SASL: SASLConfig{Mechanism: MechanismPlain, Username: "u", Password: "p"}}, wantErr: "PLAIN"},
		{name: "missing ca", s: SecurityConfig{TLS: TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}}, wantErr: "kafka.security.tls.ca_file"},
		{name: "cert without key", s: SecurityConfig{TLS: TLSConfig{CertFile: "c.pem"}}, wantErr: "kafka.security.tls.key_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
