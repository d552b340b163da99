package kernel

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Probe is what this kernel answered when crumbs tried one capability: load the smallest
// program of its kind and attach it (then release both).
type Probe struct {
	Capability Capability
	Allowed    bool
	// Answer is the kernel's answer when it refused: at load (an errno and its text, the
	// lockdown mode) or at attach.
	Answer string
}

// ProbeCapabilities tries every capability of Capabilities on this kernel, in that order.
// It changes nothing that outlives the call.
func ProbeCapabilities() []Probe {
	if err := rlimit.RemoveMemlock(); err != nil {
		return []Probe{{Capability: "bpf", Answer: "remove memlock rlimit: " + err.Error()}}
	}
	var out []Probe
	for _, c := range Capabilities() {
		p := Probe{Capability: c, Allowed: true}
		if err := probe(c); err != nil {
			p.Allowed, p.Answer = false, err.Error()
		}
		out = append(out, p)
	}
	return out
}

// BTFInfo says whether the kernel describes its types (BTF), as CO-RE relocations and
// tp_btf programs need, and where crumbs found it.
func BTFInfo() (ok bool, detail string) {
	if _, err := btf.LoadKernelSpec(); err != nil {
		return false, err.Error()
	}
	return true, "/sys/kernel/btf/vmlinux"
}

// TracefsMounted reports whether tracefs is mounted where tracepoints are looked up, and
// where.
func TracefsMounted() (bool, string) {
	for _, p := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if tracefsAt(p) {
			return true, p
		}
	}
	return false, ""
}

// entryOffset returns the file offset of the ELF executable's entry point.
func entryOffset(path string) (uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz {
			return f.Entry - p.Vaddr + p.Off, nil
		}
	}
	return 0, errors.New("no executable segment holds it")
}

// probeProgram returns the smallest program of the given kind: return 0.
func probeProgram(typ ebpf.ProgramType, attach ebpf.AttachType, to string) *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Type: typ, AttachType: attach, AttachTo: to, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}}
}

// loadProbe loads spec; a refusal is worded as Open words it.
func loadProbe(c Capability, spec *ebpf.ProgramSpec) (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, errors.New(answer(c, "probe", err).Answer)
	}
	return p, nil
}

// probe tries capability c: nil when the kernel allows it.
func probe(c Capability) error {
	attachWith := func(spec *ebpf.ProgramSpec, attach func(*ebpf.Program) (link.Link, error)) error {
		p, err := loadProbe(c, spec)
		if err != nil {
			return err
		}
		defer p.Close()
		l, err := attach(p)
		if err != nil {
			return fmt.Errorf("loads, but attach: %w", err)
		}
		return l.Close()
	}
	iter := func(target string, m *ebpf.Map) error {
		return attachWith(probeProgram(ebpf.Tracing, ebpf.AttachTraceIter, target), func(p *ebpf.Program) (link.Link, error) {
			return link.AttachIter(link.IterOptions{Program: p, Map: m})
		})
	}
	switch c {
	case BTF:
		if ok, detail := BTFInfo(); !ok {
			return errors.New(detail)
		}
		return nil
	case RingBuffer:
		if err := features.HaveMapType(ebpf.RingBuf); err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) {
				return errors.New("not supported by this kernel (Linux 5.8 and later have it)")
			}
			return err
		}
		return nil
	case Tracepoint:
		if ok, _ := TracefsMounted(); !ok {
			return errors.New("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")
		}
		return attachWith(probeProgram(ebpf.TracePoint, ebpf.AttachNone, ""), func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("sched", "sched_process_exec", p, nil)
		})
	case RawTracepoint:
		return attachWith(probeProgram(ebpf.RawTracepoint, ebpf.AttachNone, ""), func(p *ebpf.Program) (link.Link, error) {
			return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_fork", Program: p})
		})
	case TPBTF:
		return attachWith(probeProgram(ebpf.Tracing, ebpf.AttachTraceRawTp, "sched_process_fork"), func(p *ebpf.Program) (link.Link, error) {
			return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		})
	case IterTask:
		return iter("task", nil)
	case IterTCP:
		return iter("tcp", nil)
	case IterMap:
		return iter("bpf_map", nil)
	case IterMapElem:
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			return fmt.Errorf("create a map to iterate: %w", err)
		}
		defer m.Close()
		return iter("bpf_map_elem", m)
	case Uprobe:
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find crumbs' executable to probe: %w", err)
		}
		ex, err := link.OpenExecutable(self)
		if err != nil {
			return fmt.Errorf("open %s to probe: %w", self, err)
		}
		entry, err := entryOffset(self)
		if err != nil {
			return fmt.Errorf("find the entry point of %s to probe: %w", self, err)
		}
		// On crumbs' own entry point, for this process only: it never runs again.
		return attachWith(&ebpf.ProgramSpec{Type: ebpf.Kprobe, License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}},
			func(p *ebpf.Program) (link.Link, error) {
				return ex.Uprobe("entry", p, &link.UprobeOptions{Address: entry, PID: os.Getpid()})
			})
	case Kprobe:
		return attachWith(&ebpf.ProgramSpec{Type: ebpf.Kprobe, License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}},
			func(p *ebpf.Program) (link.Link, error) { return link.Kprobe("vfs_read", p, nil) })
	case Fentry:
		return attachWith(probeProgram(ebpf.Tracing, ebpf.AttachTraceFEntry, "vfs_read"), func(p *ebpf.Program) (link.Link, error) {
			return link.AttachTracing(link.TracingOptions{Program: p})
		})
	case LSM:
		return attachWith(probeProgram(ebpf.LSM, ebpf.AttachLSMMac, "file_open"), func(p *ebpf.Program) (link.Link, error) {
			return link.AttachLSM(link.LSMOptions{Program: p})
		})
	}
	return fmt.Errorf("no probe for %s", c)
}
