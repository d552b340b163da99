package system

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/stat's CPU times (USER_HZ, 100 on every Linux ABI crumbs
// runs on).
const userHZ = 100

// tcpEstablished is TCP_ESTABLISHED as /proc/net/tcp writes it.
const tcpEstablished = "01"

// hostCPUSeconds returns the busy CPU time of the host from /proc/stat's "cpu" line: all
// times but idle and iowait (guest time is already inside user and nice).
func hostCPUSeconds(stat []byte) (float64, bool) {
	for line := range bytes.SplitSeq(stat, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var busy uint64
		for i, v := range f[1:] {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest, guest_nice
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, false
			}
			busy += n
		}
		return float64(busy) / userHZ, true
	}
	return 0, false
}

// memUsedBytes returns MemTotal minus MemAvailable from /proc/meminfo.
func memUsedBytes(meminfo []byte) (int64, bool) {
	var total, avail int64
	var haveTotal, haveAvail bool
	for line := range bytes.SplitSeq(meminfo, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total, haveTotal = n*1024, true
		case "MemAvailable:":
			avail, haveAvail = n*1024, true
		}
	}
	if !haveTotal || !haveAvail {
		return 0, false
	}
	return total - avail, true
}

// netDevBytes sums the bytes received and sent by every interface but loopback in
// /proc/net/dev.
func netDevBytes(dev []byte) (rx, tx uint64) {
	for line := range bytes.SplitSeq(dev, []byte("\n")) {
		name, rest, ok := strings.Cut(string(line), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rx += r
		tx += t
	}
	return rx, tx
}

// establishedInodes adds the socket inodes of the established connections listed in a
// /proc/net/tcp or tcp6 file to into, and returns how many it added.
func establishedInodes(tcp []byte, into map[uint64]struct{}) int {
	n := 0
	for i, line := range bytes.Split(tcp, []byte("\n")) {
		f := strings.Fields(string(line))
		if i == 0 || len(f) < 10 || f[3] != tcpEstablished {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			continue
		}
		if _, dup := into[ino]; !dup {
			into[ino] = struct{}{}
			n++
		}
	}
	return n
}

// tcpCurrEstab returns the TCP MIB's CurrEstab from /proc/net/snmp: the connections in
// ESTABLISHED or CLOSE_WAIT.
func tcpCurrEstab(snmp []byte) (int64, bool) {
	var header []string
	for line := range bytes.SplitSeq(snmp, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, name := range header {
			if name == "CurrEstab" && i < len(f) {
				n, err := strconv.ParseInt(f[i], 10, 64)
				return n, err == nil
			}
		}
		return 0, false
	}
	return 0, false
}

// countProcesses counts the numeric entries of /proc.
func countProcesses(proc string) int64 {
	d, err := os.Open(proc)
	if err != nil {
		return 0
	}
	defer d.Close()
	var n int64
	for {
		names, err := d.Readdirnames(512)
		for _, name := range names {
			if name != "" && name[0] >= '0' && name[0] <= '9' {
				n++
			}
		}
		if err != nil {
			return n
		}
	}
}

// socketsOf counts the file descriptors of pid that are sockets in set.
func socketsOf(proc string, pid int, set map[uint64]struct{}) int64 {
	dir := proc + "/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return 0
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var n int64
	for _, name := range names {
		target, err := os.Readlink(dir + "/" + name)
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(target[len("socket:["):], "]"), 10, 64)
		if err != nil {
			continue
		}
		if _, ok := set[ino]; ok {
			n++
		}
	}
	return n
}

// rssBytes returns the resident set of pid from /proc/<pid>/statm.
func rssBytes(proc string, pid int, pageSize int64) int64 {
	b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * pageSize
}

// parsePIDs reads a cgroup.procs file.
func parsePIDs(b []byte) []int {
	var pids []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// keyValue returns the value of key in a "key value" per line file such as cpu.stat.
func keyValue(b []byte, key string) (uint64, bool) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
