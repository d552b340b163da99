package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Spec is what a collector gives Open: its bpf2go objects and the jobs (features) it does
// with its programs, each with the ways to do it, preferred first.
type Spec struct {
	Collector string                               // "network": names it in reports and errors
	Load      func() (*ebpf.CollectionSpec, error) // bpf2go's loadX
	// MaxEntries replaces the max_entries of the maps it names.
	MaxEntries map[string]uint32
	// Vars are the read-only variables set before loading.
	Vars []Var
	// Objects is the bpf2go objects struct pointer. Open fills its maps and variables, and
	// the programs of the ways it chose; the other programs stay nil. The ring closes it.
	Objects io.Closer
	// Events and Drops name the ring buffer map and the per-CPU counter of records the kernel
	// could not write to it.
	Events, Drops string
	Features      []Feature
	// Refuse holds the capabilities the configuration refuses, each with the key (and value)
	// that refuses it, for messages: "collectors.network.iterators: off".
	Refuse map[Capability]string
	Ring   RingConfig
}

// Feature is one job a collector does with kernel programs.
type Feature struct {
	Name string // what it gives: "exec events"
	// Required means the collector cannot run without it.
	Required bool
	// Lost is what is lost when no way works ("exec events").
	Lost string
	// Ways are the ways to do it, preferred first: Open takes the first whose programs load
	// and whose hooks attach. A way without hooks is done in user space and always works.
	Ways []Way
}

// Way is one way of doing a feature.
type Way struct {
	Name  string // "tcp iterator"
	Hooks []Hook
	// Lost is what this way loses compared with the feature's first way; "" when nothing.
	Lost string
}

// Hook is a program and the kernel hook it attaches to.
type Hook struct {
	Program string // its name in the collection spec
	What    string // names the hook in messages: "syscalls/sys_enter_openat"
	// Attach attaches the loaded program.
	Attach func(*ebpf.Program) (link.Link, error)
	// Optional hooks may be missing on a kernel (a syscall this architecture lacks): the way
	// works without them.
	Optional bool
	// iter: an iterator, which runs only when read; Pause leaves it attached.
	iter bool
}

// TracepointHook attaches prog to the classic tracepoint group/name.
func TracepointHook(group, name, prog string) Hook {
	return Hook{Program: prog, What: group + "/" + name, Attach: func(p *ebpf.Program) (link.Link, error) {
		return link.Tracepoint(group, name, p, nil)
	}}
}

// OptionalTracepointHook is TracepointHook for a tracepoint some kernels lack.
func OptionalTracepointHook(group, name, prog string) Hook {
	h := TracepointHook(group, name, prog)
	h.Optional = true
	return h
}

// TPBTFHook attaches prog, a tp_btf program, to the tracepoint named in its section.
func TPBTFHook(prog string) Hook {
	return Hook{Program: prog, What: "tp_btf " + prog, Attach: func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
	}}
}

// RawTracepointHook attaches prog, a raw_tracepoint program, to the tracepoint name.
func RawTracepointHook(name, prog string) Hook {
	return Hook{Program: prog, What: "raw_tracepoint/" + name, Attach: func(p *ebpf.Program) (link.Link, error) {
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: p})
	}}
}

// IterHook attaches prog, an iterator, over the map m returns (nil for iterators over other
// kernel objects). The collector reads it with Ring.Iter.
func IterHook(prog string, m func() *ebpf.Map) Hook {
	return Hook{Program: prog, What: "iterator " + prog, iter: true, Attach: func(p *ebpf.Program) (link.Link, error) {
		opts := link.IterOptions{Program: p}
		if m != nil {
			opts.Map = m()
		}
		return link.AttachIter(opts)
	}}
}

// Missing is the error a Hook's Attach returns when what it attaches to is not on this host
// (a library to probe): the way is refused for Capability, with Answer.
type Missing struct {
	Capability Capability // what is missing: "libpam"
	Answer     string
}

func (e *Missing) Error() string { return string(e.Capability) + ": " + e.Answer }

// Unavailable is the error Open (and a collector's New) returns when the collector cannot
// run on this host; Report says why and what each feature would have done.
type Unavailable struct{ Report Report }

func (e *Unavailable) Error() string {
	msg := e.Report.Collector + " collector cannot run on this host"
	if r := e.Report.Reason; r != nil {
		msg += ": " + string(r.Capability) + ": " + r.Answer
	}
	return msg
}

// Open loads the collector's maps, then, feature by feature, the programs of the first way
// the kernel (and the configuration) allows, one program at a time so that a refused
// program refuses only its way; attaches their hooks; opens the ring buffer reader; and
// logs each degradation once (LogReport). It returns the ring that owns all of it, whose
// Report says what works. When a required feature, or every feature, has no way, or the
// maps cannot be created, it releases everything and returns an *Unavailable.
func Open(s Spec) (*Ring, error) {
	o := &opener{spec: s, progs: map[string]*ebpf.Program{}, refused: map[string]Refusal{}, used: map[string]bool{},
		caps: map[Capability]string{}}
	r := NewRing(s.Ring, closerFunc(o.close))
	r.report = Report{Collector: s.Collector, Running: true, Capabilities: o.caps}
	o.ring = r
	err := o.open()
	// What loading needed (the spec, the kernel's parsed BTF) is not kept with the ring.
	o.cs, o.cache, o.replace = nil, nil, nil
	if err != nil {
		r.Close()
		var un *Unavailable
		if errors.As(err, &un) {
			LogReport(s.Ring.Log, un.Report)
		}
		return nil, err
	}
	LogReport(s.Ring.Log, r.report)
	return r, nil
}

// closerFunc is a func as an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// opener is the state of one Open.
type opener struct {
	spec    Spec
	ring    *Ring
	cs      *ebpf.CollectionSpec
	maps    *ebpf.Collection     // the maps and variables the objects do not name
	replace map[string]*ebpf.Map // every map, which each program is loaded against
	cache   *btf.Cache
	progs   map[string]*ebpf.Program // loaded
	refused map[string]Refusal       // programs that did not load, and why
	used    map[string]bool          // programs of the ways taken
	caps    map[Capability]string
}

// unavailable returns the *Unavailable for the reason why, every feature off.
func (o *opener) unavailable(why Refusal) error {
	rep := Report{Collector: o.spec.Collector, Reason: &why, Capabilities: o.caps}
	o.caps[why.Capability] = capState(why)
	for _, f := range o.spec.Features {
		rep.Features = append(rep.Features, FeatureReport{Feature: f.Name, State: Off, Refused: []Refusal{why}, Lost: f.Lost})
	}
	return &Unavailable{Report: rep}
}

func capState(r Refusal) string {
	if r.ByConfig {
		return CapDisabled
	}
	return CapRefused
}

func (o *opener) open() error {
	s := o.spec
	if key, ok := s.Refuse[RingBuffer]; ok {
		return o.unavailable(Refusal{Capability: RingBuffer, Answer: "refused by configuration (" + key + ")", ByConfig: true})
	}
	if err := features.HaveMapType(ebpf.RingBuf); errors.Is(err, ebpf.ErrNotSupported) {
		return o.unavailable(Refusal{Capability: RingBuffer, Answer: "not supported by this kernel (Linux 5.8 and later have it)"})
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("remove memlock rlimit: %w", err)
	}
	cs, err := s.Load()
	if err != nil {
		return fmt.Errorf("read %s programs: %w", s.Collector, err)
	}
	o.cs = cs
	for name, n := range s.MaxEntries {
		m, ok := cs.Maps[name]
		if !ok {
			return fmt.Errorf("size %s: no such map in the %s programs", name, s.Collector)
		}
		m.MaxEntries = n
	}
	for _, v := range s.Vars {
		sv, ok := cs.Variables[v.Name]
		if !ok {
			return fmt.Errorf("set %s: no such variable in the %s programs", v.Name, s.Collector)
		}
		if err := sv.Set(v.Value); err != nil {
			return fmt.Errorf("set %s: %w", v.Name, err)
		}
	}
	o.cache = btf.NewCache()
	if _, err := o.cache.Kernel(); err != nil {
		o.caps[BTF] = CapRefused
		return o.unavailable(Refusal{Capability: BTF, Answer: "no kernel BTF (/sys/kernel/btf/vmlinux): " + err.Error()})
	}
	o.caps[BTF] = CapAllowed
	mapsOnly := &ebpf.CollectionSpec{Maps: cs.Maps, Variables: cs.Variables, Types: cs.Types, ByteOrder: cs.ByteOrder}
	o.maps, err = ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{Cache: o.cache})
	if err != nil {
		// Not a capability of the list: the bpf() system call itself (root, or CAP_BPF and
		// CAP_PERFMON), or a map this kernel cannot create.
		c := Capability("maps")
		if errors.Is(err, unix.EPERM) {
			c = "bpf"
		}
		return o.unavailable(Refusal{Capability: c, Answer: "create " + s.Collector + " maps: " + err.Error()})
	}
	o.caps[RingBuffer] = CapAllowed
	// Each program is loaded against these maps; the objects own those they name, the
	// collection the others (.rodata, .bss).
	o.replace = make(map[string]*ebpf.Map, len(o.maps.Maps))
	for name, m := range o.maps.Maps {
		o.replace[name] = m
	}
	if err := assignObjects(s.Objects, o.maps.Maps, nil, o.maps.Variables); err != nil {
		return fmt.Errorf("%s objects: %w", s.Collector, err)
	}
	required, working := -1, 0 // the first required feature off; the features that work
	for i, f := range s.Features {
		fr := o.feature(f)
		o.ring.report.Features = append(o.ring.report.Features, fr)
		if fr.State != Off {
			working++
		} else if f.Required && required < 0 {
			required = i
		}
	}
	if required >= 0 || working == 0 {
		why := Refusal{Answer: "no feature can work"}
		off := o.ring.report.Features[max(required, 0):]
		if len(off) > 0 && len(off[0].Refused) > 0 {
			why = off[0].Refused[0]
		}
		un := &Unavailable{Report: o.ring.report}
		un.Report.Running, un.Report.Reason = false, &why
		return un
	}
	// Programs loaded for a way not taken are closed; the objects hold the others.
	for name, p := range o.progs {
		if !o.used[name] {
			p.Close()
			delete(o.progs, name)
		}
	}
	if err := assignObjects(s.Objects, nil, o.progs, nil); err != nil {
		return fmt.Errorf("%s objects: %w", s.Collector, err)
	}
	events, drops := o.lookupMap(s.Events), o.lookupMap(s.Drops)
	if events == nil || drops == nil {
		return fmt.Errorf("%s objects: no ring buffer %q or drop counter %q", s.Collector, s.Events, s.Drops)
	}
	return o.ring.Open(events, drops)
}

func (o *opener) lookupMap(name string) *ebpf.Map {
	var found *ebpf.Map
	walkObjects(o.spec.Objects, func(tag string, v reflect.Value) {
		if tag == name {
			if m, ok := v.Interface().(*ebpf.Map); ok {
				found = m
			}
		}
	})
	return found
}

// feature takes the first way of f that works and reports it.
func (o *opener) feature(f Feature) FeatureReport {
	fr := FeatureReport{Feature: f.Name, State: Off, Lost: f.Lost}
	for i, w := range f.Ways {
		absent, refusal, ok := o.way(w)
		if !ok {
			fr.Refused = append(fr.Refused, refusal)
			continue
		}
		fr.Way, fr.Absent, fr.Lost = w.Name, absent, w.Lost
		fr.State = Full
		if i > 0 {
			fr.State = Fallback
		}
		return fr
	}
	return fr
}

// way loads the programs of w and attaches its hooks. On failure, the hooks it attached
// are detached again and the refusal says why.
func (o *opener) way(w Way) (absent []string, why Refusal, ok bool) {
	type attached struct {
		h Hook
		p *ebpf.Program
		l link.Link
	}
	var done []attached
	undo := func() {
		for _, a := range done {
			a.l.Close()
		}
	}
	for _, h := range w.Hooks {
		p, refusal := o.program(h.Program)
		if p == nil {
			if h.Optional && !refusal.ByConfig {
				absent = append(absent, h.What)
				continue
			}
			undo()
			return nil, refusal, false
		}
		l, err := h.Attach(p)
		if err != nil {
			if h.Optional {
				absent = append(absent, h.What)
				continue
			}
			undo()
			var missing *Missing
			if errors.As(err, &missing) {
				return nil, Refusal{Capability: missing.Capability, Program: h.Program, Answer: missing.Answer}, false
			}
			c := capabilityOf(o.cs.Programs[h.Program])
			o.caps[c] = CapRefused
			return nil, Refusal{Capability: c, Program: h.Program, Answer: attachAnswer(h.What, err)}, false
		}
		done = append(done, attached{h, p, l})
	}
	for _, a := range done {
		o.used[a.h.Program] = true
		o.caps[capabilityOf(o.cs.Programs[a.h.Program])] = CapAllowed
		if a.h.iter {
			o.ring.addIter(a.h.Program, a.l)
			continue
		}
		attach, p := a.h.Attach, a.p
		o.ring.addHook("attach "+a.h.What, func() (link.Link, error) { return attach(p) }, a.l)
	}
	return absent, Refusal{}, true
}

// attachAnswer words the failure to attach a hook, naming tracefs when it is what is missing.
func attachAnswer(what string, err error) string {
	msg := "attach " + what + ": " + err.Error()
	if mounted, _ := TracefsMounted(); errors.Is(err, os.ErrNotExist) && !mounted && strings.Contains(what, "/") {
		msg += " (tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing)"
	}
	return msg
}

// tracefsAt reports whether tracefs is mounted at p.
func tracefsAt(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.TRACEFS_MAGIC
}

// program loads the program name (once), or says why it is not loaded.
func (o *opener) program(name string) (*ebpf.Program, Refusal) {
	if p := o.progs[name]; p != nil {
		return p, Refusal{}
	}
	if r, ok := o.refused[name]; ok {
		return nil, r
	}
	ps := o.cs.Programs[name]
	if ps == nil {
		r := Refusal{Capability: "program", Program: name, Answer: "no program " + name + " in the " + o.spec.Collector + " objects"}
		o.refused[name] = r
		return nil, r
	}
	c := capabilityOf(ps)
	if key, ok := o.spec.Refuse[c]; ok {
		r := Refusal{Capability: c, Program: name, Answer: "refused by configuration (" + key + ")", ByConfig: true}
		o.refused[name] = r
		o.caps[c] = CapDisabled
		return nil, r
	}
	one := &ebpf.CollectionSpec{Maps: o.cs.Maps, Programs: map[string]*ebpf.ProgramSpec{name: ps}, Types: o.cs.Types, ByteOrder: o.cs.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: o.replace, Cache: o.cache})
	if err != nil {
		r := answer(c, name, err)
		o.refused[name] = r
		if _, seen := o.caps[r.Capability]; !seen || o.caps[r.Capability] != CapAllowed {
			o.caps[r.Capability] = CapRefused
		}
		return nil, r
	}
	p := coll.DetachProgram(name)
	coll.Close()
	o.progs[name] = p
	return p, Refusal{}
}

// close releases what Open opened: the objects (maps and programs assigned to them), the
// programs not assigned, and the maps the objects do not name.
func (o *opener) close() error {
	var err error
	if o.spec.Objects != nil {
		err = o.spec.Objects.Close()
	}
	for _, p := range o.progs {
		p.Close()
	}
	if o.maps != nil {
		o.maps.Close()
	}
	return err
}

// walkObjects calls f with each field of a bpf2go objects struct (pointer) that carries an
// ebpf tag, through embedded structs.
func walkObjects(objs any, f func(tag string, v reflect.Value)) {
	if objs == nil {
		return
	}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			field := t.Field(i)
			if tag := field.Tag.Get("ebpf"); tag != "" {
				f(tag, v.Field(i))
				continue
			}
			if field.Anonymous && field.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
			}
		}
	}
	v := reflect.ValueOf(objs)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		walk(v.Elem())
	}
}

// assignObjects sets the fields of objs named in maps, progs and vars. Maps and programs
// assigned are taken out of maps and progs: objs owns them now.
func assignObjects(objs any, maps map[string]*ebpf.Map, progs map[string]*ebpf.Program, vars map[string]*ebpf.Variable) error {
	if objs == nil || reflect.ValueOf(objs).Kind() != reflect.Pointer {
		return errors.New("objects: want a pointer to a bpf2go objects struct")
	}
	walkObjects(objs, func(tag string, v reflect.Value) {
		switch v.Type() {
		case reflect.TypeFor[*ebpf.Map]():
			if m, ok := maps[tag]; ok {
				v.Set(reflect.ValueOf(m))
				delete(maps, tag)
			}
		case reflect.TypeFor[*ebpf.Program]():
			if p, ok := progs[tag]; ok {
				v.Set(reflect.ValueOf(p))
				delete(progs, tag)
			}
		case reflect.TypeFor[*ebpf.Variable]():
			if x, ok := vars[tag]; ok {
				v.Set(reflect.ValueOf(x))
			}
		}
	})
	return nil
}
