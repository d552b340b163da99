package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// privateConfig returns a Config for a private ClickHouse server, which the test may stop.
func privateConfig(t testing.TB, srv *testenv.ClickHouseServer) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = []string{srv.Addr}
	cfg.Database = "crumbs_outage"
	cfg.BatchMaxAge = 100 * time.Millisecond
	cfg.RetryBackoff, cfg.MaxBackoff = 50*time.Millisecond, 400*time.Millisecond
	cfg.DialTimeout = time.Second
	return cfg
}

// dlqEnd returns how many records the dead-letter topic holds.
func dlqEnd(t testing.TB, cl *kgo.Client, kcfg kafka.Config) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, kcfg.Topics().DLQ())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(e kadm.ListedOffset) { n += e.Offset })
	return n
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func sampleEvents(n int, at time.Time) []*schemas.ProcessEvent {
	evs := make([]*schemas.ProcessEvent, n)
	for i := range evs {
		evs[i] = sampleEvent(i, at)
	}
	return evs
}

// TestSinkWaitsWhileClickHouseIsAway: the sink starts while ClickHouse is down and waits for
// it; later ClickHouse is shut down, then killed, while records keep coming. Each time the
// sink holds its batch and offsets, says it is waiting and why, dead-letters nothing, and once
// ClickHouse is back every row is there exactly once.
func TestSinkWaitsWhileClickHouseIsAway(t *testing.T) {
	srv := testenv.StartClickHouseServer(t)
	cfg := privateConfig(t, srv)
	kcfg, cl := startKafka(t)
	tp := kcfg.Topics()
	now := time.Now()
	evs := sampleEvents(300, now)

	srv.Stop()
	produceAll(t, cl, kcfg, evs[:100], nil)
	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	s, stop := runSink(t, cfg, kcfg, counters)
	waiting := func(what string) {
		t.Helper()
		waitFor(t, what, func() (bool, string) {
			snap := counters.Snapshot()
			return !snap.WaitingSince.IsZero() && strings.HasPrefix(snap.WaitReason, "clickhouse: "),
				fmt.Sprintf("%+v", snap)
		})
	}
	waiting("the sink to wait for ClickHouse at start")

	srv.Start()
	waitFor(t, "the first rows", func() (bool, string) {
		snap := counters.Snapshot()
		return snap.Out == 100 && snap.WaitingSince.IsZero(), fmt.Sprintf("%+v", snap)
	})

	for i, outage := range []struct {
		name string
		down func()
	}{{"shut down", srv.Stop}, {"killed", srv.Kill}} {
		outage.down()
		batch := evs[100*(i+1) : 100*(i+2)]
		produceAll(t, cl, kcfg, batch, nil)
		waiting("the sink to wait while ClickHouse is " + outage.name)
		failed := counterValue(t, s.attempts.WithLabelValues("transient"))
		waitFor(t, "a few retries", func() (bool, string) {
			n := counterValue(t, s.attempts.WithLabelValues("transient"))
			return n >= failed+3, fmt.Sprint(n)
		})
		if snap := counters.Snapshot(); snap.DeadLettered != 0 || snap.Out != uint64(100*(i+1)) {
			t.Fatalf("while ClickHouse is %s: %+v, want nothing dead-lettered and %d rows out", outage.name, snap, 100*(i+1))
		}
		srv.Start()
		want := uint64(100 * (i + 2))
		waitFor(t, "every row after ClickHouse is back", func() (bool, string) {
			snap := counters.Snapshot()
			return snap.Out == want && snap.WaitingSince.IsZero(), fmt.Sprintf("%+v", snap)
		})
	}
	waitFor(t, "committed offsets to reach the end offsets", func() (bool, string) {
		return offsetsCaughtUp(t, cl, cfg.Group, tp.Enriched("process"))
	})
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if rows, ids := rowCounts(t, st, ProcessEventsTable, "event_id"); rows != 300 || ids != 300 {
		t.Errorf("process_events: %d rows, %d ids, want 300 of each", rows, ids)
	}
	if n := dlqEnd(t, cl, kcfg); n != 0 {
		t.Errorf("%d records on the dead-letter topic, want none", n)
	}
	if diff := cmp.Diff(telemetry.Snapshot{In: 300, Out: 300}, counters.Snapshot()); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// TestSinkDeadLettersOnlyRefusedRowsAndReplaysThem: ClickHouse refuses a few rows of a batch
// for their content (a MATERIALIZED FixedString(64) column that a 65-character hash does not
// fit: 18.16 answers code 131 and writes nothing of the INSERT). The sink lands every other
// row and dead-letters exactly those. Once the column is mended, `crumbs dlq replay` sends
// them back through the sink, which lands them once, next to what landed, and a second
// replay sends nothing.
func TestSinkDeadLettersOnlyRefusedRowsAndReplaysThem(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.BatchMaxAge = 500, 100*time.Millisecond
	kcfg, cl := startKafka(t)
	tp := kcfg.Topics()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	table := cfg.Database + "." + ProcessEventsTable
	if err := st.Conn().Exec(ctx, "ALTER TABLE "+table+
		" ADD COLUMN exe_sha256_fixed FixedString(64) MATERIALIZED toFixedString(exe_sha256, 64)"); err != nil {
		t.Fatal(err)
	}

	evs := sampleEvents(200, time.Now())
	bad := map[string]bool{}
	for _, i := range []int{7, 99, 150} {
		evs[i].Process.File.SHA256 = strings.Repeat("f", 65)
		bad[evs[i].EventID] = true
	}
	produceAll(t, cl, kcfg, evs, nil)
	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	_, stop := runSink(t, cfg, kcfg, counters)
	waitFor(t, "good rows written and bad ones dead-lettered", func() (bool, string) {
		snap := counters.Snapshot()
		return snap.Out == 197 && snap.DeadLettered == 3, fmt.Sprintf("%+v", snap)
	})
	waitFor(t, "committed offsets past the batch", func() (bool, string) {
		return offsetsCaughtUp(t, cl, cfg.Group, tp.Enriched("process"))
	})
	if rows, ids := rowCounts(t, st, ProcessEventsTable, "event_id"); rows != 197 || ids != 197 {
		t.Fatalf("process_events: %d rows, %d ids, want 197 of each", rows, ids)
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range readDLQ(t, kcfg, 3) {
		_, native, err := serde.Decode(r.Value)
		if err != nil {
			t.Fatalf("dead letter does not decode: %v", err)
		}
		ev, err := schemas.ProcessEventFromNative(native)
		if err != nil {
			t.Fatal(err)
		}
		if !bad[ev.EventID] {
			t.Errorf("dead-lettered %s, which ClickHouse takes", ev.EventID)
		}
		if reason := kafka.Header(r, kafka.HeaderReason); !strings.Contains(reason, ErrRefused.Error()) || !strings.Contains(reason, "code: 131") {
			t.Errorf("dead letter reason %q, want %q and ClickHouse's code 131", reason, ErrRefused)
		}
		if got := kafka.Header(r, kafka.HeaderReplayTo); got != tp.Retry(StageName) {
			t.Errorf("dead letter replays to %q, want %q", got, tp.Retry(StageName))
		}
	}

	// One more dead letter, of a row that did land (as when a stage fails after writing):
	// the replay must not write it twice.
	landed, err := serde.Encode(nil, schemas.ProcessSchema, evs[0].Native())
	if err != nil {
		t.Fatal(err)
	}
	twice := kafka.DeadLetterReplayedTo(tp.DLQ(), &kgo.Record{Topic: tp.Enriched("process"), Key: []byte("k"), Value: landed},
		StageName, errors.New("failed after writing"), tp.Retry(StageName))
	if err := cl.ProduceSync(ctx, twice).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Mend the cause, then replay.
	if err := st.Conn().Exec(ctx, "ALTER TABLE "+table+" DROP COLUMN exe_sha256_fixed"); err != nil {
		t.Fatal(err)
	}
	list, err := kafka.ListDeadLetters(ctx, kcfg, kafka.DLQFilter{Stage: StageName, Reason: "code: 131"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("dlq list --reason 'code: 131': %d dead letters, want 3: %+v", len(list), list)
	}
	res, err := kafka.ReplayDeadLetters(ctx, kcfg, kafka.DLQFilter{Stage: StageName})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 4 || res.AlreadyReplayed != 0 {
		t.Fatalf("first replay: %+v, want 4 replayed", res)
	}
	// The replay is transactional: the retry topic's end offsets count commit markers, which
	// the sink does not commit past, so wait for its counters instead.
	waitFor(t, "replayed rows written", func() (bool, string) {
		snap := counters.Snapshot()
		return snap.In == 204 && snap.Out == 200, fmt.Sprintf("%+v", snap)
	})
	if rows, ids := rowCounts(t, st, ProcessEventsTable, "event_id"); rows != 200 || ids != 200 {
		t.Errorf("process_events after the replay: %d rows, %d ids, want 200 of each", rows, ids)
	}
	res, err = kafka.ReplayDeadLetters(ctx, kcfg, kafka.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 0 || res.AlreadyReplayed != 4 {
		t.Errorf("second replay: %+v, want nothing replayed and 4 already replayed", res)
	}
	list, err = kafka.ListDeadLetters(ctx, kcfg, kafka.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if !d.Replayed {
			t.Errorf("dead letter %d/%d not marked replayed", d.Partition, d.Offset)
		}
	}
	stop()
	if rows, ids := rowCounts(t, st, ProcessEventsTable, "event_id"); rows != 200 || ids != 200 {
		t.Errorf("process_events at the end: %d rows, %d ids, want 200 of each", rows, ids)
	}
	if got := counters.Snapshot(); got.Out != 200 || got.DeadLettered != 3 {
		t.Errorf("counters %+v, want 200 out (197 + 3 replayed; the landed one skipped) and 3 dead-lettered", got)
	}
}
