package hostinfo

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// IDNames maps numeric ids to names from a passwd(5) or group(5) file. It re-reads the file
// when its mtime changes, checking at most once a second. Safe for concurrent use.
type IDNames struct {
	path    string
	recheck time.Duration

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	names   map[uint32]string
}

// NewIDNames returns the names listed in path ("/etc/passwd", "/etc/group"), read on first use.
func NewIDNames(path string) *IDNames {
	return &IDNames{path: path, recheck: time.Second}
}

// Name returns the name of id, or "" when the file does not list it. now is the caller's
// clock, used to decide whether to look at the file again.
func (n *IDNames) Name(id uint32, now time.Time) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.checked) >= n.recheck {
		n.checked = now
		n.refresh()
	}
	return n.names[id]
}

func (n *IDNames) refresh() {
	fi, err := os.Stat(n.path)
	if err != nil {
		n.names, n.mtime = nil, time.Time{}
		return
	}
	if n.names != nil && fi.ModTime().Equal(n.mtime) {
		return
	}
	b, err := os.ReadFile(n.path)
	if err != nil {
		return
	}
	n.names, n.mtime = ParseIDNames(b), fi.ModTime()
}

// ParseIDNames reads "name:x:id:..." lines; the first name listed for an id wins, as with
// getpwuid(3).
func ParseIDNames(b []byte) map[uint32]string {
	names := make(map[uint32]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.SplitN(sc.Bytes(), []byte(":"), 4)
		if len(f) < 3 || len(f[0]) == 0 || f[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(id)]; !dup {
			names[uint32(id)] = string(f[0])
		}
	}
	return names
}
