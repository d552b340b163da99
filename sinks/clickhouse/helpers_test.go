package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// testConfig returns a Config for the test ClickHouse server and a fresh database name,
// dropped when the test ends. The database itself is created by Migrate.
func testConfig(t testing.TB) Config {
	t.Helper()
	addr := testenv.ClickHouseAddr(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random database name: %v", err)
	}
	cfg := DefaultConfig()
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

// openTestStore opens a Store on a fresh, migrated test database.
// processKind is the process kind's entry.
var processKind, _ = schemas.Kinds.Lookup(schemas.KindProcess)

// insertProcessEvents writes process events through the column buffer, as the sink does.
func insertProcessEvents(ctx context.Context, st *Store, evs []*schemas.ProcessEvent) error {
	recs := make([]schemas.Record, len(evs))
	for i, e := range evs {
		recs[i] = e
	}
	return st.InsertEvents(ctx, processKind, recs...)
}

func openTestStore(t testing.TB) (*Store, Config) {
	t.Helper()
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, cfg
}

// sampleEvent returns a fully populated enriched process event; i varies it.
func sampleEvent(i int, at time.Time) *schemas.ProcessEvent {
	e := &schemas.ProcessEvent{
		Envelope: schemas.Envelope{
			EventID: schemas.NewEventID(),
			Time:    at.UnixNano() + int64(i),
			Host:    schemas.Host{ID: "0f3c1a2b9d8e4f5a", Name: fmt.Sprintf("web-%d", i%4)},
			Kind:    schemas.KindProcess,
		},
		Action: schemas.ActionExec,
		Process: schemas.Process{
			PID: int32(1000 + i), PPID: 1, CmdLine: "/usr/bin/curl -s http://example.com/x",
			Args: []string{"/usr/bin/curl", "-s", fmt.Sprintf("http://example.com/%d", i)}, ArgsTruncated: i%2 == 1,
			CWD:  "/home/alice",
			File: schemas.File{Path: "/usr/bin/curl", Name: "curl", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			UID:  1000, UserName: "alice", GID: 1000, GroupName: "alice", LoginUID: 4294967295,
			TTY: "pts/0", CgroupID: 8812, SystemdUnit: "session-3.scope", ContainerID: "c0ffee",
			ExitCode: int32(i % 3),
			Parent: schemas.Parent{PID: 1, File: schemas.File{Path: "/usr/bin/bash", Name: "bash", SHA256: "abc"},
				CmdLine: "-bash"},
		},
		Enrichment: &schemas.Enrichment{Service: "shop", Environment: "prod", Role: "web"},
	}
	if i%2 == 0 { // in a Kubernetes pod; odd ones in no container the runtime described
		e.Process.Container = &schemas.Container{Name: "shop", Image: "registry.example/shop:1.4.2", ImageID: "sha256:5e2f",
			Pod: &schemas.Pod{Name: fmt.Sprintf("shop-7d9f-%d", i), Namespace: "prod", Labels: []string{"app=shop", "tier=web"},
				WorkloadKind: "Deployment", WorkloadName: "shop"}}
	}
	return e
}

// sampleAlert returns a fully populated alert; i varies it.
func sampleAlert(i int, at time.Time) *schemas.Alert {
	return &schemas.Alert{
		AlertID: fmt.Sprintf("alert-%d-%d", i, at.UnixNano()), Time: at.UnixNano() + int64(i),
		RuleID: "curl-from-web", Title: "curl on a web host", Severity: "high",
		Tags: []string{"attack.t1105", "web"}, GroupKey: "web-1",
		Host: schemas.Host{ID: "0f3c1a2b9d8e4f5a", Name: "web-1"}, Service: "shop",
		WindowStart: at.Add(-time.Minute).UnixNano(), WindowEnd: at.UnixNano(), Count: int64(3 + i),
		Evidence: []string{schemas.NewEventID(), schemas.NewEventID()}, Summary: "3 curl runs by alice", Version: 1,
	}
}
