package kernel

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Var is a read-only variable of a BPF program, set before it is loaded.
type Var struct {
	Name  string // as in the C source, e.g. "self_tgid"
	Value any
}

// SumPerCPU returns the sum over CPUs of key 0 of a per-CPU array of uint64 counters.
func SumPerCPU(m *ebpf.Map) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read per-CPU counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// BootTimeOffset returns wall-clock time minus CLOCK_BOOTTIME (bpf_ktime_get_boot_ns), in
// nanoseconds, taking the tightest of a few samples.
func BootTimeOffset() (int64, error) {
	best, bestSpan := int64(0), int64(-1)
	for range 5 {
		var before, after unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &before); err != nil {
			return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
		}
		wall := time.Now().UnixNano()
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &after); err != nil {
			return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
		}
		span := after.Nano() - before.Nano()
		if bestSpan < 0 || span < bestSpan {
			best, bestSpan = wall-(before.Nano()+span/2), span
		}
	}
	return best, nil
}

// CString returns b up to its first NUL.
func CString[T ~int8 | ~byte](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// Decode copies a record laid out as T (a bpf2go type: the kernel's C layout, padding
// spelled out, no pointers) from the start of raw and returns its size. The programs write in
// the machine's byte order. It is encoding/binary.Decode without reflection, which costs a
// few hundred nanoseconds per record; CheckLayout in the collectors' tests checks that the
// two agree for every record type.
func Decode[T any](raw []byte, out *T) (int, error) {
	n := int(unsafe.Sizeof(*out))
	if len(raw) < n {
		return 0, fmt.Errorf("record of %d bytes, want at least %d", len(raw), n)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(out)), n), raw[:n])
	return n, nil
}
