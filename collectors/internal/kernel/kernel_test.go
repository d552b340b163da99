package kernel

import (
	"context"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

func TestCString(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{name: "empty", in: nil, want: ""},
		{name: "terminated", in: []byte("sshd\x00\x00\x00"), want: "sshd"},
		{name: "unterminated", in: []byte("bash"), want: "bash"},
		{name: "stops at first NUL", in: []byte("a\x00b"), want: "a"},
		{name: "leading NUL", in: []byte("\x00abc"), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed := make([]int8, len(tt.in))
			for i, b := range tt.in {
				signed[i] = int8(b)
			}
			got := []string{CString(tt.in), CString(signed)}
			if diff := cmp.Diff([]string{tt.want, tt.want}, got); diff != "" {
				t.Errorf("CString([]byte), CString([]int8) (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBootTimeOffset converts a CLOCK_BOOTTIME reading taken between two wall-clock
// readings: it must land between them, give or take a millisecond of sampling error.
func TestBootTimeOffset(t *testing.T) {
	offset, err := BootTimeOffset()
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixNano()
	var boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	const slack = int64(time.Millisecond)
	if got := boot.Nano() + offset; got < before-slack || got > after+slack {
		t.Errorf("boot time %d + offset %d = %d: want within [%d, %d] ± %d", boot.Nano(), offset, got, before, after, slack)
	}
}

// newDrops returns a per-CPU array of one counter holding perCPU[i] on CPU i.
func newDrops(t *testing.T, perCPU []uint64) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatalf("create per-CPU map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Put(uint32(0), perCPU); err != nil {
		t.Fatalf("fill per-CPU map: %v", err)
	}
	return m
}

func newEvents(t *testing.T) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err != nil {
		t.Fatalf("create ring buffer: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func cpuValues(n int, f func(cpu int) uint64) []uint64 {
	v := make([]uint64, n)
	for i := range v {
		v[i] = f(i)
	}
	return v
}

func TestSumPerCPU(t *testing.T) {
	testenv.RequireBPF(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		perCPU []uint64
	}{
		{name: "zero", perCPU: make([]uint64, cpus)},
		{name: "one per CPU", perCPU: cpuValues(cpus, func(int) uint64 { return 1 })},
		{name: "different per CPU", perCPU: cpuValues(cpus, func(i int) uint64 { return uint64(1000 * (i + 1)) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want uint64
			for _, v := range tt.perCPU {
				want += v
			}
			got, err := SumPerCPU(newDrops(t, tt.perCPU))
			if err != nil || got != want {
				t.Errorf("SumPerCPU: want %d, got %d, %v", want, got, err)
			}
		})
	}
}

// closer counts Close calls, standing in for a collector's bpf2go objects.
type closer struct{ n int }

func (c *closer) Close() error { c.n++; return nil }

// TestRingLifecycle opens a ring over real kernel maps, reads it until a chore cancels the
// context, and checks the drop count before and after closing, and that the objects are
// closed once however often Close is called.
func TestRingLifecycle(t *testing.T) {
	testenv.RequireBPF(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	perCPU := cpuValues(cpus, func(i int) uint64 { return uint64(i + 2) })
	var total uint64
	for _, v := range perCPU {
		total += v
	}
	drops := newDrops(t, perCPU)
	objs := &closer{}
	beforeStop := 0
	r := NewRing(RingConfig{Name: "test", Dropped: "test records", RingBufferBytes: 4096, BeforeStop: func() { beforeStop++ }}, objs)
	if err := r.Open(newEvents(t), drops); err != nil {
		t.Fatal(err)
	}

	type result struct {
		ReadErr                error
		Records, Chores        int
		BeforeStop             int
		DropsOpen, DropsClosed uint64
		MapsReadAfterClose     bool
		ObjectsClosed          int
	}
	var got result
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got.ReadErr = r.Read(ctx, 10*time.Millisecond, func([]byte, time.Time) { got.Records++ }, func(time.Time) {
		got.Chores++
		if got.Chores == 2 {
			cancel()
		}
	})
	got.BeforeStop = beforeStop
	got.DropsOpen = r.Drops()
	r.ReportDrops()
	r.Close()
	// The kernel counter changes after Close; the ring keeps its last reading.
	if err := drops.Put(uint32(0), make([]uint64, cpus)); err != nil {
		t.Fatal(err)
	}
	got.DropsClosed = r.Drops()
	r.Close()
	got.MapsReadAfterClose = r.ReadMaps(func() {})
	got.ObjectsClosed = objs.n

	want := result{Chores: 2, BeforeStop: 1, DropsOpen: total, DropsClosed: total, ObjectsClosed: 1}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("ring lifecycle (-want +got):\n%s", diff)
	}
}

// TestRingCloseBeforeOpen releases what a collector opened when loading failed early.
func TestRingCloseBeforeOpen(t *testing.T) {
	objs := &closer{}
	r := NewRing(RingConfig{Name: "test"}, objs)
	r.Close()
	if got := []any{r.Drops(), objs.n}; !cmp.Equal(got, []any{uint64(0), 1}) {
		t.Errorf("after Close before Open: want [0 1] (drops, objects closed), got %v", got)
	}
}
