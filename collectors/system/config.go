package system

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Config configures the system collector; the mapstructure tags are its config keys (under
// collectors.system).
type Config struct {
	// Enabled turns the collector on: the collect stage builds it (Factory.Enabled). Default true.
	Enabled bool `mapstructure:"enabled"`
	// Interval is how often a sample is taken and its events emitted. Default 10s; at
	// least 1s.
	Interval time.Duration `mapstructure:"interval"`
	// MaxServices caps the services reported per interval, largest CPU use first, then
	// largest memory; the rest are counted in Stats.ServicesOmitted. Default 100.
	MaxServices int `mapstructure:"max_services"`
	// CgroupRoot is the mount point of the cgroup v2 hierarchy. Empty (the default) uses
	// /sys/fs/cgroup when it is cgroup v2, else /sys/fs/cgroup/unified (the v2 part of a
	// hybrid hierarchy).
	CgroupRoot string `mapstructure:"cgroup_root"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:     true,
		Interval:    10 * time.Second,
		MaxServices: 100,
	}
}

// Validate reports every invalid field of c, each naming its config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("collectors.system.%s: "+format, append([]any{key}, a...)...))
	}
	if c.Interval < time.Second {
		bad("interval", "%v: must be at least 1s", c.Interval)
	}
	if c.MaxServices < 0 {
		bad("max_services", "%d: must not be negative", c.MaxServices)
	}
	if c.CgroupRoot != "" && !filepath.IsAbs(c.CgroupRoot) {
		bad("cgroup_root", "%q: must be an absolute path", c.CgroupRoot)
	}
	return errors.Join(errs...)
}
