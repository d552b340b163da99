package identity

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// FuzzDecodeRecord feeds arbitrary ring-buffer records to the identity decoder (PAM calls,
// credential changes, set-user-id execs), built without the kernel: a bad record is an
// error, never a panic.
func FuzzDecodeRecord(f *testing.F) {
	add := func(v any) {
		b, err := binary.Append(nil, binary.LittleEndian, v)
		if err != nil {
			f.Fatalf("encode %T: %v", v, err)
		}
		f.Add(b)
	}
	pam := identityPamEvent{Kind: uint32(identityRecordKindRECORD_PAM), Op: uint32(identityPamOpPAM_OP_AUTHENTICATE), Pid: 1, Known: 1}
	copy(pam.Items.Service[:], []int8{'s', 's', 'h', 'd'})
	copy(pam.Items.User[:], []int8{'r', 'o', 'o', 't'})
	add(&pam)
	add(&identityCredsEvent{Kind: uint32(identityRecordKindRECORD_CREDS), SyscallNr: 105, Pid: 2, Old: identityCredIds{Uid: 1000, Euid: 1000}})
	exec := identitySetuidExecEvent{Kind: uint32(identityRecordKindRECORD_SETUID_EXEC), Pid: 3, Creds: identityCredIds{Uid: 1000, Euid: 0}}
	copy(exec.Path[:], []int8{'/', 'b', 'i', 'n', '/', 's', 'u'})
	add(&exec)
	f.Add([]byte{9, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		proc := hostinfo.Proc{Root: "/nonexistent/proc"} // no process to read: records only
		c := &Collector{
			proc:    proc,
			cgroups: &hostinfo.CgroupCache{Proc: proc, CgroupRoot: "/nonexistent/cgroup", Max: 16},
			users:   hostinfo.NewIDNames("/nonexistent/passwd"),
			repeats: newThreadRepeats(threadRepeatWindow, 16),
		}
		ev, err := c.decode(raw, time.Now())
		if err == nil && ev != nil && ev.Action == "" {
			t.Errorf("event without an action: %+v", ev)
		}
	})
}
