package kernel

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Capability is a kernel feature a program needs, as warnings, metrics and crumbs doctor
// name it.
type Capability string

// The capabilities the collectors' programs use, and those crumbs doctor reports besides.
const (
	RingBuffer    Capability = "ring_buffer"       // BPF_MAP_TYPE_RINGBUF (Linux 5.8)
	BTF           Capability = "btf"               // kernel BTF, for CO-RE relocations and tp_btf
	Tracepoint    Capability = "tracepoint"        // classic tracepoints: sched, syscalls, sock
	RawTracepoint Capability = "raw_tracepoint"    // raw tracepoints without BTF
	TPBTF         Capability = "tp_btf"            // BTF-typed raw tracepoints
	IterMapElem   Capability = "iter/bpf_map_elem" // iterators over a map's elements
	IterTCP       Capability = "iter/tcp"          // iterators over TCP sockets
	IterTask      Capability = "iter/task"         // iterators over tasks
	IterMap       Capability = "iter/bpf_map"      // iterators over maps
	Uprobe        Capability = "uprobe"            // probes on user-space functions
	Kprobe        Capability = "kprobe"            // probes on kernel functions
	Fentry        Capability = "fentry"            // BPF trampolines on kernel functions
	LSM           Capability = "lsm"               // BPF LSM programs
)

// Capabilities lists every capability crumbs knows, in the order crumbs doctor shows them.
func Capabilities() []Capability {
	return []Capability{BTF, RingBuffer, Tracepoint, RawTracepoint, TPBTF, IterTask, IterTCP, IterMap, IterMapElem,
		Uprobe, Kprobe, Fentry, LSM}
}

// ParseCapability returns the capability named s, or an error listing the known ones.
func ParseCapability(s string) (Capability, error) {
	c := Capability(s)
	if slices.Contains(Capabilities(), c) {
		return c, nil
	}
	names := make([]string, 0, len(Capabilities()))
	for _, c := range Capabilities() {
		names = append(names, string(c))
	}
	return "", fmt.Errorf("%q: no such capability (have: %s)", s, strings.Join(names, ", "))
}

// capabilityOf returns the capability a program's type and attach point need.
func capabilityOf(p *ebpf.ProgramSpec) Capability {
	switch p.Type {
	case ebpf.TracePoint:
		return Tracepoint
	case ebpf.RawTracepoint, ebpf.RawTracepointWritable:
		return RawTracepoint
	case ebpf.Kprobe:
		if strings.HasPrefix(p.SectionName, "uprobe") || strings.HasPrefix(p.SectionName, "uretprobe") {
			return Uprobe
		}
		return Kprobe
	case ebpf.LSM:
		return LSM
	case ebpf.Tracing:
		switch p.AttachType {
		case ebpf.AttachTraceRawTp:
			return TPBTF
		case ebpf.AttachTraceIter:
			return Capability("iter/" + p.AttachTo)
		case ebpf.AttachTraceFEntry, ebpf.AttachTraceFExit:
			return Fentry
		}
	}
	return Capability(strings.ToLower(p.Type.String()))
}

// Lockdown returns the kernel's lockdown mode (none, integrity or confidentiality) and where
// it was read: /sys/kernel/security/lockdown, or the kernel configuration when securityfs is
// not mounted and the configuration forces a mode. "" when neither says.
func Lockdown() (mode, source string) {
	lockdownOnce.Do(func() { lockdownMode, lockdownSource = readLockdown() })
	return lockdownMode, lockdownSource
}

var (
	lockdownOnce                 sync.Once
	lockdownMode, lockdownSource string
)

func readLockdown() (string, string) {
	const path = "/sys/kernel/security/lockdown"
	if b, err := os.ReadFile(path); err == nil {
		// "none [integrity] confidentiality": the bracketed one is in force.
		if m := regexp.MustCompile(`\[(\w+)\]`).FindSubmatch(b); m != nil {
			return string(m[1]), path
		}
	}
	for _, cfg := range []string{"/proc/config.gz", "/boot/config-" + Release()} {
		text, err := readKernelConfig(cfg)
		if err != nil {
			continue
		}
		for _, m := range []string{"integrity", "confidentiality", "none"} {
			if strings.Contains(text, "\nCONFIG_LOCK_DOWN_KERNEL_FORCE_"+strings.ToUpper(m)+"=y") {
				return m, cfg + " (securityfs is not mounted)"
			}
		}
	}
	return "", ""
}

// readKernelConfig returns the kernel configuration at path, gunzipped when it ends in .gz,
// starting with a newline so that every option follows one.
func readKernelConfig(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", err
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(io.LimitReader(r, 8<<20))
	return "\n" + string(b), err
}

// Release returns the kernel's release (uname -r).
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// State is how far a collector's feature works on this host.
type State string

// Feature states.
const (
	Full     State = "full"     // by its preferred way
	Fallback State = "fallback" // by another way, which may lose something (FeatureReport.Lost)
	Off      State = "off"      // not at all: FeatureReport.Lost is lost
)

// Refusal is why a capability was not used: the kernel refused it, or the configuration did.
type Refusal struct {
	Capability Capability
	Program    string // the program (or hook) that needed it
	Answer     string // the kernel's answer, or "refused by configuration (<key>)"
	ByConfig   bool
}

// FeatureReport says how a collector does one of its jobs on this host.
type FeatureReport struct {
	Feature string
	State   State
	Way     string    // the way in use; "" when off
	Refused []Refusal // why each way preferred to Way was not taken, in order
	Lost    string    // what is lost here compared with the preferred way; "" when nothing is
	Absent  []string  // optional hooks this kernel does not have (nothing is lost)
}

// Report says what a collector does on this host: each feature's way, or why it cannot run.
type Report struct {
	Collector string
	// Running is false when the collector cannot run here; Reason then says why.
	Running  bool
	Reason   *Refusal
	Features []FeatureReport
	// Capabilities holds the state of each capability the collector tried: allowed,
	// refused (by the kernel) or disabled (by the configuration).
	Capabilities map[Capability]string
}

// Capability states in Report.Capabilities.
const (
	CapAllowed  = "allowed"
	CapRefused  = "refused"
	CapDisabled = "disabled"
)

// Degraded returns the features that do not work in full.
func (r Report) Degraded() []FeatureReport {
	var out []FeatureReport
	for _, f := range r.Features {
		if f.State != Full {
			out = append(out, f)
		}
	}
	return out
}

// Lost says in one line what the collector loses on this host; "" when nothing.
func (r Report) Lost() string {
	if !r.Running {
		return "every " + r.Collector + " event"
	}
	var parts []string
	for _, f := range r.Features {
		if f.Lost != "" {
			parts = append(parts, f.Lost)
		}
	}
	return strings.Join(parts, "; ")
}

// LogReport logs each degradation of r once: one warning per capability refused (and way
// taken instead), naming the capability, the kernel's answer, the features that needed it,
// what they do now and what is lost; or, for a collector that cannot run, one warning saying
// so. The logger is expected to name the collector.
func LogReport(log *slog.Logger, r Report) {
	if !r.Running {
		var attrs []any
		if r.Reason != nil {
			attrs = append(attrs, "capability", string(r.Reason.Capability), "answer", r.Reason.Answer)
		}
		log.Warn(r.Collector+" collector cannot run on this host", append(attrs, "lost", r.Lost())...)
		return
	}
	type group struct {
		caps, answers, programs, features, lost []string
		now                                     string
		byConfig, kernel                        bool
	}
	var groups []*group
	index := map[string]*group{}
	for _, f := range r.Degraded() {
		g := &group{byConfig: len(f.Refused) > 0, kernel: true, now: f.Way}
		if f.State == Off {
			g.now = "off"
		}
		for _, rf := range f.Refused {
			g.caps = appendNew(g.caps, string(rf.Capability))
			g.answers = appendNew(g.answers, rf.Answer)
			g.byConfig = g.byConfig && rf.ByConfig
			g.kernel = g.kernel && isKernel(rf.Capability)
		}
		key := strings.Join(g.caps, ",") + "\x00" + strings.Join(g.answers, ",") + "\x00" + g.now
		if prev, ok := index[key]; ok {
			g = prev
		} else {
			index[key] = g
			groups = append(groups, g)
		}
		for _, rf := range f.Refused {
			if rf.Program != "" {
				g.programs = appendNew(g.programs, rf.Program)
			}
		}
		g.features = append(g.features, f.Feature)
		if f.Lost != "" {
			g.lost = appendNew(g.lost, f.Lost)
		}
	}
	for _, g := range groups {
		msg := "kernel capability refused"
		switch {
		case g.byConfig:
			msg = "kernel capability turned off by configuration"
		case !g.kernel:
			msg = "not available on this host" // a library, a cgroup hierarchy, a sibling collector
		}
		lost := strings.Join(g.lost, "; ")
		if lost == "" {
			lost = "nothing: the same events"
		}
		log.Warn(msg, "capability", strings.Join(g.caps, ", "), "answer", strings.Join(g.answers, "; "),
			"programs", strings.Join(g.programs, ", "), "features", strings.Join(g.features, "; "), "now", g.now, "lost", lost)
	}
}

// isKernel reports whether c is the kernel's to refuse: a BPF capability, a helper, the
// bpf() call itself.
func isKernel(c Capability) bool {
	return slices.Contains(Capabilities(), c) || strings.HasPrefix(string(c), "helper ") || c == "bpf" || c == "maps"
}

// appendNew appends s to list unless it holds it already.
func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// coreFailure is the helper number cilium/ebpf writes in place of an instruction whose CO-RE
// relocation this kernel's BTF cannot satisfy.
const coreFailure = 0xbad2310

var unknownHelper = regexp.MustCompile(`(?:invalid func unknown|cannot use helper \w*)#(\d+)`)

// answer classifies err, the failure to load program prog (which needs capability c), into
// the capability really refused and the kernel's answer in words (an errno with its text
// and the lockdown mode, the verifier's verdict, or the error).
func answer(c Capability, prog string, err error) Refusal {
	r := Refusal{Capability: c, Program: prog}
	var verr *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) && !errors.As(err, &verr):
		r.Answer = unix.ErrnoName(errnoOf(err)) + ": " + errnoOf(err).Error()
		if mode, _ := Lockdown(); mode != "" && mode != "none" {
			r.Answer += " (lockdown: " + mode + ")"
		}
	case errors.As(err, &verr):
		last := lastLines(verr.Log, 5)
		if m := unknownHelper.FindStringSubmatch(last); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n == coreFailure {
				r.Capability = BTF
				r.Answer = "a CO-RE relocation does not match this kernel's types"
				break
			}
			r.Capability = Capability("helper " + helperName(asm.BuiltinFunc(n)))
		}
		r.Answer = "verifier: " + lastLines(verr.Log, 1)
	case errors.Is(err, ebpf.ErrNotSupported):
		r.Answer = "not supported by this kernel: " + err.Error()
	default:
		r.Answer = err.Error()
	}
	return r
}

// helperName returns a helper's name as the kernel's headers spell it: bpf_task_pt_regs
// for asm.FnTaskPtRegs.
func helperName(fn asm.BuiltinFunc) string {
	name, ok := strings.CutPrefix(fn.String(), "Fn")
	if !ok {
		return fn.String()
	}
	var b strings.Builder
	b.WriteString("bpf")
	for _, r := range name {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// errnoOf returns the errno in err's chain, EPERM when there is none.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EPERM
}

// lastLines returns the last n non-empty lines of a verifier log, joined by " / ".
func lastLines(log []string, n int) string {
	var out []string
	for i := len(log) - 1; i >= 0 && len(out) < n; i-- {
		if s := strings.TrimSpace(log[i]); s != "" {
			out = append([]string{s}, out...)
		}
	}
	return strings.Join(out, " / ")
}

// Refusals returns the capabilities named (a collector's refuse setting, at key), each with
// key, as Spec.Refuse takes them.
func Refusals(key string, names []string) map[Capability]string {
	out := make(map[Capability]string, len(names))
	for _, n := range names {
		out[Capability(n)] = key
	}
	return out
}

// ValidateRefuse reports the names of a refuse setting (at key) that are no capability.
func ValidateRefuse(key string, names []string) error {
	var errs []error
	for _, n := range names {
		if _, err := ParseCapability(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}
