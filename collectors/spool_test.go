package collectors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

func values(recs []SpoolRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Topic + "/" + string(r.Key) + "/" + string(r.Value)
	}
	return out
}

func rec(i int) SpoolRecord {
	return SpoolRecord{Topic: "t", Key: []byte("k"), Value: []byte(fmt.Sprintf("value-%04d-%s", i, string(make([]byte, 100))))}
}

// TestSpoolOrderAcrossSegmentsAndRestart appends across several segments, commits part,
// reopens, and reads the rest in order.
func TestSpoolOrderAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20) // segments of 1 MiB
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000 // ~650 KiB: under the limit
	var want []string
	for i := range n {
		if err := s.Append(rec(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want = append(want, values([]SpoolRecord{rec(i)})...)
	}
	got, _, err := s.Peek(1000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[:1000], values(got)); diff != "" {
		t.Fatalf("first batch (-want +got):\n%s", diff)
	}
	if err := s.Commit(got[999].End); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rest []SpoolRecord
	for {
		b, pos, err := s.Peek(333)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break
		}
		rest = append(rest, b...)
		if err := s.Commit(pos); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want[1000:], values(rest)); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
	if !s.Empty() {
		t.Errorf("spool holds %d bytes after everything was committed", s.Bytes())
	}
}

func TestSpoolFullAndTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	for i := 0; ; i++ {
		err := s.Append(rec(i))
		if errors.Is(err, ErrSpoolFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		stored++
	}
	if s.Bytes() > 1<<20 {
		t.Errorf("spool holds %d bytes, over its limit of %d", s.Bytes(), 1<<20)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of an append leaves half a record.
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 9, 9})
	f.Close()
	s, err = OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _, err := s.Peek(stored + 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != stored {
		t.Errorf("reopened spool has %d records, want the %d stored before the torn one", len(got), stored)
	}
}

// TestHealthEventsAndMetric counts spool overflows while the broker is down and checks the
// metric and the health event that reports them.
func TestHealthEventsAndMetric(t *testing.T) {
	ecfg := kafka.EmbeddedConfig{DataDir: t.TempDir(), Port: freePort(t)}
	emb := startBroker(t, ecfg)
	t.Cleanup(func() { emb.Close() })
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	ensureTopic(t, kcfg, kcfg.Topics().Raw(schemas.KindNetwork))
	serde, err := schemas.NewSerde()
	if err != nil {
		t.Fatal(err)
	}
	host := schemas.Host{ID: "machine-1", Name: "web-1"}
	reg := prometheus.NewRegistry()
	kernel := uint64(7) // what the collector's ring buffer lost
	pub, err := NewPublisher(kcfg, serde, nil,
		WithCollector(schemas.KindNetwork, host, nil),
		WithSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20, DeliveryTimeout: time.Second}),
		WithHealth(HealthConfig{Interval: time.Second}, func() uint64 { return kernel }, reg))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	// Fill the spool while the broker is down: what does not fit in 1 MiB is lost.
	emb.Close()
	pub.startSpooling("test")
	native := schemas.ToNative(&schemas.NetworkEvent{Envelope: schemas.Envelope{EventID: "e", Host: host, Kind: schemas.KindNetwork}})
	var full int
	for i := 0; i < 20000; i++ {
		if err := pub.Publish(t.Context(), schemas.KindNetwork, schemas.NetworkSchema, host.ID, native); errors.Is(err, ErrSpoolFull) {
			full++
		}
	}
	if full == 0 {
		t.Fatal("the spool never filled")
	}
	want := map[string]float64{ReasonRingBufferFull: 7, ReasonSpoolFull: float64(full), ReasonUndeliverable: 0, ReasonUnencodable: 0}
	got := map[string]float64{}
	for reason := range want {
		got[reason] = droppedTotal(t, reg, schemas.KindNetwork, reason)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("crumbs_collector_dropped_total (-want +got):\n%s", diff)
	}
	// The health events are spooled too, and reach crumbs.health once the broker is back.
	waitFor(t, 30*time.Second, "health events in the spool", func() bool { return pub.Spooled() > 1<<20 })
	emb = startBroker(t, ecfg)
	events := readHealth(t, emb.Addrs(), kcfg.Topics().Health(), serde, 2)
	gotH := map[string]Health{}
	for _, ev := range events {
		gotH[ev.Health.Reason] = ev.Health
	}
	wantH := map[string]Health{
		ReasonRingBufferFull: {Collector: schemas.KindNetwork, Reason: ReasonRingBufferFull, Dropped: 7, DroppedTotal: 7},
		ReasonSpoolFull:      {Collector: schemas.KindNetwork, Reason: ReasonSpoolFull, Dropped: int64(full), DroppedTotal: int64(full)},
	}
	if diff := cmp.Diff(wantH, gotH); diff != "" {
		t.Errorf("health events (-want +got):\n%s", diff)
	}
}

// droppedTotal reads crumbs_collector_dropped_total of one collector and reason from reg.
func droppedTotal(t *testing.T, reg *prometheus.Registry, collector, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "crumbs_collector_dropped_total" {
			continue
		}
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["collector"] == collector && labels["reason"] == reason {
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("no crumbs_collector_dropped_total{collector=%q,reason=%q}", collector, reason)
	return 0
}

// readHealth reads topic from the start until it has n health events.
func readHealth(t *testing.T, brokers []string, topic string, serde *avro.Serde, n int) []HealthEvent {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []HealthEvent
	deadline := time.Now().Add(time.Minute)
	for len(out) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			_, native, err := serde.Decode(r.Value)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			var ev HealthEvent
			if err := schemas.FromNative(native, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		})
	}
	return out
}
