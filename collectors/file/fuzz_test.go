package file

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

// FuzzDecodeRecord feeds arbitrary ring-buffer records to the file decoder, built without
// the kernel: a bad record is an error, never a panic, and a path it returns is absolute and
// clean, whatever the record's lengths and components say.
func FuzzDecodeRecord(f *testing.F) {
	add := func(hdr fileFileEvent, data string) {
		b, err := binary.Append(nil, binary.LittleEndian, &hdr)
		if err != nil {
			f.Fatalf("encode file record: %v", err)
		}
		f.Add(append(b, data...))
	}
	// /etc/passwd written by /usr/bin/vi with argv "vi passwd": directory components leaf
	// first, then the string the process passed, the executable, argv.
	add(fileFileEvent{Op: uint32(fileFileOpFILE_OP_WRITE), Pid: 1, DirDepth: [2]uint32{1, 0}, DirLen: [2]uint32{4, 0},
		StrLen: [2]uint32{7, 0}, ExeDepth: 3, ExeLen: 11, ArgsLen: 10},
		"etc\x00passwd\x00vi\x00bin\x00usr\x00vi\x00passwd\x00")
	add(fileFileEvent{Op: uint32(fileFileOpFILE_OP_RENAME), DirDepth: [2]uint32{1, 1}, DirLen: [2]uint32{4, 4},
		StrLen: [2]uint32{2, 2}, ExeLen: 0}, "tmp\x00a\x00tmp\x00b\x00")
	add(fileFileEvent{Op: 99}, "")
	f.Fuzz(func(t *testing.T, raw []byte) {
		proc := hostinfo.Proc{Root: "/nonexistent/proc"} // no process to read: records only
		c := &Collector{
			owners:  owners{users: hostinfo.NewIDNames("/nonexistent/passwd"), groups: hostinfo.NewIDNames("/nonexistent/group")},
			cgroups: &hostinfo.CgroupCache{Proc: proc, CgroupRoot: "/nonexistent/cgroup", Max: 16},
		}
		ch, err := c.decode(raw, time.Now())
		if err != nil {
			return
		}
		if ch.ev == nil {
			t.Fatal("decode returned neither an event nor an error")
		}
		for _, p := range []string{ch.ev.File.Path, ch.ev.File.NewPath} {
			if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
				t.Errorf("path %q is not absolute and clean", p)
			}
		}
	})
}
