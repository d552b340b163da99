package identity

import "github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"

// Option changes how New builds the collector.
type Option = hostinfo.Option

// WithHostRoot says where the host's root directory is (collectors.host_root): /etc/passwd,
// the cgroup mount, the linker's cache and libpam are read under it; reports name the host's
// libpam path.
// "" or "/": crumbs runs on the host.
func WithHostRoot(root string) Option { return hostinfo.WithRoot(root) }
