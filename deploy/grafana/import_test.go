package grafana

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// provisioned reads the data sources deploy/grafana/provisioning declares: uid by plugin type.
func provisioned(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("provisioning/datasources/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no provisioned data sources: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Datasources []struct {
				UID  string `yaml:"uid"`
				Type string `yaml:"type"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range p.Datasources {
			out[d.Type] = d.UID
		}
	}
	return out
}

// rawDashboards reads every dashboard as generic JSON, by file.
func rawDashboards(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// datasourceRefs collects every "datasource" object of a dashboard, with where it sits.
func datasourceRefs(v any, where string, out map[string]map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if ds, ok := c.(map[string]any); ok && k == "datasource" {
				out[where+"/datasource"] = ds
				continue
			}
			datasourceRefs(c, where+"/"+k, out)
		}
	case []any:
		for i, c := range x {
			datasourceRefs(c, where+"/"+strconv.Itoa(i), out)
		}
	}
}

var inputRef = regexp.MustCompile(`^\$\{(DS_[A-Z0-9_]+)\}$`)

// TestDashboardsImportable: every dashboard can be imported into another Grafana as it is —
// each data source it uses is an __inputs entry the import dialog asks for, referenced as
// ${DS_...} — and still works where provisioning loads it (which does not resolve __inputs):
// a hidden data source variable of the input's name selects the provisioned data source.
func TestDashboardsImportable(t *testing.T) {
	uids := provisioned(t)
	for f, d := range rawDashboards(t) {
		inputs := map[string]string{} // name -> plugin id
		raw, _ := d["__inputs"].([]any)
		for _, in := range raw {
			m := in.(map[string]any)
			if m["type"] != "datasource" {
				t.Errorf("%s: __inputs %v: want type datasource", f, m["name"])
			}
			inputs[m["name"].(string)], _ = m["pluginId"].(string)
		}
		if len(inputs) == 0 {
			t.Errorf("%s: no __inputs: Grafana's import cannot ask for a data source", f)
			continue
		}
		refs := map[string]map[string]any{}
		datasourceRefs(d, "", refs)
		used := map[string]bool{}
		for where, ds := range refs {
			uid, _ := ds["uid"].(string)
			typ, _ := ds["type"].(string)
			if typ == "grafana" || typ == "datasource" && uid == "-- Grafana --" {
				continue // Grafana's built-in annotations
			}
			m := inputRef.FindStringSubmatch(uid)
			if m == nil {
				t.Errorf("%s%s: data source uid %q: want ${DS_...}, an input the import replaces", f, where, uid)
				continue
			}
			if plugin, ok := inputs[m[1]]; !ok || plugin != typ {
				t.Errorf("%s%s: %s (%s) is not an input of that plugin (inputs: %v)", f, where, uid, typ, inputs)
			}
			used[m[1]] = true
		}
		// Provisioning: a hidden data source variable per input, set to the provisioned uid.
		vars := map[string]map[string]any{}
		tl, _ := d["templating"].(map[string]any)
		list, _ := tl["list"].([]any)
		for _, v := range list {
			m := v.(map[string]any)
			vars[m["name"].(string)] = m
		}
		for name, plugin := range inputs {
			if !used[name] {
				t.Errorf("%s: input %s is used nowhere", f, name)
			}
			v := vars[name]
			if v == nil || v["type"] != "datasource" || v["query"] != plugin || v["hide"] != float64(2) {
				t.Errorf("%s: no hidden data source variable %s of plugin %s for provisioning: %v", f, name, plugin, v)
				continue
			}
			cur, _ := v["current"].(map[string]any)
			if want := uids[plugin]; want == "" || cur["value"] != want {
				t.Errorf("%s: variable %s selects %v, want the provisioned %s data source %q", f, name, cur["value"], plugin, want)
			}
		}
		// __requires names every plugin the import needs: the data sources and the panels.
		needs := map[string]bool{}
		for _, plugin := range inputs {
			needs["datasource/"+plugin] = true
		}
		panels, _ := d["panels"].([]any)
		for _, p := range panels {
			if typ := p.(map[string]any)["type"].(string); typ != "row" { // rows are Grafana's own
				needs["panel/"+typ] = true
			}
		}
		req, _ := d["__requires"].([]any)
		for _, r := range req {
			m := r.(map[string]any)
			delete(needs, m["type"].(string)+"/"+m["id"].(string))
		}
		if len(needs) > 0 {
			var missing []string
			for n := range needs {
				missing = append(missing, n)
			}
			sort.Strings(missing)
			t.Errorf("%s: __requires lacks %v", f, missing)
		}
	}
}

// TestAlertRowLinksToTimeline: a click on an alert's id or host in the alert overview opens
// the timeline dashboard on that host, from 30 minutes before the alert to 10 after; the
// link's fields are columns the panel's query selects, and its variables the timeline's.
func TestAlertRowLinksToTimeline(t *testing.T) {
	ds := rawDashboards(t)
	alerts, timeline := ds[filepath.Join("dashboards", "crumbs-alerts.json")], ds[filepath.Join("dashboards", "crumbs-timeline.json")]
	if alerts == nil || timeline == nil {
		t.Fatal("crumbs-alerts.json or crumbs-timeline.json missing")
	}
	timelineVars := map[string]bool{}
	for _, v := range timeline["templating"].(map[string]any)["list"].([]any) {
		timelineVars[v.(map[string]any)["name"].(string)] = true
	}
	var panel map[string]any
	for _, p := range alerts["panels"].([]any) {
		if m := p.(map[string]any); strings.HasPrefix(m["title"].(string), "Latest alerts") {
			panel = m
		}
	}
	if panel == nil {
		t.Fatal("crumbs-alerts has no Latest alerts panel")
	}
	sql := panel["targets"].([]any)[0].(map[string]any)["rawSql"].(string)
	selects := regexp.MustCompile(`(?s)^SELECT (.*?)\nFROM`).FindStringSubmatch(sql)
	if selects == nil {
		t.Fatalf("Latest alerts: cannot read the columns of:\n%s", sql)
	}
	columns := map[string]bool{}
	for _, c := range strings.Split(selects[1], ",") {
		f := strings.Fields(c)
		columns[f[len(f)-1]] = true
	}
	links := map[string][]any{}
	hidden := map[string]bool{}
	for _, o := range panel["fieldConfig"].(map[string]any)["overrides"].([]any) {
		m := o.(map[string]any)
		field := m["matcher"].(map[string]any)["options"].(string)
		for _, p := range m["properties"].([]any) {
			pm := p.(map[string]any)
			switch pm["id"] {
			case "links":
				links[field] = pm["value"].([]any)
			case "custom.hidden":
				hidden[field] = pm["value"] == true
			}
		}
	}
	for _, field := range []string{"alert_id", "host_name"} {
		if len(links[field]) != 1 {
			t.Errorf("Latest alerts: column %s has %d links, want 1 to the timeline", field, len(links[field]))
			continue
		}
		raw := links[field][0].(map[string]any)["url"].(string)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("link %q: %v", raw, err)
		}
		if want := "/d/" + timeline["uid"].(string) + "/"; !strings.HasPrefix(u.Path, want) {
			t.Errorf("link %s: path %s, want the timeline dashboard %s...", raw, u.Path, want)
		}
		q := u.Query()
		got := map[string]string{"var-host": q.Get("var-host"), "from": q.Get("from"), "to": q.Get("to")}
		want := map[string]string{"var-host": "${__data.fields.host_name:percentencode}", "from": "${__data.fields.timeline_from_ms}", "to": "${__data.fields.timeline_to_ms}"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("link %s (-want +got):\n%s", raw, diff)
		}
		for k := range q {
			if name, ok := strings.CutPrefix(k, "var-"); ok && !timelineVars[name] {
				t.Errorf("link %s sets var-%s, which the timeline does not have", raw, name)
			}
		}
		for _, m := range regexp.MustCompile(`\$\{__data\.fields\.([a-z_]+)`).FindAllStringSubmatch(raw, -1) {
			if !columns[m[1]] {
				t.Errorf("link %s reads the field %s, which the query does not select", raw, m[1])
			}
		}
	}
	for _, c := range []string{"timeline_from_ms", "timeline_to_ms"} {
		if !columns[c] || !hidden[c] {
			t.Errorf("Latest alerts: %s selected %v, hidden %v; want both", c, columns[c], hidden[c])
		}
	}
	// TestDashboardQueries runs the query and checks the range around each alert.
}
