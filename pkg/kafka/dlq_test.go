package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// readAll reads topic from the start (read committed) until it has n records, or fails.
func readAll(t *testing.T, kcfg kafka.Config, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d records, want %d", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// TestReplayDeadLetters: dead letters go back to the topic their stage reads them from,
// selected by stage and reason, each once although two replays run at the same time and a
// third runs after them; list shows them replayed.
func TestReplayDeadLetters(t *testing.T) {
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	kcfg.TransactionTimeout = 10 * time.Second
	tp := kcfg.Topics()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	raw, enriched, retry := tp.Raw("process"), tp.Enriched("process"), tp.Retry("sink")
	if err := kcfg.EnsureTopics(ctx, cl, []kafka.TopicSpec{{Name: raw}, {Name: enriched}, {Name: retry}, {Name: tp.DLQ()}}); err != nil {
		t.Fatal(err)
	}
	var dead []*kgo.Record
	for i := range 40 {
		orig := &kgo.Record{Topic: raw, Partition: 1, Offset: int64(i), Key: []byte("host"), Value: []byte(fmt.Sprint("raw-", i)),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}}}
		reason := errors.New("not an Avro record")
		if i%4 == 0 {
			reason = errors.New("unknown schema")
		}
		dead = append(dead, kafka.DeadLetter(tp.DLQ(), orig, "enrich", reason))
	}
	for i := range 10 {
		orig := &kgo.Record{Topic: enriched, Partition: 2, Offset: int64(100 + i), Key: []byte("host"), Value: []byte(fmt.Sprint("row-", i))}
		dead = append(dead, kafka.DeadLetterReplayedTo(tp.DLQ(), orig, "sink", errors.New("clickhouse refused the row"), retry))
	}
	if err := cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Two replays of the enricher's letters that mention Avro, at once.
	f := kafka.DLQFilter{Stage: "enrich", Reason: "AVRO"}
	var wg sync.WaitGroup
	results := make([]kafka.ReplayResult, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], errs[i] = kafka.ReplayDeadLetters(ctx, kcfg, f) }()
	}
	wg.Wait()
	replayed := 0
	for i, err := range errs {
		if err == nil {
			replayed += results[i].Replayed
		}
	}
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both replays failed: %v; %v", errs[0], errs[1])
	}
	// A replay fenced by the other may fail; what matters is that the two sent each once.
	res, err := kafka.ReplayDeadLetters(ctx, kcfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := replayed + res.Replayed; got != 30 {
		t.Errorf("replays sent %d letters in all (%+v, %+v, then %+v), want the 30 selected", got, results, errs, res)
	}
	if res.AlreadyReplayed+res.Replayed != 30 {
		t.Errorf("third replay: %+v, want every one of the 30 replayed before or now", res)
	}
	back := readAll(t, kcfg, raw, 30)
	seen := map[string]int{}
	for _, r := range back {
		seen[string(r.Value)]++
		if got, want := kafka.Header(r, kafka.HeaderReplayTopic), raw; got != want {
			t.Errorf("replayed record's origin header %q, want %q", got, want)
		}
		if kafka.Header(r, "trace") != "t" || kafka.Header(r, kafka.HeaderReason) != "" {
			t.Errorf("replayed record headers %v: want its own headers and no dead-letter ones", r.Headers)
		}
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s replayed %d times", v, n)
		}
	}

	// The sink's letters go to its retry topic; the unknown-schema ones stay.
	res, err = kafka.ReplayDeadLetters(ctx, kcfg, kafka.DLQFilter{Stage: "sink", Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kafka.ReplayResult{Replayed: 10, ByTopic: map[string]int{retry: 10}}, res); diff != "" {
		t.Errorf("sink replay (-want +got):\n%s", diff)
	}
	if r := readAll(t, kcfg, retry, 10)[0]; kafka.Header(r, kafka.HeaderReplayTopic) != enriched || kafka.Header(r, kafka.HeaderReplayPartition) != "2" {
		t.Errorf("retry record origin %s/%s, want %s/2", kafka.Header(r, kafka.HeaderReplayTopic), kafka.Header(r, kafka.HeaderReplayPartition), enriched)
	}
	list, err := kafka.ListDeadLetters(ctx, kcfg, kafka.DLQFilter{})
	if err != nil {
		t.Fatal(err)
	}
	waiting := map[string]int{}
	for _, d := range list {
		if !d.Replayed {
			waiting[d.Stage+": "+d.Reason]++
		}
	}
	if diff := cmp.Diff(map[string]int{"enrich: unknown schema": 10}, waiting); diff != "" {
		t.Errorf("dead letters not replayed (-want +got):\n%s", diff)
	}
	if list, err := kafka.ListDeadLetters(ctx, kcfg, kafka.DLQFilter{Since: time.Now().Add(time.Hour)}); err != nil || len(list) != 0 {
		t.Errorf("list --since in the future: %d letters, %v", len(list), err)
	}
}
