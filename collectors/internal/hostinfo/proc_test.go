package hostinfo

import (
	"os"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		max       int
		want      []string
		truncated bool
	}{
		{name: "empty", in: "", want: nil},
		{name: "one", in: "ls\x00", want: []string{"ls"}},
		{name: "empty arg kept", in: "echo\x00\x00x\x00", want: []string{"echo", "", "x"}},
		{name: "cut mid-arg", in: "echo\x00hel", want: []string{"echo", "hel"}},
		{name: "capped", in: "a\x00b\x00c\x00", max: 2, want: []string{"a", "b"}, truncated: true},
		{name: "exactly max", in: "a\x00b\x00", max: 2, want: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := SplitArgs([]byte(tt.in), tt.max)
			if diff := cmp.Diff(tt.want, got); diff != "" || truncated != tt.truncated {
				t.Errorf("SplitArgs (-want +got):\n%s\ntruncated: want %v, got %v", diff, tt.truncated, truncated)
			}
		})
	}
}

// TestProc reads this test process's own /proc entry, and one of a pid that does not exist.
func TestProc(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cgroup, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Exe, Cwd, CgroupPath string
		Args                 []string
		Cgroup               Cgroup
	}
	read := func(p Proc, pid int) result {
		return result{Exe: p.Exe(pid), Cwd: p.Cwd(pid), CgroupPath: p.CgroupPath(pid), Args: p.Args(pid), Cgroup: p.Cgroup(pid)}
	}
	tests := []struct {
		name string
		proc Proc
		pid  int
		want result
	}{
		{
			name: "self",
			proc: Proc{Root: "/proc"},
			pid:  os.Getpid(),
			want: result{Exe: exe, Cwd: cwd, CgroupPath: CgroupPath(string(cgroup)), Args: os.Args, Cgroup: ParseCgroup(string(cgroup))},
		},
		{name: "gone", proc: Proc{Root: "/proc"}, pid: 1 << 30},
		{name: "no proc", proc: Proc{Root: t.TempDir()}, pid: os.Getpid()},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+strconv.Itoa(tt.pid), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, read(tt.proc, tt.pid)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
