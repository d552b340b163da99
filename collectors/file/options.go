package file

import "github.com/threatcrumbs/crumbs/collectors/internal/hostinfo"

// Option changes how New and NewScanner build the collector and its scanner.
type Option = hostinfo.Option

// WithHostRoot says where the host's root directory is (collectors.host_root): the watched
// paths, the files events name and /etc/passwd and /etc/group are read under it, the paths
// reported are the host's. "" or "/": crumbs runs on the host.
func WithHostRoot(root string) Option { return hostinfo.WithRoot(root) }
