package collectors_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
)

// The registers of struct pt_regs each architecture's kernel has. A program built for one
// architecture that reads a register only the other has would load there with that read
// poisoned by CO-RE, and the verifier would refuse the program.
var ptRegsFields = map[string][]string{
	"x86":   {"r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di", "orig_ax", "ip", "flags", "sp"},
	"arm64": {"regs", "sp", "pc", "pstate", "orig_x0", "syscallno"},
}

// TestBPFObjectsForEveryArch: each collector's programs are built for amd64 and arm64
// (bpf2go -target amd64,arm64), the arm64 object parses as a collection with the same
// programs (type, attach type, section) and maps as the amd64 one, and every CO-RE
// relocation of the kernel's registers (struct pt_regs, user_pt_regs) names a register of
// the object's own architecture.
func TestBPFObjectsForEveryArch(t *testing.T) {
	x86, err := filepath.Glob("*/*_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	if len(x86) < 4 {
		t.Fatalf("found the objects %v; want one per collector with kernel programs", x86)
	}
	regsRead := map[string]map[string]bool{"x86": {}, "arm64": {}}
	for _, amd64Path := range x86 {
		arm64Path := strings.Replace(amd64Path, "_x86_", "_arm64_", 1)
		t.Run(filepath.Dir(amd64Path), func(t *testing.T) {
			amd64, err := ebpf.LoadCollectionSpec(amd64Path)
			if err != nil {
				t.Fatalf("parse %s: %v", amd64Path, err)
			}
			arm64, err := ebpf.LoadCollectionSpec(arm64Path)
			if err != nil {
				t.Fatalf("parse %s (go generate ./collectors/... builds it): %v", arm64Path, err)
			}
			if diff := cmp.Diff(shape(amd64), shape(arm64)); diff != "" {
				t.Errorf("programs and maps of %s and %s differ (-amd64 +arm64):\n%s", amd64Path, arm64Path, diff)
			}
			for arch, spec := range map[string]*ebpf.CollectionSpec{"x86": amd64, "arm64": arm64} {
				for _, r := range registerRelocations(t, spec) {
					regsRead[arch][r.field] = true
					if !slices.Contains(ptRegsFields[arch], r.field) {
						t.Errorf("%s program %s reads register %s.%s, which %s's pt_regs does not have", arch, r.program, r.strct, r.field, arch)
					}
				}
			}
		})
	}
	// The network programs read the syscall number and arguments of the task: if no
	// relocation of a register were found, the check above would prove nothing.
	for arch, want := range map[string]string{"x86": "orig_ax", "arm64": "syscallno"} {
		if !regsRead[arch][want] {
			t.Errorf("no %s program reads pt_regs.%s (read: %v); the relocation walk finds nothing", arch, want, regsRead[arch])
		}
	}
}

// shape is what must be the same in the objects of every architecture.
func shape(spec *ebpf.CollectionSpec) []string {
	var out []string
	for name, p := range spec.Programs {
		out = append(out, fmt.Sprintf("program %s: %s %s %s", name, p.Type, p.AttachType, p.SectionName))
	}
	for name, m := range spec.Maps {
		out = append(out, fmt.Sprintf("map %s: %s key %d value %d max %d", name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries))
	}
	sort.Strings(out)
	return out
}

type registerRead struct{ program, strct, field string }

// coreRelocation is CORERelocation.String(): kind, local type, accessor and local type id.
var coreRelocation = regexp.MustCompile(`^CORERelocation\(([^,]+), .*\[([0-9:]+)\], local_id=(\d+)\)$`)

// registerRelocations returns the CO-RE field relocations of spec's programs on struct
// pt_regs and struct user_pt_regs (any flavour: pt_regs___x), with the field each reads.
func registerRelocations(t *testing.T, spec *ebpf.CollectionSpec) []registerRead {
	t.Helper()
	var out []registerRead
	for name, p := range spec.Programs {
		for i := range p.Instructions {
			ins := &p.Instructions[i]
			relo := btf.CORERelocationMetadata(ins)
			if relo == nil {
				continue
			}
			m := coreRelocation.FindStringSubmatch(relo.String())
			if m == nil {
				t.Fatalf("program %s: cannot read the relocation %s", name, relo)
			}
			if !strings.HasPrefix(m[1], "byte_off") {
				continue
			}
			id, _ := strconv.Atoi(m[3])
			typ, err := spec.Types.TypeByID(btf.TypeID(id))
			if err != nil {
				t.Fatalf("program %s: relocation %s: %v", name, relo, err)
			}
			s, field := fieldOf(typ, m[2])
			base := s
			if i := strings.Index(base, "___"); i >= 0 {
				base = base[:i]
			}
			if base == "pt_regs" || base == "user_pt_regs" {
				out = append(out, registerRead{program: name, strct: s, field: field})
			}
		}
	}
	return out
}

// fieldOf follows a CO-RE accessor ("0:3:1": the pointer's element, then member indices)
// from typ and returns the struct holding the first member named and that member's name.
func fieldOf(typ btf.Type, accessor string) (string, string) {
	idx := strings.Split(accessor, ":")
	typ = btf.UnderlyingType(typ)
	for _, s := range idx[1:] {
		n, _ := strconv.Atoi(s)
		var members []btf.Member
		switch c := typ.(type) {
		case *btf.Struct:
			members = c.Members
		case *btf.Union:
			members = c.Members
		case *btf.Array:
			typ = btf.UnderlyingType(c.Type)
			continue
		default:
			return "", ""
		}
		if n >= len(members) {
			return "", ""
		}
		if members[n].Name != "" {
			return typ.TypeName(), members[n].Name
		}
		typ = btf.UnderlyingType(members[n].Type)
	}
	return "", ""
}
