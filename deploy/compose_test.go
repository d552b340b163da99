// Package deploy holds what runs crumbs beyond one host (Grafana provisioning and
// dashboards under grafana/; docker-compose.yml and the Dockerfile at the top of the
// repository); its test validates the compose file against the crumbs built here.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	services, err := composeConfig(t, bin, "CLICKHOUSE_PASSWORD=from-env-123", "GRAFANA_ADMIN_PASSWORD=g")
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
	want := []string{"clickhouse", "collector", "detector", "enricher", "grafana", "kafka-1", "kafka-2", "kafka-3", "sink"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	for _, k := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		env := services[k].Environment
		if env["KAFKA_PROCESS_ROLES"] != "broker,controller" || !strings.Contains(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], "3@kafka-3:9093") {
			t.Errorf("%s is not a KRaft broker and controller of a three-node quorum: %v", k, env)
		}
	}
	col := services["collector"]
	if !col.Privileged || col.PID != "host" {
		t.Errorf("collector: privileged %v, pid %q; want privileged in the host's pid namespace", col.Privileged, col.PID)
	}
	for _, m := range []string{"/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup", "/proc"} {
		found := false
		for _, v := range col.Volumes {
			found = found || strings.HasPrefix(v, m+":")
		}
		if !found {
			t.Errorf("collector does not mount %s: %v", m, col.Volumes)
		}
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
	crumbs := filepath.Join(t.TempDir(), "crumbs")
	if out, err := exec.Command("go", "build", "-o", crumbs, "../cmd/crumbs").CombinedOutput(); err != nil {
		t.Fatalf("build crumbs: %v\n%s", err, out)
	}
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
