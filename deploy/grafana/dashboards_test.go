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
	UID         string `json:"uid"`
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
			Name  string `json:"name"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID  string `json:"refId"`
			RawSQL string `json:"rawSql"`
		} `json:"targets"`
	} `json:"panels"`
}

// loadQueries reads every query of every dashboard.
func loadQueries(t *testing.T) []query {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	var qs []query
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
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
			qs = append(qs, query{d.UID + "/variable " + v.Name, "variable", v.Query})
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
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
