package collectors

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startBroker(t *testing.T, cfg kafka.EmbeddedConfig) *kafka.Embedded {
	t.Helper()
	var emb *kafka.Embedded
	var err error
	for range 50 { // the port of a broker just closed may take a moment to be free
		if emb, err = kafka.StartEmbedded(cfg); err == nil {
			return emb
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("start embedded broker: %v", err)
	return nil
}

func testEvent(host schemas.Host, seq int) *schemas.ProcessEvent {
	return &schemas.ProcessEvent{
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: time.Now().UnixNano(), Host: host, Kind: schemas.KindProcess},
		Action:   schemas.ActionExec,
		Process:  schemas.Process{PID: int32(seq), CmdLine: "app --password=hunter2", Args: []string{"app", "--password=hunter2"}},
	}
}

// TestPublisherSpoolsWhileBrokerDown stops the broker for 30s while events are published and
// checks that, once it is back, every event is on the topic exactly once and in order.
func TestPublisherSpoolsWhileBrokerDown(t *testing.T) {
	ecfg := kafka.EmbeddedConfig{DataDir: t.TempDir(), Port: freePort(t)}
	emb := startBroker(t, ecfg)
	t.Cleanup(func() { emb.Close() })

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	kcfg.Partitions = 3
	kcfg.MaxBufferedRecords = 1000 // small, so the outage also fills the producer buffer
	ensureTopic(t, kcfg, kcfg.Topics().Raw(schemas.KindProcess))

	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	host := schemas.Host{ID: "machine-1", Name: "web-1"}
	counters := telemetry.NewStageCounters(nil, "collect", "")
	pub, err := NewPublisher(kcfg, serde, counters,
		WithCollector(schemas.KindProcess, host, nil),
		WithSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 64 << 20, DeliveryTimeout: 2 * time.Second}),
		WithRedactor(newTestRedactor(t)))
	if err != nil {
		t.Fatal(err)
	}

	var want []string
	publish := func(n int) {
		for range n {
			ev := testEvent(host, len(want))
			if err := pub.Publish(t.Context(), schemas.KindProcess, schemas.ProcessSchema, host.ID, ev.Native()); err != nil {
				t.Fatalf("publish: %v", err)
			}
			want = append(want, ev.EventID)
		}
	}
	publish(500)
	emb.Close()
	outage := time.Now()
	for time.Since(outage) < 30*time.Second { // 30s of events, ~3000 of them
		publish(10)
		time.Sleep(100 * time.Millisecond)
	}
	publish(3000) // more than the producer buffer holds at once
	if pub.Spooled() == 0 {
		t.Errorf("nothing was spooled while the broker was down")
	}
	emb = startBroker(t, ecfg)
	publish(500)

	waitFor(t, 2*time.Minute, "the spool to empty", func() bool {
		s := counters.Snapshot()
		return pub.Spooled() == 0 && s.Out+s.Dropped >= uint64(len(want))
	})
	if err := pub.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, last := pub.Failed(); n != 0 {
		t.Errorf("publisher lost %d events (last error %s)", n, last)
	}

	got := consumeAll(t, emb.Addrs(), kcfg.Topics().Raw(schemas.KindProcess), len(want), serde)
	ids := make([]string, len(got))
	for i, ev := range got {
		ids[i] = ev.EventID
		if ev.Process.CmdLine != "app --password=[REDACTED]" {
			t.Fatalf("event %d was not redacted: %q", i, ev.Process.CmdLine)
		}
	}
	// One key, so one partition: the topic holds the events in the order published.
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("event ids on the topic (-want +got):\n%s", diff)
	}
}

func ensureTopic(t *testing.T, kcfg kafka.Config, topic string) {
	t.Helper()
	admin, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kcfg.EnsureTopics(t.Context(), admin, []kafka.TopicSpec{{Name: topic}}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consumeAll reads topic from the start until it has n records, then a little longer to see
// duplicates; it returns every record read.
func consumeAll(t *testing.T, brokers []string, topic string, n int, serde *avro.Serde) []*schemas.ProcessEvent {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*schemas.ProcessEvent
	deadline := time.Now().Add(time.Minute)
	var extra time.Time
	for time.Now().Before(deadline) && (extra.IsZero() || time.Now().Before(extra)) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			_, native, err := serde.Decode(r.Value)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			ev, err := schemas.ProcessEventFromNative(native)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		})
		if len(out) >= n && extra.IsZero() {
			extra = time.Now().Add(2 * time.Second)
		}
	}
	return out
}
