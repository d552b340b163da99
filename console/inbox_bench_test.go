package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/console"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// benchInboxDatabase keeps the loaded alerts between runs: loading a million takes a while.
const benchInboxDatabase = "crumbs_bench_inbox"

// BenchmarkInboxPage loads CRUMBS_BENCH_ALERTS alerts (default 1,000,000: 40 rules, 200 hosts,
// 12 services, 4 severities, 2 to 3 tags each, over the last 7 days; one in ten raised early
// and again when its window closed, so 1.1 rows per alert; one in fifty triaged) into the
// database crumbs_bench_inbox with the sink's Store (once; kept for later runs, drop it to
// reload), then serves the console's inbox page (HTML, every facet counted) for a range
// holding all of them, with each filter. It reports the median and the slowest server time
// per filter: the handler's time from request to the last byte of the page.
func BenchmarkInboxPage(b *testing.B) {
	addr := testenv.ClickHouseAddr(b)
	total := 1_000_000
	if v := os.Getenv("CRUMBS_BENCH_ALERTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("CRUMBS_BENCH_ALERTS: %v", err)
		}
		total = n
	}
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = []string{addr}, benchInboxDatabase
	ctx := context.Background()
	sink, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	loadBenchAlerts(b, sink, total)
	st := query.New(sink.Conn(), cfg.Database, "")
	ccfg := console.DefaultConfig()
	ccfg.Tokens = []console.Token{{Name: "bench", Token: readToken}}
	ccfg.QueryTimeout = time.Minute // a shared machine under load must not fail the figure
	c, err := console.New(ccfg, console.Deps{Store: st, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	h := c.Handler()
	cases := []struct{ name, query string }{
		{"all", "since=7d"},
		{"open", "since=7d&state=open"},
		{"acknowledged", "since=7d&state=acknowledged"},
		{"severity", "since=7d&severity=high"},
		{"rule", "since=7d&rule=rule-07"},
		{"tag", "since=7d&tag=attack.t1003"},
		{"host_and_state", "since=7d&host=host-042&state=new"},
		{"last_24h", "since=24h"},
	}
	times := make([][]time.Duration, len(cases))
	for b.Loop() {
		for i, tc := range cases {
			req := httptest.NewRequest(http.MethodGet, "/alerts?"+tc.query, nil)
			req.Header.Set("Authorization", "Bearer "+readToken)
			rec := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(rec, req)
			times[i] = append(times[i], time.Since(start))
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", tc.name, rec.Code, rec.Body.String())
			}
		}
	}
	// The baseline, in the same run: the newest 50 alerts as crumbs alerts read them before
	// (every alert's latest version over the range, then the newest), without any count.
	var base []time.Duration
	for range 3 {
		q := "SELECT alert_id, time FROM (SELECT * FROM " + benchInboxDatabase + ".alerts WHERE date >= toDate(?) AND time >= toDateTime(?) " +
			"ORDER BY version DESC LIMIT 1 BY alert_id) ORDER BY time DESC LIMIT 50"
		since := time.Now().Add(-7 * 24 * time.Hour)
		start := time.Now()
		rows, err := sink.Conn().Query(ctx, q, since.Format(time.DateOnly), uint32(since.Unix()))
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		base = append(base, time.Since(start))
	}
	slices.Sort(base)
	b.ReportMetric(float64(base[1].Microseconds())/1000, "baseline_dedup_list_ms")
	b.Logf("baseline: the newest 50 by deduplicating every alert's versions: median %.1f ms", float64(base[1].Microseconds())/1000)
	// What each query of the unfiltered page cost, from ClickHouse's query log.
	var in *query.Inbox
	for range 3 {
		start := time.Now()
		in, err = st.Inbox(ctx, query.AlertFilter{Since: time.Now().Add(-7 * 24 * time.Hour), Limit: ccfg.PageSize})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("Inbox alone: %s", time.Since(start))
	}
	if err := st.FillQueryStats(ctx, in.Queries); err != nil {
		b.Fatal(err)
	}
	for _, q := range in.Queries {
		b.Logf("query %-28s wall %7.1f ms, server %4d ms, %8d rows read", q.Name, q.WallMs, q.DurationMs, q.ReadRows)
	}
	for i, tc := range cases {
		slices.Sort(times[i])
		med, worst := times[i][len(times[i])/2], times[i][len(times[i])-1]
		b.ReportMetric(float64(med.Microseconds())/1000, tc.name+"_ms")
		b.Logf("inbox %-15s median %6.1f ms, slowest %6.1f ms over %d runs", tc.name, float64(med.Microseconds())/1000,
			float64(worst.Microseconds())/1000, len(times[i]))
	}
}

// loadBenchAlerts fills the bench database up to total alerts unless it holds them already.
func loadBenchAlerts(b *testing.B, st *clickhouse.Store, total int) {
	b.Helper()
	ctx := context.Background()
	var have uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+benchInboxDatabase+".alerts_first").Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have >= uint64(total) {
		return
	}
	if have > 0 {
		b.Fatalf("%s holds %d alerts, not %d: drop it (DROP DATABASE %s) to reload", benchInboxDatabase, have, total, benchInboxDatabase)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	end := time.Now().Add(-time.Minute)
	span := int64(7 * 24 * time.Hour)
	severities := []string{"low", "medium", "high", "critical"}
	began := time.Now()
	const batch = 100_000
	for done := 0; done < total; done += batch {
		n := min(batch, total-done)
		as := make([]*schemas.Alert, 0, n+n/10)
		var triage []*clickhouse.TriageRow
		for i := range n {
			k := done + i
			at := end.UnixNano() - span + int64(float64(span)*float64(k)/float64(total)) + rng.Int64N(int64(time.Second))
			rule := rng.IntN(40)
			host := fmt.Sprintf("host-%03d", rng.IntN(200))
			a := &schemas.Alert{AlertID: fmt.Sprintf("bench-%07d", k), Time: at, RuleID: fmt.Sprintf("rule-%02d", rule),
				Title: fmt.Sprintf("Bench rule %d fired", rule), Severity: severities[rule%4],
				Tags: []string{fmt.Sprintf("attack.t%d", 1000+rule%30), "attack.execution"}, GroupKey: host,
				Host: schemas.Host{ID: host, Name: host}, Service: fmt.Sprintf("svc-%02d", rng.IntN(12)),
				WindowStart: at - int64(time.Minute), WindowEnd: at, Count: 1, Evidence: []string{schemas.NewEventID()},
				Summary: "a bench alert with a summary of ordinary length for a rule that fired", Version: 1}
			if rule%3 == 0 {
				a.Tags = append(a.Tags, "linux")
			}
			as = append(as, a)
			if k%10 == 0 { // raised early, then again at its window's close
				final := *a
				final.Version, final.Count = 2, 5
				as = append(as, &final)
			}
			if k%50 == 0 {
				state := []string{schemas.TriageAcknowledged, schemas.TriageResolved, schemas.TriageFalsePositive}[rng.IntN(3)]
				triage = append(triage, &clickhouse.TriageRow{TriageState: schemas.TriageState{AlertID: a.AlertID, Version: at, State: state,
					Assignee: "alice", UpdatedAt: at, UpdatedBy: "alice", RuleID: a.RuleID, Host: host, GroupKey: host, AlertTime: at,
					Severity: a.Severity, Service: a.Service, Tags: a.Tags}})
			}
		}
		if err := st.InsertAlerts(ctx, as); err != nil {
			b.Fatal(err)
		}
		if err := st.InsertTriage(ctx, triage); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d alerts in %s", total, time.Since(began).Round(time.Second))
}
