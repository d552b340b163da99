package enrichers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// TestAPIListenNeedsTLSOffLoopback: the API refuses to start on an address other than loopback
// without TLS, with a message naming the keys; TLS keys come in pairs.
func TestAPIListenNeedsTLSOffLoopback(t *testing.T) {
	const token = "s3cret-token-for-tests"
	offLoopback := func(addr string) string {
		return `enricher.api.listen: "` + addr + `" is not a loopback address: set enricher.api.tls.cert_file and enricher.api.tls.key_file (TLS is required off loopback, the tokens can suppress alerts), or listen on 127.0.0.1`
	}
	cases := []struct {
		listen string
		tls    TLSConfig
		want   string // "" valid
	}{
		{"127.0.0.1:8443", TLSConfig{}, ""},
		{"127.1.2.3:8443", TLSConfig{}, ""},
		{"[::1]:8443", TLSConfig{}, ""},
		{"localhost:8443", TLSConfig{}, ""},
		{":8443", TLSConfig{}, offLoopback(":8443")},
		{"0.0.0.0:8443", TLSConfig{}, offLoopback("0.0.0.0:8443")},
		{"10.1.2.3:8443", TLSConfig{}, offLoopback("10.1.2.3:8443")},
		{"[::]:8443", TLSConfig{}, offLoopback("[::]:8443")},
		{"api.example.com:8443", TLSConfig{}, offLoopback("api.example.com:8443")},
		{"0.0.0.0:8443", TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}, ""},
		{"0.0.0.0:8443", TLSConfig{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}, ""},
		{"127.0.0.1:8443", TLSConfig{CertFile: "c.pem"}, "enricher.api.tls.cert_file and enricher.api.tls.key_file: set both or neither"},
		{"127.0.0.1:8443", TLSConfig{ClientCAFile: "ca.pem"}, "enricher.api.tls.client_ca_file: needs enricher.api.tls.cert_file and enricher.api.tls.key_file"},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		cfg.API.Listen, cfg.API.Tokens, cfg.API.TLS = tc.listen, []string{token}, tc.tls
		got := ""
		if err := cfg.Validate(); err != nil {
			got = err.Error()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("listen %s, tls %+v (-want +got):\n%s", tc.listen, tc.tls, diff)
		}
	}
}

// TestContextAPITLS serves the API over TLS and over mutual TLS with certificates made for the
// test: a client trusting the CA is served; plain HTTP is not; with a client CA, a client
// without a certificate, or with one from another CA, is refused at the handshake.
func TestContextAPITLS(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	pki := testenv.NewPKI(t)
	other := testenv.NewPKI(t) // a CA the server does not trust
	const token = "s3cret-token-for-tests"

	t.Run("bad files are refused at start, naming the key", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.API.Listen, cfg.API.Tokens = "127.0.0.1:0", []string{token}
		cfg.API.TLS = TLSConfig{CertFile: pki.ServerCert, KeyFile: other.ServerKey}
		if _, err := NewContextAPI(cfg, kcfg, serde, nil); err == nil || !strings.HasPrefix(err.Error(), "enricher.api.tls.cert_file and enricher.api.tls.key_file: ") {
			t.Errorf("mismatched key: error %v", err)
		}
		cfg.API.TLS = TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.ServerKey}
		if _, err := NewContextAPI(cfg, kcfg, serde, nil); err == nil || !strings.HasPrefix(err.Error(), "enricher.api.tls.client_ca_file: ") {
			t.Errorf("client CA without a certificate: error %v", err)
		}
	})

	get := func(base string, client *tls.Config) (int, error) {
		tr := &http.Transport{TLSClientConfig: client}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest("GET", base+"/v1/context/inventory", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	var unknownAuthority x509.UnknownAuthorityError

	t.Run("TLS", func(t *testing.T) {
		addr := serveAPI(t, kcfg, serde, TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey})
		if status, err := get("https://"+addr, pki.ClientTLS(t, false)); err != nil || status != http.StatusOK {
			t.Errorf("client trusting the CA: status %d, error %v; want 200", status, err)
		}
		if _, err := get("https://"+addr, &tls.Config{RootCAs: other.Pool}); !errors.As(err, &unknownAuthority) {
			t.Errorf("client not trusting the CA: error %v, want an unknown authority", err)
		}
		if status, err := get("http://"+addr, nil); err == nil && status != http.StatusBadRequest {
			t.Errorf("plain HTTP: status %d, want the request refused", status)
		}
	})

	t.Run("mutual TLS", func(t *testing.T) {
		addr := serveAPI(t, kcfg, serde, TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile})
		if status, err := get("https://"+addr, pki.ClientTLS(t, true)); err != nil || status != http.StatusOK {
			t.Errorf("client with a certificate: status %d, error %v; want 200", status, err)
		}
		if status, err := get("https://"+addr, pki.ClientTLS(t, false)); err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("client without a certificate: status %d, error %v; want refused (certificate required)", status, err)
		}
		foreign := pki.ClientTLS(t, false)
		c, err := tls.LoadX509KeyPair(other.ClientCert, other.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		foreign.Certificates = []tls.Certificate{c}
		if status, err := get("https://"+addr, foreign); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Errorf("client with a certificate of another CA: status %d, error %v; want refused (unknown certificate authority)", status, err)
		}
	})
}

// serveAPI runs the context API on 127.0.0.1 with tc until the test ends and returns its address.
func serveAPI(t *testing.T, kcfg kafka.Config, serde *avro.Serde, tc TLSConfig) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.API.Tokens, cfg.API.TLS = "127.0.0.1:0", []string{"s3cret-token-for-tests"}, tc
	api, err := NewContextAPI(cfg, kcfg, serde, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := api.Run(ctx); err != nil {
			t.Errorf("api: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	addr, err := api.Addr(actx)
	if err != nil {
		t.Fatal(err)
	}
	return addr.String()
}
