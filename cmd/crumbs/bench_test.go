package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// BenchmarkEndToEnd drives `crumbs up` (embedded Kafka, enricher, detector with the built-in
// rules, sink) with `crumbs loadgen` and its default mix of every kind, and reports, from the
// raw topics to ClickHouse rows, the events per second and the p50/p99 latency from an event's
// time (stamped by loadgen when it produces it) to ClickHouse acknowledging its row, read from
// the sink's latency histograms of every event table, and from an alert's first event to
// its first version's row (alert-p50/p99, the alerts table's histogram). Two loads, each on a fresh pipeline:
// "burst" produces BENCH_E2E_EVENTS events (default 300000) as fast as loadgen can, so its
// latency includes the backlog; "steady" produces BENCH_E2E_RATE events per second
// (default 20000) for 10 s. Each is reported beside its baseline in the same run: the rate at
// which loadgen put the same events into the same broker (ratio-landed:produced; 1 means the
// pipeline keeps up with the broker taking the load). The load average of the shared machine
// when the load starts is reported too (load1). b.N is the number of loads of each.
func BenchmarkEndToEnd(b *testing.B) {
	n := 300000
	if v, err := strconv.Atoi(os.Getenv("BENCH_E2E_EVENTS")); err == nil && v > 0 {
		n = v
	}
	rate := 20000
	if v, err := strconv.Atoi(os.Getenv("BENCH_E2E_RATE")); err == nil && v > 0 {
		rate = v
	}
	for _, load := range []struct {
		name  string
		args  []string
		count int
	}{
		{"burst", []string{"--count", strconv.Itoa(n), "--rate", "0"}, n},
		{"steady", []string{"--count", strconv.Itoa(rate * 10), "--rate", strconv.Itoa(rate)}, rate * 10},
	} {
		b.Run(load.name, func(b *testing.B) {
			for range b.N {
				endToEnd(b, load.args, load.count)
			}
		})
	}
}

func endToEnd(b *testing.B, loadArgs []string, n int) {
	b.StopTimer()
	metricsPort := freePort(b)
	p := newPipeline(b, "CRUMBS_COLLECTORS_PROCESS_ENABLED=false", "CRUMBS_UP_STAGES=enrich,detect,sink",
		fmt.Sprintf("CRUMBS_METRICS_LISTEN=127.0.0.1:%d", metricsPort))
	p.start()
	load1 := loadAverage()
	b.StartTimer()
	start := time.Now()
	p.crumbs(append([]string{"loadgen", "--suspicious-every", "1000"}, loadArgs...)...)
	produced := time.Since(start)
	var counts []string
	for _, k := range schemas.Kinds {
		counts = append(counts, fmt.Sprintf("(SELECT count() FROM %s.%s WHERE startsWith(host_name, 'loadgen-'))", p.database, k.Table))
	}
	q := "SELECT " + strings.Join(counts, " + ")
	p.eventually(5*time.Minute, "every event in ClickHouse", func() (bool, string) {
		c := p.count(q)
		return c >= uint64(n), fmt.Sprint(c)
	})
	el := time.Since(start)
	b.StopTimer()
	tables := map[string]bool{}
	for _, k := range schemas.Kinds {
		tables[k.Table] = true
	}
	p50, p99, err := histogramQuantiles(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), "crumbs_sink_event_latency_seconds",
		func(labels string) bool {
			_, rest, _ := strings.Cut(labels, `table="`)
			table, _, _ := strings.Cut(rest, `"`)
			return tables[table]
		}, 0.5, 0.99)
	if err != nil {
		b.Fatal(err)
	}
	// Event to alert: from an alert's first event (loadgen's suspicious shells, among others)
	// to its first version's row in ClickHouse. The alerts land a moment after the events.
	var ap50, ap99 float64
	p.eventually(time.Minute, "alerts in ClickHouse", func() (bool, string) {
		ap50, ap99, err = histogramQuantiles(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), "crumbs_sink_event_latency_seconds",
			func(labels string) bool { return strings.Contains(labels, `table="alerts"`) }, 0.5, 0.99)
		return err == nil, fmt.Sprint(err)
	})
	landedRate, producedRate := float64(n)/el.Seconds(), float64(n)/produced.Seconds()
	b.ReportMetric(landedRate, "events/s")
	b.ReportMetric(producedRate, "produced/s")
	b.ReportMetric(landedRate/producedRate, "ratio-landed:produced")
	b.ReportMetric(p50*1000, "p50-ms")
	b.ReportMetric(p99*1000, "p99-ms")
	b.ReportMetric(ap50*1000, "alert-p50-ms")
	b.ReportMetric(ap99*1000, "alert-p99-ms")
	b.ReportMetric(load1, "load1")
	p.stop(syscall.SIGTERM)
}

// loadAverage is the machine's one-minute load average (0 when unreadable).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

// histogramQuantiles reads a Prometheus histogram from a /metrics page and estimates quantiles
// by linear interpolation within buckets.
// Series whose labels keep rejects are left out; the others' buckets are summed.
func histogramQuantiles(url, name string, keep func(labels string) bool, qs ...float64) (float64, float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	type bucket struct{ le, count float64 }
	sums := map[float64]float64{} // le -> count, summed over the series kept
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		labels, _, _ := strings.Cut(strings.TrimPrefix(line, name+"_bucket{"), "}")
		if !keep(labels) {
			continue
		}
		i := strings.LastIndex(line, `le="`) // the last label: "table=" also ends in le=
		j := strings.Index(line[i+4:], `"`)
		leS := line[i+4 : i+4+j]
		le := math.Inf(1)
		if leS != "+Inf" {
			le, _ = strconv.ParseFloat(leS, 64)
		}
		fields := strings.Fields(line)
		c, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		sums[le] += c
	}
	if len(sums) == 0 {
		return 0, 0, fmt.Errorf("no series of %s kept in %s", name, url)
	}
	bs := make([]bucket, 0, len(sums))
	for le, c := range sums {
		bs = append(bs, bucket{le, c})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := bs[len(bs)-1].count
	quantile := func(q float64) float64 {
		rank := q * total
		prevLe, prevC := 0.0, 0.0
		for _, b := range bs {
			if b.count >= rank {
				if math.IsInf(b.le, 1) {
					return prevLe
				}
				if b.count == prevC {
					return b.le
				}
				return prevLe + (b.le-prevLe)*(rank-prevC)/(b.count-prevC)
			}
			prevLe, prevC = b.le, b.count
		}
		return prevLe
	}
	return quantile(qs[0]), quantile(qs[1]), nil
}
