// Package kernel holds what every eBPF collector does the same way around its bpf2go
// objects: loading them with read-only variables set, attaching tracepoints, reading the
// ring buffer until the context is done, summing the per-CPU counter of records the kernel
// dropped, and turning bpf_ktime_get_boot_ns timestamps into wall-clock time.
//
// In: a collector's loaded *ebpf.CollectionSpec, its objects and programs, and its events
// and drops maps.
// Out: the raw ring-buffer records, handed to the collector's handler from the goroutine
// that calls Ring.Read, and the kernel's drop count (Ring.Drops), logged when it grows.
package kernel
