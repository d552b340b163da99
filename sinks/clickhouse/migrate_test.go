package clickhouse

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMigrateTwice(t *testing.T) {
	st, cfg := openTestStore(t) // Open migrates once
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Migrate(ctx, st.Conn(), cfg.Database); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	got, err := AppliedMigrations(ctx, st.Conn(), cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint32{1, 2}, got); diff != "" {
		t.Errorf("applied migrations (-want +got):\n%s", diff)
	}
	var n uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name IN ('process_events', 'alerts')", cfg.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("tables in %s: got %d of process_events and alerts, want 2", cfg.Database, n)
	}
}

// TestRenderMigrationsGolden pins the SQL each supported server generation gets; run with
// -update to rewrite testdata/migrations_<version>.sql after changing a migration.
func TestRenderMigrationsGolden(t *testing.T) {
	for _, v := range []string{"18.16.1", "24.8.1.1"} {
		t.Run(v, func(t *testing.T) {
			ver, err := ParseServerVersion(v)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := RenderMigrations(ver, "crumbs")
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, m := range ms {
				for _, s := range m.Statements {
					b.WriteString(fmt.Sprintf("-- %04d_%s\n", m.Version, m.Name) + s + ";\n\n")
				}
			}
			golden := filepath.Join("testdata", "migrations_"+v+".sql")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test -update): %v", err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("rendered migrations for %s (-want +got):\n%s", v, diff)
			}
		})
	}
}

func TestParseServerVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    ServerVersion
		wantErr bool
	}{
		{in: "18.16.1", want: ServerVersion{18, 16, 1, 0}},
		{in: "24.8.1.1", want: ServerVersion{24, 8, 1, 1}},
		{in: "25.3", want: ServerVersion{25, 3, 0, 0}},
		{in: "x.1", wantErr: true},
		{in: "1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseServerVersion(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- only a comment;\nCREATE TABLE a (s String DEFAULT ';');\n-- trailing\n  SELECT 1;  ")
	want := []string{"-- only a comment;\nCREATE TABLE a (s String DEFAULT ';')", "-- trailing\n  SELECT 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
