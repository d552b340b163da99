package query_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// TestClusterOfTwoShards runs the cluster migrations (ON CLUSTER, Replicated tables under
// Distributed ones) on two real clickhouse-server processes with a ZooKeeper, lands the
// scenario through the sink connected to the first, and checks that the rows are spread
// over both shards and that `crumbs timeline` and `crumbs alerts` (Store.Timeline,
// Store.Alerts, Store.Alert) answer through the Distributed tables exactly what they answer
// on a single server.
func TestClusterOfTwoShards(t *testing.T) {
	const cluster = "crumbs_cluster"
	servers := testenv.StartClickHouseCluster(t, cluster, 2)
	s := clickhousetest.New(time.Now())
	singleCfg := clickhousetest.Config(t)
	single := query.New(clickhousetest.Land(t, singleCfg, s).Conn(), singleCfg.Database, "")

	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Cluster = []string{servers[0].Addr}, "crumbs_cluster_test", cluster
	dist := query.New(clickhousetest.Land(t, cfg, s).Conn(), cfg.Database, cfg.Cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Every event table is Distributed over a Replicated table on each shard; together the
	// shards hold each row once.
	tables := []string{clickhouse.ProcessEventsTable, clickhouse.NetworkEventsTable, clickhouse.FileEventsTable,
		clickhouse.IdentityEventsTable, clickhouse.SystemEventsTable, clickhouse.AlertsTable}
	perShard := map[string][]uint64{}
	for _, srv := range servers {
		conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var engine string
		if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'process_events_local'", cfg.Database).Scan(&engine); err != nil {
			t.Fatalf("%s: process_events_local: %v", srv.Addr, err)
		}
		if engine != "ReplicatedReplacingMergeTree" {
			t.Errorf("%s: process_events_local engine %s, want ReplicatedReplacingMergeTree", srv.Addr, engine)
		}
		for _, table := range tables {
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM "+cfg.Database+"."+table+"_local").Scan(&n); err != nil {
				t.Fatalf("%s: count %s_local: %v", srv.Addr, table, err)
			}
			perShard[table] = append(perShard[table], n)
		}
	}
	for _, table := range tables {
		want := count(t, ctx, single, table)
		got := count(t, ctx, dist, table)
		shards := perShard[table]
		if got != want || shards[0]+shards[1] != want {
			t.Errorf("%s: %d rows through the Distributed table, %v on the shards; want %d in all", table, got, shards, want)
		}
	}
	if sys := perShard[clickhouse.SystemEventsTable]; sys[0] == 0 || sys[1] == 0 {
		t.Errorf("system_events on the shards: %v, want rows on both", sys)
	}

	timelines := []query.TimelineQuery{
		{Host: clickhousetest.WebHost, From: s.Start, To: s.End},
		{Service: clickhousetest.WebService, From: s.Start, To: s.End},
		{Service: clickhousetest.DBService, From: s.Start, To: s.End},
		{AlertID: "alert-deployed-file-changed", Before: 30 * time.Second, After: 90 * time.Second},
	}
	for i, q := range timelines {
		t.Run(fmt.Sprintf("timeline %d", i), func(t *testing.T) {
			want, err := single.Timeline(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dist.Timeline(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Entries) == 0 {
				t.Fatal("the single server's timeline is empty: nothing to compare")
			}
			if diff := cmp.Diff(want.Entries, got.Entries); diff != "" {
				t.Errorf("entries, single server vs cluster (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want.Changes, got.Changes); diff != "" {
				t.Errorf("change windows (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("alerts", func(t *testing.T) {
		f := query.AlertFilter{Since: s.Start}
		want, err := single.Alerts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dist.Alerts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != len(s.Alerts) {
			t.Fatalf("single server: %d alerts, want %d", len(want), len(s.Alerts))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("alerts (-want +got):\n%s", diff)
		}
		for _, a := range s.Alerts {
			we, err := single.Alert(ctx, a.AlertID)
			if err != nil {
				t.Fatal(err)
			}
			ge, err := dist.Alert(ctx, a.AlertID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(we, ge); diff != "" {
				t.Errorf("alert %s with its evidence (-want +got):\n%s", a.AlertID, diff)
			}
		}
	})
	// The inbox's subqueries and joins over alert_triage run GLOBAL through the Distributed tables.
	for _, state := range []string{"", "new", "acknowledged", query.StateOpen} {
		t.Run("inbox "+state, func(t *testing.T) {
			f := query.AlertFilter{Since: s.Start, Until: s.End, State: state}
			want, err := single.Inbox(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dist.Inbox(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if want.Total == 0 {
				t.Fatal("the single server's inbox is empty: nothing to compare")
			}
			want.Queries, got.Queries = nil, nil
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("inbox (-want +got):\n%s", diff)
			}
		})
	}
	// The materialised views run on each shard; the Distributed aggregate reads them all.
	q := "SELECT concat(service, ' ', kind, ' ', toString(sum(events))) FROM %s.service_activity GROUP BY service, kind ORDER BY service, kind"
	if diff := cmp.Diff(queryStrings(t, single, fmt.Sprintf(q, single.Database())), queryStrings(t, dist, fmt.Sprintf(q, cfg.Database))); diff != "" {
		t.Errorf("service_activity (-want +got):\n%s", diff)
	}
}

func count(t *testing.T, ctx context.Context, st *query.Store, table string) uint64 {
	t.Helper()
	var n uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+st.Database()+"."+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// queryStrings runs q, which selects one String column, and returns its rows.
func queryStrings(t testing.TB, st *query.Store, q string) []string {
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
