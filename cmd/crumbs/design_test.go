package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// designSection is the text of a "## title" section of docs/design.md.
func designSection(t *testing.T, title string) string {
	t.Helper()
	doc := readDoc(t, "docs/design.md")
	start := strings.Index(doc, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("docs/design.md has no section %q", title)
	}
	rest := doc[start+len(title)+5:]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// TestDesignNamesTheTopicsCrumbsUses: the design's topic table names exactly the topics the
// stages use (kafka.Topics with the default prefix), so the design stays true as topics come.
func TestDesignNamesTheTopicsCrumbsUses(t *testing.T) {
	sec := designSection(t, "Data flow")
	var got []string
	braces := regexp.MustCompile(`^(.*)\{([^}]*)\}(.*)$`)
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "| `crumbs.") {
			continue
		}
		name := strings.SplitN(line, "`", 3)[1]
		if m := braces.FindStringSubmatch(name); m != nil {
			for _, v := range strings.Split(m[2], ",") {
				got = append(got, m[1]+v+m[3])
			}
			continue
		}
		got = append(got, name)
	}
	tp := kafka.Topics{Prefix: "crumbs"}
	want := []string{tp.Alerts(), tp.Incidents(), tp.DLQ(), tp.Retry("sink"), tp.Deliveries(), tp.Triage(), tp.State("<group>"), tp.Health()}
	for _, k := range schemas.Kinds {
		want = append(want, tp.Raw(k.Name), tp.Enriched(k.Name))
	}
	for _, k := range kafka.ContextKinds {
		want = append(want, tp.Context(k))
	}
	sort.Strings(got)
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docs/design.md's topic table against the topics crumbs uses (-want +got):\n%s", diff)
	}
}

// TestDesignNamesEveryTable: every table a migration creates is named in the design's
// ClickHouse section, and every table named there is created by a migration.
func TestDesignNamesEveryTable(t *testing.T) {
	sec := designSection(t, "ClickHouse tables")
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "schemas", "clickhouse", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	created := map[string]bool{"schema_migrations": true} // the migrator's own
	table := regexp.MustCompile(`\{\{\.Table "([a-z_]+)"\}\}`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range table.FindAllStringSubmatch(string(b), -1) {
			created[m[1]] = true
		}
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(sec, -1) {
		if strings.Contains(m[1], "_") || m[1] == "alerts" {
			named[m[1]] = true
		}
	}
	for tbl := range created {
		if !named[tbl] {
			t.Errorf("a migration creates %s; docs/design.md's ClickHouse tables do not name it", tbl)
		}
	}
	for tbl := range named {
		if !created[tbl] {
			t.Errorf("docs/design.md names the table %s; no migration creates it", tbl)
		}
	}
}
