package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/detectors/sigma"
)

var update = flag.Bool("update", false, "rewrite docs/atomics-report.md from this run")

// atomic is one attack simulation of ../shared/atomics/linux-safe.yaml.
type atomic struct {
	Technique     string   `yaml:"technique"`
	TestNumber    int      `yaml:"test_number"`
	TestName      string   `yaml:"test_name"`
	GUID          string   `yaml:"guid"`
	Executor      string   `yaml:"executor"`
	Command       string   `yaml:"command"`
	Cleanup       string   `yaml:"cleanup_command"`
	Setup         []string `yaml:"setup"`
	PrereqChecks  []string `yaml:"prereq_checks"`
	Requires      []string `yaml:"requires"`
	TelemetryKind []string `yaml:"telemetry"`
}

// simOutcome is what one simulation did on this machine.
type simOutcome struct {
	sim     atomic
	dir     string // the working directory of the command: its exec events carry it
	skipped string // why the command was not run
	exit    string
	fired   []string // Sigma rule ids raised by the simulation's events
}

func readAtomics(t *testing.T, path string) []atomic {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read attack simulations: %v", err)
	}
	var doc struct {
		Tests []atomic `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return doc.Tests
}

// shell runs script with the simulation's executor in dir, bounded by timeout.
func shell(executor, script, dir string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if executor != "bash" {
		executor = "sh"
	}
	cmd := exec.CommandContext(ctx, executor, "-c", script)
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runAtomic runs setup (elsewhere, so that its events are not the simulation's), the
// prerequisite checks, the command in its own directory, then the cleanup.
func runAtomic(t *testing.T, a atomic) simOutcome {
	t.Helper()
	o := simOutcome{sim: a, dir: filepath.Join(tempDir(t), "sim")}
	if err := os.Mkdir(o.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	setupDir := tempDir(t)
	for _, s := range a.Setup {
		if out, err := shell("sh", s, setupDir, 30*time.Second); err != nil {
			t.Logf("%s setup: %v: %s", a.GUID, err, out)
		}
	}
	for _, c := range a.PrereqChecks {
		if _, err := shell("sh", c, setupDir, 30*time.Second); err != nil {
			o.skipped = "prerequisite not met on this machine: " + strings.TrimSpace(c)
			return o
		}
	}
	out, err := shell(a.Executor, a.Command, o.dir, 30*time.Second)
	o.exit = "exit 0"
	if err != nil {
		o.exit = err.Error()
		t.Logf("%s: %v: %s", a.GUID, err, out)
	}
	if strings.TrimSpace(a.Cleanup) != "" {
		_, _ = shell(a.Executor, a.Cleanup, setupDir, 30*time.Second)
	}
	return o
}

// corpusIndex maps ATT&CK technique ids (t1003.008) to the corpus rules tagged with them.
type corpusIndex struct {
	loaded  map[string][]string // technique -> rule ids
	refused map[string][]string // technique -> file: reason
	ids     map[string]bool     // every loaded rule id
}

func indexCorpus(t *testing.T, dir string) corpusIndex {
	t.Helper()
	res, err := sigma.LintDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix := corpusIndex{loaded: map[string][]string{}, refused: map[string][]string{}, ids: map[string]bool{}}
	for _, r := range res {
		rules, err := sigma.ParseFile(r.File, mustRead(t, r.File))
		if err != nil {
			continue
		}
		rel, _ := filepath.Rel(dir, r.File)
		for _, rule := range rules {
			for _, tag := range rule.Tags {
				tech := strings.TrimPrefix(strings.ToLower(tag), "attack.")
				if !strings.HasPrefix(tech, "t1") {
					continue
				}
				if r.Loaded() {
					ix.loaded[tech] = append(ix.loaded[tech], rule.ID)
				} else {
					ix.refused[tech] = append(ix.refused[tech], rel+": "+r.Reason())
				}
			}
			if r.Loaded() {
				ix.ids[rule.ID] = true
			}
		}
	}
	return ix
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firedBy returns the Sigma rule ids of the alerts whose evidence includes an exec event run
// in dir (the simulation's commands and their children inherit its working directory).
func (p *pipeline) firedBy(dir string, sigmaIDs map[string]bool) []string {
	q := fmt.Sprintf(`SELECT DISTINCT rule_id FROM %[1]s.alerts ARRAY JOIN evidence AS ev
		WHERE ev IN (SELECT event_id FROM %[1]s.process_events WHERE startsWith(cwd, ?))`, p.database)
	rows, err := p.conn.Query(context.Background(), q, dir)
	if err != nil {
		p.t.Fatalf("query alerts: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			p.t.Fatal(err)
		}
		if sigmaIDs[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// TestSigmaCorpusOnAttackSimulations runs crumbs up with the shared Sigma corpus, runs the
// attack simulations of ../shared/atomics/linux-safe.yaml, and reports which raised which
// Sigma rules in ClickHouse and, for the others, why not. The report is
// docs/atomics-report.md: written with -update; otherwise logged, and the rules it records
// must fire again.
func TestSigmaCorpusOnAttackSimulations(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(root, "..", "shared", "sigma", "rules")
	sims := readAtomics(t, filepath.Join(root, "..", "shared", "atomics", "linux-safe.yaml"))
	ix := indexCorpus(t, corpus)
	// The report says which rules each simulation raises: every level and status, and no
	// throttle folding one simulation's alert into an earlier one's of the same rule.
	p := newPipeline(t, "CRUMBS_DETECTOR_SIGMA_DIRS="+readableByCrumbs(t, corpus), "CRUMBS_DETECTOR_SIGMA_REFUSED=skip",
		"CRUMBS_DETECTOR_SIGMA_MIN_LEVEL=informational", "CRUMBS_DETECTOR_SIGMA_STATUS=stable,test,experimental,deprecated,unsupported",
		"CRUMBS_DETECTOR_THROTTLE=0s")
	p.start()

	outcomes := make([]simOutcome, len(sims))
	for i, a := range sims {
		outcomes[i] = runAtomic(t, a)
	}
	// Wait until the last simulation's events have landed, then for the alerts to settle.
	var last string
	for _, o := range outcomes {
		if o.skipped == "" {
			last = o.dir
		}
	}
	p.eventually(60*time.Second, "the last simulation's exec events in ClickHouse", func() (bool, string) {
		n := p.count(fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(cwd, ?)", p.database), last)
		return n > 0, fmt.Sprint(n)
	})
	time.Sleep(3 * time.Second)
	for i := range outcomes {
		if outcomes[i].skipped == "" {
			outcomes[i].fired = p.firedBy(outcomes[i].dir, ix.ids)
			outcomes[i].exit += fmt.Sprintf("; %d exec events", p.count(fmt.Sprintf("SELECT count() FROM %s.process_events WHERE startsWith(cwd, ?)", p.database), outcomes[i].dir))
		}
	}
	got := atomicsReport(outcomes, ix)
	t.Log("\n" + got)
	path := filepath.Join(root, "docs", "atomics-report.md")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	// Which short-lived processes carry their working directory varies from run to run, so
	// the report is not compared line for line: every simulation the recorded report credits
	// with rules must raise at least one of them again, unless none of its exec events was
	// credited this time (said in the log).
	recorded := recordedFirings(string(want))
	for _, o := range outcomes {
		key := fmt.Sprintf("%s %d", o.sim.Technique, o.sim.TestNumber)
		rec := recorded[key]
		switch {
		case len(rec) == 0:
		case len(o.fired) == 0 && strings.HasSuffix(o.exit, "; 0 exec events"):
			t.Logf("%s (%s): no exec event credited this run; recorded rules %v not checked", key, o.sim.TestName, rec)
		case len(missing(rec, o.fired)) == len(uniq(rec)):
			t.Errorf("%s (%s): raised %v, want at least one of the recorded %v", key, o.sim.TestName, o.fired, rec)
		}
	}
}

// recordedFirings reads the rules column of a report: "technique number" → rule ids.
func recordedFirings(report string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(report, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) < 5 || !strings.HasPrefix(line, "| T") {
			continue
		}
		num, _, _ := strings.Cut(cells[1], ".")
		if cells[3] != "" {
			out[strings.TrimPrefix(cells[0], "| ")+" "+num] = strings.Split(cells[3], ", ")
		}
	}
	return out
}

// atomicsReport writes the Markdown report: one row per simulation.
func atomicsReport(outcomes []simOutcome, ix corpusIndex) string {
	var b strings.Builder
	b.WriteString("# Attack simulations against the Sigma corpus\n\n")
	b.WriteString("<!-- Generated by CRUMBS_STRICT=1 go test ./cmd/crumbs -run Sigma -update; do not edit by hand. -->\n\n")
	b.WriteString("`crumbs up` with `../shared/sigma/rules` loaded (`detector.sigma_refused: skip`) on this machine; each simulation of\n")
	b.WriteString("`../shared/atomics/linux-safe.yaml` runs in its own working directory (setup elsewhere, 30 s bound), and an alert is\n")
	b.WriteString("credited to it when one of its evidence events is an exec in that directory (commands that change directory first\n")
	b.WriteString("are credited only for what ran before). Alerts of file and network rules are not credited this way. The test binary\n")
	b.WriteString("that starts each simulation lives under /tmp (go test builds it there), so rules on a parent image in /tmp fire\n")
	b.WriteString("for every simulation that starts a shell: an artefact of the harness, not of the simulation.\n\n")
	fired := 0
	b.WriteString("| technique | test | result | Sigma rules raised | why not |\n|---|---|---|---|---|\n")
	for _, o := range outcomes {
		a := o.sim
		tech := strings.ToLower(a.Technique)
		res := o.exit
		if o.skipped != "" {
			res = "not run"
		}
		why := ""
		switch {
		case o.skipped != "":
			why = o.skipped
		case len(o.fired) > 0:
			fired++
			if miss := missing(ix.loaded[tech], o.fired); len(miss) > 0 {
				why = "also tagged " + a.Technique + ", not raised: " + strings.Join(miss, ", ")
			}
		case strings.HasSuffix(o.exit, "; 0 exec events"):
			why = "event not collected: no exec event carrying the simulation's working directory reached ClickHouse (a process that exits before the collector reads its directory has none)"
		case len(ix.loaded[tech]) > 0:
			why = "rules tagged " + a.Technique + " loaded but did not match its events: " + strings.Join(uniq(ix.loaded[tech]), ", ")
		case len(ix.refused[tech]) > 0:
			why = "rule refused: " + strings.Join(uniq(ix.refused[tech]), "; ")
		default:
			why = "no loaded rule matches its events (none is tagged " + a.Technique + ")"
		}
		fmt.Fprintf(&b, "| %s | %d. %s | %s | %s | %s |\n", a.Technique, a.TestNumber, cell(a.TestName), cell(res), strings.Join(o.fired, ", "), cell(why))
	}
	fmt.Fprintf(&b, "\n%d of %d simulations raised at least one Sigma rule.\n", fired, len(outcomes))
	return b.String()
}

func missing(want, got []string) []string {
	var out []string
	for _, w := range uniq(want) {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}

func uniq(ss []string) []string {
	out := slices.Clone(ss)
	sort.Strings(out)
	return slices.Compact(out)
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}
