package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
)

// Largest argv the kernel program can copy per exec (ARGS_MAX_BYTES in bpf/include/process.h).
const maxArgBytesLimit = 16384

// Config configures the process collector; the mapstructure tags are its config keys.
type Config struct {
	// Enabled turns the collector on: the collect stage builds it (Factory.Enabled). Default true.
	Enabled bool `mapstructure:"enabled"`
	// RingBufferBytes is the size of the kernel ring buffer that carries events to user
	// space (the BPF map's max_entries). A power of two and a multiple of the page size.
	// When it is full, events are dropped in the kernel and counted. Default 8 MiB.
	RingBufferBytes int `mapstructure:"ring_buffer_bytes"`
	// MaxArgs caps the number of argv elements kept per exec; more set ArgsTruncated.
	// Default 64.
	MaxArgs int `mapstructure:"max_args"`
	// MaxArgBytes caps the argv bytes the kernel copies per exec (1..16384); more set
	// ArgsTruncated. Default 4096.
	MaxArgBytes int `mapstructure:"max_arg_bytes"`
	// HashWorkers is the number of goroutines computing executables' sha256. Default 2.
	HashWorkers int `mapstructure:"hash_workers"`
	// HashMaxFileBytes is the largest executable that gets a sha256; larger ones are
	// reported without one. Default 256 MiB.
	HashMaxFileBytes int64 `mapstructure:"hash_max_file_bytes"`
	// HashCacheEntries bounds the sha256 cache, keyed by device, inode, change time and size.
	// Default 65536.
	HashCacheEntries int `mapstructure:"hash_cache_entries"`
	// ExcludeExecutables drops the exec, fork and exit events of processes whose executable
	// path matches one of these path.Match patterns (e.g. /usr/lib/systemd/*). Default none.
	ExcludeExecutables []string `mapstructure:"exclude_executables"`
	// ExcludeUsers drops the events of processes running as one of these users (name or
	// numeric uid). Default none.
	ExcludeUsers []string `mapstructure:"exclude_users"`
	// Refuse lists kernel capabilities (as crumbs doctor names them, e.g. tp_btf) to treat
	// as refused by the kernel: the collector takes the fallback it takes when the kernel
	// refuses them (fork events from a raw tracepoint instead of tp_btf), or turns off what
	// needs them. For trying a fallback, or avoiding a kernel's bug. Default none.
	Refuse []string `mapstructure:"refuse"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:          true,
		RingBufferBytes:  8 << 20,
		MaxArgs:          64,
		MaxArgBytes:      4096,
		HashWorkers:      2,
		HashMaxFileBytes: 256 << 20,
		HashCacheEntries: 65536,
	}
}

// Validate reports every invalid field of c, each naming its config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("collectors.process.%s: "+format, append([]any{key}, a...)...))
	}
	page := os.Getpagesize()
	rb := c.RingBufferBytes
	if rb <= 0 || rb&(rb-1) != 0 || rb%page != 0 {
		bad("ring_buffer_bytes", "%d is not a power of two and a multiple of the page size (%d)", rb, page)
	}
	if c.MaxArgs < 1 {
		bad("max_args", "%d is less than 1", c.MaxArgs)
	}
	if c.MaxArgBytes < 1 || c.MaxArgBytes > maxArgBytesLimit {
		bad("max_arg_bytes", "%d is outside 1..%d", c.MaxArgBytes, maxArgBytesLimit)
	}
	if c.HashWorkers < 1 {
		bad("hash_workers", "%d is less than 1", c.HashWorkers)
	}
	if c.HashMaxFileBytes < 0 {
		bad("hash_max_file_bytes", "%d is negative", c.HashMaxFileBytes)
	}
	if c.HashCacheEntries < 1 {
		bad("hash_cache_entries", "%d is less than 1", c.HashCacheEntries)
	}
	for _, pat := range c.ExcludeExecutables {
		if _, err := filepath.Match(pat, ""); err != nil {
			bad("exclude_executables", "%s: %v", pat, err)
		}
	}
	for _, u := range c.ExcludeUsers {
		if u == "" {
			bad("exclude_users", "an empty name")
		}
	}
	if err := kernel.ValidateRefuse("collectors.process.refuse", c.Refuse); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
