package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/registry"
	"github.com/threatcrumbs/crumbs/pkg/privilege"
)

// dropCapabilities are what a collector started as root needs besides its programs' load and
// run sets to become the crumbs user (pkg/privilege.Drop): setuid, setgid, emptying its
// bounding set; and to give the spool and scan directories to crumbs and open their locks at
// the next start (pkg/privilege.OwnDir). Measured by starting crumbs up and crumbs collect
// under this bounding set (setpriv) on a fresh state directory and on the one left behind:
// without CAP_DAC_OVERRIDE the second start cannot open the spool's lock.
var dropCapabilities = []privilege.Capability{cap.SETUID, cap.SETGID, cap.SETPCAP, cap.CHOWN, cap.FOWNER, cap.DAC_OVERRIDE}

// collectorCapabilities is the bounding set of a collector started as root, wherever it is
// deployed (systemd units, docker-compose.yml, the Kubernetes DaemonSet): the collectors'
// load and run sets (collectors/privileges.go) without CAP_SYS_RESOURCE, which only kernels
// before 5.11 ask for and which the deployments replace with an unlimited locked-memory
// limit, and dropCapabilities.
func collectorCapabilities() []string {
	var names []string
	for _, f := range registry.Factories() {
		names = append(names, f.Name)
	}
	var all []privilege.Capability
	for _, c := range append(append(crumbscollectors.LoadCapabilities(), crumbscollectors.RunCapabilities(names...)...), dropCapabilities...) {
		if c != cap.SYS_RESOURCE {
			all = append(all, c)
		}
	}
	return privilege.Names(all)
}

// unit is a systemd unit file: each key with its values in order, across sections.
type unit map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		u[k] = append(u[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is a key's effective value when a later assignment replaces an earlier one.
func (u unit) last(k string) string {
	if v := u[k]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// capabilities is the unit's bounding set (assignments add up; an empty one resets).
func (u unit) capabilities() []string {
	var out []string
	for _, v := range u["CapabilityBoundingSet"] {
		if v == "" {
			out = nil
		}
		out = append(out, strings.Fields(v)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestUnitsHardened reads every systemd unit the packages install: each runs one crumbs
// command with the shared configuration and its own environment file (which the packages
// ship), under the same sandbox; crumbs-collect and crumbs-up start as root with exactly the
// collectors' bounding set and nothing ambient; the central stages run as crumbs with no
// capability at all and nothing writable.
func TestUnitsHardened(t *testing.T) {
	units, err := filepath.Glob("systemd/*.service")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range units {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".service"))
	}
	want := []string{"crumbs-collect", "crumbs-deliver", "crumbs-detect", "crumbs-enrich", "crumbs-sink", "crumbs-up"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("units (-want +got):\n%s", diff)
	}
	collector := collectorCapabilities()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			u := readUnit(t, filepath.Join("systemd", name+".service"))
			cmd := strings.TrimPrefix(name, "crumbs-")
			if got, want := u.last("ExecStart"), "/usr/bin/crumbs "+cmd+" --config /etc/crumbs/crumbs.yaml"; got != want {
				t.Errorf("ExecStart=%s, want %s", got, want)
			}
			env := "/etc/crumbs/" + name + ".env"
			if got := u.last("EnvironmentFile"); got != "-"+env {
				t.Errorf("EnvironmentFile=%s, want -%s", got, env)
			}
			if _, err := os.Stat(filepath.Join("packaging/env", name+".env")); err != nil {
				t.Errorf("the packages ship no %s: %v", env, err)
			}
			for k, v := range map[string]string{
				"NoNewPrivileges": "yes", "ProtectSystem": "strict", "UMask": "0077", "PrivateDevices": "yes",
				"ProtectKernelModules": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
				"RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
				"MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native", "AmbientCapabilities": "",
			} {
				if _, ok := u[k]; !ok || u.last(k) != v {
					t.Errorf("%s=%q (set: %v), want %q", k, u.last(k), ok, v)
				}
			}
			if len(u["SystemCallFilter"]) == 0 || !strings.HasPrefix(u["SystemCallFilter"][0], "@system-service") {
				t.Errorf("SystemCallFilter=%v: want an allow list starting at @system-service", u["SystemCallFilter"])
			}
			switch name {
			case "crumbs-collect", "crumbs-up":
				// Root until the programs are attached: crumbs drops to crumbs itself.
				if u.last("User") != "" {
					t.Errorf("User=%s: crumbs %s starts as root and drops to crumbs once its programs are loaded", u.last("User"), cmd)
				}
				if diff := cmp.Diff(collector, u.capabilities()); diff != "" {
					t.Errorf("CapabilityBoundingSet (-want +got):\n%s", diff)
				}
				if u.last("LimitMEMLOCK") != "infinity" || u.last("StateDirectory") != "crumbs" {
					t.Errorf("LimitMEMLOCK=%s StateDirectory=%s, want infinity and crumbs", u.last("LimitMEMLOCK"), u.last("StateDirectory"))
				}
			default:
				if u.last("User") != "crumbs" || u.last("Group") != "crumbs" {
					t.Errorf("User=%s Group=%s, want crumbs", u.last("User"), u.last("Group"))
				}
				if got := u.capabilities(); len(got) > 0 {
					t.Errorf("CapabilityBoundingSet holds %v, want none", got)
				}
				if u.last("ProtectHome") != "yes" || u.last("PrivateTmp") != "yes" || len(u["ReadWritePaths"]) > 0 || len(u["StateDirectory"]) > 0 {
					t.Errorf("ProtectHome=%s PrivateTmp=%s ReadWritePaths=%v StateDirectory=%v: a central stage writes nothing",
						u.last("ProtectHome"), u.last("PrivateTmp"), u["ReadWritePaths"], u["StateDirectory"])
				}
				if !slices.Contains(strings.Fields(u.last("Conflicts")), "crumbs-up.service") {
					t.Errorf("Conflicts=%s: a stage must not run beside crumbs-up, which runs it too", u.last("Conflicts"))
				}
			}
		})
	}
}
