package detectors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// pipeline is an embedded broker with the pipeline's topics.
type pipeline struct {
	kcfg      kafka.Config
	cl        *kgo.Client
	group     string
	configure func(*detectors.Config) // changes the detectors' configuration, when set
	metrics   *prometheus.Registry    // the detectors' metrics, when set
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	kcfg.TransactionTimeout = 10 * time.Second
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p := &pipeline{kcfg: kcfg, cl: cl, group: "detect-test"}
	if err := kcfg.EnsureTopics(context.Background(), cl, kcfg.AllTopics(p.group)); err != nil {
		t.Fatal(err)
	}
	return p
}

// failedLogin produces a synthetic enriched identity event: a failed PAM authentication.
func (p *pipeline) failedLogin(t *testing.T, id string, at time.Time, result string) {
	t.Helper()
	if err := p.cl.ProduceSync(context.Background(), p.loginRecord(t, id, at, result)).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// loginRecord is failedLogin's record.
func (p *pipeline) loginRecord(t *testing.T, id string, at time.Time, result string) *kgo.Record {
	t.Helper()
	ev, err := engine.FixtureEvent("identity", map[string]any{
		"time": at.UnixNano(), "host": map[string]any{"id": "m1", "name": "web-1"}, "action": "auth",
		"identity": map[string]any{"service": "sshd", "user": "root", "target_user": "root", "result": result, "remote_host": "203.0.113.9"},
	}, id)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	v, err := serde.Encode(nil, schemas.IdentitySchema, ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: p.kcfg.Topics().Enriched("identity"), Key: []byte("m1"), Value: v}
}

// connection produces a synthetic enriched network event of the same host as failedLogin's.
func (p *pipeline) connection(t *testing.T, id string, at time.Time) {
	ev, err := engine.FixtureEvent("network", map[string]any{
		"time": at.UnixNano(), "host": map[string]any{"id": "m1", "name": "web-1"}, "action": "connect",
	}, id)
	if err != nil {
		t.Error(err)
		return
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Error(err)
		return
	}
	v, err := serde.Encode(nil, schemas.NetworkSchema, ev)
	if err != nil {
		t.Error(err)
		return
	}
	rec := &kgo.Record{Topic: p.kcfg.Topics().Enriched("network"), Key: []byte("m1"), Value: v}
	if err := p.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Error(err)
	}
}

// waitCommitted waits until the detector's group committed n identity records.
func (p *pipeline) waitCommitted(t *testing.T, n int64) {
	t.Helper()
	adm := kadm.NewClient(p.cl)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(context.Background(), p.group)
		if err == nil {
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == p.kcfg.Topics().Enriched("identity") {
					sum += o.At
				}
			})
			if sum >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("detector did not commit %d records within a minute", n)
}

// alerts reads every committed alert.
func (p *pipeline) alerts(t *testing.T) []*schemas.Alert {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	var out []*schemas.Alert
	parts := make([]int32, p.kcfg.Partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	err = kafka.ReadPartitions(context.Background(), p.kcfg, p.kcfg.Topics().Alerts(), parts, func(r *kgo.Record) error {
		_, native, err := serde.Decode(r.Value)
		if err != nil {
			return err
		}
		a, err := schemas.AlertFromNative(native)
		out = append(out, a)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startDetector runs a detector until the returned stop is called; idle is
// detector.idle_timeout (0: off).
func (p *pipeline) startDetector(t *testing.T, failFlush func() bool, idle time.Duration) (stop func()) {
	t.Helper()
	cfg := detectors.DefaultConfig()
	cfg.Group, cfg.Sources, cfg.AllowedLateness, cfg.IdleTimeout = p.group, []string{"identity"}, 0, idle
	if p.configure != nil {
		p.configure(&cfg)
	}
	deps := detectors.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FailFlush: failFlush}
	if p.metrics != nil {
		deps.Metrics = p.metrics
	}
	d, err := detectors.New(cfg, p.kcfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil {
			t.Errorf("detector: %v", err)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// TestBruteForceAlertsOnceAcrossACrash kills the detector in the middle of a threshold window,
// with a transaction in flight that never commits, and restarts it: the state is restored from
// the changelog and the brute-force alert fires once, with every failure counted once.
func TestBruteForceAlertsOnceAcrossACrash(t *testing.T) {
	p := newPipeline(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		p.failedLogin(t, fmt.Sprint("f", i), t0.Add(time.Duration(i+1)*time.Second), "failure")
	}

	var armed atomic.Bool
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	stopA := p.startDetector(t, func() bool {
		if !armed.Load() {
			return false
		}
		once.Do(func() { close(inFlight) })
		<-release // the crash happens while this batch's transaction is open
		return true
	}, 0)
	p.waitCommitted(t, 3)
	armed.Store(true)
	for i := 3; i < 6; i++ {
		p.failedLogin(t, fmt.Sprint("f", i), t0.Add(time.Duration(i+1)*time.Second), "failure")
	}
	<-inFlight
	close(release)
	stopA()
	if got := p.alerts(t); len(got) != 0 { // the early alert at the fifth failure was in the aborted transaction
		t.Fatalf("alerts committed before the crash: %d", len(got))
	}

	stopB := p.startDetector(t, nil, 0)
	defer stopB()
	p.failedLogin(t, "after", t0.Add(2*time.Minute), "success") // moves the watermark past the window
	p.waitCommitted(t, 7)

	type view struct {
		Rule, Key string
		Count     int64
		Evidence  []string
		Version   int64
	}
	var got []view
	for _, a := range p.alerts(t) {
		got = append(got, view{a.RuleID, a.GroupKey, a.Count, a.Evidence, a.Version})
	}
	sort.Slice(got, func(i, j int) bool {
		return got[i].Rule < got[j].Rule || (got[i].Rule == got[j].Rule && got[i].Version < got[j].Version)
	})
	want := []view{
		// early, at the fifth failure, then final when the window closed: one alert id
		{"crumbs-brute-force-per-account", "web-1|root", 5, []string{"f0", "f1", "f2", "f3", "f4"}, 1},
		{"crumbs-brute-force-per-account", "web-1|root", 6, []string{"f0", "f1", "f2", "f3", "f4", "f5"}, 2},
		// the success two minutes later completes the failures-then-success sequence, whose
		// progress was restored from the changelog as well
		{"crumbs-brute-force-then-success", "web-1|root", 7, []string{"f0", "f1", "f2", "f3", "f4", "f5", "after"}, 1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
}

// committed reports whether the detector's group committed at least n identity records.
func (p *pipeline) committed(n int64) bool {
	offs, err := kadm.NewClient(p.cl).FetchOffsets(context.Background(), p.group)
	if err != nil {
		return false
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == p.kcfg.Topics().Enriched("identity") {
			sum += o.At
		}
	})
	return sum >= n
}

// closeAlerts returns the committed alerts raised when a window closed: those of version 2,
// which replace an early alert (see engine.Rule.Early).
func (p *pipeline) closeAlerts(t *testing.T) []*schemas.Alert {
	t.Helper()
	var out []*schemas.Alert
	for _, a := range p.alerts(t) {
		if a.Version > 1 {
			out = append(out, a)
		}
	}
	return out
}

// waitClosed waits until an alert raised by a window's close is committed, and returns the
// alerts so raised.
func (p *pipeline) waitClosed(t *testing.T) []*schemas.Alert {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if got := p.closeAlerts(t); len(got) > 0 {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no window closed with an alert within a minute")
	return nil
}

// TestIdlePartitionClosesItsWindows: a brute-force burst followed by silence alerts early, at
// its fifth failure, and again when its window closes: when the partition has been idle for
// detector.idle_timeout, with no later event to move its watermark; also when the idle tick's
// transaction aborts, and when the detector dies before that transaction commits (the
// restarted detector closes the window from the changelog). A burst that just happened closes
// its window too, on the wall clock, whether the partition then falls silent or other kinds
// keep flowing on it (a short window, lateness and idle timeout keep that case short).
func TestIdlePartitionClosesItsWindows(t *testing.T) {
	for _, tc := range []struct {
		name      string
		abortTick bool // fail the first idle tick's flush: its transaction aborts
		crash     bool // kill the first detector while its failing tick is in flight
		recent    bool // the burst is now, judged by a 2s-window rule; else an hour ago, by the pack's 1m rule
		flowing   bool // network events of the same host keep coming after the burst
	}{
		{name: "idle"},
		{name: "tick aborted", abortTick: true},
		{name: "crash before the tick commits", crash: true},
		{name: "recent burst then silence", recent: true},
		{name: "recent burst then other kinds flowing", recent: true, flowing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t)
			idle, window, rule := time.Second, time.Minute, "crumbs-brute-force-per-account"
			// An hour ago, so the idle watermark (now - idle_timeout) is past the window at once.
			t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
			if tc.recent {
				dir := t.TempDir()
				yml := "id: quick-bf\ntitle: Quick brute force\nseverity: high\nsource: identity\nkind: threshold\n" +
					"condition: action == \"auth\" && identity.result == \"failure\"\ngroup_by: [host.name, identity.target_user]\n" +
					"window: 2s\nthreshold: {value: 5}\n"
				if err := os.WriteFile(filepath.Join(dir, "quick-bf.yaml"), []byte(yml), 0o644); err != nil {
					t.Fatal(err)
				}
				p.configure = func(c *detectors.Config) {
					c.RulesDir, c.Sources, c.AllowedLateness = dir, []string{"identity", "network"}, 300*time.Millisecond
				}
				idle, window, rule = 500*time.Millisecond, 2*time.Second, "quick-bf"
				// The burst within the first half of a window, so that it is one window's.
				for t0 = time.Now(); t0.Sub(t0.Truncate(window)) > window/2; t0 = time.Now() {
					time.Sleep(50 * time.Millisecond)
				}
				t0 = t0.Truncate(window)
			}
			var ids []string
			for i := range 5 {
				ids = append(ids, fmt.Sprint("f", i))
				at := t0.Add(time.Duration(i+1) * time.Second)
				if tc.recent {
					at = t0.Add(time.Duration(i+1) * time.Millisecond)
				}
				p.failedLogin(t, ids[i], at, "failure")
			}
			// A flush after every failure was committed can only be an idle tick's.
			var failFlush func() bool
			var aborted atomic.Int64
			if tc.abortTick {
				failFlush = func() bool { return p.committed(5) && aborted.Add(1) == 1 }
			}
			inFlight, release := make(chan struct{}), make(chan struct{})
			if tc.crash {
				var once sync.Once
				failFlush = func() bool {
					if !p.committed(5) {
						return false
					}
					once.Do(func() { close(inFlight) })
					<-release
					return true
				}
			}
			stop := p.startDetector(t, failFlush, idle)
			if tc.crash {
				<-inFlight
				if got := p.closeAlerts(t); len(got) != 0 {
					t.Fatalf("alerts committed by a tick that failed: %d", len(got))
				}
				close(release)
				stop()
				stop = p.startDetector(t, nil, idle)
			}
			if tc.flowing { // other kinds keep the partition busy: no idle tick, the network clock moves on
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := 0; ctx.Err() == nil; i++ {
						p.connection(t, fmt.Sprint("n", i), time.Now())
						select {
						case <-ctx.Done():
						case <-time.After(100 * time.Millisecond):
						}
					}
				}()
				p.waitClosed(t)
				cancel()
				<-done
			} else {
				p.waitClosed(t)
			}
			stop()
			if tc.abortTick && aborted.Load() == 0 {
				t.Error("no idle tick was aborted")
			}

			type view struct {
				Rule, Key  string
				Count      int64
				Start, End time.Time
				Evidence   []string
				Version    int64
			}
			var got []view
			for _, a := range p.alerts(t) {
				got = append(got, view{a.RuleID, a.GroupKey, a.Count, time.Unix(0, a.WindowStart).UTC(), time.Unix(0, a.WindowEnd).UTC(), a.Evidence, a.Version})
			}
			want := []view{ // early at the fifth failure, then final at the close
				{rule, "web-1|root", 5, t0.UTC(), t0.Add(window).UTC(), ids, 1},
				{rule, "web-1|root", 5, t0.UTC(), t0.Add(window).UTC(), ids, 2},
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("alerts (-want +got):\n%s", d)
			}
		})
	}
}

// TestPartitionBehindAnOpenTransactionIsNotIdle: an enricher dies in the middle of a
// transaction that holds the sixth failure of a burst; the partition gives the detector
// nothing for longer than detector.idle_timeout, yet it is not idle (records wait beyond its
// last stable offset), so its windows stay open, and the failure counts when the transaction
// commits (as it would when the enricher's successor produces the backlog again).
func TestPartitionBehindAnOpenTransactionIsNotIdle(t *testing.T) {
	p := newPipeline(t)
	p.metrics = prometheus.NewRegistry()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute) // the idle watermark is past the window at once
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprint("f", i))
		p.failedLogin(t, ids[i], t0.Add(time.Duration(i+1)*time.Second), "failure")
	}
	enricher, err := kgo.NewClient(append(p.kcfg.ClientOpts(), kgo.TransactionalID("enrich-dead"), kgo.TransactionTimeout(5*time.Minute))...)
	if err != nil {
		t.Fatal(err)
	}
	defer enricher.Close()
	if err := enricher.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, "f5")
	if err := enricher.ProduceSync(context.Background(), p.loginRecord(t, "f5", t0.Add(6*time.Second), "failure")).FirstErr(); err != nil {
		t.Fatal(err)
	}

	stop := p.startDetector(t, nil, 500*time.Millisecond)
	defer stop()
	p.waitCommitted(t, 5)
	deadline := time.Now().Add(60 * time.Second)
	for held := 0.0; held < 1; time.Sleep(100 * time.Millisecond) {
		if got := p.closeAlerts(t); len(got) != 0 {
			t.Fatalf("windows closed on a partition behind an open transaction: %d alerts", len(got))
		}
		if time.Now().After(deadline) {
			t.Fatal("the partition behind the open transaction was not reported held within a minute")
		}
		held = gauge(t, p.metrics, "crumbs_detector_partitions_held")
	}
	if got := p.closeAlerts(t); len(got) != 0 {
		t.Fatalf("windows closed on a partition behind an open transaction: %d alerts", len(got))
	}
	if err := enricher.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	p.waitClosed(t)

	type view struct {
		Count    int64
		Evidence []string
		Version  int64
	}
	var got []view
	for _, a := range p.alerts(t) {
		got = append(got, view{a.Count, a.Evidence, a.Version})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Version < got[j].Version })
	want := []view{{5, ids[:5], 1}, {6, ids, 2}} // early at the fifth failure, final with the sixth
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("alerts (-want +got):\n%s", d)
	}
	if held := gauge(t, p.metrics, "crumbs_detector_partitions_held"); held != 0 {
		t.Errorf("partitions held after the transaction committed: %v", held)
	}
}

// gauge reads a gauge without labels other than the constant ones.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
