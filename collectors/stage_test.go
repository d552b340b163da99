package collectors_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/collectors"
	"github.com/threatcrumbs/crumbs/collectors/file"
	"github.com/threatcrumbs/crumbs/collectors/identity"
	"github.com/threatcrumbs/crumbs/collectors/network"
	"github.com/threatcrumbs/crumbs/collectors/process"
	"github.com/threatcrumbs/crumbs/collectors/registry"
	"github.com/threatcrumbs/crumbs/collectors/system"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/schemas"
)

// stageConfig returns a stage configuration: process and network as given, system with a
// 1s interval, file and identity off (they are not what these tests look at).
func stageConfig(pcfg process.Config, ncfg network.Config) collectors.StageConfig {
	fcfg, icfg, scfg := file.DefaultConfig(), identity.DefaultConfig(), system.DefaultConfig()
	fcfg.Enabled, icfg.Enabled = false, false
	scfg.Interval = time.Second
	return collectors.StageConfig{
		Collectors: map[string]any{"process": pcfg, "network": ncfg, "file": fcfg, "identity": icfg, "system": scfg},
		Redact:     collectors.DefaultRedactConfig(), Health: collectors.DefaultHealthConfig(),
	}
}

// TestStageRunsWhatCanRun: a collector that cannot run here (the process collector, its
// ring buffer refused) is reported and its siblings run; what runs degraded (the network
// collector with its iterators off) is reported too: a health event each on crumbs.health,
// and the metrics.
func TestStageRunsWhatCanRun(t *testing.T) {
	testenv.RequireBPF(t)
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kcfg.EnsureTopics(t.Context(), admin, kcfg.AllTopics("test")); err != nil {
		t.Fatal(err)
	}

	pcfg, ncfg := process.DefaultConfig(), network.DefaultConfig()
	pcfg.Refuse = []string{"ring_buffer"}
	ncfg.Iterators = network.IteratorsOff
	reg := prometheus.NewRegistry()
	host := schemas.Host{ID: "stage-test", Name: "stage-test"}
	st, err := collectors.NewStage(stageConfig(pcfg, ncfg), kcfg, registry.Factories(),
		collectors.StageDeps{Host: host, Metrics: reg, Serde: serde})
	if err != nil {
		t.Fatalf("NewStage: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- st.Run(ctx) }()

	// The stage's events: its health events, and the system collector's (it runs).
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...), kgo.ConsumeTopics(kcfg.Topics().Health(), kcfg.Topics().Raw("system")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var health []collectors.Health
	systemEvents := 0
	deadline := time.Now().Add(30 * time.Second)
	for (len(health) < 3 || systemEvents == 0) && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != kcfg.Topics().Health() {
				systemEvents++
				return
			}
			_, native, err := serde.Decode(r.Value)
			if err != nil {
				t.Fatalf("decode health event: %v", err)
			}
			var ev collectors.HealthEvent
			if err := schemas.FromNative(native, &ev); err != nil {
				t.Fatal(err)
			}
			health = append(health, ev.Health)
		})
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	if systemEvents == 0 {
		t.Error("no system event: the siblings of the collector that cannot run do not run")
	}
	slices.SortFunc(health, func(a, b collectors.Health) int { return strings.Compare(a.Collector+a.Feature, b.Collector+b.Feature) })
	const off = "refused by configuration (collectors.network.iterators: off)"
	want := []collectors.Health{
		{Collector: "network", Reason: collectors.ReasonCapabilityRefused, Feature: network.FeatureRefresh,
			Capability: "iter/bpf_map_elem, iter/tcp", Answer: off, Way: network.WayWalk,
			Lost: "byte counts of open connections until they close: update events carry 0 bytes, and per-service network bytes grow only when connections close"},
		{Collector: "network", Reason: collectors.ReasonCapabilityRefused, Feature: network.FeatureAnnounce,
			Capability: "iter/bpf_map_elem", Answer: off, Way: network.WayWalk},
		{Collector: "process", Reason: collectors.ReasonCollectorOff, Capability: "ring_buffer",
			Answer: "refused by configuration (collectors.process.refuse)", Way: "off", Lost: "every process event"},
	}
	if diff := cmp.Diff(want, health); diff != "" {
		t.Errorf("health events (-want +got):\n%s", diff)
	}
	up := func(name string) float64 {
		return gaugeValue(t, reg, "crumbs_collector_up", map[string]string{"collector": name})
	}
	if got := []float64{up("process"), up("network"), up("system")}; !slices.Equal(got, []float64{0, 1, 1}) {
		t.Errorf("crumbs_collector_up process, network, system = %v, want [0 1 1]", got)
	}
	if v := gaugeValue(t, reg, "crumbs_collector_feature", map[string]string{"collector": "network", "feature": network.FeatureRefresh, "state": "fallback", "way": network.WayWalk}); v != 1 {
		t.Errorf("crumbs_collector_feature of the network's byte refresh by the walk = %v, want 1", v)
	}
	if v := gaugeValue(t, reg, "crumbs_collector_capability", map[string]string{"collector": "network", "capability": "iter/tcp", "state": "disabled"}); v != 1 {
		t.Errorf("crumbs_collector_capability of the network's iter/tcp, disabled = %v, want 1", v)
	}
}

// gaugeValue returns the value of the gauge name with labels, failing the test when reg has
// none.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if cmp.Equal(labels, got) {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestStageWithNothingToRun: NewStage fails when every enabled collector cannot run here,
// saying why for each, and when none is enabled.
func TestStageWithNothingToRun(t *testing.T) {
	testenv.RequireBPF(t)
	pcfg, ncfg := process.DefaultConfig(), network.DefaultConfig()
	pcfg.Refuse, ncfg.Refuse = []string{"ring_buffer"}, []string{"ring_buffer"}
	cfg := stageConfig(pcfg, ncfg)
	scfg := system.DefaultConfig()
	scfg.Enabled = false
	cfg.Collectors["system"] = scfg
	_, err := collectors.NewStage(cfg, kafka.DefaultConfig(), registry.Factories(), collectors.StageDeps{})
	var nothing *collectors.NothingRuns
	if !errors.As(err, &nothing) || len(nothing.Reports) != 2 || !strings.Contains(err.Error(), "process: ring_buffer: refused by configuration") {
		t.Errorf("every enabled collector refused its ring buffer: %v, want NothingRuns naming process and network", err)
	}
	pcfg.Enabled, ncfg.Enabled = false, false
	cfg.Collectors["process"], cfg.Collectors["network"] = pcfg, ncfg
	if _, err := collectors.NewStage(cfg, kafka.DefaultConfig(), registry.Factories(), collectors.StageDeps{}); !errors.Is(err, collectors.ErrNoneEnabled) {
		t.Errorf("every collector disabled: %v, want ErrNoneEnabled", err)
	}
}
