package clickhousetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// Config returns a sink Config for the test ClickHouse server with a fresh database, dropped
// when the test ends.
func Config(t testing.TB) clickhouse.Config {
	t.Helper()
	addr := testenv.ClickHouseAddr(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random database name: %v", err)
	}
	cfg := clickhouse.DefaultConfig()
	cfg.Addr = []string{addr}
	cfg.Database = "crumbs_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		conn, err := ch.Open(&ch.Options{Addr: cfg.Addr, Auth: ch.Auth{Username: cfg.Username, Password: cfg.Password}})
		if err != nil {
			t.Errorf("drop database %s: %v", cfg.Database, err)
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database); err != nil {
			t.Errorf("drop database %s: %v", cfg.Database, err)
		}
	})
	return cfg
}

// Produce writes the scenario to the pipeline's topics as the enricher, the detector and
// the context publisher would: Avro, keyed as DESIGN.md says.
func Produce(t testing.TB, cl *kgo.Client, topics kafka.Topics, s *Scenario) {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	add := func(topic, key, schema string, native map[string]any) {
		v, err := serde.Encode(nil, schema, native)
		if err != nil {
			t.Fatalf("encode %s: %v", schema, err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: v})
	}
	for _, e := range s.EventRecords() {
		name, _ := e.AvroSchema()
		k, ok := schemas.Kinds.BySchema(name)
		if !ok {
			t.Fatalf("scenario event of schema %s: no such event kind", name)
		}
		host, _ := e.Field("host.id")
		add(topics.Enriched(k.Name), host.(string), name, e.Native())
	}
	for _, a := range s.Alerts {
		add(topics.Alerts(), a.RuleID+"/"+a.GroupKey, schemas.AlertSchema, a.Native())
	}
	for _, tr := range s.Triage {
		v, err := serde.Encode(nil, schemas.TriageSchema, tr)
		if err != nil {
			t.Fatalf("encode triage: %v", err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.Triage(), Key: []byte(tr.AlertID), Value: v})
	}
	for kind, rs := range s.Context {
		for _, r := range rs {
			add(topics.Context(kind), r["id"].(string), schemas.ContextSchemas[kind], r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce scenario: %v", err)
	}
}

// Land runs the scenario through the real sink stage (an embedded broker, the sink consuming
// every topic, writing cfg's database) and returns once every record is written; the sink
// is stopped. It returns a Store on the database.
func Land(t testing.TB, cfg clickhouse.Config, s *Scenario) *clickhouse.Store {
	t.Helper()
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// A cluster's migrations are ON CLUSTER statements that each wait for every server's
	// DDL worker; on a loaded machine they take minutes rather than seconds.
	limit := 60 * time.Second
	if cfg.Cluster != "" {
		limit = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := kcfg.EnsureTopics(ctx, cl, kcfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	Produce(t, cl, kcfg.Topics(), s)

	cfg.BatchMaxAge = 100 * time.Millisecond
	counters := telemetry.NewStageCounters(nil, clickhouse.StageName, cfg.Group)
	sink, err := clickhouse.New(cfg, kcfg, clickhouse.Deps{Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sink.Run(rctx) }()
	want := uint64(s.Events() + len(s.Alerts) + len(s.Triage) + s.ContextRecords())
	var last telemetry.Snapshot
	for counters.Snapshot().Out < want && ctx.Err() == nil {
		if snap := counters.Snapshot(); snap.WaitReason != "" {
			last = snap
		}
		if snap := counters.Snapshot(); snap.DeadLettered > 0 {
			stop()
			<-done
			t.Fatalf("sink dead-lettered %d scenario records", snap.DeadLettered)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("sink: %v", err)
	}
	if got := counters.Snapshot().Out; got < want {
		if last.WaitReason != "" {
			t.Fatalf("sink wrote %d of the scenario's %d records in %s; it waited since %s: %s",
				got, want, limit, last.WaitingSince.Format(time.TimeOnly), last.WaitReason)
		}
		t.Fatalf("sink wrote %d of the scenario's %d records in %s", got, want, limit)
	}
	st, err := clickhouse.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
