package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// testObjects stands in for a collector's bpf2go objects.
type testObjects struct {
	Events  *ebpf.Map     `ebpf:"events"`
	Drops   *ebpf.Map     `ebpf:"drops"`
	Exec    *ebpf.Program `ebpf:"exec"`
	Fork    *ebpf.Program `ebpf:"fork"`
	ForkRaw *ebpf.Program `ebpf:"fork_raw"`
	Iter    *ebpf.Program `ebpf:"iter"`
	closed  int
}

func (o *testObjects) Close() error {
	for _, c := range []interface{ Close() error }{o.Events, o.Drops, o.Exec, o.Fork, o.ForkRaw, o.Iter} {
		c.Close()
	}
	o.closed++
	return nil
}

// testSpec is a collection of the smallest programs of the kinds the collectors use: a
// tracepoint, a tp_btf program and its raw tracepoint fallback, a map-element iterator.
func testSpec() (*ebpf.CollectionSpec, error) {
	ret0 := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	prog := func(typ ebpf.ProgramType, attach ebpf.AttachType, to, section string) *ebpf.ProgramSpec {
		return &ebpf.ProgramSpec{Type: typ, AttachType: attach, AttachTo: to, SectionName: section, Instructions: ret0, License: "GPL"}
	}
	return &ebpf.CollectionSpec{
		ByteOrder: binary.NativeEndian,
		Maps: map[string]*ebpf.MapSpec{
			"events": {Name: "events", Type: ebpf.RingBuf, MaxEntries: 1 << 20},
			"drops":  {Name: "drops", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"exec":     prog(ebpf.TracePoint, ebpf.AttachNone, "sched/sched_process_exec", "tracepoint/sched/sched_process_exec"),
			"fork":     prog(ebpf.Tracing, ebpf.AttachTraceRawTp, "sched_process_fork", "tp_btf/sched_process_fork"),
			"fork_raw": prog(ebpf.RawTracepoint, ebpf.AttachNone, "sched_process_fork", "raw_tracepoint/sched_process_fork"),
			"iter":     prog(ebpf.Tracing, ebpf.AttachTraceIter, "bpf_map_elem", "iter/bpf_map_elem"),
		},
	}, nil
}

// testFeatures: exec is required; fork prefers tp_btf; the iterator job falls back to user
// space; one optional hook names a tracepoint no kernel has.
func testFeatures(objs *testObjects) []Feature {
	return []Feature{
		{Name: "exec", Required: true, Lost: "exec events", Ways: []Way{{Name: "tracepoint", Hooks: []Hook{
			TracepointHook("sched", "sched_process_exec", "exec"),
			OptionalTracepointHook("sched", "sched_process_nonexistent", "exec"),
		}}}},
		{Name: "fork", Lost: "fork events", Ways: []Way{
			{Name: "tp_btf", Hooks: []Hook{TPBTFHook("fork")}},
			{Name: "raw tracepoint", Hooks: []Hook{RawTracepointHook("sched_process_fork", "fork_raw")}},
		}},
		{Name: "walk", Lost: "walked things", Ways: []Way{
			{Name: "iterator", Hooks: []Hook{IterHook("iter", func() *ebpf.Map { return objs.Drops })}},
			{Name: "user space", Lost: "what only the kernel sees"},
		}},
	}
}

// openTest opens the test collection with refuse and features (testFeatures when nil).
func openTest(t *testing.T, refuse map[Capability]string, features func(*testObjects) []Feature, log *slog.Logger) (*Ring, *testObjects, error) {
	t.Helper()
	objs := &testObjects{}
	if features == nil {
		features = testFeatures
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := Open(Spec{
		Collector: "test", Load: testSpec, Objects: objs, Events: "events", Drops: "drops",
		Features: features(objs), Refuse: refuse,
		Ring: RingConfig{Name: "test", Log: log},
	})
	if err == nil {
		t.Cleanup(r.Close)
	}
	return r, objs, err
}

// TestOpenTakesTheFirstWayAllowed: the way each feature takes, and why it did not take the
// ones before, as the configuration refuses capabilities. The map-element iterator is the
// kernel's to refuse (this one does, under lockdown): its feature is checked apart.
func TestOpenTakesTheFirstWayAllowed(t *testing.T) {
	testenv.RequireBPF(t)
	byConfig := func(c Capability, prog, key string) Refusal {
		return Refusal{Capability: c, Program: prog, Answer: "refused by configuration (" + key + ")", ByConfig: true}
	}
	absent := []string{"sched/sched_process_nonexistent"}
	tests := []struct {
		name   string
		refuse map[Capability]string
		want   []FeatureReport // exec and fork
	}{
		{name: "all allowed", want: []FeatureReport{
			{Feature: "exec", State: Full, Way: "tracepoint", Absent: absent},
			{Feature: "fork", State: Full, Way: "tp_btf"},
		}},
		{name: "tp_btf refused", refuse: map[Capability]string{TPBTF: "test.refuse"}, want: []FeatureReport{
			{Feature: "exec", State: Full, Way: "tracepoint", Absent: absent},
			{Feature: "fork", State: Fallback, Way: "raw tracepoint", Refused: []Refusal{byConfig(TPBTF, "fork", "test.refuse")}},
		}},
		{name: "tp_btf and raw tracepoints refused", refuse: map[Capability]string{TPBTF: "k", RawTracepoint: "k"}, want: []FeatureReport{
			{Feature: "exec", State: Full, Way: "tracepoint", Absent: absent},
			{Feature: "fork", State: Off, Lost: "fork events", Refused: []Refusal{byConfig(TPBTF, "fork", "k"), byConfig(RawTracepoint, "fork_raw", "k")}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, objs, err := openTest(t, tt.refuse, nil, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			rep := r.Report()
			if diff := cmp.Diff(tt.want, rep.Features[:2]); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
			// The objects hold the programs of the ways taken, and no other.
			loaded := map[string]bool{"exec": objs.Exec != nil, "fork": objs.Fork != nil, "fork_raw": objs.ForkRaw != nil}
			wantLoaded := map[string]bool{"exec": true, "fork": rep.Features[1].Way == "tp_btf", "fork_raw": rep.Features[1].Way == "raw tracepoint"}
			if diff := cmp.Diff(wantLoaded, loaded); diff != "" {
				t.Errorf("programs in the objects (-want +got):\n%s", diff)
			}
			// The iterator: taken where the kernel allows it, else the walk, with the kernel's answer.
			walk := rep.Features[2]
			switch {
			case walk.State == Full && walk.Way == "iterator" && r.Iter("iter") != nil:
			case walk.State == Fallback && walk.Way == "user space" && walk.Lost == "what only the kernel sees" &&
				len(walk.Refused) == 1 && walk.Refused[0].Capability == IterMapElem && !walk.Refused[0].ByConfig && walk.Refused[0].Answer != "":
				t.Logf("this kernel refuses iter/bpf_map_elem: %s", walk.Refused[0].Answer)
			default:
				t.Errorf("iterator feature: %+v", walk)
			}
		})
	}
}

// TestOpenUnavailable: without its required feature, or without a ring buffer, the
// collector cannot run: Open releases what it opened and says why.
func TestOpenUnavailable(t *testing.T) {
	testenv.RequireBPF(t)
	tests := []struct {
		name   string
		refuse map[Capability]string
		want   Refusal
	}{
		{name: "ring buffer refused", refuse: map[Capability]string{RingBuffer: "k"},
			want: Refusal{Capability: RingBuffer, Answer: "refused by configuration (k)", ByConfig: true}},
		{name: "required feature refused", refuse: map[Capability]string{Tracepoint: "k"},
			want: Refusal{Capability: Tracepoint, Program: "exec", Answer: "refused by configuration (k)", ByConfig: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			_, objs, err := openTest(t, tt.refuse, nil, slog.New(slog.NewTextHandler(&logs, nil)))
			var un *Unavailable
			if !errors.As(err, &un) {
				t.Fatalf("Open: %v, want *Unavailable", err)
			}
			if diff := cmp.Diff(tt.want, *un.Report.Reason); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
			if un.Report.Running || un.Report.Features[0].State != Off || objs.closed != 1 {
				t.Errorf("report %+v, objects closed %d times: want not running, exec off, objects closed once", un.Report, objs.closed)
			}
			if n := strings.Count(logs.String(), "test collector cannot run on this host"); n != 1 {
				t.Errorf("want one warning that the collector cannot run, got %d:\n%s", n, logs.String())
			}
		})
	}
}

// TestLogReport: one warning per capability refused, naming the capability, the answer, the
// features and what is lost; none for features that work in full.
func TestLogReport(t *testing.T) {
	eperm := Refusal{Capability: IterMapElem, Program: "refresh", Answer: "EPERM: operation not permitted"}
	eperm2 := eperm
	eperm2.Program = "announce"
	rep := Report{Collector: "network", Running: true, Features: []FeatureReport{
		{Feature: "tcp", State: Full, Way: "tp_btf"},
		{Feature: "bytes", State: Fallback, Way: "tcp iterator", Refused: []Refusal{eperm}, Lost: "bytes elsewhere"},
		{Feature: "announce", State: Fallback, Way: "tcp iterator", Refused: []Refusal{eperm2}},
		{Feature: "udp", State: Off, Refused: []Refusal{{Capability: TPBTF, Answer: "refused by configuration (k)", ByConfig: true}}, Lost: "udp events"},
		{Feature: "pam", State: Off, Refused: []Refusal{{Capability: "libpam", Answer: "no libpam.so.0"}}, Lost: "logins"},
	}}
	var logs bytes.Buffer
	LogReport(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: dropTime})), rep)
	want := `level=WARN msg="kernel capability refused" capability=iter/bpf_map_elem answer="EPERM: operation not permitted" programs="refresh, announce" features="bytes; announce" now="tcp iterator" lost="bytes elsewhere"
level=WARN msg="kernel capability turned off by configuration" capability=tp_btf answer="refused by configuration (k)" programs="" features=udp now=off lost="udp events"
level=WARN msg="not available on this host" capability=libpam answer="no libpam.so.0" programs="" features=pam now=off lost=logins
`
	if diff := cmp.Diff(want, logs.String()); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
