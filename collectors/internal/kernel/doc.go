// Package kernel owns what every eBPF collector does the same way around its bpf2go objects:
// probing what this kernel allows, loading each program alone with read-only variables set
// (a refused program refuses only the way that needs it), attaching the hooks of the first
// way of each feature that works, reporting what is lost (once: a warning, and a Report for
// metrics, health events and crumbs doctor), reading the ring buffer until the context is
// done, pausing and resuming the hooks, summing the per-CPU counter of records the kernel
// dropped, and turning bpf_ktime_get_boot_ns timestamps into wall-clock time.
//
// In: a collector's Spec: its bpf2go CollectionSpec loader and objects, its features each
// with its ways (programs and hooks) preferred first, and the capabilities its
// configuration refuses.
// Out: a Ring holding the loaded objects, the links and the ring-buffer reader; its Report
// (each feature's way, the refusals and what is lost); the raw ring-buffer records, handed
// to the collector's handler from the goroutine that calls Ring.Read; the kernel's drop
// count (Ring.Drops), logged when it grows. ProbeCapabilities says what this kernel allows
// of every capability crumbs knows, for crumbs doctor.
package kernel
