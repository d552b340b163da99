package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// benchDatabase keeps the loaded events between runs: loading 10 million takes a while.
const benchDatabase = "crumbs_bench_timeline"

// BenchmarkTimelineOneHost loads CRUMBS_BENCH_EVENTS events (default 10 million: 70%
// process, 30% network, 100 hosts, over the last 24 hours) into the database
// crumbs_bench_timeline with the sink's Store (once; kept for later runs, drop it to reload),
// then asks for one host's one-hour timeline. It reports the timeline's wall time and, from
// system.query_log, the server time and rows read per query and in all.
func BenchmarkTimelineOneHost(b *testing.B) {
	addr := testenv.ClickHouseAddr(b)
	total := 10_000_000
	if v := os.Getenv("CRUMBS_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("CRUMBS_BENCH_EVENTS: %v", err)
		}
		total = n
	}
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = []string{addr}, benchDatabase
	ctx := context.Background()
	sink, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	end := loadBenchEvents(b, sink, total)
	st := query.New(sink.Conn(), cfg.Database, "")

	q := query.TimelineQuery{Host: "host-042", From: end.Add(-3 * time.Hour), To: end.Add(-2 * time.Hour)}
	var tl *query.Timeline
	var wall time.Duration
	for b.Loop() {
		start := time.Now()
		tl, err = st.Timeline(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(start)
	}
	if err := st.FillQueryStats(ctx, tl.Queries); err != nil {
		b.Fatal(err)
	}
	var rows, serverMs uint64
	for _, qs := range tl.Queries {
		rows += qs.ReadRows
		serverMs += qs.DurationMs
		b.ReportMetric(float64(qs.ReadRows), qs.Name+"_rows_read")
		b.ReportMetric(float64(qs.DurationMs), qs.Name+"_server_ms")
	}
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "timeline_ms")
	b.ReportMetric(float64(rows), "rows_read")
	b.ReportMetric(float64(serverMs), "server_ms")
	b.ReportMetric(float64(len(tl.Entries)), "entries")
}

// loadBenchEvents fills the bench database up to total events unless it holds them already,
// and returns the end of the loaded range.
func loadBenchEvents(b *testing.B, st *clickhouse.Store, total int) time.Time {
	b.Helper()
	ctx := context.Background()
	var have uint64
	var maxTime time.Time
	q := fmt.Sprintf("SELECT (SELECT count() FROM %[1]s.process_events) + (SELECT count() FROM %[1]s.network_events), (SELECT max(time) FROM %[1]s.process_events)", benchDatabase)
	if err := st.Conn().QueryRow(ctx, q).Scan(&have, &maxTime); err != nil {
		b.Fatal(err)
	}
	if have >= uint64(total) {
		return maxTime.Add(time.Second)
	}
	if have > 0 {
		b.Fatalf("%s holds %d events, not %d: drop it (DROP DATABASE %s) to reload", benchDatabase, have, total, benchDatabase)
	}
	end := time.Now().UTC().Truncate(time.Hour)
	start := end.Add(-24 * time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	const batch = 200_000
	span := end.Sub(start).Nanoseconds()
	began := time.Now()
	for done := 0; done < total; done += batch {
		n := min(batch, total-done)
		var procs []schemas.Record
		var nets []schemas.Record
		for i := range n {
			// Events arrive roughly in time order, as the sink writes them.
			at := start.UnixNano() + int64(float64(span)*float64(done+i)/float64(total)) + rng.Int64N(int64(time.Second))
			host := schemas.Host{ID: fmt.Sprintf("id-%03d", rng.IntN(100)), Name: ""}
			host.Name = "host-" + host.ID[3:]
			env := schemas.Envelope{EventID: schemas.NewEventID(), Time: at, Host: host}
			en := &schemas.Enrichment{Service: fmt.Sprintf("svc-%d", rng.IntN(10)), Environment: "prod", Role: "web"}
			if rng.IntN(10) < 7 {
				env.Kind = schemas.KindProcess
				pid := int32(rng.IntN(30000))
				procs = append(procs, &schemas.ProcessEvent{Envelope: env, Action: schemas.ActionExec, Enrichment: en,
					Process: schemas.Process{PID: pid, PPID: pid / 2, Args: []string{"/usr/bin/prog", strconv.Itoa(rng.IntN(1000))},
						File: schemas.File{Path: "/usr/bin/prog", Name: "prog", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, UserName: "app"}})
				continue
			}
			env.Kind = schemas.KindNetwork
			nets = append(nets, &schemas.NetworkEvent{Envelope: env, Action: schemas.ActionConnect, Enrichment: en,
				Network: schemas.Network{Direction: "outbound", Protocol: "tcp", Src: schemas.Endpoint{IP: "10.0.0.1", Port: 40000},
					Dst: schemas.Endpoint{IP: fmt.Sprintf("10.0.%d.%d", rng.IntN(4), rng.IntN(250)), Port: 443}, BytesSent: 512}})
		}
		if err := st.InsertEvents(ctx, kindOf(schemas.KindProcess), procs...); err != nil {
			b.Fatal(err)
		}
		if err := st.InsertEvents(ctx, kindOf(schemas.KindNetwork), nets...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d events in %s", total, time.Since(began).Round(time.Second))
	return end
}

// kindOf is the built-in kind of that name.
func kindOf(name string) *schemas.Kind {
	k, _ := schemas.Kinds.Lookup(name)
	return k
}
