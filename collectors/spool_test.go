package collectors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
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
	serde, err := avro.NewBuiltinSerde()
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

// smallDisk mounts a tmpfs of size bytes on a fresh directory: a disk that fills up.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount a %d-byte tmpfs: %v", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestSpoolOnAFullDisk: a spool whose disk fills before its byte limit refuses the record
// that does not fit with ErrSpoolFull, keeps every record before it readable and in order,
// and takes records again once committing freed room.
func TestSpoolOnAFullDisk(t *testing.T) {
	dir := smallDisk(t, 256<<10)
	s, err := OpenSpool(filepath.Join(dir, "spool"), 64<<20) // a limit the disk cannot hold
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stored []SpoolRecord
	refused := 0
	for i := 0; refused < 20 && i < 100000; i++ {
		err := s.Append(rec(i))
		switch {
		case err == nil:
			stored = append(stored, rec(i))
		case errors.Is(err, ErrSpoolFull) && errors.Is(err, syscall.ENOSPC):
			refused++
		default:
			t.Fatalf("append %d: %v, want nil or ErrSpoolFull for a full disk", i, err)
		}
	}
	if refused == 0 || len(stored) == 0 {
		t.Fatalf("%d stored, %d refused: the disk never filled", len(stored), refused)
	}
	got, end, err := s.Peek(len(stored) + 10)
	if err != nil {
		t.Fatalf("peek a full spool: %v", err)
	}
	if diff := cmp.Diff(values(stored), values(got)); diff != "" {
		t.Fatalf("records of a full spool (-want +got):\n%s", diff)
	}
	if err := s.Commit(end); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(rec(-1)); err != nil {
		t.Errorf("append once room is freed: %v", err)
	}
}

// TestPublisherOnAFullDisk: while the broker is down the spool's disk fills up. Every event
// the publisher could not keep is counted as dropped (counters, metric, Failed) with the
// reason spool_full, and once the broker is back every other event reaches Kafka: published =
// in Kafka + dropped, nothing lost silently.
func TestPublisherOnAFullDisk(t *testing.T) {
	dir := smallDisk(t, 512<<10)
	ecfg := kafka.EmbeddedConfig{DataDir: t.TempDir(), Port: freePort(t)}
	emb := startBroker(t, ecfg)
	t.Cleanup(func() { emb.Close() })
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	topic := kcfg.Topics().Raw(schemas.KindProcess)
	ensureTopic(t, kcfg, topic)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	host := schemas.Host{ID: "machine-1", Name: "web-1"}
	counters := telemetry.NewStageCounters(nil, "collect", "")
	reg := prometheus.NewRegistry()
	pub, err := NewPublisher(kcfg, serde, counters,
		WithCollector(schemas.KindProcess, host, nil),
		WithSpool(SpoolConfig{Dir: dir, MaxBytes: 1 << 30, DeliveryTimeout: time.Second}),
		WithHealth(HealthConfig{Interval: time.Hour}, func() uint64 { return 0 }, reg),
		WithRedactor(newTestRedactor(t)))
	if err != nil {
		t.Fatal(err)
	}
	emb.Close()
	pub.startSpooling("test: broker stopped")
	published, full := 0, 0
	for range 6000 {
		ev := testEvent(host, published)
		err := pub.Publish(t.Context(), schemas.KindProcess, schemas.ProcessSchema, host.ID, ev.Native())
		published++
		switch {
		case err == nil:
		case errors.Is(err, ErrSpoolFull):
			full++
		default:
			t.Fatalf("publish: %v", err)
		}
	}
	if full == 0 {
		t.Fatal("the spool's disk never filled")
	}
	if n, last := pub.Failed(); n != uint64(full) || !strings.Contains(last, "no space left on device") {
		t.Errorf("Failed() = %d, %q; want %d and the disk-full error", n, last, full)
	}
	if got := droppedTotal(t, reg, schemas.KindProcess, ReasonSpoolFull); got != float64(full) {
		t.Errorf("crumbs_collector_dropped_total{reason=spool_full} = %v, want %d", got, full)
	}
	if got := counters.Snapshot().Dropped; got != uint64(full) {
		t.Errorf("stage counters: %d dropped, want %d", got, full)
	}

	emb = startBroker(t, ecfg)
	waitFor(t, 2*time.Minute, "the spool to drain", func() bool { return pub.Spooled() == 0 })
	if err := pub.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, emb.Addrs(), topic, published-full, serde)
	if len(got)+full != published {
		t.Errorf("%d events in Kafka + %d dropped = %d, want the %d published", len(got), full, len(got)+full, published)
	}
}
