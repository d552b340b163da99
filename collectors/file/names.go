package file

import (
	"strconv"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// owners names the owner and group of files. Safe for concurrent use.
type owners struct {
	users, groups *hostinfo.IDNames
}

// newOwners names them from the host's /etc/passwd and /etc/group under root.
func newOwners(root hostinfo.Root) owners {
	return owners{users: hostinfo.NewIDNames(root.Path("/etc/passwd")), groups: hostinfo.NewIDNames(root.Path("/etc/group"))}
}

// user returns the name of uid, or "" when /etc/passwd does not list it.
func (o owners) user(uid uint32) string { return o.users.Name(uid, time.Now()) }

// group returns the name of gid, or "" when /etc/group does not list it.
func (o owners) group(gid uint32) string { return o.groups.Name(gid, time.Now()) }
