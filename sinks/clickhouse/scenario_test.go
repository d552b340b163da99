package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// TestSinkEveryKind lands events of every kind, alerts and context records through the sink
// and checks the raw tables, the context tables and the materialised views.
func TestSinkEveryKind(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	st := clickhousetest.Land(t, cfg, s)
	db := cfg.Database

	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"process_events", "SELECT toString(count()) FROM " + db + ".process_events", []string{"6"}},
		{"network_events", "SELECT toString(count()) FROM " + db + ".network_events", []string{"5"}},
		{"file_events", "SELECT concat(file_path, ' ', verdict, ' ', arrayStringConcat(change_ids, ',')) FROM " + db + ".file_events ORDER BY time",
			[]string{"/opt/shop/bin/shop mismatch " + clickhousetest.ChangeID, "/tmp/x unknown "}},
		{"identity_events", "SELECT concat(user, ' ', result, ' ', account_type) FROM " + db + ".identity_events ORDER BY time",
			[]string{"root failure human", "root failure human", "alice success human", "alice success human", "alice success human"}},
		{"system_events", "SELECT toString(count()) FROM " + db + ".system_events", []string{"20"}},
		{"process enrichment", "SELECT concat(exe_path, ' ', verdict, ' ', deploy_version) FROM " + db + ".process_events WHERE action = 'exec' ORDER BY time",
			[]string{"/usr/sbin/sshd unmanaged 1.4.2", "/usr/bin/bash unmanaged 1.4.2", "/usr/bin/curl unmanaged 1.4.2", "/tmp/x unknown 1.4.2", "/opt/shop/bin/shop mismatch 1.4.2"}},
		{"alerts", "SELECT alert_id FROM " + db + ".alerts ORDER BY time", []string{"alert-ssh-then-unknown-binary", "alert-deployed-file-changed", "alert-db-volume"}},
		{"context_changes", "SELECT concat(id, ' ', type, ' ', toString(expected_up_to_factor)) FROM " + db + ".context_changes FINAL WHERE deleted = 0 ORDER BY id",
			[]string{"CHG-1001 maintenance []", "CHG-1042 launch [4]"}},
		{"context_deploys", "SELECT concat(id, ' ', version, ' ', artifact_sha256[1]) FROM " + db + ".context_deploys FINAL", []string{"DEP-77 1.4.2 9f86"}},
		{"context_inventory", "SELECT concat(host, ' ', service) FROM " + db + ".context_inventory FINAL ORDER BY host", []string{"db-1 shop-db", "web-1 shop"}},
		{"context_accounts", "SELECT concat(name, ' ', type, ' ', toString(interactive)) FROM " + db + ".context_accounts FINAL", []string{"alice human 1"}},
		{"alerts_hourly", "SELECT toString(sum(alerts)) FROM " + db + ".alerts_hourly", []string{"3"}},
		{"service_graph_minute", "SELECT concat(src_service, ' ', dst, ':', toString(dst_port), ' ', toString(sum(connections)), ' ', toString(sum(bytes_sent))) FROM " + db +
			".service_graph_minute GROUP BY src_service, dst, dst_port ORDER BY dst", []string{"shop 203.0.113.7:80 1 310", "shop db-1:5432 1 3072"}},
		{"executions_by_service", "SELECT concat(exe_path, ' ', toString(countMerge(executions)), ' ', toString(uniqMerge(hosts))) FROM " + db +
			".executions_by_service WHERE exe_path = '/tmp/x' GROUP BY exe_path", []string{"/tmp/x 1 1"}},
		{"logins_by_account", "SELECT concat(account, ' ', source, ' ', result, ' ', toString(sum(logins))) FROM " + db +
			".logins_by_account GROUP BY account, source, result ORDER BY account, result", []string{"alice 198.51.100.23 success 2", "root 198.51.100.23 failure 2"}},
		{"service_activity", "SELECT concat(service, ' ', kind, ' ', toString(sum(events))) FROM " + db +
			".service_activity GROUP BY service, kind ORDER BY service, kind", []string{
			"shop file 2", "shop identity 5", "shop network 5", "shop process 6", "shop system 10", "shop-db system 10"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, queryStrings(t, st, tc.query)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.query, diff)
			}
		})
	}
}

// TestSinkContextTombstone checks that a tombstone on a context topic deletes the record.
func TestSinkContextTombstone(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	st := clickhousetest.Land(t, cfg, s)
	// A second run on a new broker: only the tombstone.
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kcfg.EnsureTopics(ctx, cl, kcfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	topic := kcfg.Topics().Context(schemas.ContextInventory)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(clickhousetest.DBHost), Timestamp: time.Now().Add(time.Minute)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sink, err := clickhouse.New(cfg, kcfg, clickhouse.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sink.Run(rctx) }()
	q := "SELECT host FROM " + cfg.Database + ".context_inventory FINAL WHERE deleted = 0 ORDER BY host"
	for ctx.Err() == nil && len(queryStrings(t, st, q)) != 1 {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{clickhousetest.WebHost}, queryStrings(t, st, q)); diff != "" {
		t.Errorf("inventory after the tombstone of %s (-want +got):\n%s", clickhousetest.DBHost, diff)
	}
}

// TestServiceGraphCountsSummaries: in service_graph_minute, a connect_summary (short
// connections summed by the network collector, collectors.network.summarize) counts as the
// connections it sums, beside connects counted one each; updates add no bytes.
func TestServiceGraphCountsSummaries(t *testing.T) {
	cfg := clickhousetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC().Truncate(time.Minute).Add(10 * time.Second).UnixNano()
	dst := schemas.Endpoint{IP: "10.0.0.1", Port: 443}
	conn := func(action string, packets, sent int64) schemas.Record {
		return &schemas.NetworkEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at, Host: schemas.Host{Name: "h"}, Kind: schemas.KindNetwork},
			Action:   action,
			Network: schemas.Network{Direction: "outbound", Protocol: "tcp", Dst: dst, Packets: packets, BytesSent: sent,
				DNSAnswers: []string{}},
			Enrichment: &schemas.Enrichment{Service: "shop"},
		}
	}
	network, _ := schemas.Kinds.Lookup(schemas.KindNetwork)
	if err := st.InsertEvents(ctx, network,
		conn(schemas.ActionConnectSummary, 7, 700), conn(schemas.ActionConnectSummary, 3, 300),
		conn(schemas.ActionConnect, 0, 10), conn(schemas.ActionUpdate, 0, 5)); err != nil {
		t.Fatal(err)
	}
	got := queryStrings(t, st, "SELECT concat(src_service, ' ', dst, ':', toString(dst_port), ' ', toString(sum(connections)), ' ', toString(sum(bytes_sent))) FROM "+
		cfg.Database+".service_graph_minute GROUP BY src_service, dst, dst_port")
	if diff := cmp.Diff([]string{"shop 10.0.0.1:443 11 1010"}, got); diff != "" {
		t.Errorf("service_graph_minute (-want +got):\n%s", diff)
	}
}

// TestDropExpiredPartitions writes events 40, 20 and 0 days old and checks that a 30-day
// retention drops only the oldest day, and the views' old partitions with it.
func TestDropExpiredPartitions(t *testing.T) {
	cfg := clickhousetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	var evs []schemas.Record
	for _, age := range []int{40, 20, 0} {
		evs = append(evs, &schemas.NetworkEvent{
			Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: now.AddDate(0, 0, -age).UnixNano(), Host: schemas.Host{Name: "h"}},
			Action:   schemas.ActionConnect, Network: schemas.Network{Direction: "outbound", Dst: schemas.Endpoint{IP: "10.0.0.1", Port: 443}},
		})
	}
	network, _ := schemas.Kinds.Lookup(schemas.KindNetwork)
	if err := st.InsertEvents(ctx, network, evs...); err != nil {
		t.Fatal(err)
	}
	days := map[string]int{"network_events": 30, "service_graph_minute": 30, "service_activity": 0}
	dropped, err := st.DropExpiredPartitions(ctx, days, now)
	if err != nil {
		t.Fatal(err)
	}
	old := now.AddDate(0, 0, -40).Format("20060102")
	want := []clickhouse.DroppedPartition{{Table: "network_events", Partition: old}, {Table: "service_graph_minute", Partition: old}}
	if diff := cmp.Diff(want, dropped); diff != "" {
		t.Errorf("dropped partitions (-want +got):\n%s", diff)
	}
	for _, table := range []string{"network_events", "service_graph_minute", "service_activity"} {
		got := queryStrings(t, st, "SELECT toString(count()) FROM "+cfg.Database+"."+table)
		wantN := "2"
		if table == "service_activity" {
			wantN = "3" // retention 0: kept forever
		}
		if diff := cmp.Diff([]string{wantN}, got); diff != "" {
			t.Errorf("%s rows after retention (-want +got):\n%s", table, diff)
		}
	}
}

func TestTTLStatements(t *testing.T) {
	r := map[string]int{}
	for table := range clickhouse.DefaultRetention() {
		r[table] = 0
	}
	r["process_events"], r["logins_by_account"] = 30, 365
	tests := []struct {
		version, cluster string
		want             []string
	}{
		{"18.16.1", "", nil},
		{"19.6.1", "", []string{
			"ALTER TABLE crumbs.logins_by_account MODIFY TTL toDate(hour) + toIntervalDay(365)",
			"ALTER TABLE crumbs.process_events MODIFY TTL date + toIntervalDay(30)",
		}},
		{"24.8.1.1", "c1", []string{
			"ALTER TABLE crumbs.alerts_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.alerts_facets_hourly_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.alerts_first_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.alerts_hourly_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.executions_by_service_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.file_events_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.identity_events_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.logins_by_account_local ON CLUSTER c1 MODIFY TTL toDate(hour) + toIntervalDay(365)",
			"ALTER TABLE crumbs.network_events_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.process_events_local ON CLUSTER c1 MODIFY TTL date + toIntervalDay(30)",
			"ALTER TABLE crumbs.service_activity_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.service_graph_minute_local ON CLUSTER c1 REMOVE TTL",
			"ALTER TABLE crumbs.system_events_local ON CLUSTER c1 REMOVE TTL",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.version+tc.cluster, func(t *testing.T) {
			v, err := clickhouse.ParseServerVersion(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, clickhouse.TTLStatements(v, "crumbs", tc.cluster, clickhouse.RetentionConfig(r).Days(schemas.Kinds))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// queryStrings runs a query of one String column and returns its rows.
func queryStrings(t testing.TB, st *clickhouse.Store, q string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := st.Conn().Query(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// kindOf is the built-in kind of that name.
func kindOf(name string) *schemas.Kind {
	k, _ := schemas.Kinds.Lookup(name)
	return k
}
