package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// slidingBruteForce counts failed authentications per host and account over any five minutes:
// a burst that straddles the kill of a detector still falls in one window, and one alert at
// most is raised for overlapping windows.
const slidingBruteForce = `id: test-cluster-brute-force
title: Brute force against an account (sliding)
description: Five failed authentications for one account on one host within five minutes.
severity: high
source: identity
kind: threshold
condition: action == "auth" && identity.result == "failure"
group_by: [host.name, identity.target_user]
window: 5m
threshold: {aggregate: count, op: ">=", value: 5, slide: 10s}
`

// TestTwoInstancesOfEachStageOnThreeBrokers: past one host. Against a three-broker cluster
// with authentication and ACLs, two instances of `crumbs enrich`, `crumbs detect` and
// `crumbs sink` run as processes of the built binary, each as its role. In the middle of a
// stream (loadgen's process events, every hundredth one alerting, and failed authentications
// for six accounts), one instance of each is SIGKILLed: the other takes its partitions, the
// detector's window state is restored from the changelog (three failures of each account
// were counted before the kill, two after, and each account alerts once), and ClickHouse ends
// with every event once and every alert once, as does crumbs.alerts.
func TestTwoInstancesOfEachStageOnThreeBrokers(t *testing.T) {
	testenv.RequireRoot(t)
	chAddr := testenv.ClickHouseAddr(t)
	cfg := defaultConfig()
	cfg.Kafka.Embedded = kafka.EmbeddedConfig{Port: 0}
	emb, err := kafka.StartSecureEmbedded(t.Context(), cfg.Kafka, cfg.kafkaScope(), slog.New(slog.NewTextHandler(io.Discard, nil)), kfake.Ports(0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	if n := len(emb.Addrs()); n != 3 {
		t.Fatalf("%d brokers, want 3", n)
	}
	admin := emb.ClientConfig(cfg.Kafka, kafka.RoleAdmin)
	acl, err := kgo.NewClient(admin.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer acl.Close()
	if err := admin.EnsureTopics(t.Context(), acl, admin.AllTopics(cfg.Detector.Group)); err != nil {
		t.Fatal(err)
	}

	database := randomName("crumbs_cluster_")
	conn, err := ch.Open(&ch.Options{Addr: []string{chAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database)
		conn.Close()
	})
	p := &pipeline{t: t, database: database, conn: conn, logs: &strings.Builder{}}

	rules := publicTempDir(t) // the detectors read it as the crumbs user
	lotl, err := os.ReadFile("../../detectors/rules/pack/lotl-tool-from-service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"lotl.yaml": lotl, "brute-force.yaml": []byte(slidingBruteForce)} {
		if err := os.WriteFile(filepath.Join(rules, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	common := []string{
		"CRUMBS_KAFKA_BROKERS=" + strings.Join(emb.Addrs(), ","),
		// A killed member's partitions and open transaction are handed on within 10 s.
		"CRUMBS_KAFKA_SESSION_TIMEOUT=10s", "CRUMBS_KAFKA_TRANSACTION_TIMEOUT=10s",
		"CRUMBS_CLICKHOUSE_ADDR=" + chAddr, "CRUMBS_CLICKHOUSE_DATABASE=" + database, "CRUMBS_CLICKHOUSE_BATCH_MAX_AGE=200ms",
		// Windows close on loadgen's event times, which go on past the kill. A partition that
		// gets nothing for idle_timeout has its clocks moved to the wall clock, which makes
		// its backlog late: the partitions of the killed instances wait for the session and
		// transaction timeouts first, so idle_timeout stays well above them.
		"CRUMBS_DETECTOR_RULES_DIR=" + rules, "CRUMBS_DETECTOR_ALLOWED_LATENESS=1s", "CRUMBS_DETECTOR_IDLE_TIMEOUT=30s",
		// One alert per suspicious loadgen event: throttling would fold them into a few per host.
		"CRUMBS_DETECTOR_THROTTLE=0s",
		"PATH=" + os.Getenv("PATH"),
	}
	run := func(role kafka.Role, instance string, args ...string) *clusterProc {
		t.Helper()
		creds, _ := emb.Credentials(role)
		env := append(slices.Clone(common), creds.Env()...)
		env = append(env, "CRUMBS_HOST_NAME="+instance, fmt.Sprintf("CRUMBS_METRICS_LISTEN=127.0.0.1:%d", freePort(t)))
		return startClusterProc(t, env, args...)
	}
	stages := []struct {
		name string
		role kafka.Role
	}{{"sink", kafka.RoleSink}, {"detect", kafka.RoleDetector}, {"enrich", kafka.RoleEnricher}}
	procs := map[string]*clusterProc{} // "detect/inst-a" ...
	t.Cleanup(func() {
		if t.Failed() {
			for name, pr := range procs {
				t.Logf("crumbs %s logs:\n%s", name, pr.logs.String())
			}
		}
	})
	for _, st := range stages {
		for _, inst := range []string{"inst-a", "inst-b"} {
			procs[st.name+"/"+inst] = run(st.role, inst, st.name)
		}
	}
	adm := kadm.NewClient(acl)
	p.eventually(60*time.Second, "two members in each stage's group", func() (bool, string) {
		dg, err := adm.DescribeGroups(t.Context(), cfg.Enricher.Group, cfg.Detector.Group, cfg.ClickHouse.Group)
		if err != nil {
			return false, err.Error()
		}
		var state []string
		ok := true
		for _, g := range dg.Sorted() {
			state = append(state, fmt.Sprintf("%s: %s, %d members", g.Group, g.State, len(g.Members)))
			ok = ok && g.State == "Stable" && len(g.Members) == 2
		}
		return ok, strings.Join(state, "; ")
	})

	// The stream: loadgen's events for about 40 s, as the collector role.
	const n, every = 40000, 100
	loadgen := run(kafka.RoleCollector, "loadgen", "loadgen", "--mix", "process=1", "--count", fmt.Sprint(n), "--rate", "1000", "--suspicious-every", fmt.Sprint(every))
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	col, err := kgo.NewClient(append(emb.ClientConfig(cfg.Kafka, kafka.RoleCollector).ClientOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	accounts := make([]string, 6)
	for i := range accounts {
		accounts[i] = randomName("crumbs-acct-")
	}
	fail := func(times int) []string {
		var ids []string
		for i, acct := range accounts {
			h := schemas.Host{ID: fmt.Sprintf("cluster-host-%d", i), Name: fmt.Sprintf("cluster-host-%d", i)}
			for range times {
				ev := &schemas.IdentityEvent{
					Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: time.Now().UnixNano(), Host: h, Kind: schemas.KindIdentity},
					Action:   schemas.ActionAuth,
					Process:  schemas.Actor{PID: 4242, File: schemas.File{Path: "/usr/sbin/sshd", Name: "sshd"}, CmdLine: "sshd"},
					Identity: schemas.Identity{Service: "sshd", User: acct, TargetUser: acct, RemoteHost: "192.0.2.7", Result: "failure"},
				}
				v, err := serde.Encode(nil, schemas.IdentitySchema, schemas.ToNative(ev))
				if err != nil {
					t.Fatal(err)
				}
				if err := col.ProduceSync(t.Context(), &kgo.Record{Topic: cfg.Kafka.Topics().Raw(schemas.KindIdentity), Key: []byte(h.ID), Value: v}).FirstErr(); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ev.EventID)
			}
		}
		return ids
	}
	before := fail(3)

	// The first failures are counted and their window state committed to the changelog
	// before the crash; the victim is the detector that holds the first account's state.
	enriched := cfg.Kafka.Topics().Enriched(schemas.KindIdentity)
	need := committedPositions(t, admin, serde, enriched, before)
	p.eventually(60*time.Second, "the detectors committed the first failures", func() (bool, string) {
		offs, err := adm.FetchOffsets(t.Context(), cfg.Detector.Group)
		if err != nil {
			return false, err.Error()
		}
		for part, at := range need {
			if o, ok := offs.Lookup(enriched, part); !ok || o.At < at {
				return false, fmt.Sprintf("partition %d: committed %d, need %d", part, o.At, at)
			}
		}
		return true, ""
	})
	victim := owner(t, adm, cfg.Detector.Group, enriched, firstPartition(need))
	if !loadgen.running() {
		t.Fatal("loadgen finished before the kill: the kill would not be mid-stream")
	}
	for _, st := range stages {
		procs[st.name+"/"+victim].kill()
	}
	killedAt := time.Now()
	t.Logf("killed enrich, detect and sink of %s mid-stream", victim)
	after := fail(2)
	if err := loadgen.wait(); err != nil {
		t.Fatalf("loadgen: %v\n%s", err, loadgen.logs.String())
	}

	events := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", database)
	// Alerts by id (an alert may come in versions: an early one and the window's final one).
	lotlAlerts := fmt.Sprintf("SELECT uniqExact(alert_id) FROM %s.alerts WHERE rule_id = 'crumbs-lotl-shell-from-service-runtime'", database)
	bfAlerts := fmt.Sprintf("SELECT uniqExact(alert_id) FROM %s.alerts WHERE rule_id = 'test-cluster-brute-force'", database)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		rows, err := conn.Query(context.Background(), fmt.Sprintf("SELECT host_name, target_user, time_ns, event_id FROM %s.identity_events WHERE startsWith(host_name, 'cluster-host-') ORDER BY host_name, time_ns", database))
		if err == nil {
			for rows.Next() {
				var h, u, id string
				var ns uint64
				_ = rows.Scan(&h, &u, &ns, &id)
				t.Logf("failure %s %s %s %s", h, u, time.Unix(0, int64(ns)).Format("15:04:05.000"), id)
			}
			rows.Close()
		}
		rows, err = conn.Query(context.Background(), fmt.Sprintf("SELECT group_key, count, window_start_ns FROM %s.alerts WHERE rule_id = 'test-cluster-brute-force'", database))
		if err == nil {
			for rows.Next() {
				var k string
				var c int64
				var ws uint64
				_ = rows.Scan(&k, &c, &ws)
				t.Logf("alert %s count %d window %s", k, c, time.Unix(0, int64(ws)).Format("15:04:05"))
			}
			rows.Close()
		}
		t.Logf("partitions of the first failures: %v", need)
	})
	p.eventually(90*time.Second, "every event and alert in ClickHouse", func() (bool, string) {
		e, l, b := p.count(events), p.count(lotlAlerts), p.count(bfAlerts)
		f := p.count(fmt.Sprintf("SELECT count() FROM %s.identity_events WHERE startsWith(host_name, 'cluster-host-')", database))
		return e >= n && l >= n/every && b >= uint64(len(accounts)), fmt.Sprintf("%d events, %d failures, %d + %d alerts", e, f, l, b)
	})
	t.Logf("everything landed %s after the kill", time.Since(killedAt).Round(time.Second))
	time.Sleep(3 * time.Second) // a duplicate would land within an idle tick and the sink's flush age

	for _, c := range []struct {
		what, query string
		want        uint64
	}{
		{"process events", events, n},
		{"distinct process events", fmt.Sprintf("SELECT uniqExact(event_id) FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", database), n},
		{"failed authentications", fmt.Sprintf("SELECT count() FROM %s.identity_events WHERE startsWith(host_name, 'cluster-host-')", database), uint64(len(before) + len(after))},
		{"lotl alerts", lotlAlerts, n / every},
		{"brute-force alerts", bfAlerts, uint64(len(accounts))},
		{"alert rows beyond one per alert version", fmt.Sprintf("SELECT count() - uniqExact(alert_id, version) FROM %s.alerts", database), 0},
	} {
		if got := p.count(c.query); got != c.want {
			t.Errorf("%s in ClickHouse: %d, want %d", c.what, got, c.want)
		}
	}
	// Each account alerts once, counting all five failures: the three before the kill came
	// from the changelog.
	rows, err := conn.Query(t.Context(), fmt.Sprintf(`SELECT group_key, count FROM %s.alerts WHERE rule_id = 'test-cluster-brute-force'
		ORDER BY version DESC LIMIT 1 BY alert_id`, database))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var key string
		var count int64
		if err := rows.Scan(&key, &count); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s: %d", key, count))
	}
	rows.Close()
	slices.Sort(got)
	var want []string
	for i, acct := range accounts {
		want = append(want, fmt.Sprintf("cluster-host-%d|%s: 5", i, acct))
	}
	slices.Sort(want)
	if !slices.Equal(want, got) {
		t.Errorf("brute-force alerts in ClickHouse: %q, want %q", got, want)
	}
	// And crumbs.alerts holds each alert (each version of it) once, committed records only.
	published := map[string]int{}
	ids := map[string]bool{}
	err = kafka.ReadPartitions(t.Context(), admin, cfg.Kafka.Topics().Alerts(), []int32{0, 1, 2}, func(r *kgo.Record) error {
		_, native, err := serde.Decode(r.Value)
		if err != nil {
			return err
		}
		a, err := schemas.AlertFromNative(native)
		if err != nil {
			return err
		}
		published[fmt.Sprintf("%s v%d", a.AlertID, a.Version)]++
		ids[a.AlertID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, c := range published {
		if c != 1 {
			t.Errorf("alert %s is %d times in crumbs.alerts", id, c)
		}
	}
	if len(ids) != n/every+len(accounts) {
		t.Errorf("%d alerts in crumbs.alerts, want %d", len(ids), n/every+len(accounts))
	}
}

// committedPositions finds the events in topic and returns, per partition, the offset past the
// last of them: what a consumer group must have committed to have consumed them all.
func committedPositions(t *testing.T, kcfg kafka.Config, serde *avro.Serde, topic string, ids []string) map[int32]int64 {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	need := map[int32]int64{}
	deadline := time.Now().Add(60 * time.Second)
	for len(want) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the events not in %s after 60s", len(want), topic)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := kafka.ReadPartitions(ctx, kcfg, topic, []int32{0, 1, 2}, func(r *kgo.Record) error {
			if _, native, err := serde.Decode(r.Value); err == nil {
				if m, ok := native.(map[string]any); ok && want[fmt.Sprint(m["event_id"])] {
					need[r.Partition] = max(need[r.Partition], r.Offset+1)
					delete(want, fmt.Sprint(m["event_id"]))
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(want) > 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	return need
}

func firstPartition(m map[int32]int64) int32 {
	parts := slices.Sorted(func(yield func(int32) bool) {
		for p := range m {
			if !yield(p) {
				return
			}
		}
	})
	return parts[0]
}

// owner returns the host name of the group member (instance id <group>-<host>) that holds the
// partition.
func owner(t *testing.T, adm *kadm.Client, group, topic string, partition int32) string {
	t.Helper()
	dg, err := adm.DescribeGroups(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range dg[group].Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok || m.InstanceID == nil {
			continue
		}
		for _, tp := range a.Topics {
			if tp.Topic == topic && slices.Contains(tp.Partitions, partition) {
				return strings.TrimPrefix(*m.InstanceID, group+"-")
			}
		}
	}
	t.Fatalf("no member of %s holds %s/%d", group, topic, partition)
	return ""
}

// clusterProc is a crumbs process of the cluster test.
type clusterProc struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
	err  error
}

func startClusterProc(t *testing.T, env []string, args ...string) *clusterProc {
	t.Helper()
	cmd := exec.Command(crumbsBin, args...)
	cmd.Env = env
	pr := &clusterProc{cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = pr.logs, pr.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { pr.err = cmd.Wait(); close(pr.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pr.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-pr.done
		}
	})
	return pr
}

func (p *clusterProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the process, as a crash would, and waits for it to exit.
func (p *clusterProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait waits for the process to exit by itself.
func (p *clusterProc) wait() error {
	<-p.done
	return p.err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
