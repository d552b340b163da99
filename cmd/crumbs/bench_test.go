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
)

// BenchmarkEndToEnd drives `crumbs up` with `crumbs loadgen` and reports, from the raw topic
// to ClickHouse rows, the events per second and the p50/p99 latency from an event's time
// (stamped by loadgen when it produces it) to ClickHouse acknowledging its row, read from the
// sink's latency histogram. Two loads, each on a fresh pipeline: "burst" produces
// CRUMBS_BENCH_EVENTS events (default 200000) as fast as loadgen can, so its latency includes
// the backlog; "steady" produces 5000 events per second for 10 s, below the pipeline's rate,
// so its latency is the pipeline's own. b.N is the number of loads of each.
func BenchmarkEndToEnd(b *testing.B) {
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("CRUMBS_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	for _, load := range []struct {
		name  string
		args  []string
		count int
	}{
		{"burst", []string{"--count", strconv.Itoa(n), "--rate", "0"}, n},
		{"steady", []string{"--count", "50000", "--rate", "5000"}, 50000},
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
	b.StartTimer()
	start := time.Now()
	p.crumbs(append([]string{"loadgen", "--suspicious-every", "1000"}, loadArgs...)...)
	produced := time.Since(start)
	q := fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(host_name, 'loadgen-')", p.database)
	p.eventually(5*time.Minute, "every event in ClickHouse", func() (bool, string) {
		c := p.count(q)
		return c >= uint64(n), fmt.Sprint(c)
	})
	el := time.Since(start)
	b.StopTimer()
	p50, p99, err := histogramQuantiles(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), "crumbs_sink_event_latency_seconds", `table="process_events"`, 0.5, 0.99)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	b.ReportMetric(float64(n)/produced.Seconds(), "produced/s")
	b.ReportMetric(p50*1000, "p50-ms")
	b.ReportMetric(p99*1000, "p99-ms")
	p.stop(syscall.SIGTERM)
}

// histogramQuantiles reads a Prometheus histogram from a /metrics page and estimates quantiles
// by linear interpolation within buckets.
func histogramQuantiles(url, name, label string, qs ...float64) (float64, float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	type bucket struct{ le, count float64 }
	var bs []bucket
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_bucket{") || !strings.Contains(line, label) {
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
		bs = append(bs, bucket{le, c})
	}
	if len(bs) == 0 {
		return 0, 0, fmt.Errorf("no %s{%s} in %s", name, label, url)
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
