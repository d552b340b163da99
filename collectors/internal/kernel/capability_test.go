package kernel

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestAnswer: a program's load error, classified into the capability really refused and the
// kernel's answer.
func TestAnswer(t *testing.T) {
	lockdown := ""
	if mode, _ := Lockdown(); mode != "" && mode != "none" {
		lockdown = " (lockdown: " + mode + ")"
	}
	verifier := func(cause error, lines ...string) error {
		return fmt.Errorf("load program: %w", &ebpf.VerifierError{Cause: cause, Log: lines})
	}
	tests := []struct {
		name string
		err  error
		want Refusal
	}{
		{name: "refused before verification", err: fmt.Errorf("load program: %w", unix.EPERM),
			want: Refusal{Capability: IterMapElem, Program: "p", Answer: "EPERM: operation not permitted" + lockdown}},
		{name: "a helper this kernel lacks", err: verifier(unix.EINVAL, "0: (85) call unknown#164", "invalid func unknown#175"),
			want: Refusal{Capability: "helper bpf_task_pt_regs", Program: "p", Answer: "verifier: invalid func unknown#175"}},
		{name: "a helper this program type cannot call", err: verifier(unix.EINVAL, "program of this type cannot use helper bpf_get_current_task_btf#158"),
			want: Refusal{Capability: "helper bpf_get_current_task_btf", Program: "p", Answer: "verifier: program of this type cannot use helper bpf_get_current_task_btf#158"}},
		{name: "a CO-RE relocation this kernel cannot satisfy", err: verifier(unix.EINVAL, "12: (85) call unknown#195896080", "invalid func unknown#195896080"),
			want: Refusal{Capability: BTF, Program: "p", Answer: "a CO-RE relocation does not match this kernel's types"}},
		{name: "any other verifier verdict", err: verifier(unix.EACCES, "R1 invalid mem access 'scalar'", "processed 7 insns"),
			want: Refusal{Capability: IterMapElem, Program: "p", Answer: "verifier: processed 7 insns"}},
		{name: "another error", err: fmt.Errorf("map fd: %w", unix.EBADF),
			want: Refusal{Capability: IterMapElem, Program: "p", Answer: "map fd: bad file descriptor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, answer(IterMapElem, "p", tt.err)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}
