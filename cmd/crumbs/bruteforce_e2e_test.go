package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

const bruteForceRule = "crumbs-brute-force-per-account"

// TestBruteForceAlertsOnce: a burst of real failed PAM authentications on this machine goes
// through the collector, Kafka, the enricher and a detector run apart (`crumbs detect`), and
// ends as exactly one threshold alert, in crumbs.alerts and in ClickHouse, with every failure
// counted once; also when the detector is SIGKILLed in the middle of the burst, after it
// committed the first failures, and started again. The alert is raised early, at the fifth
// failure, and again with the final count when its window closes: ClickHouse reads one row
// per alert id, the final one. Nothing follows the burst: the window closes because the
// partition goes idle (detector.idle_timeout).
func TestBruteForceAlertsOnce(t *testing.T) {
	helper, confdir := buildPAMHelper(t)
	for _, kill := range []bool{false, true} {
		name := "steady"
		if kill {
			name = "detector killed mid-burst"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each waits for its window to close; they share nothing else
			bruteForce(t, helper, confdir, kill)
		})
	}
}

func bruteForce(t *testing.T, helper, confdir string, kill bool) {
	const failures, killAfter = 8, 4
	// Each process serves metrics on a port of its own (an empty metrics.listen from the
	// environment is ignored), so the subtests and the stages run side by side.
	metrics := func() string { return fmt.Sprintf("CRUMBS_METRICS_LISTEN=127.0.0.1:%d", freePort(t)) }
	// After a restart the detector may read one kind's backlog seconds ahead of another's
	// (seen: network 5 s ahead of identity); each kind has its own clock, so a lateness far
	// below that skew still counts every failure.
	p := newPipeline(t, "CRUMBS_UP_STAGES=collect,enrich,sink",
		"CRUMBS_DETECTOR_ALLOWED_LATENESS=1s", "CRUMBS_DETECTOR_IDLE_TIMEOUT=2s", metrics())
	p.start()
	detect := metrics()
	detector := p.startStage("detect", detect)
	host, _ := os.Hostname()
	// An account of this test alone: PAM fails it like any account but root, and no other
	// test authenticating on this machine at the same time adds to its count.
	account := randomName("crumbs-bf-")
	fail := func() {
		out, err := exec.Command(helper, confdir, "crumbs-test", account, "alice", "192.0.2.1").CombinedOutput()
		if err != nil {
			t.Fatalf("pamauth %s: %v\n%s", account, err, out)
		}
	}

	// The rule counts per one-minute tumbling window: start the burst where it fits in one.
	waitForRoomInMinute(15 * time.Second)
	began := time.Now()
	for range killAfter {
		fail()
	}
	if kill {
		// The first failures are judged and their window state committed to the changelog
		// before the crash.
		p.waitDetectorCommitted(p.waitFailures(account, killAfter))
		detector.kill()
		t.Logf("detector killed %s after the burst began", time.Since(began).Round(time.Millisecond))
		fail()
		fail()
		p.startStage("detect", detect)
	}
	for range failures - killAfter - 2*btoi(kill) {
		fail()
	}
	events := p.waitFailures(account, failures)

	// What the detector must raise, from the failures' own times: one alert per window that
	// holds at least five of them (the burst was started to fit in one).
	type window struct {
		Start    int64
		Count    int64
		Evidence []string
	}
	perMinute := map[int64]*window{}
	for _, ev := range events {
		start := ev.time - ev.time%int64(time.Minute)
		if perMinute[start] == nil {
			perMinute[start] = &window{Start: start}
		}
		perMinute[start].Count++
		perMinute[start].Evidence = append(perMinute[start].Evidence, ev.id)
	}
	var want []window
	for _, w := range perMinute {
		if w.Count >= 5 {
			slices.Sort(w.Evidence)
			want = append(want, *w)
		}
	}
	if len(want) != 1 {
		t.Fatalf("the burst did not fit in one minute window: %+v", perMinute)
	}

	key := host + "|" + account
	// The latest version of each alert id, as `crumbs alerts` reads them.
	query := fmt.Sprintf(`SELECT alert_id, window_start_ns, count, evidence FROM %s.alerts WHERE rule_id = ? AND group_key = ?
		ORDER BY version DESC LIMIT 1 BY alert_id`, p.database)
	for _, v := range []struct {
		what    string
		version int
	}{{"early", 1}, {"final", 2}} {
		p.eventually(120*time.Second, "the brute-force alert's "+v.what+" version in ClickHouse", func() (bool, string) {
			n := p.count(fmt.Sprintf(`SELECT count() FROM %s.alerts WHERE rule_id = ? AND group_key = ? AND version >= ?`, p.database), bruteForceRule, key, v.version)
			if n >= 1 {
				return true, ""
			}
			published := 0
			for _, a := range p.publishedAlerts() {
				if a.RuleID == bruteForceRule && a.GroupKey == key {
					published++
				}
			}
			return false, fmt.Sprintf("%d alerts in ClickHouse, %d in crumbs.alerts", n, published)
		})
		t.Logf("%s alert in ClickHouse %s after the burst began", v.what, time.Since(began).Round(time.Millisecond))
	}
	p.waitDetectorCommitted(events)
	time.Sleep(3 * time.Second) // a duplicate would come within an idle tick and the sink's flush age

	var got []window
	var ids []string
	rows, err := p.conn.Query(context.Background(), query, bruteForceRule, key)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			id    string
			start uint64
			w     window
		)
		if err := rows.Scan(&id, &start, &w.Count, &w.Evidence); err != nil {
			t.Fatal(err)
		}
		w.Start = int64(start)
		slices.Sort(w.Evidence)
		got, ids = append(got, w), append(ids, id)
	}
	rows.Close()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("alerts of %s for %s in ClickHouse (-want +got):\n%s", bruteForceRule, key, d)
	}
	var published []string
	for _, a := range p.publishedAlerts() {
		if a.RuleID == bruteForceRule && a.GroupKey == key && !slices.Contains(published, a.AlertID) {
			published = append(published, a.AlertID)
		}
	}
	if d := cmp.Diff(ids, published); d != "" {
		t.Errorf("alert ids in crumbs.alerts, against ClickHouse's (-ClickHouse +crumbs.alerts):\n%s", d)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitForRoomInMinute returns at once when at least room is left in the current minute of
// the wall clock, else when the next minute has begun.
func waitForRoomInMinute(room time.Duration) {
	now := time.Now()
	if left := now.Truncate(time.Minute).Add(time.Minute).Sub(now); left < room {
		time.Sleep(left + 100*time.Millisecond)
	}
}

// failure is a failed authentication as it landed in ClickHouse.
type failure struct {
	id   string
	time int64 // event time, ns
}

// waitFailures waits until n failed authentications of account are in identity_events and
// returns them (each once).
func (p *pipeline) waitFailures(account string, n int) []failure {
	p.t.Helper()
	host, _ := os.Hostname()
	query := fmt.Sprintf(`SELECT event_id, time_ns FROM %s.identity_events
		WHERE host_name = ? AND target_user = ? AND identity_service = 'crumbs-test' AND action = 'auth' AND result = 'failure'`, p.database)
	var out []failure
	p.eventually(60*time.Second, fmt.Sprintf("%d failed authentications of %s in identity_events", n, account), func() (bool, string) {
		rows, err := p.conn.Query(context.Background(), query, host, account)
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		seen := map[string]bool{}
		out = out[:0]
		for rows.Next() {
			var f failure
			var ns uint64
			if err := rows.Scan(&f.id, &ns); err != nil {
				return false, err.Error()
			}
			if f.time = int64(ns); !seen[f.id] {
				seen[f.id] = true
				out = append(out, f)
			}
		}
		return len(out) >= n, fmt.Sprintf("%d rows", len(out))
	})
	return out
}

// kafkaConfig is the configuration of a client of this pipeline's embedded broker, acting as
// a role with the credentials `crumbs up` generated (the tests run as root).
func (p *pipeline) kafkaConfig(r kafka.Role) kafka.Config {
	p.t.Helper()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", p.port)}
	c, err := kafka.ReadCredentials(filepath.Join(p.dataDir, "credentials"), r)
	if err != nil {
		p.t.Fatal(err)
	}
	kcfg.Security.SASL = c.SASL()
	return kcfg
}

// waitDetectorCommitted waits until the detector's consumer group committed offsets past
// every one of the events on crumbs.enriched.identity.
func (p *pipeline) waitDetectorCommitted(events []failure) {
	p.t.Helper()
	kcfg := p.kafkaConfig(kafka.RoleAdmin)
	topic := kcfg.Topics().Enriched("identity")
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		p.t.Fatal(err)
	}
	want := map[string]bool{}
	for _, ev := range events {
		want[ev.id] = true
	}
	need := map[int32]int64{} // partition -> offset the group must have committed
	parts := make([]int32, kcfg.Partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = kafka.ReadPartitions(ctx, kcfg, topic, parts, func(r *kgo.Record) error {
		_, native, err := serde.Decode(r.Value)
		if err != nil {
			return nil // not ours
		}
		if m, ok := native.(map[string]any); ok && want[fmt.Sprint(m["event_id"])] {
			need[r.Partition] = max(need[r.Partition], r.Offset+1)
			delete(want, fmt.Sprint(m["event_id"]))
		}
		return nil
	})
	if err != nil || len(want) > 0 {
		p.t.Fatalf("find the failures in %s: %v (not found: %v)", topic, err, want)
	}
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		p.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	p.eventually(60*time.Second, "the detector committed the failures", func() (bool, string) {
		offs, err := adm.FetchOffsets(ctx, defaultConfig().Detector.Group)
		if err != nil {
			return false, err.Error()
		}
		for part, at := range need {
			o, ok := offs.Lookup(topic, part)
			if !ok || o.At < at {
				return false, fmt.Sprintf("partition %d: committed %d, need %d", part, o.At, at)
			}
		}
		return true, ""
	})
}

// publishedAlerts reads every committed record of crumbs.alerts.
func (p *pipeline) publishedAlerts() []*schemas.Alert {
	p.t.Helper()
	kcfg := p.kafkaConfig(kafka.RoleAdmin)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		p.t.Fatal(err)
	}
	parts := make([]int32, kcfg.Partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	var out []*schemas.Alert
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = kafka.ReadPartitions(ctx, kcfg, kcfg.Topics().Alerts(), parts, func(r *kgo.Record) error {
		_, native, err := serde.Decode(r.Value)
		if err != nil {
			return fmt.Errorf("decode alert at offset %d: %w", r.Offset, err)
		}
		a, err := schemas.AlertFromNative(native)
		if err != nil {
			return fmt.Errorf("decode alert at offset %d: %w", r.Offset, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}
