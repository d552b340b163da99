package outputs_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// BenchmarkDeliveryLatency measures alert-to-delivery latency at 100 alerts/s: alerts are
// produced to crumbs.alerts (the embedded broker) at that pace for 10 s, and one stage
// delivers each to a webhook receiver (HTTP, HMAC-signed) and to a syslog receiver over TCP,
// both local. An alert's latency is the time from just before it is produced to its first
// arrival at the receiver (the webhook handler running; the syslog message parsed). Reported:
// p50 and p99 per output, in ms. Run with -benchtime 1x: one iteration is the whole run.
func BenchmarkDeliveryLatency(b *testing.B) {
	const rate, total = 100, 1000
	for range b.N {
		br := newBroker(b)
		hook := &webhookReceiver{secret: "s"}
		srv := startHTTP(b, hook, nil, false)
		sl := startSyslog(b, "tcp", nil)
		s, err := outputs.New(outputs.Config{Group: "bench", MaxInFlight: 10000, CommitInterval: time.Second, Outputs: []outputs.OutputConfig{
			{Name: "webhook", Type: "webhook", URL: srv.URL, Secret: "s"},
			{Name: "syslog", Type: "syslog", Network: "tcp", Address: sl.addr},
		}}, br.kcfg, outputs.Deps{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		arrivedAll := func(n int) bool {
			w, _ := hook.got.count()
			s, _ := sl.got.count()
			return w >= n && s >= n
		}
		// A first alert, waited for, so that the group has joined before the clock starts.
		br.produce(b, alert(100000, "high"))
		waitFor(b, func() bool { return arrivedAll(1) })

		serde, _ := avro.NewBuiltinSerde()
		var mu sync.Mutex
		sent := map[string]time.Time{}
		b.ResetTimer()
		tick := time.NewTicker(time.Second / rate)
		for i := range total {
			<-tick.C
			a := alert(i, "high")
			a.GroupKey = fmt.Sprint(i % 30) // spread over the partitions
			v, err := serde.Encode(nil, schemas.AlertSchema, a.Native())
			if err != nil {
				b.Fatal(err)
			}
			mu.Lock()
			sent[a.AlertID] = time.Now()
			mu.Unlock()
			br.cl.Produce(ctx, &kgo.Record{Topic: br.kcfg.Topics().Alerts(), Key: []byte(a.RuleID + "|" + a.GroupKey), Value: v}, nil)
		}
		tick.Stop()
		waitFor(b, func() bool { return arrivedAll(total + 1) })
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		lat := func(first map[string]time.Time, key func(id string) string) []time.Duration {
			var d []time.Duration
			for id, at := range sent {
				if got, ok := first[key(id)]; ok {
					d = append(d, got.Sub(at))
				}
			}
			slices.Sort(d)
			return d
		}
		for name, d := range map[string][]time.Duration{
			"webhook": lat(hook.got.firstAt(), func(id string) string { return id + "/webhook" }),
			"syslog":  lat(sl.got.firstAt(), func(id string) string { return id }),
		} {
			if len(d) != total {
				b.Fatalf("%s: %d latencies for %d alerts", name, len(d), total)
			}
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
			b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, name+"-p99-ms")
		}
	}
}

// waitFor polls cond every 5 ms until it holds, or fails after a minute.
func waitFor(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("not within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
