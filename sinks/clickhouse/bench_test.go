package clickhouse

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// benchBodies returns the Avro bodies of n process events.
func benchBodies(n int) [][]byte {
	out := make([][]byte, n)
	for i, e := range benchEvents(n) {
		out[i] = e.AppendAvro(nil)
	}
	return out
}

// insertBodies inserts rows bodies (cycling through bodies, each round a copy with other
// event ids, as fetched records are new memory) as the sink writes them: batch rows at a time
// decoded into a column buffer and inserted whole, the next batch decoded into the other buffer
// while one is inserted, the buffers reused from batch to batch as the sink's are.
func insertBodies(ctx context.Context, st *Store, bufs [2]schemas.ColumnBuffer, bodies [][]byte, rows, batch int) error {
	done := make(chan error, 1)
	inflight := false
	round := make([][]byte, len(bodies))
	for i, n := 0, 0; i < rows; n++ {
		cols := bufs[n%2]
		cols.Reset()
		for ; cols.Len() < batch && i < rows; i++ {
			if i%len(bodies) == 0 {
				const hex = "0123456789abcdef"
				r := i / len(bodies)
				for k, b := range bodies { // the id's last two digits: the round (body[0] is its length)
					round[k] = append([]byte(nil), b...)
					round[k][35], round[k][36] = hex[r>>4&15], hex[r&15]
				}
			}
			if err := cols.Append(round[i%len(bodies)]); err != nil {
				return err
			}
		}
		if inflight {
			if err := <-done; err != nil {
				return err
			}
		}
		go func() { done <- st.InsertColumns(ctx, processKind, cols) }()
		inflight = true
	}
	if inflight {
		return <-done
	}
	return nil
}

// columnBuffers returns the two column buffers insertBodies writes from.
func columnBuffers() [2]schemas.ColumnBuffer {
	return [2]schemas.ColumnBuffer{processKind.Codec.NewColumns(), processKind.Codec.NewColumns()}
}

// cpuTime returns the CPU time this process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSinkInsert measures the sink's write path alone: process event bodies decoded into
// the column buffer and inserted in batches of 10000; it reports rows/s and this process's CPU
// time per row (the client's side: decoding, the driver's encoding and sending).
func BenchmarkSinkInsert(b *testing.B) {
	st, _ := openTestStore(b)
	bodies := benchBodies(benchBatch)
	cols := columnBuffers()
	ctx := b.Context()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime(b)
	for b.Loop() {
		if err := insertBodies(ctx, st, cols, bodies, benchBatch, benchBatch); err != nil {
			b.Fatal(err)
		}
	}
	rows := float64(b.N * benchBatch)
	b.ReportMetric(rows/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/rows, "cpu-ns/row")
}

// BenchmarkSinkVsClickhouseClient inserts the same rows (CRUMBS_BENCH_SINK_ROWS, default
// 500,000 process events) with the sink's write path, in its default batches (or
// CRUMBS_BENCH_SINK_BATCH), and with clickhouse-client from a file in Native format (the
// fastest way ClickHouse ingests; the client's start is in its time, amortised over the rows),
// taking turns, and reports the rates, the ratios (sink / client), and the sink's CPU time per
// row in this process; ratio_min and ratio_max are the lowest and highest ratio of one round
// (one turn each), which the load of a shared host moves. The client inserts twice: into process_events, which the sink writes,
// with its materialised views (ratio), and into a copy of the table without them (ratio_copy:
// ClickHouse does less per row there). The sink runs with its default compression (none to a
// loopback address) and, for comparison, lz4.
func BenchmarkSinkVsClickhouseClient(b *testing.B) {
	st, cfg := openTestStore(b)
	lz4cfg := cfg
	lz4cfg.Compression = CompressionLZ4
	lz4, err := Connect(b.Context(), lz4cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer lz4.Close()
	client, err := exec.LookPath("clickhouse-client")
	if err != nil {
		b.Fatalf("clickhouse-client is needed for the comparison (run scripts/ensure-deps.sh): %v", err)
	}
	host, port, err := net.SplitHostPort(cfg.Addr[0])
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	rows := 500000
	if v, err := strconv.Atoi(os.Getenv("CRUMBS_BENCH_SINK_ROWS")); err == nil && v > 0 {
		rows = v
	}
	batch := DefaultConfig().BatchSize
	if v, err := strconv.Atoi(os.Getenv("CRUMBS_BENCH_SINK_BATCH")); err == nil && v > 0 {
		batch = v
	}
	bodies := benchBodies(50000)
	cols := columnBuffers()
	native := filepath.Join(b.TempDir(), "process_events.native")
	table := cfg.Database + ".process_events"
	copyTable := cfg.Database + ".process_events_copy"
	if err := st.Conn().Exec(ctx, "CREATE TABLE "+copyTable+" AS "+table); err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, c := range processKind.Columns {
		names = append(names, c.Name)
	}
	columns := strings.Join(names, ", ")
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
	truncate := func(table string) {
		if err := st.Conn().Exec(ctx, "TRUNCATE TABLE "+table); err != nil {
			b.Fatal(err)
		}
	}
	clientInsert := func(into string) time.Duration {
		in, err := os.Open(native)
		if err != nil {
			b.Fatal(err)
		}
		defer in.Close()
		start := time.Now()
		if err := chClient("INSERT INTO "+into+" ("+columns+") FORMAT Native", in, nil); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	count := func(table string) uint64 {
		var n uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	var sinkTime, lz4Time, clientTime, copyTime, sinkCPU time.Duration
	var rounds []float64 // the ratio of each round
	for b.Loop() {
		truncate(table)
		start := time.Now()
		if err := insertBodies(ctx, lz4, cols, bodies, rows, batch); err != nil {
			b.Fatal(err)
		}
		lz4Time += time.Since(start)
		truncate(table)
		start, cpu := time.Now(), cpuTime(b)
		if err := insertBodies(ctx, st, cols, bodies, rows, batch); err != nil {
			b.Fatal(err)
		}
		sinkTurn := time.Since(start)
		sinkTime += sinkTurn
		sinkCPU += cpuTime(b) - cpu

		out, err := os.Create(native)
		if err != nil {
			b.Fatal(err)
		}
		err = chClient("SELECT "+columns+" FROM "+table+" FORMAT Native", nil, out)
		out.Close()
		if err != nil {
			b.Fatal(err)
		}
		truncate(copyTable)
		copyTime += clientInsert(copyTable)
		truncate(table)
		clientTurn := clientInsert(table)
		clientTime += clientTurn
		rounds = append(rounds, clientTurn.Seconds()/sinkTurn.Seconds())
	}
	if n, c := count(table), count(copyTable); n != uint64(rows) || c != uint64(rows) {
		b.Fatalf("clickhouse-client inserted %d rows into %s and %d into %s, want %d", n, table, c, copyTable, rows)
	}
	total := float64(b.N * rows)
	sinkRate, lz4Rate := total/sinkTime.Seconds(), total/lz4Time.Seconds()
	clientRate, copyRate := total/clientTime.Seconds(), total/copyTime.Seconds()
	b.ReportMetric(sinkRate, "sink_rows/s")
	b.ReportMetric(lz4Rate, "sink_lz4_rows/s")
	b.ReportMetric(clientRate, "client_rows/s")
	b.ReportMetric(copyRate, "client_copy_rows/s")
	b.ReportMetric(sinkRate/clientRate, "ratio")
	b.ReportMetric(slices.Min(rounds), "ratio_min")
	b.ReportMetric(slices.Max(rounds), "ratio_max")
	b.ReportMetric(lz4Rate/clientRate, "ratio_lz4")
	b.ReportMetric(sinkRate/copyRate, "ratio_copy")
	b.ReportMetric(float64(sinkCPU.Nanoseconds())/total, "sink_cpu-ns/row")
}

// BenchmarkSinkStage runs the whole stage: Avro records on the enriched topic of an
// embedded broker to committed rows in ClickHouse, 150,000 a round (three batches at the
// default batch size), encoded by the generated codec and produced as the round starts. It
// reports rows/s and the p50 and p99 latency from an event's time (when it was produced) to
// ClickHouse acknowledging its row.
func BenchmarkSinkStage(b *testing.B) {
	cfg := testConfig(b)
	kcfg, cl := startKafka(b)
	const rows = 150000
	evs := benchEvents(rows)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		b.Fatal(err)
	}
	topic := kcfg.Topics().Enriched("process")
	counters := telemetry.NewStageCounters(nil, StageName, cfg.Group)
	s, stop := runSink(b, cfg, kcfg, counters)
	defer stop()

	var total time.Duration
	for b.Loop() {
		s.ResetLatencySamples()
		before := counters.Snapshot().Out
		start := time.Now()
		recs := make([]*kgo.Record, len(evs))
		for i, e := range evs {
			e.EventID, e.Time = schemas.NewEventID(), time.Now().UnixNano()
			v, err := serde.Encode(nil, schemas.ProcessSchema, e)
			if err != nil {
				b.Fatal(err)
			}
			recs[i] = &kgo.Record{Topic: topic, Key: []byte(e.Host.ID + e.Host.Name), Value: v}
		}
		if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
			b.Fatalf("produce: %v", err)
		}
		deadline := time.Now().Add(120 * time.Second)
		for counters.Snapshot().Out < before+rows {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d rows written after 120s", counters.Snapshot().Out-before, rows)
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
