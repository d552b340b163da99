package detectors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors"
	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// pipeline is an embedded broker with the pipeline's topics.
type pipeline struct {
	kcfg  kafka.Config
	cl    *kgo.Client
	group string
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
	ev, err := engine.FixtureEvent("identity", map[string]any{
		"time": at.UnixNano(), "host": map[string]any{"id": "m1", "name": "web-1"}, "action": "auth",
		"identity": map[string]any{"service": "sshd", "user": "root", "target_user": "root", "result": result, "remote_host": "203.0.113.9"},
	}, id)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := schemas.NewSerde()
	if err != nil {
		t.Fatal(err)
	}
	v, err := serde.Encode(nil, schemas.IdentitySchema, ev)
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: p.kcfg.Topics().Enriched("identity"), Key: []byte("m1"), Value: v}
	if err := p.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
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
	serde, err := schemas.NewSerde()
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
	d, err := detectors.New(cfg, p.kcfg, detectors.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), FailFlush: failFlush})
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
	if got := p.alerts(t); len(got) != 0 {
		t.Fatalf("alerts before the window closed: %d", len(got))
	}

	stopB := p.startDetector(t, nil, 0)
	defer stopB()
	p.failedLogin(t, "after", t0.Add(2*time.Minute), "success") // moves the watermark past the window
	p.waitCommitted(t, 7)

	type view struct {
		Rule, Key string
		Count     int64
		Evidence  []string
	}
	var got []view
	for _, a := range p.alerts(t) {
		got = append(got, view{a.RuleID, a.GroupKey, a.Count, a.Evidence})
	}
	want := []view{
		{"crumbs-brute-force-per-account", "web-1|root", 6, []string{"f0", "f1", "f2", "f3", "f4", "f5"}},
		// the success two minutes later completes the failures-then-success sequence, whose
		// progress was restored from the changelog as well
		{"crumbs-brute-force-then-success", "web-1|root", 7, []string{"f0", "f1", "f2", "f3", "f4", "f5", "after"}},
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

// waitAlerts waits until at least one alert is committed and returns every committed alert.
func (p *pipeline) waitAlerts(t *testing.T) []*schemas.Alert {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if got := p.alerts(t); len(got) > 0 {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no alert committed within a minute")
	return nil
}

// TestIdlePartitionClosesItsWindows: a brute-force burst followed by silence alerts once, when
// the partition has been idle for detector.idle_timeout, with no later event to move its
// watermark; also when the idle tick's transaction aborts, and when the detector dies before
// that transaction commits (the restarted detector closes the window from the changelog).
func TestIdlePartitionClosesItsWindows(t *testing.T) {
	const idle = time.Second
	for _, tc := range []struct {
		name      string
		abortTick bool // fail the first idle tick's flush: its transaction aborts
		crash     bool // kill the first detector while its failing tick is in flight
	}{
		{name: "idle"},
		{name: "tick aborted", abortTick: true},
		{name: "crash before the tick commits", crash: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t)
			// An hour ago, so the idle watermark (now - idle_timeout) is past the window at once.
			t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
			var ids []string
			for i := range 5 {
				ids = append(ids, fmt.Sprint("f", i))
				p.failedLogin(t, ids[i], t0.Add(time.Duration(i+1)*time.Second), "failure")
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
				if got := p.alerts(t); len(got) != 0 {
					t.Fatalf("alerts committed by a tick that failed: %d", len(got))
				}
				close(release)
				stop()
				stop = p.startDetector(t, nil, idle)
			}
			p.waitAlerts(t)
			stop()
			if tc.abortTick && aborted.Load() == 0 {
				t.Error("no idle tick was aborted")
			}

			type view struct {
				Rule, Key  string
				Count      int64
				Start, End time.Time
				Evidence   []string
			}
			var got []view
			for _, a := range p.alerts(t) {
				got = append(got, view{a.RuleID, a.GroupKey, a.Count, time.Unix(0, a.WindowStart).UTC(), time.Unix(0, a.WindowEnd).UTC(), a.Evidence})
			}
			want := []view{{"crumbs-brute-force-per-account", "web-1|root", 5, t0.UTC(), t0.Add(time.Minute).UTC(), ids}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("alerts (-want +got):\n%s", d)
			}
		})
	}
}
