// Package deploy holds what runs crumbs beyond one host (Grafana provisioning and
// dashboards under grafana/; docker-compose.yml and the Dockerfile at the top of the
// repository); its test validates the compose file against the crumbs built here.
package deploy

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

const composeFile = "../docker-compose.yml"

// requireCommand returns the path of a command the test needs; without it the test is
// skipped, or fails under CRUMBS_STRICT=1 (the testenv rule).
func requireCommand(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testenv.Strict() {
			t.Fatalf("CRUMBS_STRICT=1 and %s is missing (%s): %v", name, hint, err)
		}
		t.Skipf("skipping (set CRUMBS_STRICT=1 to fail instead): %s is missing (%s)", name, hint)
	}
	return p
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Privileged  bool              `yaml:"privileged"`
	PID         string            `yaml:"pid"`
	User        string            `yaml:"user"`
	CapAdd      []string          `yaml:"cap_add"`
	CapDrop     []string          `yaml:"cap_drop"`
	ReadOnly    bool              `yaml:"read_only"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []any             `yaml:"ports"`
	Container   string            `yaml:"container_name"`
	Build       any               `yaml:"build"`
}

// composeConfig runs `docker-compose config` with env added and returns the resolved file.
func composeConfig(t *testing.T, bin string, env ...string) (map[string]composeService, error) {
	t.Helper()
	cmd := exec.Command(bin, "-f", composeFile, "config")
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, &exec.ExitError{Stderr: out}
	}
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parse docker-compose config output: %v\n%s", err, out)
	}
	return doc.Services, nil
}

// cleanEnv is the test's environment without the secrets and crumbs settings it sets itself.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLICKHOUSE_") && !strings.HasPrefix(kv, "GRAFANA_") && !strings.HasPrefix(kv, "CRUMBS_") {
			out = append(out, kv)
		}
	}
	return out
}

func TestComposeFile(t *testing.T) {
	bin := requireCommand(t, "docker-compose", "apt-get install docker-compose")
	if _, err := composeConfig(t, bin, "GRAFANA_ADMIN_PASSWORD=g"); err == nil {
		t.Error("docker-compose config succeeded without CLICKHOUSE_PASSWORD: the secret must come from the environment")
	}
	secrets := []string{"CLICKHOUSE_PASSWORD=from-env-123", "GRAFANA_CLICKHOUSE_PASSWORD=grafana-456", "GRAFANA_ADMIN_PASSWORD=g",
		"KAFKA_EXTERNAL_HOST=crumbs.example.net", "CONTEXT_API_TOKENS=a-context-token-of-32-characters"}
	for _, r := range []string{"ADMIN", "COLLECTOR", "ENRICHER", "DETECTOR", "SINK", "ALERTS", "CONTEXT", "TRIAGE", "DLQ_REPLAY"} {
		secrets = append(secrets, "KAFKA_PASSWORD_"+r+"=kafka-"+strings.ToLower(r)+"-password-from-env")
	}
	if _, err := composeConfig(t, bin, slices.DeleteFunc(slices.Clone(secrets), func(s string) bool { return strings.HasPrefix(s, "KAFKA_PASSWORD_COLLECTOR=") })...); err == nil {
		t.Error("docker-compose config succeeded without KAFKA_PASSWORD_COLLECTOR: every role's password must come from the environment")
	}
	services, err := composeConfig(t, bin, secrets...)
	if err != nil {
		t.Fatalf("docker-compose config: %s", err.(*exec.ExitError).Stderr)
	}
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "from-env-123") || regexp.MustCompile(`(?i)password:\s*["']?[A-Za-z0-9]`).Match(raw) {
		t.Error("docker-compose.yml holds a literal password; take it from the environment")
	}

	var names []string
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"clickhouse", "collector", "context-api", "crumbs-topics", "detector", "enricher", "grafana", "kafka-1", "kafka-2", "kafka-3", "kafka-acls", "kafka-setup", "sink"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	for _, k := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		env := services[k].Environment
		if env["KAFKA_PROCESS_ROLES"] != "broker,controller" || !strings.Contains(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], "3@kafka-3:9093") {
			t.Errorf("%s is not a KRaft broker and controller of a three-node quorum: %v", k, env)
		}
	}
	for i, k := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		env := services[k].Environment
		// Authenticated on every listener a client reaches; the external one advertised at
		// the address other hosts know and published there.
		if env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] != "CONTROLLER:PLAINTEXT,BROKER:PLAINTEXT,CLIENT:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT" ||
			!strings.Contains(env["KAFKA_AUTHORIZER_CLASS_NAME"], "StandardAuthorizer") {
			t.Errorf("%s: listeners %q, authorizer %q: want SASL on CLIENT and EXTERNAL, and ACLs", k, env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], env["KAFKA_AUTHORIZER_CLASS_NAME"])
		}
		ext := fmt.Sprintf("EXTERNAL://crumbs.example.net:%d", 19092+i)
		if !strings.Contains(env["KAFKA_ADVERTISED_LISTENERS"], ext) || len(services[k].Ports) != 1 {
			t.Errorf("%s advertises %q and publishes %v; want %s published", k, env["KAFKA_ADVERTISED_LISTENERS"], services[k].Ports, ext)
		}
	}
	col := services["collector"]
	if col.Privileged || col.PID != "host" || col.User != "0" {
		t.Errorf("collector: privileged %v, pid %q, user %q; want not privileged, in the host's pid namespace, started as root", col.Privileged, col.PID, col.User)
	}
	var caps []string
	for _, c := range collectorCapabilities() {
		caps = append(caps, strings.TrimPrefix(c, "CAP_"))
	}
	if diff := cmp.Diff(caps, slices.Sorted(slices.Values(col.CapAdd))); diff != "" || !slices.Equal(col.CapDrop, []string{"ALL"}) {
		t.Errorf("collector: cap_drop %v; cap_add against the collectors' capabilities (-want +got):\n%s", col.CapDrop, diff)
	}
	if root := col.Environment["CRUMBS_COLLECTORS_HOST_ROOT"]; root == "" || !slices.Contains(col.Volumes, "/:"+root+":ro,rslave") {
		t.Errorf("collector: the host's root is not mounted read-only at collectors.host_root (%q): %v", root, col.Volumes)
	}
	for _, m := range []string{"/sys/kernel/btf", "/sys/kernel/tracing"} {
		found := false
		for _, v := range col.Volumes {
			found = found || strings.HasPrefix(v, m+":")
		}
		if !found {
			t.Errorf("collector does not mount %s: %v", m, col.Volumes)
		}
	}
	if !slices.ContainsFunc(col.Volumes, func(v string) bool {
		return strings.HasSuffix(v, ":/var/lib/crumbs:rw") || strings.HasSuffix(v, ":/var/lib/crumbs")
	}) {
		t.Errorf("collector: no volume for its spool and scan state (/var/lib/crumbs): %v", col.Volumes)
	}
	// Every crumbs service authenticates as its own role, with a password from the environment.
	roles := map[string]string{"collector": "collector", "enricher": "enricher", "context-api": "enricher", "detector": "detector", "sink": "sink", "crumbs-topics": "admin"}
	for svc, role := range roles {
		env := services[svc].Environment
		if env["CRUMBS_KAFKA_SECURITY_SASL_USERNAME"] != "crumbs-"+role || env["CRUMBS_KAFKA_SECURITY_SASL_PASSWORD"] != "kafka-"+role+"-password-from-env" ||
			env["CRUMBS_KAFKA_SECURITY_SASL_MECHANISM"] != "SCRAM-SHA-512" {
			t.Errorf("%s: SASL user %q password %q mechanism %q; want crumbs-%s with KAFKA_PASSWORD_%s, SCRAM-SHA-512", svc,
				env["CRUMBS_KAFKA_SECURITY_SASL_USERNAME"], env["CRUMBS_KAFKA_SECURITY_SASL_PASSWORD"], env["CRUMBS_KAFKA_SECURITY_SASL_MECHANISM"], role, strings.ToUpper(role))
		}
		if svc != "collector" && (services[svc].User != "" || len(services[svc].CapAdd) > 0 || !slices.Equal(services[svc].CapDrop, []string{"ALL"}) || !services[svc].ReadOnly) {
			t.Errorf("%s: user %q cap_add %v cap_drop %v read_only %v; want the image's user, no capability, a read-only root", svc,
				services[svc].User, services[svc].CapAdd, services[svc].CapDrop, services[svc].ReadOnly)
		}
	}
	api := services["context-api"].Environment
	if api["CRUMBS_ENRICHER_API_LISTEN"] == "" || api["CRUMBS_ENRICHER_API_TOKENS"] != "a-context-token-of-32-characters" || api["CRUMBS_ENRICHER_API_TLS_CERT_FILE"] == "" {
		t.Errorf("context-api: listen %q tokens %q cert %q; want the API on, over TLS, with the tokens from CONTEXT_API_TOKENS",
			api["CRUMBS_ENRICHER_API_LISTEN"], api["CRUMBS_ENRICHER_API_TOKENS"], api["CRUMBS_ENRICHER_API_TLS_CERT_FILE"])
	}
	for _, s := range []string{"enricher", "detector", "sink"} {
		if services[s].Container != "" || len(services[s].Ports) > 0 {
			t.Errorf("%s cannot be scaled: container_name %q, host ports %v", s, services[s].Container, services[s].Ports)
		}
	}
	if got := services["sink"].Environment["CRUMBS_CLICKHOUSE_PASSWORD"]; got != "from-env-123" {
		t.Errorf("sink's ClickHouse password is %q, want the one from the environment", got)
	}
	g := services["grafana"]
	if g.Environment["CLICKHOUSE_USER"] != "grafana" || g.Environment["CLICKHOUSE_PASSWORD"] != "grafana-456" {
		t.Errorf("grafana reads ClickHouse as %q with %q, want its own read-only user grafana with GRAFANA_CLICKHOUSE_PASSWORD",
			g.Environment["CLICKHOUSE_USER"], g.Environment["CLICKHOUSE_PASSWORD"])
	}
	if g.Environment["GF_INSTALL_PLUGINS"] != "grafana-clickhouse-datasource" {
		t.Errorf("grafana does not install the ClickHouse data source plugin: %v", g.Environment)
	}
	for _, m := range []string{"./deploy/grafana/provisioning", "./deploy/grafana/dashboards"} {
		abs, _ := filepath.Abs(filepath.Join("..", m))
		found := false
		for _, v := range g.Volumes {
			found = found || strings.HasPrefix(v, abs+":")
		}
		if !found {
			t.Errorf("grafana does not mount %s: %v", m, g.Volumes)
		}
	}

	// Every crumbs service's command line and environment must be accepted by the crumbs
	// built from this tree.
	crumbs := crumbsBinary(t)
	for _, name := range names {
		s := services[name]
		if s.Build == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			env := cleanEnv()
			for k, v := range s.Environment {
				env = append(env, k+"="+v)
			}
			help := exec.Command(crumbs, append(append([]string{}, s.Command...), "--help")...)
			help.Env = env
			if out, err := help.CombinedOutput(); err != nil {
				t.Errorf("crumbs %s --help: %v\n%s", strings.Join(s.Command, " "), err, out)
			}
			// `crumbs config` loads and validates the configuration the service's
			// environment gives: an unknown CRUMBS_ variable or a bad value fails it.
			cfg := exec.Command(crumbs, "config")
			cfg.Env = env
			if out, err := cfg.CombinedOutput(); err != nil {
				t.Errorf("the environment of %s is not a valid crumbs configuration: %v\n%s", name, err, out)
			}
		})
	}
}

// TestGrafanaClickHouseUserReadOnly reads the compose file, the Grafana data source and the
// ClickHouse user file as they are written: Grafana connects as its own user, that user is
// readonly=1 with SELECT on the crumbs database only and no access management, and the crumbs
// user gets no SQL access management either. (TestComposeFile checks the resolved file when
// docker-compose is installed.)
func TestGrafanaClickHouseUserReadOnly(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	ch, g := compose.Services["clickhouse"], compose.Services["grafana"]
	if got := ch.Environment["CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"]; got != "0" {
		t.Errorf("clickhouse: CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT %q, want \"0\"", got)
	}
	if !slices.Contains(ch.Volumes, "./deploy/clickhouse/users.d/grafana.xml:/etc/clickhouse-server/users.d/grafana.xml:ro") {
		t.Errorf("clickhouse does not mount the Grafana user: %v", ch.Volumes)
	}
	if g.Environment["CLICKHOUSE_USER"] != "grafana" || !strings.Contains(g.Environment["CLICKHOUSE_PASSWORD"], "GRAFANA_CLICKHOUSE_PASSWORD") ||
		!strings.Contains(ch.Environment["GRAFANA_CLICKHOUSE_PASSWORD"], "GRAFANA_CLICKHOUSE_PASSWORD") {
		t.Errorf("grafana connects as %q with %q; the clickhouse service's grafana password is %q",
			g.Environment["CLICKHOUSE_USER"], g.Environment["CLICKHOUSE_PASSWORD"], ch.Environment["GRAFANA_CLICKHOUSE_PASSWORD"])
	}
	ds, err := os.ReadFile("grafana/provisioning/datasources/clickhouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ds), "username: ${CLICKHOUSE_USER}") {
		t.Errorf("the data source does not take its user from CLICKHOUSE_USER:\n%s", ds)
	}

	x, err := os.ReadFile("clickhouse/users.d/grafana.xml")
	if err != nil {
		t.Fatal(err)
	}
	var users struct {
		Profiles struct {
			Grafana struct {
				Readonly    string `xml:"readonly"`
				Constraints struct {
					Inner string `xml:",innerxml"`
				} `xml:"constraints"`
			} `xml:"crumbs_grafana"`
		} `xml:"profiles"`
		Users struct {
			Grafana struct {
				Password struct {
					FromEnv string `xml:"from_env,attr"`
					Value   string `xml:",chardata"`
				} `xml:"password"`
				Profile          string   `xml:"profile"`
				AccessManagement string   `xml:"access_management"`
				Grants           []string `xml:"grants>query"`
			} `xml:"grafana"`
		} `xml:"users"`
	}
	if err := xml.Unmarshal(x, &users); err != nil {
		t.Fatal(err)
	}
	u, p := users.Users.Grafana, users.Profiles.Grafana
	got := []string{u.Profile, p.Readonly, u.AccessManagement, u.Password.FromEnv, strings.TrimSpace(u.Password.Value)}
	if diff := cmp.Diff([]string{"crumbs_grafana", "1", "0", "GRAFANA_CLICKHOUSE_PASSWORD", ""}, got); diff != "" {
		t.Errorf("grafana user: profile, readonly, access_management, password from_env, literal password (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"GRANT SELECT ON crumbs.*"}, u.Grants); diff != "" {
		t.Errorf("grafana user grants (-want +got):\n%s", diff)
	}
	if strings.Count(p.Constraints.Inner, "changeable_in_readonly") != 1 || !strings.Contains(p.Constraints.Inner, "<max_execution_time>") {
		t.Errorf("only max_execution_time may change in readonly mode (the data source sets it): %s", p.Constraints.Inner)
	}
}
