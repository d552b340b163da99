// Package grafana holds the crumbs dashboards (dashboards/*.json) and their provisioning;
// its test runs every SQL query in them against a real ClickHouse holding a landed scenario.
package grafana

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

var update = flag.Bool("update", false, "rewrite testdata/columns.golden")

// query is one SQL query of a dashboard and what its result must look like.
type query struct {
	where string // dashboard uid / panel title / refId
	shape string // timeseries, stat, table, nodes, edges, annotation, variable
	sql   string
}

type dashboard struct {
	UID    string `json:"uid"`
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Annotations struct {
		List []struct {
			Name   string `json:"name"`
			Target *struct {
				RawSQL string `json:"rawSql"`
			} `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      string `json:"query"`
			Datasource struct {
				Type string `json:"type"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID  string `json:"refId"`
			RawSQL string `json:"rawSql"`
			Expr   string `json:"expr"` // a Prometheus query
		} `json:"targets"`
	} `json:"panels"`
}

// promQuery is one Prometheus query of a dashboard.
type promQuery struct {
	where, expr string
}

// loadDashboards reads every dashboard, by file.
func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// promQueries reads every Prometheus query of every dashboard.
func promQueries(t *testing.T) []promQuery {
	t.Helper()
	var out []promQuery
	for _, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, promQuery{d.UID + "/" + p.Title + "/" + tg.RefID, tg.Expr})
				}
			}
		}
	}
	return out
}

// loadQueries reads every query of every dashboard.
func loadQueries(t *testing.T) []query {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var qs []query
	dashboards := loadDashboards(t)
	for _, f := range files {
		d := dashboards[f]
		annotated := false
		for _, a := range d.Annotations.List {
			if a.Target != nil && a.Target.RawSQL != "" {
				annotated = true
				qs = append(qs, query{d.UID + "/annotation " + a.Name, "annotation", a.Target.RawSQL})
			}
		}
		if !annotated {
			t.Errorf("%s: no change-window annotation", f)
		}
		for _, v := range d.Templating.List {
			if v.Type == "datasource" || v.Datasource.Type == "prometheus" {
				continue // a data source choice, or a Prometheus query (TestPrometheusQueries)
			}
			qs = append(qs, query{d.UID + "/variable " + v.Name, "variable", v.Query})
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.RawSQL == "" && tg.Expr != "" {
					continue // Prometheus: TestPrometheusQueries
				}
				shape := p.Type
				if p.Type == "nodeGraph" {
					shape = tg.RefID
				}
				qs = append(qs, query{d.UID + "/" + p.Title + "/" + tg.RefID, shape, tg.RawSQL})
			}
		}
	}
	return qs
}

var timeFilter = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)

// expand replaces the Grafana ClickHouse data source's macros and the template variables as
// Grafana would for the range [from, to] and the given variable values.
func expand(sql string, from, to time.Time, vars map[string]string) string {
	f, tt := fmt.Sprintf("toDateTime(%d)", from.Unix()), fmt.Sprintf("toDateTime(%d)", to.Unix())
	sql = timeFilter.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+tt)
	sql = strings.NewReplacer("$__fromTime", f, "$__toTime", tt, "$__interval_s", "60").Replace(sql)
	for k, v := range vars {
		sql = strings.ReplaceAll(sql, "${"+k+":percentencode}", percentEncode(v))
		sql = strings.ReplaceAll(sql, "${"+k+"}", v)
		sql = strings.ReplaceAll(sql, "$"+k, v)
	}
	return sql
}

// percentEncode is Grafana's percentencode variable format (encodeURIComponent, and !'()*
// escaped too): only letters, digits, - _ . ~ and %XX remain.
func percentEncode(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// variableUse is every use of a template variable in a query ($name, ${name}, ${name:fmt},
// [[name]]); macros ($__timeFilter ...) are not variables.
var variableUse = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}?|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\]\]`)

// escapedUse is the only way a variable may enter SQL. Grafana's sqlstring format doubles
// quotes but ClickHouse also reads backslash escapes in string literals, so a value ending in
// a backslash would close the literal early; percentencode leaves only [A-Za-z0-9-_.~%], which
// nothing in a ClickHouse string literal reads specially, and decodeURLComponent gives the
// value back.
var escapedUse = regexp.MustCompile(`^decodeURLComponent\('\$\{[A-Za-z_][A-Za-z0-9_]*:percentencode\}'\)`)

// TestDashboardVariablesEscaped fails on any template variable that enters a query otherwise
// than as decodeURLComponent('${name:percentencode}'): service and host names come from the
// watched hosts and may hold quotes or backslashes.
func TestDashboardVariablesEscaped(t *testing.T) {
	for _, q := range loadQueries(t) {
		for _, m := range variableUse.FindAllStringSubmatchIndex(q.sql, -1) {
			use := q.sql[m[0]:m[1]]
			if strings.HasPrefix(use, "$__") || strings.HasPrefix(use, "${__") {
				continue // a macro of the data source
			}
			start := m[0] - len("decodeURLComponent('")
			if start < 0 || !escapedUse.MatchString(q.sql[start:]) {
				t.Errorf("%s: %s enters SQL unescaped; write decodeURLComponent('${name:percentencode}'):\n%s", q.where, use, q.sql)
			}
		}
	}
}

func TestDashboardQueries(t *testing.T) {
	qs := loadQueries(t)
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	clickhousetest.Land(t, cfg, s)
	// readonly=1, as Grafana's user has it (docker-compose.yml): the dashboards only read.
	conn, err := ch.Open(&ch.Options{Addr: cfg.Addr, Auth: ch.Auth{Database: cfg.Database, Username: cfg.Username, Password: cfg.Password},
		Settings: ch.Settings{"readonly": 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	from, to := s.Start.Add(-time.Hour), s.End.Add(time.Hour)
	// Every event kind's table, which the dashboards read, holds the scenario's events of it.
	for _, k := range schemas.Kinds {
		_, _, n, err := run(conn, "SELECT event_id FROM "+k.Table)
		if err != nil || n == 0 {
			t.Errorf("kind %s: %d rows in %s (%v): the scenario lands no event of it", k.Name, n, k.Table, err)
		}
	}

	var golden []string
	hostile := map[string]string{"service": `x' OR 1=1 --\`, "host": `\' OR 1=1) -- é`}
	for _, vars := range []map[string]string{
		{"service": "__all", "host": "__all"},
		{"service": clickhousetest.WebService, "host": clickhousetest.WebHost},
		hostile,
	} {
		for _, q := range qs {
			name := q.where + " [service=" + vars["service"] + "]"
			t.Run(name, func(t *testing.T) {
				sql := expand(q.sql, from, to, vars)
				if strings.Contains(sql, "$") {
					t.Fatalf("unexpanded macro or variable in:\n%s", sql)
				}
				cols, types, n, err := run(conn, sql)
				if err != nil {
					t.Fatalf("%v\n%s", err, sql)
				}
				if vars["service"] == hostile["service"] {
					return // a name with quotes and backslashes is a value like any other: the query runs
				}
				if n == 0 {
					t.Errorf("no rows over the scenario:\n%s", sql)
				}
				if err := checkShape(q.shape, cols, types); err != nil {
					t.Errorf("%v\n%s", err, sql)
				}
				if vars["service"] == "__all" {
					golden = append(golden, q.where+": "+strings.Join(cols, ", "))
				}
			})
		}
	}
	// The alert overview links each alert to the timeline of its host from 30 minutes before it
	// to 10 after (TestAlertRowLinksToTimeline): the range its query computes holds the alert.
	for _, q := range qs {
		if !strings.HasPrefix(q.where, "crumbs-alerts/Latest alerts") {
			continue
		}
		sql := "SELECT count(), countIf(timeline_from_ms = (toUInt64(toUnixTimestamp(time)) - 1800) * 1000 AND timeline_to_ms = (toUInt64(toUnixTimestamp(time)) + 600) * 1000) FROM (" +
			expand(q.sql, from, to, map[string]string{"service": "__all", "host": "__all"}) + ")"
		var all, around uint64
		if err := conn.QueryRow(context.Background(), sql).Scan(&all, &around); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
		if all == 0 || around != all {
			t.Errorf("%s: %d of %d alerts link to the timeline from 30 minutes before to 10 after them", q.where, around, all)
		}
	}
	sort.Strings(golden)
	got := strings.Join(golden, "\n") + "\n"
	path := filepath.Join("testdata", "columns.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (run go test -update): %v", path, err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("columns of the dashboard queries (-want +got):\n%s", diff)
	}
}

// run executes sql and returns its column names and types and how many rows it returned.
func run(conn driver.Conn, sql string) ([]string, []string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, nil, 0, err
	}
	defer rows.Close()
	var types []string
	for _, c := range rows.ColumnTypes() {
		types = append(types, c.DatabaseTypeName())
	}
	n := 0
	for rows.Next() {
		n++
	}
	return rows.Columns(), types, n, rows.Err()
}

var numeric = regexp.MustCompile(`^(U?Int\d+|Float\d+|Decimal)`)

// checkShape checks the columns the panel type needs.
func checkShape(shape string, cols, types []string) error {
	has := func(names ...string) error {
		set := map[string]bool{}
		for _, c := range cols {
			set[c] = true
		}
		for _, n := range names {
			if !set[n] {
				return fmt.Errorf("%s query: no column %q in %v", shape, n, cols)
			}
		}
		return nil
	}
	switch shape {
	case "timeseries":
		if len(cols) < 2 || cols[0] != "time" || !strings.HasPrefix(types[0], "DateTime") {
			return fmt.Errorf("time series: want a first column time of type DateTime, got %v %v", cols, types)
		}
		if !numeric.MatchString(types[len(types)-1]) {
			return fmt.Errorf("time series: last column %s is %s, not a number", cols[len(cols)-1], types[len(types)-1])
		}
	case "stat":
		if len(cols) != 1 || !numeric.MatchString(types[0]) {
			return fmt.Errorf("stat: want one numeric column, got %v %v", cols, types)
		}
	case "nodes":
		return has("id", "title", "mainstat")
	case "edges":
		return has("id", "source", "target", "mainstat", "secondarystat")
	case "annotation":
		return has("time", "timeEnd", "text", "tags")
	case "variable":
		if len(cols) != 1 {
			return fmt.Errorf("variable: want one column, got %v", cols)
		}
	case "table":
		if len(cols) == 0 {
			return fmt.Errorf("table: no columns")
		}
	default:
		return fmt.Errorf("unknown panel type %q", shape)
	}
	return nil
}

// metricName is a crumbs metric named in a Prometheus query; a histogram's series take a
// suffix the registered name does not have.
var metricName = regexp.MustCompile(`\bcrumbs_[a-z0-9_]+`)

// TestPrometheusQueries: every metric a dashboard's Prometheus queries read is one crumbs
// registers (its name is a string literal in the Go sources), so a renamed metric cannot leave
// a panel empty unnoticed; every data source a dashboard names through ${DS_...} is declared
// in its __inputs (for Grafana's import) and as a data source variable (for provisioning,
// which does not resolve __inputs).
func TestPrometheusQueries(t *testing.T) {
	qs := promQueries(t)
	if len(qs) == 0 {
		t.Fatal("no Prometheus query in the dashboards; this test expects the pipeline-health dashboard")
	}
	registered := map[string]bool{}
	err := filepath.WalkDir(filepath.Join("..", ".."), func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "testdata") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`"(crumbs_[a-z0-9_]+)"`).FindAllSubmatch(b, -1) {
			registered[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		for _, name := range metricName.FindAllString(q.expr, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && registered[b] {
					base = b
				}
			}
			if !registered[base] {
				t.Errorf("%s: %s is no metric crumbs registers:\n%s", q.where, name, q.expr)
			}
		}
	}
	dsRef := regexp.MustCompile(`\$\{(DS_[A-Z0-9_]+)\}`)
	for f, d := range loadDashboards(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs, vars := map[string]bool{}, map[string]bool{}
		for _, in := range d.Inputs {
			inputs[in.Name] = in.Type == "datasource" && in.PluginID != ""
		}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type == "datasource"
		}
		for _, m := range dsRef.FindAllSubmatch(b, -1) {
			name := string(m[1])
			if !inputs[name] {
				t.Errorf("%s: ${%s} is not a data source of its __inputs", f, name)
			}
			if !vars[name] {
				t.Errorf("%s: ${%s} is not a data source variable (provisioning does not resolve __inputs)", f, name)
			}
		}
	}
}
