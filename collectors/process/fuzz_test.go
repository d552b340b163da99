package process

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// FuzzDecodeRecord feeds arbitrary ring-buffer records to the decoder, built as Run builds it
// (hasher included: an exec record looks its executable up in the hash cache) but without
// the kernel: bad records are errors, never panics. The regression inputs are under
// testdata/fuzz/FuzzDecodeRecord.
func FuzzDecodeRecord(f *testing.F) {
	hdr := processExecEvent{Kind: uint32(processEventKindEVENT_KIND_EXEC), CwdLen: 4, ExeLen: 7, FilenameLen: 4, ArgsLen: 4}
	exec, err := binary.Append(nil, binary.LittleEndian, &hdr)
	if err != nil {
		f.Fatalf("encode exec record: %v", err)
	}
	f.Add(append(exec, "tmp\x00ls\x00bin\x00/ls\x00ls\x00-l"...))
	fork, err := binary.Append(nil, binary.LittleEndian, &processForkEvent{Kind: uint32(processEventKindEVENT_KIND_FORK), ParentPid: 1, ChildPid: 2})
	if err != nil {
		f.Fatalf("encode fork record: %v", err)
	}
	f.Add(fork)
	exit, err := binary.Append(nil, binary.LittleEndian, &processExitEvent{Kind: uint32(processEventKindEVENT_KIND_EXIT), Pid: 2, ExitCode: 256})
	if err != nil {
		f.Fatalf("encode exit record: %v", err)
	}
	f.Add(exit)
	f.Add([]byte{2, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg := DefaultConfig()
		proc := hostinfo.Proc{Root: "/nonexistent/proc"} // no process to read: records only
		c := &Collector{
			cfg:     cfg,
			proc:    proc,
			cgroups: &hostinfo.CgroupCache{Proc: proc, CgroupRoot: "/nonexistent/cgroup", Max: 16},
			table:   newProcessTable(16, time.Second, proc),
			users:   hostinfo.NewIDNames("testdata/passwd"),
			groups:  hostinfo.NewIDNames("testdata/passwd"),
		}
		c.hasher = &fileHasher{cache: newHashCache(16), maxBytes: cfg.HashMaxFileBytes, counters: &c.hashCounters}
		p, err := c.decode(raw, time.Now())
		if err == nil && p.ev == nil {
			t.Error("decode returned neither an event nor an error")
		}
	})
}
