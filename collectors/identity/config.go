package identity

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
)

// Config configures the identity collector; the mapstructure tags are its config keys
// (under collectors.identity).
type Config struct {
	// Enabled turns the collector on: the collect stage builds it (Factory.Enabled). Default true.
	Enabled bool `mapstructure:"enabled"`
	// LibPAMPath is the Linux-PAM library whose functions are probed. Empty (the default)
	// finds libpam.so.0 through the dynamic linker's cache (ldconfig -p); when none is
	// found, PAM events are not collected and a warning is logged. A path that is set but
	// cannot be probed is an error.
	LibPAMPath string `mapstructure:"libpam_path"`
	// RingBufferBytes is the size of the kernel ring buffer that carries events to user
	// space (the BPF map's max_entries). A power of two and a multiple of the page size.
	// When it is full, events are dropped in the kernel and counted. Default 1 MiB.
	RingBufferBytes int `mapstructure:"ring_buffer_bytes"`
	// ExcludeUsers lists user names whose events are not reported: an event is dropped
	// (and counted in Stats.Filtered) when the user who authenticates or acts
	// (identity.user) is one of them. Default none.
	ExcludeUsers []string `mapstructure:"exclude_users"`
	// Refuse lists kernel capabilities (as crumbs doctor names them, e.g. uprobe) to treat
	// as refused by the kernel: the collector turns off what needs them (with uprobe,
	// authentications and sessions) and the rest goes on. For trying what a host that
	// refuses them gets, or avoiding a kernel's bug. Default none.
	Refuse []string `mapstructure:"refuse"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:         true,
		RingBufferBytes: 1 << 20,
	}
}

// Validate reports every invalid field of c, each naming its config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("collectors.identity.%s: "+format, append([]any{key}, a...)...))
	}
	page := os.Getpagesize()
	rb := c.RingBufferBytes
	if rb <= 0 || rb&(rb-1) != 0 || rb%page != 0 {
		bad("ring_buffer_bytes", "%d: must be a power of two and a multiple of the page size (%d)", rb, page)
	}
	if c.LibPAMPath != "" && !strings.HasPrefix(c.LibPAMPath, "/") {
		bad("libpam_path", "%q: must be an absolute path", c.LibPAMPath)
	}
	for i, u := range c.ExcludeUsers {
		if strings.TrimSpace(u) == "" {
			bad("exclude_users", "entry %d is empty", i)
		}
	}
	if err := kernel.ValidateRefuse("collectors.identity.refuse", c.Refuse); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
