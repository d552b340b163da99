package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	crumbscollectors "github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/network"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// runDoctor runs crumbs doctor --json with env and returns its report and exit code.
func runDoctor(t *testing.T, env ...string) (doctorReport, int) {
	t.Helper()
	cmd := exec.Command(crumbsBin, "doctor", "--json")
	cmd.Env = append(append(os.Environ(), "CRUMBS_METRICS_LISTEN=", "CRUMBS_COLLECTORS_SPOOL_DIR="+t.TempDir(),
		"CRUMBS_KAFKA_EMBEDDED_PORT="+fmt.Sprint(freePort(t)), "CRUMBS_KAFKA_EMBEDDED_DATA_DIR="+t.TempDir(),
		"CRUMBS_CLICKHOUSE_ADDR="+testenv.ClickHouseAddr(t)), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("crumbs doctor: %v", err)
	}
	var rep doctorReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("crumbs doctor --json: %v\n%s\n%s", err, out, stderr.String())
	}
	return rep, code
}

// TestDoctor: crumbs doctor reports every capability with the kernel's answer and what each
// collector does here, consistently with each other; it exits 1 when something required
// (here ClickHouse) is missing, and reports a collector that cannot run without failing.
func TestDoctor(t *testing.T) {
	testenv.RequireBPF(t)
	rep, code := runDoctor(t, "CRUMBS_COLLECTORS_PROCESS_REFUSE=ring_buffer")
	if code != 0 || !rep.OK {
		t.Errorf("exit %d, ok %v, missing %q: want 0 on a host that passes the tests' BPF check", code, rep.OK, rep.Missing)
	}
	checks := map[string]crumbscollectors.HostCheck{}
	for _, c := range rep.Host {
		checks[c.Check] = c
	}
	for _, want := range []string{"kernel", "lockdown", "tracefs", "btf", "ring_buffer", "tp_btf", "iter/tcp", "iter/bpf_map_elem", "uprobe", "libpam", "clickhouse", "kafka", "disk: spool", "disk: embedded kafka"} {
		if _, ok := checks[want]; !ok {
			t.Errorf("no check %q in %+v", want, rep.Host)
		}
	}
	byName := map[string]collectorDiagnosis{}
	for _, c := range rep.Collectors {
		byName[c.Collector] = c
	}
	// The process collector cannot run (its ring buffer refused by configuration): reported,
	// and the others run.
	if p := byName["process"]; p.Running || !strings.Contains(p.Error, "ring_buffer") || p.Lost != "every process event" {
		t.Errorf("process: %+v, want not running for ring_buffer, losing every process event", p)
	}
	for _, name := range []string{"network", "file", "identity", "system"} {
		if !byName[name].Running {
			t.Errorf("%s does not run: %+v", name, byName[name])
		}
	}
	// What the network collector does agrees with what the kernel answered doctor's probes.
	ways := map[string]string{}
	for _, f := range byName["network"].Features {
		ways[f.Feature] = f.Way
	}
	// Bytes: the map-element iterator, else the tcp iterator, else the walk; announcing: the
	// map-element iterator, else the walk.
	refresh, announce := network.WayMapElem, network.WayMapElem
	if checks["iter/bpf_map_elem"].Status != crumbscollectors.CheckOK {
		refresh, announce = network.WayWalk, network.WayWalk
		if checks["iter/tcp"].Status == crumbscollectors.CheckOK {
			refresh = network.WayTCPIter
		}
	}
	wantWays := map[string]string{network.FeatureRefresh: refresh, network.FeatureAnnounce: announce}
	gotWays := map[string]string{network.FeatureRefresh: ways[network.FeatureRefresh], network.FeatureAnnounce: ways[network.FeatureAnnounce]}
	if diff := cmp.Diff(wantWays, gotWays); diff != "" {
		t.Errorf("network iterator jobs against the probes %+v %+v (-want +got):\n%s", checks["iter/bpf_map_elem"], checks["iter/tcp"], diff)
	}

	// ClickHouse away: required when this host runs the sink.
	rep, code = runDoctor(t, "CRUMBS_CLICKHOUSE_ADDR=127.0.0.1:"+fmt.Sprint(freePort(t)))
	if code != 1 || rep.OK || len(rep.Missing) != 1 || !strings.HasPrefix(rep.Missing[0], "clickhouse: ") {
		t.Errorf("ClickHouse away: exit %d, ok %v, missing %q: want exit 1 naming clickhouse", code, rep.OK, rep.Missing)
	}
}
