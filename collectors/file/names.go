package file

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// idNames maps numeric ids to names from a passwd(5) or group(5) file. It re-reads the file
// when its mtime changes, checking at most once per recheck interval. Safe for concurrent use.
type idNames struct {
	path    string
	recheck time.Duration

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	names   map[uint32]string
}

func newIDNames(path string) *idNames {
	return &idNames{path: path, recheck: time.Second}
}

// name returns the name of id, or "" when the file does not list it.
func (n *idNames) name(id uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if now := time.Now(); now.Sub(n.checked) >= n.recheck {
		n.checked = now
		n.refresh()
	}
	return n.names[id]
}

func (n *idNames) refresh() {
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
	n.names, n.mtime = parseIDNames(b), fi.ModTime()
}

// parseIDNames reads "name:x:id:..." lines; the first name listed for an id wins, as with
// getpwuid(3).
func parseIDNames(b []byte) map[uint32]string {
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

// owners names the owner and group of files.
type owners struct {
	users, groups *idNames
}

func newOwners() owners {
	return owners{users: newIDNames("/etc/passwd"), groups: newIDNames("/etc/group")}
}
