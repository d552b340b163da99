package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/synthetic"
	"github.com/threatcrumbs/crumbs/enrichers"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// beaconSchema is the schema of a kind declared here only: the envelope, a body of its own
// and the enrichment every event carries (taken from the system events' schema, so that the
// enricher splices it as it does for the built-in kinds).
func beaconSchema(t *testing.T) string {
	t.Helper()
	text, err := schemas.Avro.ReadFile("avro/system.avsc")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(text, &s); err != nil {
		t.Fatal(err)
	}
	s["name"], s["namespace"], s["doc"] = "BeaconEvent", "crumbs.test", "A beacon a test host sends: declared by a test."
	fields := s["fields"].([]any)
	for i, f := range fields {
		if f.(map[string]any)["name"] == "system" {
			fields[i] = map[string]any{"name": "beacon", "type": map[string]any{"type": "record", "name": "Beacon", "fields": []any{
				map[string]any{"name": "target", "type": "string"},
				map[string]any{"name": "user", "type": "string"},
				map[string]any{"name": "rtt_us", "type": "long"},
				map[string]any{"name": "tags", "type": map[string]any{"type": "array", "items": "string"}},
			}}}
		}
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestAKindDeclaredInATestLandsInClickHouse: a kind that exists only in this file (its
// schema, its codec, its entry and its table) flows from a synthetic producer through the
// enricher, which joins it with the inventory, to its ClickHouse table, by way of the same
// stages and publisher as the built-in kinds, given a kind table that holds it.
func TestAKindDeclaredInATestLandsInClickHouse(t *testing.T) {
	schema := beaconSchema(t)
	codec, err := avro.GenericCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	beacon := &schemas.Kind{
		Name: "beacon", Codec: codec, Table: "beacon_events", RetentionDays: 7,
		Columns: []schemas.TableColumn{
			{Name: "event_id", Path: "event_id"},
			{Name: "time", Path: "time", As: schemas.AsDateTime},
			{Name: "time_ns", Path: "time", As: schemas.AsUInt64},
			{Name: "date", Path: "time", As: schemas.AsDate},
			{Name: "host_name", Path: "host.name"},
			{Name: "target", Path: "beacon.target"},
			{Name: "rtt_us", Path: "beacon.rtt_us"},
			{Name: "tags", Path: "beacon.tags"},
			{Name: "service", Path: "enrichment.service"},
			{Name: "environment", Path: "enrichment.environment"},
		},
		Join: schemas.JoinFields{User: []string{"beacon.user"}},
	}
	kinds, err := schemas.Kinds.With(beacon)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serde.Register(schema); err != nil {
		t.Fatal(err)
	}
	if err := serde.UseCodec(func() avro.Record { return codec.New() }); err != nil {
		t.Fatal(err)
	}

	// Kafka with every topic, the beacon's too, and the inventory of the beacon's host.
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers, kcfg.TransactionTimeout = emb.Addrs(), 10*time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kcfg.EnsureTopics(ctx, cl, append(kcfg.AllTopics(), kcfg.KindTopics("beacon")...)); err != nil {
		t.Fatal(err)
	}
	inv, err := serde.Encode(nil, schemas.InventorySchema, &schemas.InventoryRecord{
		Kind: schemas.ContextInventory, ID: "loadgen-0", Host: "loadgen-0", Service: "radar", Environment: "lab", Role: "beacon"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: kcfg.Topics().Context(schemas.ContextInventory), Key: []byte("loadgen-0"), Value: inv}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Its table, as its migration would create it.
	chcfg := clickhousetest.Config(t)
	chcfg.BatchMaxAge = 100 * time.Millisecond
	st, err := clickhouse.Open(ctx, chcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Conn().Exec(ctx, "CREATE TABLE "+chcfg.Database+".beacon_events (event_id String, time DateTime, time_ns UInt64, "+
		"date Date, host_name String, target String, rtt_us Int64, tags Array(String), service String, environment String) "+
		"ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMMDD(date) ORDER BY (host_name, time, event_id)"); err != nil {
		t.Fatal(err)
	}

	// The enricher and the sink, given the kind table.
	ecfg := enrichers.DefaultConfig()
	ecfg.Kinds = []string{"beacon", schemas.KindProcess}
	enr, err := enrichers.New(ecfg, kcfg, enrichers.Deps{Serde: serde, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := clickhouse.New(chcfg, kcfg, clickhouse.Deps{Serde: serde, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	for _, s := range []stage{enr, sink} {
		go func() { done <- s.Run(sctx) }()
	}
	defer func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("stage: %v", err)
			}
		}
	}()

	// A synthetic producer of beacons, through the collectors' publisher.
	const n = 50
	gen, err := synthetic.New(synthetic.Config{Count: n, Hosts: 1, Kinds: kinds, Mix: map[string]int{"beacon": 1}})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := crumbscollectors.NewPublisher(kcfg, serde, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Run(ctx, func(k *schemas.Kind, ev schemas.Record) error {
		host, _ := ev.Field("host.id")
		return pub.Publish(ctx, k.Name, k.Codec.Schema, host.(string), ev)
	}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}

	q := "SELECT count(), countIf(service = 'radar' AND environment = 'lab'), countIf(target != '' AND rtt_us != 0) FROM " + chcfg.Database + ".beacon_events"
	var rows, joined, filled uint64
	for ctx.Err() == nil {
		if err := st.Conn().QueryRow(ctx, q).Scan(&rows, &joined, &filled); err != nil {
			t.Fatal(err)
		}
		if rows >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := fmt.Sprint(rows, joined, filled); got != fmt.Sprint(n, n, n) {
		t.Errorf("beacon_events: %d rows, %d joined with the inventory, %d with their body; want %d of each", rows, joined, filled, n)
	}
}
