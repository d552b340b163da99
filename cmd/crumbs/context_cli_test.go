package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// TestContextPublishCLI runs `crumbs context publish|delete` against an embedded broker: valid
// input is published (exit 0), each kind of invalid input is refused with exit code 2 and a
// message naming the record, the field and the problem.
func TestContextPublishCLI(t *testing.T) {
	k, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	dir := t.TempDir()
	env := append(os.Environ(), "CRUMBS_KAFKA_BROKERS="+k.Addrs()[0], "CRUMBS_METRICS_LISTEN=")
	run := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(crumbsBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	file := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const window = `"starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"`
	steps := []struct {
		name string
		args []string
		code int
		says string // a line the output must contain
	}{
		{"unknown service before inventory", []string{"context", "publish", "--kind", "change", "-f",
			file("c1.json", `{"id": "CHG-1", "type": "launch", "services": ["shop"], `+window+`}`)},
			2, `c1.json: record 1 (line 1) change "CHG-1": field services[0]: unknown service "shop": no inventory record lists it (publish the inventory first)`},
		{"inventory", []string{"context", "publish", "--kind", "inventory", "-f", file("inv.yaml", "- {id: web-1, host: web-1, service: shop}\n")},
			0, "published 1 inventory record(s) to crumbs.context.inventory"},
		{"change", []string{"context", "publish", "--kind", "change", "-f", filepath.Join(dir, "c1.json")},
			0, "published 1 change record(s) to crumbs.context.change"},
		{"unknown kind", []string{"context", "publish", "--kind", "incident", "-f", filepath.Join(dir, "c1.json")},
			2, `field kind: unknown kind "incident" (have: change, deploy, inventory, account)`},
		{"missing field", []string{"context", "publish", "--kind", "deploy", "-f",
			file("d.json", `{"id": "DEP-1", "service": "shop", "deployed_at": "2026-11-26T10:00:00Z"}`)},
			2, `d.json: record 1 (line 1) deploy "DEP-1": field version: is required`},
		{"end before start", []string{"context", "publish", "--kind", "change", "-f",
			file("c2.yaml", "id: CHG-2\ntype: launch\nservices: [shop]\nstarts_at: 2026-11-28T06:00:00Z\nends_at: 2026-11-27T06:00:00Z\n")},
			2, `c2.yaml: record 1 (line 1) change "CHG-2": field ends_at: 2026-11-27T06:00:00Z is not after starts_at 2026-11-28T06:00:00Z`},
		{"bad CIDR", []string{"context", "publish", "--kind", "account", "-f",
			file("a.json", `{"id": "oracle", "name": "oracle", "type": "service", "allowed_sources": ["10.20.0.0/16", "10.20.0.0/40"]}`)},
			2, `a.json: record 1 (line 1) account "oracle": field allowed_sources[1]: "10.20.0.0/40": not a CIDR (e.g. 10.20.0.0/16)`},
		{"malformed sha256", []string{"context", "publish", "--kind", "deploy", "-f",
			file("d2.json", `{"id": "DEP-2", "service": "shop", "version": "1", "deployed_at": "2026-11-26T10:00:00Z", "artifacts": [{"path": "/opt/shop", "sha256": "xyz"}]}`)},
			2, `d2.json: record 1 (line 1) deploy "DEP-2": field artifacts[0].sha256: "xyz": not a sha256 (64 hex digits)`},
		{"delete", []string{"context", "delete", "--kind", "change", "CHG-1"}, 0, "deleted 1 change record(s) from crumbs.context.change"},
	}
	for _, s := range steps {
		code, out := run(s.args...)
		if diff := cmp.Diff(s.code, code); diff != "" || !strings.Contains(out, s.says) {
			t.Errorf("%s: exit code (-want +got):\n%s\noutput:\n%s\nwant a line with:\n%s", s.name, diff, out, s.says)
		}
	}
}
