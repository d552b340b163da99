package kafka_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// probeEnv, when set in the environment of this test binary, makes it the unprivileged probe
// of TestNonRootUserCanDoNothing instead of running tests: its value is a JSON probeTarget.
const probeEnv = "CRUMBS_TEST_KAFKA_PROBE"

func TestMain(m *testing.M) {
	if target := os.Getenv(probeEnv); target != "" {
		os.Exit(runProbe(target))
	}
	os.Exit(m.Run())
}

type probeTarget struct {
	Brokers        []string
	CredentialsDir string
	Topic          string // a topic to produce to, consume from and delete
}

type probeResult struct {
	Op  string
	Err string // empty: the operation succeeded
}

// runProbe is what a local user without credentials tries against the broker: read the
// credentials, then produce, consume, delete a topic and read metadata with no SASL, with
// the default credentials of kfake and with a guessed password of the admin role.
func runProbe(target string) int {
	var pt probeTarget
	if err := json.Unmarshal([]byte(target), &pt); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	enc := json.NewEncoder(os.Stdout)
	report := func(op string, err error) {
		r := probeResult{Op: op}
		if err != nil {
			r.Err = err.Error()
		}
		_ = enc.Encode(r)
	}
	for _, r := range []kafka.Role{kafka.RoleAdmin, kafka.RoleContext, kafka.RoleCollector} {
		_, err := kafka.ReadCredentials(pt.CredentialsDir, r)
		report("read credentials of "+string(r), err)
		_, err = os.ReadFile(kafka.CredentialsFile(pt.CredentialsDir, r))
		report("open credentials file of "+string(r), err)
	}
	identities := []struct {
		who  string
		sasl kafka.SASLConfig
	}{
		{"anonymous", kafka.SASLConfig{}},
		{"kfake's default admin", kafka.SASLConfig{Mechanism: kafka.MechanismScramSHA256, Username: "admin", Password: "admin"}},
		{"guessed admin password", kafka.SASLConfig{Mechanism: kafka.MechanismScramSHA512, Username: kafka.RoleAdmin.Username(), Password: "admin"}},
	}
	results := make([][]probeResult, len(identities))
	var wg sync.WaitGroup
	for i, as := range identities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probeAs(pt, as.who, as.sasl)
		}()
	}
	wg.Wait()
	for _, rs := range results {
		for _, r := range rs {
			_ = enc.Encode(r)
		}
	}
	return 0
}

// probeAs produces, consumes and deletes the target's topic with the given SASL settings.
func probeAs(pt probeTarget, who string, sasl kafka.SASLConfig) []probeResult {
	var out []probeResult
	report := func(op string, err error) {
		r := probeResult{Op: who + ": " + op}
		if err != nil {
			r.Err = err.Error()
		}
		out = append(out, r)
	}
	cfg := kafka.DefaultConfig()
	cfg.Brokers, cfg.Security.SASL = pt.Brokers, sasl
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.RequestRetries(1), kgo.RecordDeliveryTimeout(3*time.Second),
		kgo.ConsumeTopics(pt.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		report("client", err)
		return out
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	report("produce", cl.ProduceSync(ctx, &kgo.Record{Topic: pt.Topic, Value: []byte("forged")}).FirstErr())
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	fs := cl.PollFetches(ctx)
	cancel()
	err = fs.Err0()
	if err == nil && fs.NumRecords() == 0 {
		err = errors.New("no record")
	}
	report("consume", err)
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{pt.Topic}
	resp, err := req.RequestWith(ctx, cl)
	cancel()
	if err == nil && len(resp.Topics) > 0 && resp.Topics[0].ErrorCode != 0 {
		err = fmt.Errorf("error code %d", resp.Topics[0].ErrorCode)
	}
	report("delete topic", err)
	return out
}

// TestNonRootUserCanDoNothing: a process of the unprivileged user nobody (uid 65534) on the
// host can read no credentials, and can neither produce, consume nor delete a topic on the
// embedded broker, with no credentials, with kfake's default ones or with a guessed password.
// Afterwards the topic is still there with only the record the collector role wrote.
func TestNonRootUserCanDoNothing(t *testing.T) {
	testenv.RequireRoot(t)
	// The probe is this test binary, run as nobody: copied where nobody may execute it.
	pub := publicDir(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(pub, "probe")
	copyFile(t, self, probe, 0o755)

	cfg := kafka.DefaultConfig()
	cfg.Embedded = kafka.EmbeddedConfig{Port: 0, DataDir: filepath.Join(pub, "kafka")}
	emb, cfg := startSecure(t, cfg)
	topic := cfg.Topics().Raw("process")
	col, err := kgo.NewClient(emb.ClientConfig(cfg, kafka.RoleCollector).ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	if err := col.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("genuine")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	target, _ := json.Marshal(probeTarget{Brokers: emb.Addrs(), CredentialsDir: cfg.Embedded.CredentialsPath(), Topic: topic})
	cmd := exec.Command(probe, "-test.run=^$")
	cmd.Env = []string{probeEnv + "=" + string(target), "PATH=/usr/bin:/bin"}
	cmd.Dir = pub
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as nobody: %v\n%s", err, out)
	}
	var results []probeResult
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var r probeResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("probe output %q: %v", sc.Text(), err)
		}
		results = append(results, r)
	}
	if len(results) != 15 {
		t.Fatalf("probe reported %d operations, want 15:\n%s", len(results), out)
	}
	for _, r := range results {
		switch {
		case r.Err == "":
			t.Errorf("as nobody, %s: succeeded", r.Op)
		case strings.HasPrefix(r.Op, "read credentials") && !strings.Contains(r.Err, "readable by root only; run as root or set kafka.security.sasl.*"):
			t.Errorf("as nobody, %s: %s; want it to say the credentials are root's and what to do", r.Op, r.Err)
		case strings.HasPrefix(r.Op, "open credentials") && !strings.Contains(r.Err, "permission denied"):
			t.Errorf("as nobody, %s: %s; want permission denied", r.Op, r.Err)
		default:
			t.Logf("as nobody, %s: refused: %s", r.Op, r.Err)
		}
	}

	// What the broker holds afterwards: the topic, with the collector's record alone.
	admin, err := kgo.NewClient(emb.ClientConfig(cfg, kafka.RoleAdmin).ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var got []string
	err = kafka.ReadPartitions(t.Context(), emb.ClientConfig(cfg, kafka.RoleAdmin), topic, []int32{0, 1, 2}, func(r *kgo.Record) error {
		got = append(got, string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"genuine"}, got); diff != "" {
		t.Errorf("records in %s (-want +got):\n%s", topic, diff)
	}
}

// TestCredentialsFilesAreRootsAlone: the credentials directory is 0700 and each role's file
// 0600, owned by the user that started the broker; files that others may read, that are
// symbolic links or that another user owns are refused, and a restart keeps the passwords.
func TestCredentialsFilesAreRootsAlone(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "credentials")
	first, err := kafka.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, fs.ModeDir|0o700)
	passwords := map[string]bool{}
	for _, r := range kafka.Roles() {
		assertMode(t, kafka.CredentialsFile(dir, r), 0o600)
		c := first[r]
		if c.Username != "crumbs-"+string(r) || c.Mechanism != kafka.MechanismScramSHA512 || len(c.Password) < 40 {
			t.Errorf("role %s: credentials %s %s with a %d-character password", r, c.Mechanism, c.Username, len(c.Password))
		}
		passwords[c.Password] = true
	}
	if len(passwords) != len(kafka.Roles()) {
		t.Errorf("%d distinct passwords for %d roles", len(passwords), len(kafka.Roles()))
	}
	again, err := kafka.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("credentials after a second start (-first +second):\n%s", diff)
	}

	file := kafka.CredentialsFile(dir, kafka.RoleContext)
	tests := []struct {
		name    string
		mangle  func(t *testing.T)
		wantErr string
	}{
		{"file readable by others", func(t *testing.T) { chmod(t, file, 0o644) }, "mode 0644 lets other users read or change it"},
		{"directory open to others", func(t *testing.T) { chmod(t, dir, 0o755) }, "mode 0755 lets other users read or change it"},
		{"file owned by another user", func(t *testing.T) { chown(t, file, 65534) }, "owned by uid 65534, not by root"},
		{"symbolic link", func(t *testing.T) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			copyFile(t, file, other, 0o600)
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, file); err != nil {
				t.Fatal(err)
			}
		}, "a symbolic link"},
		{"not a credentials file", func(t *testing.T) {
			if err := os.WriteFile(file, []byte("password: x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not key=value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = os.Remove(file)
				if err := os.WriteFile(file, saved, 0o600); err != nil {
					t.Fatal(err)
				}
				chmod(t, dir, 0o700)
			})
			tc.mangle(t)
			_, err = kafka.ReadCredentials(dir, kafka.RoleContext)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ReadCredentials: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestSecureEmbeddedRestartsWithItsCredentials: a restart on the same data directory
// authenticates with the same files; removing a role's file (rotating its password) gives
// the role a new password that the restarted broker takes, and the old one no longer works.
func TestSecureEmbeddedRestartsWithItsCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := kafka.DefaultConfig()
	cfg.Embedded = kafka.EmbeddedConfig{Port: 0, DataDir: filepath.Join(t.TempDir(), "kafka")}
	emb, _ := startSecure(t, cfg)
	old, _ := emb.Credentials(kafka.RoleContext)
	oldCfg := emb.ClientConfig(cfg, kafka.RoleContext)
	emb.Close()
	if err := os.Remove(kafka.CredentialsFile(cfg.Embedded.CredentialsPath(), kafka.RoleContext)); err != nil {
		t.Fatal(err)
	}
	emb, _ = startSecure(t, cfg)
	rotated, _ := emb.Credentials(kafka.RoleContext)
	if rotated.Password == old.Password {
		t.Fatal("the rotated password is the old one")
	}
	publish := func(c kafka.Config) error {
		c.Brokers = emb.Addrs()
		cl, err := kgo.NewClient(append(c.ClientOpts(), kgo.RequestRetries(1))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: c.Topics().Context("change"), Key: []byte("CHG-1"), Value: []byte("x")}).FirstErr()
	}
	if err := publish(emb.ClientConfig(cfg, kafka.RoleContext)); err != nil {
		t.Errorf("publish with the rotated password: %v", err)
	}
	if err := publish(oldCfg); err == nil {
		t.Error("publish with the old password: succeeded")
	}
	if err := publish(emb.ClientConfig(cfg, kafka.RoleCollector)); err == nil {
		t.Error("the collector published context after the restart")
	}
}

// TestTopicsCarryRetentionAndStayWithinIt: every topic gets its family's retention.bytes and
// retention.ms; written past its size limit, a partition is trimmed back within it, on disk
// too; AlignTopics gives existing topics a changed configuration.
func TestTopicsCarryRetentionAndStayWithinIt(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := kafka.DefaultConfig()
	cfg.Partitions = 1
	cfg.Retention.Raw.Bytes = 8 << 20
	cfg.Embedded = kafka.EmbeddedConfig{Port: 0, DataDir: filepath.Join(t.TempDir(), "kafka"), RetentionInterval: time.Second}
	emb, cfg := startSecure(t, cfg)
	admin, err := kgo.NewClient(emb.ClientConfig(cfg, kafka.RoleAdmin).ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	tp := cfg.Topics()
	want := map[string][3]string{ // retention.ms, retention.bytes, cleanup.policy
		tp.Raw("process"):         {"604800000", "8388608", "delete"},
		tp.Enriched("file"):       {"604800000", "536870912", "delete"},
		tp.Alerts():               {"2592000000", "268435456", "delete"},
		tp.DLQ():                  {"2592000000", "268435456", "delete"},
		tp.Health():               {"604800000", "67108864", "delete"},
		tp.Context("account"):     {"-1", "268435456", "compact"},
		tp.State("crumbs-detect"): {"-1", "536870912", "compact"},
		tp.Triage():               {"-1", "67108864", "compact"},
		tp.Deliveries():           {"-1", "67108864", "compact"},
		tp.Retry("sink"):          {"2592000000", "268435456", "delete"},
	}
	got := describeRetention(t, adm, want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("topic configs (-want +got):\n%s", diff)
	}

	// 12 MiB into an 8 MiB partition, as the collector.
	col, err := kgo.NewClient(append(emb.ClientConfig(cfg, kafka.RoleCollector).ClientOpts(), kgo.ProducerBatchMaxBytes(256<<10))...)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	value := make([]byte, 64<<10)
	var wg sync.WaitGroup
	var produceErr error
	var mu sync.Mutex
	for range 192 {
		wg.Add(1)
		col.Produce(t.Context(), &kgo.Record{Topic: tp.Raw("process"), Value: value}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				produceErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if produceErr != nil {
		t.Fatal(produceErr)
	}
	partDir := filepath.Join(cfg.Embedded.DataDir, "partitions", tp.Raw("process")+"-0")
	deadline := time.Now().Add(30 * time.Second)
	var size int64
	for {
		size = dirSize(t, partDir)
		starts, err := adm.ListStartOffsets(t.Context(), tp.Raw("process"))
		if err != nil {
			t.Fatal(err)
		}
		start, _ := starts.Lookup(tp.Raw("process"), 0)
		if start.Offset > 0 && size <= 9<<20 {
			t.Logf("log start offset %d, %d bytes on disk", start.Offset, size)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("12 MiB written to a partition of retention.bytes 8 MiB: log start offset %d, %d bytes on disk after 30s", start.Offset, size)
		}
		time.Sleep(200 * time.Millisecond)
	}

	cfg.Retention.Raw.Bytes = 16 << 20
	if err := cfg.AlignTopics(t.Context(), admin, cfg.AllTopics("crumbs-detect")); err != nil {
		t.Fatal(err)
	}
	if got := describeRetention(t, adm, want)[tp.Raw("process")][1]; got != "16777216" {
		t.Errorf("retention.bytes of %s after AlignTopics = %s, want 16777216", tp.Raw("process"), got)
	}
}

func describeRetention(t *testing.T, adm *kadm.Client, topics map[string][3]string) map[string][3]string {
	t.Helper()
	var names []string
	for n := range topics {
		names = append(names, n)
	}
	rcs, err := adm.DescribeTopicConfigs(t.Context(), names...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]string{}
	for _, rc := range rcs {
		if rc.Err != nil {
			t.Fatalf("describe %s: %v", rc.Name, rc.Err)
		}
		var v [3]string
		for _, c := range rc.Configs {
			switch c.Key {
			case "retention.ms":
				v[0] = c.MaybeValue()
			case "retention.bytes":
				v[1] = c.MaybeValue()
			case "cleanup.policy":
				v[2] = c.MaybeValue()
			}
		}
		got[rc.Name] = v
	}
	return got
}

// TestEmbeddedWaitsForItsPort: started while its port is still held, the broker waits for it
// (saying so once) and starts once the port is free, within kafka.embedded.port_wait; held
// longer, it fails naming the port.
func TestEmbeddedWaitsForItsPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cfg := kafka.DefaultConfig()
	cfg.Embedded = kafka.EmbeddedConfig{Port: port, PortWait: 200 * time.Millisecond}
	if _, err := kafka.StartSecureEmbedded(t.Context(), cfg, testScope(cfg), slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "kafka.embedded.port_wait") {
		t.Fatalf("start with the port held past port_wait: %v, want address already in use and the key", err)
	}

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Embedded.PortWait = 30 * time.Second
	released := make(chan struct{})
	go func() {
		defer close(released)
		for !strings.Contains(logs.String(), "port in use, waiting") {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Second)
		ln.Close()
	}()
	emb, err := kafka.StartSecureEmbedded(t.Context(), cfg, testScope(cfg), log)
	<-released
	if err != nil {
		t.Fatalf("start while the port is held for a second: %v", err)
	}
	defer emb.Close()
	if got := emb.Addrs(); len(got) != 1 || !strings.HasSuffix(got[0], fmt.Sprintf(":%d", port)) {
		t.Errorf("listening on %v, want port %d", got, port)
	}
	if n := strings.Count(logs.String(), "port in use, waiting"); n != 1 {
		t.Errorf("said %d times that it waits for the port, want once:\n%s", n, logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// publicDir is a temporary directory that every user may enter.
func publicDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			chmod(t, p, fi.Mode().Perm()|0o005)
		}
	}
	return d
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %s, want %s", path, fi.Mode(), want)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("%s: owner uid %d, want %d", path, st.Uid, os.Geteuid())
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
