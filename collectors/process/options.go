package process

import "github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"

// Option changes how New builds the collector.
type Option = hostinfo.Option

// WithHostRoot says where the host's root directory is (collectors.host_root): /etc/passwd,
// /etc/group, the cgroup mount and an executable that /proc/<pid>/exe no longer names are
// read under it.
// "" or "/": crumbs runs on the host.
func WithHostRoot(root string) Option { return hostinfo.WithRoot(root) }
