package detectors

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/sigma"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// sigmaCorpus is the shared Sigma corpus, <repo root>/../shared/sigma/rules.
func sigmaCorpus(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "sigma", "rules"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("sigma corpus: %v", err)
	}
	return dir
}

// benchRecords are enriched records as a busy host sends them: execs of common tools with
// ordinary command lines, file writes and outbound connections; few match any rule.
func benchRecords(b *testing.B) []*kgo.Record {
	b.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		b.Fatal(err)
	}
	tools := []string{"/usr/bin/ls", "/usr/bin/grep", "/usr/bin/git", "/usr/local/go/bin/go", "/usr/bin/bash", "/usr/bin/python3", "/usr/bin/curl", "/usr/sbin/sshd"}
	out := make([]*kgo.Record, 1024)
	for i := range out {
		tool := tools[i%len(tools)]
		proc := map[string]any{"file": map[string]any{"path": tool, "name": filepath.Base(tool)}, "pid": int64(1000 + i),
			"cmd_line": fmt.Sprintf("%s --Color=Auto -n %d /home/Dev/Project/src/File%d.go", filepath.Base(tool), i, i),
			"args":     []any{filepath.Base(tool), "--Color=Auto", "-n", fmt.Sprint(i)}, "cwd": "/home/Dev/Project",
			"parent": map[string]any{"file": map[string]any{"path": "/usr/bin/bash"}, "cmd_line": "-bash"}}
		raw := map[string]any{"time": int64(i) * int64(time.Millisecond), "process": proc}
		kind := []string{"process", "process", "file", "network"}[i%4]
		switch kind {
		case "process":
			raw["action"] = "exec"
		case "file":
			raw["action"] = "write"
			raw["file"] = map[string]any{"path": fmt.Sprintf("/home/Dev/Project/build/Out%d.o", i)}
		case "network":
			raw["action"] = "connect"
			raw["network"] = map[string]any{"direction": "outbound", "protocol": "tcp",
				"dst_endpoint": map[string]any{"ip": "192.0.2.10", "port": int64(443), "hostname": "Proxy.Example.org"}}
		}
		ev, err := engine.FixtureEvent(kind, raw, fmt.Sprint("e", i))
		if err != nil {
			b.Fatal(err)
		}
		k, _ := schemas.Kinds.Lookup(kind)
		v, err := serde.Encode(nil, k.Codec.Schema, ev)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = &kgo.Record{Topic: "crumbs.enriched." + kind, Value: v}
	}
	return out
}

// benchDetector is a detector over the given rule loader, never run: the benchmark calls
// its per-record stage function (decode, judge, encode the alerts).
func benchDetector(b *testing.B, cfg Config, load func() ([]*engine.Rule, error)) *Detector {
	b.Helper()
	d, err := New(cfg, kafka.DefaultConfig(), Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), LoadRules: load})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// nativeRules returns n native rules as a detection engineer writes them: most pin the
// executable name (as the built-in living-off-the-land rule does), every tenth is a
// threshold on it.
func nativeRules(b *testing.B, n int) []*engine.Rule {
	b.Helper()
	rules := make([]*engine.Rule, 0, n)
	for i := range n {
		kind := "kind: match"
		if i%10 == 0 {
			kind = "kind: threshold\nwindow: 1m\nthreshold: {value: 100}"
		}
		yml := fmt.Sprintf("id: r%d\ntitle: R%d\nseverity: low\nsource: process\n%s\ngroup_by: [host.name]\n"+
			"condition: action == \"exec\" && process.file.name == \"tool%d\" && process.cmd_line.contains(\"-x\")\n", i, i, kind, i)
		r, ps := engine.ParseRule(fmt.Sprintf("r%d.yaml", i), []byte(yml))
		if len(ps) > 0 {
			b.Fatal(ps)
		}
		rules = append(rules, r)
	}
	return rules
}

// nativeRecords are enriched exec records for n native rules: half name the tool of one
// rule, half no rule's, whatever n.
func nativeRecords(b *testing.B, n int) []*kgo.Record {
	b.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		b.Fatal(err)
	}
	out := make([]*kgo.Record, 1024)
	for i := range out {
		tool := n + i
		if i%2 == 0 {
			tool = (i / 2) % n
		}
		ev, err := engine.FixtureEvent("process", map[string]any{
			"time": int64(i) * int64(time.Millisecond), "action": "exec",
			"process": map[string]any{"file": map[string]any{"name": fmt.Sprint("tool", tool), "path": fmt.Sprint("/usr/bin/tool", tool)},
				"cmd_line": fmt.Sprintf("tool%d -x --Color=Auto /home/Dev/Project/src/File%d.go", tool, i)},
		}, fmt.Sprint("e", i))
		if err != nil {
			b.Fatal(err)
		}
		v, err := serde.Encode(nil, schemas.ProcessSchema, ev)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = &kgo.Record{Topic: "crumbs.enriched.process", Value: v}
	}
	return out
}

// benchStage is one detector configuration measured by BenchmarkDetector.
type benchStage struct {
	name  string
	d     *Detector
	recs  []*kgo.Record
	turns []time.Duration // how long each full turn took
	n     int
}

// rate is the stage's events per second over its median turn: a turn during which the
// shared machine took the core away is left out rather than averaged in.
func (st *benchStage) rate(turn int) float64 {
	ts := slices.Clone(st.turns)
	slices.Sort(ts)
	return float64(turn) / ts[len(ts)/2].Seconds()
}

// BenchmarkDetector measures the detect stage's events per second on one core, per record
// (decode, judge, encode the alerts), with 10 and 1,000 native rules, and with the whole
// Sigma corpus loaded (refused files skipped), alone and beside the built-in pack, and with
// no rules, and reports the ratios 1,000 : 10, corpus : none and pack and corpus : none. The machine is shared and noisy: the
// configurations take turns, 32 records at a time, and each rate is that of its median turn,
// so that each ratio compares runs under the same load.
func BenchmarkDetector(b *testing.B) {
	corpus := DefaultConfig()
	corpus.RulesDir = b.TempDir() // no native rules: the corpus alone
	corpus.SigmaDirs, corpus.SigmaRefused = []string{sigmaCorpus(b)}, "skip"
	// The whole corpus, every level and status (the default filter loads 105 of its rules).
	corpus.SigmaMinLevel, corpus.SigmaStatus = "informational", sigma.Statuses
	packAndCorpus := DefaultConfig()
	packAndCorpus.SigmaDirs, packAndCorpus.SigmaRefused = []string{sigmaCorpus(b)}, "skip"
	packAndCorpus.SigmaMinLevel, packAndCorpus.SigmaStatus = "informational", sigma.Statuses
	none := func() ([]*engine.Rule, error) { return nil, nil }
	native := func(n int) func() ([]*engine.Rule, error) {
		return func() ([]*engine.Rule, error) { return nativeRules(b, n), nil }
	}
	mixed := benchRecords(b)
	stages := []*benchStage{
		{name: "native-10", d: benchDetector(b, DefaultConfig(), native(10)), recs: nativeRecords(b, 10)},
		{name: "native-1000", d: benchDetector(b, DefaultConfig(), native(1000)), recs: nativeRecords(b, 1000)},
		{name: "no-rules", d: benchDetector(b, DefaultConfig(), none), recs: mixed},
		{name: "sigma-corpus", d: benchDetector(b, corpus, nil), recs: mixed},
		{name: "pack-and-corpus", d: benchDetector(b, packAndCorpus, nil), recs: mixed},
	}
	b.Logf("sigma corpus: %d engine rules; %s", stages[3].d.engine.Rules(), stages[3].d.engine.Index())
	b.ResetTimer()
	const turn = 32
	for done := 0; done+turn <= max(b.N, turn); done += turn {
		for _, st := range stages {
			start := time.Now()
			for i := range turn {
				if _, err := st.d.judge(st.recs[(done+i)%len(st.recs)]); err != nil {
					b.Fatal(err)
				}
			}
			st.turns = append(st.turns, time.Since(start))
			st.n += turn
		}
	}
	b.StopTimer()
	rate := map[string]float64{}
	for _, st := range stages {
		rate[st.name] = st.rate(turn)
		b.ReportMetric(rate[st.name], "events/s-"+st.name)
	}
	b.ReportMetric(rate["native-1000"]/rate["native-10"], "ratio-1000:10")
	b.ReportMetric(rate["sigma-corpus"]/rate["no-rules"], "ratio-corpus:none")
	b.ReportMetric(rate["pack-and-corpus"]/rate["no-rules"], "ratio-pack+corpus:none")
}

// judgeMaps is the detect stage's per-record work as it was before the decoded view: the
// record decoded into goavro's native form, turned into activation maps and judged on them.
// The baseline of BenchmarkDetectorView.
func (d *Detector) judgeMaps(r *kgo.Record) ([]*kgo.Record, error) {
	_, native, err := d.deps.Serde.Decode(r.Value)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	alerts, err := d.engine.Process(r.Partition, native.(map[string]any))
	incidents := d.engine.Incidents()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return d.alertRecords(alerts, incidents)
}

// BenchmarkDetectorView measures the detect stage per record judged on the record its
// generated codec decoded (judge) against the same detector judging activation maps built
// from goavro's native form (judgeMaps, the path before), over a busy host's records, with
// no rules, the built-in pack, the pack and the Sigma corpus, and 1,000 native rules over
// exec records. The two paths of each configuration take turns, 32 records at a time; each
// rate is that of its median turn; ratio-<config> is view : maps.
func BenchmarkDetectorView(b *testing.B) {
	packAndCorpus := DefaultConfig()
	packAndCorpus.SigmaDirs, packAndCorpus.SigmaRefused = []string{sigmaCorpus(b)}, "skip"
	packAndCorpus.SigmaMinLevel, packAndCorpus.SigmaStatus = "informational", sigma.Statuses
	none := func() ([]*engine.Rule, error) { return nil, nil }
	mixed := benchRecords(b)
	configs := []struct {
		name string
		d    *Detector
		recs []*kgo.Record
	}{
		{"no-rules", benchDetector(b, DefaultConfig(), none), mixed},
		{"pack", benchDetector(b, DefaultConfig(), nil), mixed},
		{"pack-and-corpus", benchDetector(b, packAndCorpus, nil), mixed},
		{"native-1000", benchDetector(b, DefaultConfig(), func() ([]*engine.Rule, error) { return nativeRules(b, 1000), nil }), nativeRecords(b, 1000)},
	}
	type path struct {
		*benchStage
		judge func(*kgo.Record) ([]*kgo.Record, error)
	}
	var paths []path
	for _, c := range configs {
		paths = append(paths,
			path{&benchStage{name: c.name + "-view", d: c.d, recs: c.recs}, c.d.judge},
			path{&benchStage{name: c.name + "-maps", d: c.d, recs: c.recs}, c.d.judgeMaps})
	}
	b.ResetTimer()
	const turn = 32
	for done := 0; done+turn <= max(b.N, turn); done += turn {
		for _, p := range paths {
			start := time.Now()
			for i := range turn {
				if _, err := p.judge(p.recs[(done+i)%len(p.recs)]); err != nil {
					b.Fatal(err)
				}
			}
			p.turns = append(p.turns, time.Since(start))
			p.n += turn
		}
	}
	b.StopTimer()
	for i, c := range configs {
		view, maps := paths[2*i].rate(turn), paths[2*i+1].rate(turn)
		b.ReportMetric(view, "events/s-"+c.name+"-view")
		b.ReportMetric(maps, "events/s-"+c.name+"-maps")
		b.ReportMetric(view/maps, "ratio-"+c.name)
	}
}
