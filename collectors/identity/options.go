package identity

import "github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"

// Option changes how New builds the collector.
type Option func(*options)

type options struct{ root hostinfo.Root }

func newOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithHostRoot says where the host's root directory is (collectors.host_root): /etc/passwd,
// the cgroup mount, the linker's cache and libpam are read under it; reports name the host's
// libpam path.
// "" or "/": crumbs runs on the host.
func WithHostRoot(root string) Option { return func(o *options) { o.root = hostinfo.Root(root) } }
