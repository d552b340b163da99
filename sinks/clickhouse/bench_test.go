package clickhouse

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

const benchBatch = 10000

func benchEvents(n int) []*schemas.ProcessEvent {
	now := time.Now()
	evs := make([]*schemas.ProcessEvent, n)
	for i := range evs {
		evs[i] = sampleEvent(i, now)
	}
	return evs
}

// BenchmarkSinkInsert measures the Store inserting process events in batches of 10000.
func BenchmarkSinkInsert(b *testing.B) {
	st, _ := openTestStore(b)
	evs := benchEvents(benchBatch)
	ctx := b.Context()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := insertProcessEvents(ctx, st, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkSinkVsClickhouseClient inserts the same rows with the Store and with
// clickhouse-client from a Native-format file (the fastest way ClickHouse ingests), and
// reports the rates and ratios (sink / client): ratio for the sink's 10000-row batches,
// ratio_1insert for the Store sending all rows in one INSERT as clickhouse-client does.
func BenchmarkSinkVsClickhouseClient(b *testing.B) {
	st, cfg := openTestStore(b)
	client, err := exec.LookPath("clickhouse-client")
	if err != nil {
		b.Fatalf("clickhouse-client is needed for the comparison (run scripts/ensure-deps.sh): %v", err)
	}
	host, port, err := net.SplitHostPort(cfg.Addr[0])
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	const rows = 10 * benchBatch
	evs := benchEvents(rows)
	native := filepath.Join(b.TempDir(), "process_events.native")
	copyTable := cfg.Database + ".process_events_copy"
	if err := st.Conn().Exec(ctx, "CREATE TABLE "+copyTable+" AS "+cfg.Database+".process_events"); err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, c := range processKind.Columns {
		names = append(names, c.Name)
	}
	cols := strings.Join(names, ", ")
	chClient := func(query string, stdin, stdout *os.File) error {
		cmd := exec.CommandContext(ctx, client, "--host", host, "--port", port, "--user", cfg.Username, "--query", query)
		if cfg.Password != "" {
			cmd.Args = append(cmd.Args, "--password", cfg.Password)
		}
		var stderr strings.Builder
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("clickhouse-client %q: %w: %s", query, err, stderr.String())
		}
		return nil
	}

	var sinkTime, oneTime, clientTime time.Duration
	for b.Loop() {
		if err := st.Conn().Exec(ctx, "TRUNCATE TABLE "+cfg.Database+".process_events"); err != nil {
			b.Fatal(err)
		}
		if err := st.Conn().Exec(ctx, "TRUNCATE TABLE "+copyTable); err != nil {
			b.Fatal(err)
		}
		// The same rows in one INSERT, as clickhouse-client sends them, then in the sink's
		// default batches of 10000 (each INSERT makes a part, which costs the server).
		start := time.Now()
		if err := insertProcessEvents(ctx, st, evs); err != nil {
			b.Fatal(err)
		}
		oneTime += time.Since(start)
		if err := st.Conn().Exec(ctx, "TRUNCATE TABLE "+cfg.Database+".process_events"); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		for i := 0; i < rows; i += benchBatch {
			if err := insertProcessEvents(ctx, st, evs[i:i+benchBatch]); err != nil {
				b.Fatal(err)
			}
		}
		sinkTime += time.Since(start)

		out, err := os.Create(native)
		if err != nil {
			b.Fatal(err)
		}
		err = chClient("SELECT "+cols+" FROM "+cfg.Database+".process_events FORMAT Native", nil, out)
		out.Close()
		if err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(native)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		err = chClient("INSERT INTO "+copyTable+" ("+cols+") FORMAT Native", in, nil)
		clientTime += time.Since(start)
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	var copied uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+copyTable).Scan(&copied); err != nil || copied != rows {
		b.Fatalf("clickhouse-client copied %d rows, want %d (err %v)", copied, rows, err)
	}
	sinkRate := float64(b.N*rows) / sinkTime.Seconds()
	clientRate := float64(b.N*rows) / clientTime.Seconds()
	oneRate := float64(b.N*rows) / oneTime.Seconds()
	b.ReportMetric(sinkRate, "sink_rows/s")
	b.ReportMetric(oneRate, "sink_1insert_rows/s")
	b.ReportMetric(clientRate, "client_rows/s")
	b.ReportMetric(sinkRate/clientRate, "ratio")
	b.ReportMetric(oneRate/clientRate, "ratio_1insert")
}

// BenchmarkSinkStage runs the whole stage: Avro records on the enriched topic of an
// embedded broker to committed rows in ClickHouse. It reports rows/s and the p50 and p99
// latency from an event's time (when it was produced) to ClickHouse acknowledging its row.
func BenchmarkSinkStage(b *testing.B) {
	cfg := testConfig(b)
	kcfg, cl := startKafka(b)
	const rows = 5 * benchBatch
	evs := benchEvents(rows)
	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	s, stop := runSink(b, cfg, kcfg, counters)
	defer stop()

	var total time.Duration
	for b.Loop() {
		s.ResetLatencySamples()
		before := counters.Snapshot().Out
		now := time.Now()
		for _, e := range evs {
			e.EventID, e.Time = schemas.NewEventID(), now.UnixNano()
		}
		start := time.Now()
		produceAll(b, cl, kcfg, evs, nil)
		deadline := time.Now().Add(60 * time.Second)
		for counters.Snapshot().Out < before+rows {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d rows written after 60s", counters.Snapshot().Out-before, rows)
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
	}
	lat := s.LatencySamples()
	b.ReportMetric(float64(b.N*rows)/total.Seconds(), "rows/s")
	b.ReportMetric(Quantile(lat, 0.50).Seconds()*1000, "p50_ms")
	b.ReportMetric(Quantile(lat, 0.99).Seconds()*1000, "p99_ms")
}

// BenchmarkQuantile keeps Quantile honest about its cost on a full reservoir.
func BenchmarkQuantile(b *testing.B) {
	s := make([]time.Duration, latencyReservoirSize)
	for i := range s {
		s[i] = time.Duration(i) * time.Microsecond
	}
	for b.Loop() {
		_ = Quantile(s, 0.99)
	}
}

// BenchmarkSinkFlapping measures the sink stage with a backlog it cannot keep up with, first
// for 60 s with ClickHouse up (steady), then for 60 s in which ClickHouse is shut down 10 s
// (flapping: down 10 s in every 60 s), on a private server, with the default retry settings.
// It reports the rows/s written in each window and their ratio (flapping / steady); 50/60 =
// 0.83 would mean the sink loses nothing but the outage itself.
func BenchmarkSinkFlapping(b *testing.B) {
	const window, down, downAt = 60 * time.Second, 10 * time.Second, 25 * time.Second
	srv := testenv.StartClickHouseServer(b)
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = []string{srv.Addr}, "crumbs_bench"
	kcfg, cl := startKafka(b)
	topic := kcfg.Topics().Enriched("process")
	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	_, stop := runSink(b, cfg, kcfg, counters)
	defer stop()

	// The feeder keeps about 100,000 records ahead of the sink, and deletes from the topic
	// what the sink committed, so that the broker's memory stays bounded.
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancelFeed := context.WithCancel(b.Context())
	fed := make(chan error, 1)
	go func() {
		adm := kadm.NewClient(cl)
		var produced uint64
		tmpl := benchEvents(benchBatch)
		for ctx.Err() == nil {
			if produced > counters.Snapshot().Out+100000 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			recs := make([]*kgo.Record, len(tmpl))
			now := time.Now().UnixNano()
			for i, e := range tmpl {
				e.EventID, e.Time = schemas.NewEventID(), now
				v, err := serde.Encode(nil, schemas.ProcessSchema, e.Native())
				if err != nil {
					fed <- err
					return
				}
				recs[i] = &kgo.Record{Topic: topic, Key: []byte(e.Host.Name), Value: v}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				fed <- err
				return
			}
			produced += uint64(len(recs))
			if committed, err := adm.FetchOffsets(ctx, cfg.Group); err == nil {
				del := kadm.Offsets{}
				committed.Each(func(o kadm.OffsetResponse) { del.AddOffset(o.Topic, o.Partition, o.At, -1) })
				_, _ = adm.DeleteRecords(ctx, del)
			}
		}
		fed <- nil
	}()
	defer func() {
		cancelFeed()
		if err := <-fed; err != nil && ctx.Err() == nil {
			b.Errorf("feeder: %v", err)
		}
	}()

	measure := func(flap bool) float64 {
		before, start := counters.Snapshot().Out, time.Now()
		if flap {
			time.Sleep(downAt)
			srv.Stop()
			time.Sleep(down - time.Since(start) + downAt)
			srv.Start()
		}
		time.Sleep(window - time.Since(start))
		return float64(counters.Snapshot().Out-before) / time.Since(start).Seconds()
	}
	time.Sleep(5 * time.Second) // warm up: migrations, first batches
	var steady, flapping float64
	for b.Loop() {
		steady += measure(false)
		flapping += measure(true)
	}
	n := float64(b.N)
	b.ReportMetric(steady/n, "steady_rows/s")
	b.ReportMetric(flapping/n, "flapping_rows/s")
	b.ReportMetric(flapping/steady, "ratio")
	if snap := counters.Snapshot(); snap.DeadLettered != 0 {
		b.Errorf("%d rows dead-lettered while ClickHouse flapped", snap.DeadLettered)
	}
}
