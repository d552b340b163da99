package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// TestKeyPairReload: a renewed certificate is served once its files change; a renewal caught
// halfway (certificate and key that do not match) keeps the previous certificate.
func TestKeyPairReload(t *testing.T) {
	pki := testenv.NewPKI(t)
	files := Files{Key: "x.tls", CertFile: pki.ServerCert, KeyFile: pki.ServerKey}
	kp := &keyPair{files: files, log: slog.New(slog.DiscardHandler), every: 0}
	if err := kp.load(); err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c, err := kp.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.String()
	}
	first := serial()
	step := 0
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// Coarse file-system clocks may give two quick writes the same time: set it apart.
		step++
		when := time.Now().Add(time.Duration(step) * time.Minute)
		if err := os.Chtimes(to, when, when); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := pki.Issue(t, "renewed", x509.ExtKeyUsageServerAuth)
	copyFile(cert, pki.ServerCert) // the certificate first: it does not match the old key yet
	if got := serial(); got != first {
		t.Errorf("halfway renewal: serving %s, want the previous %s", got, first)
	}
	copyFile(key, pki.ServerKey)
	renewed := serial()
	if renewed == first {
		t.Error("renewed certificate not served")
	}
}

// TestServerConfigErrorsNameTheKey: files that do not load are refused with the key named.
func TestServerConfigErrorsNameTheKey(t *testing.T) {
	pki := testenv.NewPKI(t)
	cases := []struct {
		files Files
		want  string
	}{
		{Files{Key: "x.tls", CertFile: pki.Dir + "/none.pem", KeyFile: pki.ServerKey}, "x.tls.cert_file and x.tls.key_file: "},
		{Files{Key: "x.tls", CertFile: pki.ServerCert, KeyFile: pki.ClientKey}, "x.tls.cert_file and x.tls.key_file: "},
		{Files{Key: "x.tls", CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.Dir + "/none.pem"}, "x.tls.client_ca_file: "},
		{Files{Key: "x.tls", CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.ServerKey}, "x.tls.client_ca_file: "},
	}
	for _, tc := range cases {
		if _, err := ServerConfig(tc.files, nil); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q...", tc.files, err, tc.want)
		}
	}
	cfg, err := ServerConfig(Files{Key: "x.tls", CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("min version %x, client auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}
