package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// crumbsBin is the crumbs binary under test, built once by TestMain.
var crumbsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crumbs-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	crumbsBin = filepath.Join(dir, "crumbs")
	out, err := exec.Command("go", "build", "-o", crumbsBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build crumbs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pipeline is one `crumbs up` under test, with its own broker data, port and database.
type pipeline struct {
	t        testing.TB
	env      []string
	port     int
	database string
	dataDir  string
	conn     driver.Conn
	mu       sync.Mutex
	cmd      *exec.Cmd
	logs     *strings.Builder
	exited   chan error
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// newPipeline prepares a pipeline; extraEnv adds CRUMBS_ settings.
func newPipeline(t testing.TB, extraEnv ...string) *pipeline {
	t.Helper()
	testenv.RequireBPF(t)
	return newPipelineAt(t, testenv.ClickHouseAddr(t), extraEnv...)
}

// newPipelineAt prepares a pipeline writing to the ClickHouse server at addr.
func newPipelineAt(t testing.TB, addr string, extraEnv ...string) *pipeline {
	t.Helper()
	testenv.RequireBPF(t)
	p := &pipeline{t: t, port: freePort(t), database: randomName("crumbs_e2e_"), dataDir: tempDir(t)}
	p.env = append(os.Environ(),
		"CRUMBS_KAFKA_EMBEDDED_PORT="+fmt.Sprint(p.port),
		"CRUMBS_KAFKA_EMBEDDED_DATA_DIR="+p.dataDir,
		"CRUMBS_CLICKHOUSE_ADDR="+addr,
		"CRUMBS_CLICKHOUSE_DATABASE="+p.database,
		"CRUMBS_CLICKHOUSE_BATCH_MAX_AGE=200ms",
		"CRUMBS_METRICS_LISTEN=",
		// The console is in crumbs up by default; tests side by side each need a port of their own.
		fmt.Sprintf("CRUMBS_CONSOLE_LISTEN=127.0.0.1:%d", freePort(t)),
		"CRUMBS_STATUS_INTERVAL=2s",
		"CRUMBS_COLLECTORS_SPOOL_DIR="+tempDir(t),
		"CRUMBS_COLLECTORS_FILE_STATE_DIR="+tempDir(t),
	)
	p.env = append(p.env, extraEnv...)
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	p.conn = conn
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+p.database)
		conn.Close()
	})
	return p
}

// tempDir is t.TempDir for tests and benchmarks alike.
func tempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "crumbs-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// start runs `crumbs up` and waits until it says it is up.
func (p *pipeline) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(crumbsBin, "up")
	cmd.Env = p.env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.logs, p.exited = cmd, &strings.Builder{}, make(chan error, 1)
	up := make(chan struct{})
	logs, exited := p.logs, p.exited
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if strings.Contains(sc.Text(), "crumbs is up") {
				once.Do(func() { close(up) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	select {
	case <-up:
	case err := <-exited:
		p.cmd = nil // its exit is consumed: stop must not wait for it
		p.t.Fatalf("crumbs up exited before it was up: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		p.t.Fatalf("crumbs up not up within 60s:\n%s", logs.String())
	}
}

// stop sends sig and waits for the exit; it returns the exit error and how long it took.
func (p *pipeline) stop(sig syscall.Signal) (error, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, 0
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err = <-p.exited
	}
	p.cmd = nil
	return err, time.Since(start)
}

// crumbs runs another crumbs command against this pipeline's broker.
func (p *pipeline) crumbs(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(crumbsBin, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("crumbs %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventually polls cond until it holds or the deadline passes.
func (p *pipeline) eventually(within time.Duration, what string, cond func() (bool, string)) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("%s: not within %s (last: %s)\ncrumbs logs:\n%s", what, within, last, p.logs.String())
}

func (p *pipeline) count(query string, args ...any) uint64 {
	var n uint64
	if err := p.conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		return 0
	}
	return n
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestExecFromKernelToAlertInClickHouse: a real exec by a service runtime reaches ClickHouse
// as process events and one alert, enriched with the host's inventory.
func TestExecFromKernelToAlertInClickHouse(t *testing.T) {
	p := newPipeline(t)
	p.start()
	hostName, _ := os.Hostname()
	inv := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(inv, []byte(fmt.Sprintf(`{"kind": "inventory", "id": %q, "host": %q, "service": "shop", "environment": "prod", "role": "web"}`, hostName, hostName)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.crumbs("context", "publish", "--kind", "inventory", "-f", inv)
	// The enricher reads context as it arrives; give it a moment to apply the record.
	time.Sleep(time.Second)

	dir := t.TempDir()
	java := filepath.Join(dir, "java")
	bash, _ := exec.LookPath("bash")
	data, err := os.ReadFile(bash)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(java, data, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := randomName("crumbs-marker-")
	// "; exit 0" keeps bash from replacing itself with sh: sh must be java's child.
	cmd := exec.Command(java, "-c", "sh -c 'echo "+marker+"'; exit 0")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), marker) {
		t.Fatalf("run %s: %v: %s", java, err, out)
	}
	javaPID := int32(cmd.Process.Pid)

	type row struct {
		EventID, ExePath, ExeSHA, ParentExe, Service string
		PID, PPID                                    int32
	}
	var javaRow, shRow row
	q := fmt.Sprintf(`SELECT event_id, exe_path, exe_sha256, parent_exe_path, service, pid, ppid FROM %s.process_events
		WHERE action = 'exec' AND has(args, 'echo %s') OR (action = 'exec' AND has(args, 'sh -c ''echo %s''; exit 0'))`, p.database, marker, marker)
	p.eventually(10*time.Second, "exec rows of java and sh in process_events", func() (bool, string) {
		rows, err := p.conn.Query(context.Background(), q)
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.EventID, &r.ExePath, &r.ExeSHA, &r.ParentExe, &r.Service, &r.PID, &r.PPID); err != nil {
				return false, err.Error()
			}
			n++
			if r.PID == javaPID && r.ExePath == java {
				javaRow = r
			} else {
				shRow = r
			}
		}
		return javaRow.EventID != "" && shRow.EventID != "", fmt.Sprintf("%d rows: java %+v sh %+v", n, javaRow, shRow)
	})
	if want := sha256File(t, java); javaRow.ExeSHA != want {
		t.Errorf("java sha256 = %q, want sha256sum %q", javaRow.ExeSHA, want)
	}
	if javaRow.PPID != int32(os.Getpid()) {
		t.Errorf("java ppid = %d, want the test's pid %d", javaRow.PPID, os.Getpid())
	}
	if shRow.PPID != javaPID {
		t.Errorf("sh ppid = %d, want java's pid %d", shRow.PPID, javaPID)
	}
	if shRow.ParentExe != java {
		t.Errorf("sh parent executable = %q, want %q", shRow.ParentExe, java)
	}
	if want := sha256File(t, shRow.ExePath); shRow.ExeSHA != want {
		t.Errorf("sh sha256 = %q, want sha256sum of %s %q", shRow.ExeSHA, shRow.ExePath, want)
	}
	if shRow.Service != "shop" {
		t.Errorf("sh service = %q, want shop (from the inventory)", shRow.Service)
	}

	var ruleID string
	var evidence []string
	aq := fmt.Sprintf(`SELECT rule_id, evidence FROM %s.alerts WHERE has(evidence, ?) ORDER BY version DESC LIMIT 1`, p.database)
	p.eventually(10*time.Second, "an alert naming the sh exec", func() (bool, string) {
		// One alert, whatever versions of it throttling raised.
		n := p.count(fmt.Sprintf(`SELECT uniqExact(alert_id) FROM %s.alerts WHERE has(evidence, ?)`, p.database), shRow.EventID)
		return n == 1, fmt.Sprintf("%d alerts", n)
	})
	if err := p.conn.QueryRow(context.Background(), aq, shRow.EventID).Scan(&ruleID, &evidence); err != nil {
		t.Fatal(err)
	}
	if ruleID != "crumbs-lotl-shell-from-service-runtime" {
		t.Errorf("alert rule = %q", ruleID)
	}
	if err, took := p.stop(syscall.SIGTERM); err != nil || took > 10*time.Second {
		t.Errorf("SIGTERM: exit %v after %s, want exit 0 within 10s\n%s", err, took, p.logs.String())
	}
}

// TestRestartLosesNothingAndDuplicatesNothing: SIGTERM in the middle of a stream, then a
// restart: every event lands in ClickHouse exactly once, and so does every alert.
func TestRestartLosesNothingAndDuplicatesNothing(t *testing.T) {
	// One alert per suspicious event: throttling would fold loadgen's into a few per host.
	p := newPipeline(t, "CRUMBS_COLLECTORS_PROCESS_ENABLED=false", "CRUMBS_DETECTOR_THROTTLE=0s")
	p.start()
	const n, every = 150000, 100
	out := p.crumbs("loadgen", "--mix", "process=1", "--count", fmt.Sprint(n), "--rate", "0", "--suspicious-every", fmt.Sprint(every))
	t.Log(strings.TrimSpace(out))
	events := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(60*time.Second, "the stream under way", func() (bool, string) {
		c := p.count(events)
		return c > 0, fmt.Sprint(c)
	})
	mid := p.count(events)
	err, took := p.stop(syscall.SIGTERM)
	if err != nil || took > 10*time.Second {
		t.Fatalf("SIGTERM: exit %v after %s, want exit 0 within 10s\n%s", err, took, p.logs.String())
	}
	t.Logf("stopped after %d of %d events in ClickHouse, in %s", mid, n, took)
	if mid >= n {
		t.Logf("the pipeline finished before the stop; the restart still must not duplicate")
	}
	p.start()
	p.eventually(120*time.Second, "every event in ClickHouse", func() (bool, string) {
		c := p.count(events)
		return c >= n, fmt.Sprint(c)
	})
	alerts := fmt.Sprintf("SELECT count() FROM %s.alerts WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(30*time.Second, "every alert in ClickHouse", func() (bool, string) {
		c := p.count(alerts)
		return c >= n/every, fmt.Sprint(c)
	})
	time.Sleep(2 * time.Second) // a duplicate would land within the sink's flush age
	total := p.count(events)
	unique := p.count(fmt.Sprintf("SELECT uniqExact(event_id) FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database))
	if total != n || unique != n {
		t.Errorf("process_events: %d rows, %d unique, want %d of each", total, unique, n)
	}
	if a := p.count(alerts); a != n/every {
		t.Errorf("alerts: %d rows, want %d", a, n/every)
	}
}

// TestUndecodableRecordIsDeadLettered: garbage on crumbs.raw.process goes to crumbs.dlq with
// its reason, and the pipeline goes on.
func TestUndecodableRecordIsDeadLettered(t *testing.T) {
	p := newPipeline(t, "CRUMBS_COLLECTORS_PROCESS_ENABLED=false")
	p.start()
	// Garbage as a (faulty) collector would write it; read back as `crumbs dlq` would.
	kcfg := p.kafkaConfig(kafka.RoleDLQReplay)
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.ConsumeTopics(kcfg.Topics().DLQ()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	col, err := kgo.NewClient(p.kafkaConfig(kafka.RoleCollector).ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	garbage := []byte("not avro at all " + randomName(""))
	if err := col.ProduceSync(ctx, &kgo.Record{Topic: kcfg.Topics().Raw("process"), Key: []byte("h"), Value: garbage}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var dead *kgo.Record
	for dead == nil && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if string(r.Value) == string(garbage) {
				dead = r
			}
		})
	}
	if dead == nil {
		t.Fatalf("garbage record not in %s\n%s", kcfg.Topics().DLQ(), p.logs.String())
	}
	if reason := kafka.Header(dead, kafka.HeaderReason); !strings.Contains(reason, "not an Avro") {
		t.Errorf("dead-letter reason = %q, want it to say the record is not Avro", reason)
	}
	if stage := kafka.Header(dead, kafka.HeaderStage); stage != "enrich" {
		t.Errorf("dead-letter stage = %q, want enrich", stage)
	}
	// The pipeline goes on: events after the bad record still land.
	p.crumbs("loadgen", "--mix", "process=1", "--count", "100", "--rate", "0")
	p.eventually(30*time.Second, "events after the bad record in ClickHouse", func() (bool, string) {
		c := p.count(fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database))
		return c == 100, fmt.Sprint(c)
	})
}
