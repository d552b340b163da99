package outputs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// broker is an embedded Kafka with the stage's topics and a client to produce and read.
type broker struct {
	kcfg kafka.Config
	cl   *kgo.Client
}

func newBroker(t testing.TB) *broker {
	t.Helper()
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := kcfg.EnsureTopics(context.Background(), cl, kcfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	return &broker{kcfg: kcfg, cl: cl}
}

// alert returns a test alert; i makes its id, rule and group key.
func alert(i int, severity string) *schemas.Alert {
	now := time.Now().UnixNano()
	return &schemas.Alert{
		AlertID: fmt.Sprintf("alert-%04d", i), Time: now, RuleID: fmt.Sprintf("rule-%d", i%3), Title: fmt.Sprintf("Test alert %d", i),
		Severity: severity, Tags: []string{"attack.t1078", fmt.Sprintf("n%d", i)}, GroupKey: fmt.Sprintf("web-1|u%d", i),
		Host: schemas.Host{ID: "m1", Name: "web-1"}, Service: "shop", WindowStart: now, WindowEnd: now,
		Count: int64(i + 1), Evidence: []string{fmt.Sprintf("ev-%d", i)}, Summary: fmt.Sprintf("summary <%d> & more", i), RuleSource: "native",
		Version: 1, Final: true,
	}
}

// produce writes alerts to crumbs.alerts, keyed like the detector keys them.
func (b *broker) produce(t testing.TB, alerts ...*schemas.Alert) {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, a := range alerts {
		v, err := serde.Encode(nil, schemas.AlertSchema, a.Native())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: b.kcfg.Topics().Alerts(), Key: []byte(a.RuleID + "|" + a.GroupKey), Value: v})
	}
	if err := b.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// produceRaw writes a record to a topic as it is.
func (b *broker) produceRaw(t *testing.T, rec *kgo.Record) {
	t.Helper()
	if err := b.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// deadLetters reads every record of crumbs.dlq.
func (b *broker) deadLetters(t *testing.T) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	parts := make([]int32, b.kcfg.Partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	err := kafka.ReadPartitions(context.Background(), b.kcfg, b.kcfg.Topics().DLQ(), parts, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startStage runs an alerts stage until the returned stop is called (or the test ends).
func startStage(t *testing.T, b *broker, cfg outputs.Config, opts ...func(*outputs.Deps)) (stage *outputs.Stage, stop func()) {
	t.Helper()
	if cfg.Group == "" {
		cfg.Group = "alerts-test"
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 1000
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 200 * time.Millisecond
	}
	deps := outputs.Deps{Log: testLogger(t), InstanceID: cfg.Group + "-test"}
	for _, o := range opts {
		o(&deps)
	}
	s, err := outputs.New(cfg, b.kcfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("alerts stage: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return s, stop
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventually polls cond every 20 ms until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pki is a test CA with a server certificate for 127.0.0.1 and a client certificate, written
// as PEM files.
type pki struct {
	dir                           string
	caFile, certFile, keyFile     string // the client's
	serverCert                    tls.Certificate
	pool                          *x509.CertPool
	serverCertFile, serverKeyFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crumbs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &pki{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) (certPath, keyPath string, c tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		certPath = write(cn+".pem", "CERTIFICATE", der)
		keyPath = write(cn+"-key.pem", "EC PRIVATE KEY", kder)
		c, err = tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			t.Fatal(err)
		}
		return certPath, keyPath, c
	}
	p.serverCertFile, p.serverKeyFile, p.serverCert = leaf(2, "server", x509.ExtKeyUsageServerAuth, true)
	p.certFile, p.keyFile, _ = leaf(3, "client", x509.ExtKeyUsageClientAuth, false)
	return p
}

// serverTLS is the server side: its certificate, and when mtls, client certificates required.
func (p *pki) serverTLS(mtls bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
	if mtls {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.pool
	}
	return c
}
