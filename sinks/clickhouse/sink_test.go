package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// startKafka starts an embedded broker with the sink's topics and returns its config and a
// client for producing and inspecting.
func startKafka(t testing.TB) (kafka.Config, *kgo.Client) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := kcfg.Topics()
	if err := kcfg.EnsureTopics(ctx, cl, []kafka.TopicSpec{{Name: tp.Enriched("process")}, {Name: tp.Alerts()}, {Name: tp.DLQ()}}); err != nil {
		t.Fatal(err)
	}
	return kcfg, cl
}

// runSink runs a sink until the returned stop is called; stop fails the test unless Run
// returned nil within 10 s.
func runSink(t testing.TB, cfg Config, kcfg kafka.Config, counters *telemetry.StageCounters) (s *Sink, stop func()) {
	t.Helper()
	s, err := New(cfg, kcfg, Deps{Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	}
	t.Cleanup(stop)
	return s, stop
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rowCounts returns count() and uniqExact(id) of a table, without FINAL: duplicates show.
func rowCounts(t testing.TB, st *Store, table, idCol string) (rows, ids uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := "SELECT count(), uniqExact(" + idCol + ") FROM " + st.Database() + "." + table
	if err := st.Conn().QueryRow(ctx, q).Scan(&rows, &ids); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return rows, ids
}

// offsetsCaughtUp reports whether group's committed offsets equal the end offsets of topics.
func offsetsCaughtUp(t testing.TB, cl *kgo.Client, group string, topics ...string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return false, err.Error()
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ok, state := true, ""
	ends.Each(func(e kadm.ListedOffset) {
		c, found := committed.Lookup(e.Topic, e.Partition)
		var at int64 = -1
		if found {
			at = c.At
		}
		if e.Offset > 0 && at != e.Offset {
			ok = false
		}
		state += fmt.Sprintf("%s/%d committed %d end %d; ", e.Topic, e.Partition, at, e.Offset)
	})
	return ok, state
}

// produceAll writes events, alerts and raw extra values, synchronously.
func produceAll(t testing.TB, cl *kgo.Client, kcfg kafka.Config, evs []*schemas.ProcessEvent, as []*schemas.Alert, garbage ...[]byte) {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	tp := kcfg.Topics()
	var recs []*kgo.Record
	for _, e := range evs {
		v, err := serde.Encode(nil, schemas.ProcessSchema, e.Native())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: tp.Enriched("process"), Key: []byte(e.Host.ID + e.Host.Name), Value: v})
	}
	for _, a := range as {
		v, err := serde.Encode(nil, schemas.AlertSchema, a.Native())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: tp.Alerts(), Key: []byte(a.RuleID + a.GroupKey), Value: v})
	}
	for _, g := range garbage {
		recs = append(recs, &kgo.Record{Topic: tp.Enriched("process"), Key: []byte("garbage"), Value: g})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// readDLQ returns every record on the dead-letter topic.
func readDLQ(t testing.TB, kcfg kafka.Config, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.ConsumeTopics(kcfg.Topics().DLQ()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: got %d records, want %d: %v", kcfg.Topics().DLQ(), len(out), want, err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func TestSinkEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.BatchMaxAge = 40, 100*time.Millisecond
	kcfg, cl := startKafka(t)

	now := time.Now()
	var evs []*schemas.ProcessEvent
	for i := range 100 {
		evs = append(evs, sampleEvent(i, now))
	}
	var as []*schemas.Alert
	for i := range 5 {
		as = append(as, sampleAlert(i, now))
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	inventory, err := serde.Encode(nil, schemas.InventorySchema, (&schemas.InventoryRecord{ID: "web-1", Host: "web-1"}).Native())
	if err != nil {
		t.Fatal(err)
	}
	produceAll(t, cl, kcfg, evs, as, []byte("not avro at all"), inventory)

	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	s, stop := runSink(t, cfg, kcfg, counters)

	// A second connection to read with; the sink has created the database by the time rows
	// appear, so wait for the tables before opening it.
	var st *Store
	waitFor(t, "the sink to migrate", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		st, err = Open(ctx, cfg)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Cleanup(func() { st.Close() })

	waitFor(t, "all rows", func() (bool, string) {
		e, _ := rowCounts(t, st, ProcessEventsTable, "event_id")
		a, _ := rowCounts(t, st, AlertsTable, "alert_id")
		return e == 100 && a == 5, fmt.Sprintf("%d events, %d alerts", e, a)
	})
	tp := kcfg.Topics()
	waitFor(t, "committed offsets to reach the end offsets", func() (bool, string) {
		return offsetsCaughtUp(t, cl, cfg.Group, tp.Enriched("process"), tp.Alerts())
	})

	gotEvents := readProcessEvents(t, st)
	for _, want := range evs {
		if diff := cmp.Diff(want, gotEvents[want.EventID]); diff != "" {
			t.Errorf("event %s (-want +got):\n%s", want.EventID, diff)
		}
	}
	gotAlerts := readAlerts(t, st)
	for _, want := range as {
		if diff := cmp.Diff(want, gotAlerts[want.AlertID]); diff != "" {
			t.Errorf("alert %s (-want +got):\n%s", want.AlertID, diff)
		}
	}

	dead := readDLQ(t, kcfg, 2)
	reasons := map[string]string{}
	for _, r := range dead {
		reasons[string(r.Value)] = kafka.Header(r, kafka.HeaderReason)
		if got := kafka.Header(r, kafka.HeaderStage); got != StageName {
			t.Errorf("dead letter stage header %q, want %q", got, StageName)
		}
	}
	if reasons["not avro at all"] == "" {
		t.Errorf("garbage record not dead-lettered with a reason; dead letters: %q", reasons)
	}
	if r := reasons[string(inventory)]; r == "" {
		t.Errorf("record of unexpected schema not dead-lettered with a reason; dead letters: %q", reasons)
	}

	if got := s.LatencySamples(); len(got) != 105 {
		t.Errorf("latency samples: got %d, want 105", len(got))
	}
	stop()
	want := telemetry.Snapshot{In: 107, Out: 105, DeadLettered: 2}
	if diff := cmp.Diff(want, counters.Snapshot()); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// TestSinkReplayWritesNoDuplicates consumes the same records twice, as a sink does when it
// dies after ClickHouse acknowledged a batch but before Kafka took the commit, and checks
// that ClickHouse holds every row once, without FINAL and before any merge.
func TestSinkReplayWritesNoDuplicates(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.BatchMaxAge = 30, 100*time.Millisecond
	kcfg, cl := startKafka(t)
	now := time.Now()
	var evs []*schemas.ProcessEvent
	for i := range 100 {
		evs = append(evs, sampleEvent(i, now))
	}
	as := []*schemas.Alert{sampleAlert(1, now), sampleAlert(2, now)}
	produceAll(t, cl, kcfg, evs, as)
	tp := kcfg.Topics()

	_, stop := runSink(t, cfg, kcfg, nil)
	waitFor(t, "first run to commit", func() (bool, string) {
		return offsetsCaughtUp(t, cl, cfg.Group, tp.Enriched("process"), tp.Alerts())
	})
	stop()

	// Rewind the group to the start: everything is replayed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, tp.Enriched("process"), tp.Alerts())
	if err != nil {
		t.Fatal(err)
	}
	rewind := kadm.Offsets{}
	ends.Each(func(e kadm.ListedOffset) { rewind.AddOffset(e.Topic, e.Partition, 0, -1) })
	if resp, err := adm.CommitOffsets(ctx, cfg.Group, rewind); err == nil {
		err = resp.Error()
		if err != nil {
			t.Fatalf("rewind offsets: %v", err)
		}
	} else {
		t.Fatalf("rewind offsets: %v", err)
	}
	// One more event after the replayed ones, to see the replay end and writing go on.
	late := sampleEvent(500, now)
	produceAll(t, cl, kcfg, []*schemas.ProcessEvent{late}, nil)

	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	_, stop = runSink(t, cfg, kcfg, counters)
	waitFor(t, "replay to commit", func() (bool, string) {
		return offsetsCaughtUp(t, cl, cfg.Group, tp.Enriched("process"), tp.Alerts())
	})
	stop()

	st, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct {
		table, id string
		want      uint64
	}{{ProcessEventsTable, "event_id", 101}, {AlertsTable, "alert_id", 2}} {
		rows, ids := rowCounts(t, st, tc.table, tc.id)
		if rows != tc.want || ids != tc.want {
			t.Errorf("%s: count() = %d, uniqExact(%s) = %d, want both %d", tc.table, rows, tc.id, ids, tc.want)
		}
	}
	if got := counters.Snapshot(); got.In != 103 || got.Out != 1 {
		t.Errorf("replay counters: in %d out %d, want in 103 out 1", got.In, got.Out)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "batch size", edit: func(c *Config) { c.BatchSize = 0 }, wantErr: "clickhouse.batch_size: 0: must be at least 1"},
		{name: "database", edit: func(c *Config) { c.Database = "a-b" }, wantErr: `clickhouse.database: "a-b"`},
		{name: "addr", edit: func(c *Config) { c.Addr = nil }, wantErr: "clickhouse.addr"},
		{name: "max age", edit: func(c *Config) { c.BatchMaxAge = 0 }, wantErr: "clickhouse.batch_max_age"},
		{name: "backoff", edit: func(c *Config) { c.RetryBackoff = 0 }, wantErr: "clickhouse.retry_backoff"},
		{name: "max backoff", edit: func(c *Config) { c.MaxBackoff = c.RetryBackoff / 2 }, wantErr: "clickhouse.max_backoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestSinkCommitsOnlyWrittenRows watches a sink write many small batches, one written while
// the next is consumed: at every moment the offsets committed cover no more records than
// ClickHouse holds rows of (offsets read first, rows after), and in the end every record is
// one row.
func TestSinkCommitsOnlyWrittenRows(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.BatchMaxAge = 200, 50*time.Millisecond
	kcfg, cl := startKafka(t)
	const n = 3000
	produceAll(t, cl, kcfg, sampleEvents(n, time.Now()), nil)
	topic := kcfg.Topics().Enriched("process")

	st, err := Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, stop := runSink(t, cfg, kcfg, nil)
	defer stop()
	adm := kadm.NewClient(cl)
	between := 0 // samples taken with some but not all records committed
	waitFor(t, "every record committed", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		offsets, err := adm.FetchOffsets(ctx, cfg.Group)
		if err != nil {
			return false, err.Error()
		}
		var committed int64
		offsets.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.At > 0 {
				committed += o.At
			}
		})
		var ids uint64
		if err := st.Conn().QueryRow(ctx, "SELECT uniqExact(event_id) FROM "+cfg.Database+".process_events").Scan(&ids); err != nil {
			if strings.Contains(err.Error(), "doesn't exist") { // not migrated yet
				return false, err.Error()
			}
			t.Fatalf("count rows: %v", err)
		}
		if committed > int64(ids) {
			t.Fatalf("offsets committed cover %d records, but ClickHouse holds %d rows", committed, ids)
		}
		if committed > 0 && committed < n {
			between++
		}
		return committed == n, fmt.Sprintf("committed %d, rows %d", committed, ids)
	})
	rows, ids := rowCounts(t, st, "process_events", "event_id")
	if rows != n || ids != n {
		t.Errorf("process_events: %d rows, %d ids; want %d of each", rows, ids, n)
	}
	t.Logf("%d samples with part of the records committed", between)
}
