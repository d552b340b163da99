package hostinfo

// Option changes how a collector's New builds it; the process, file, network and identity
// collectors take the same options, each naming them as its own (type Option =
// hostinfo.Option) with a WithHostRoot that says what that collector reads under the root.
type Option func(*Options)

// Options are what a collector's options set.
type Options struct {
	Root Root // collectors.host_root
}

// WithRoot sets where the host's root directory is (collectors.host_root).
func WithRoot(root string) Option { return func(o *Options) { o.Root = Root(root) } }

// Apply returns the options opts set, in order.
func Apply(opts []Option) Options {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	return o
}
