package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
)

// Config configures the file collector; the mapstructure tags are its config keys (under
// collectors.file.).
type Config struct {
	// Enabled turns the collector on: the collect stage builds it (Factory.Enabled). Default true.
	Enabled bool `mapstructure:"enabled"`
	// Paths are the watched globs (filepath.Match syntax, absolute). A path is watched when a
	// glob matches it or one of its parent directories. Default: binary directories, /etc,
	// application directories (/opt/*/webapps, /opt/*/bin), secrets directories, and where
	// persistence shows: cron's spool, systemd's unit directories, shell start-up files of
	// root and of users. The kernel filters by a glob's first component, and by its second
	// when every glob under that first one names a literal one (/var/spool/cron, /var/log:
	// the rest of /var costs nothing).
	Paths []string `mapstructure:"paths"`
	// ChangeOnlyPaths are globs, with the semantics of Paths, whose changes are reported but
	// which scans leave alone: their contents change by design. Default: /var/log, /var/tmp,
	// /dev/shm and the shell histories of root and of users (log and history tampering,
	// files dropped in world-writable places).
	ChangeOnlyPaths []string `mapstructure:"change_only_paths"`
	// SensitiveReads are globs (filepath.Match syntax, absolute) of files whose opening for
	// reading is reported (action read, once per process and file): credentials and private
	// keys. The kernel filters opens by the glob's last directory and the start of its name
	// (up to its first wildcard), so each glob's last directory must be a literal name and
	// both must be under 32 bytes; user space matches the full glob. Empty turns reads off.
	// Default: /etc/shadow and gshadow (and their backups), /etc/security/opasswd, SSH private
	// keys of root and of users (id_*), SSH host keys and /etc/ssl/private.
	SensitiveReads []string `mapstructure:"sensitive_reads"`
	// ExcludePaths are globs, with the semantics of Paths, whose changes are not reported and
	// whose files are not scanned. Default none.
	ExcludePaths []string `mapstructure:"exclude_paths"`
	// ExcludeExecutables are globs of executable paths whose changes are not reported.
	// Default none.
	ExcludeExecutables []string `mapstructure:"exclude_executables"`
	// ExcludeUsers are user names or numeric uids whose changes are not reported. Default none.
	ExcludeUsers []string `mapstructure:"exclude_users"`
	// RingBufferBytes is the size of the kernel ring buffer that carries events to user
	// space. A power of two and a multiple of the page size. When it is full, events are
	// dropped in the kernel and counted. Default 4 MiB.
	RingBufferBytes int `mapstructure:"ring_buffer_bytes"`
	// ScanInterval is the time between scheduled scans; 0 turns them off. Default 1h.
	ScanInterval time.Duration `mapstructure:"scan_interval"`
	// ScanOnStart runs a scan when the collector starts. Default true.
	ScanOnStart bool `mapstructure:"scan_on_start"`
	// StateDir holds the last scan's results, the baseline the next scan is diffed against.
	// Default /var/lib/crumbs/scan.
	StateDir string `mapstructure:"state_dir"`
	// HashMaxFileBytes is the largest file that gets a sha256, in scans and in change events;
	// larger ones are reported without one. Default 256 MiB.
	HashMaxFileBytes int64 `mapstructure:"hash_max_file_bytes"`
	// Refuse lists kernel capabilities (as crumbs doctor names them, e.g. tracepoint) to
	// treat as refused by the kernel: the collector turns off what needs them (scans go on).
	// For trying what a host that refuses them gets, or avoiding a kernel's bug. Default none.
	Refuse []string `mapstructure:"refuse"`
}

// DefaultPaths are the globs watched by default.
var DefaultPaths = []string{
	"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin",
	"/etc", "/opt/*/webapps", "/opt/*/bin",
	"/etc/ssl/private", "/root/.ssh", "/home/*/.ssh",
	"/var/spool/cron", "/usr/lib/systemd", "/usr/local/lib/systemd", "/root/.config/systemd", "/home/*/.config/systemd",
	"/root/.bashrc", "/root/.bash_profile", "/root/.bash_login", "/root/.profile", "/root/.bash_logout", "/root/.zshrc",
	"/home/*/.bashrc", "/home/*/.bash_profile", "/home/*/.bash_login", "/home/*/.profile", "/home/*/.bash_logout", "/home/*/.zshrc",
}

// DefaultChangeOnlyPaths are the globs whose changes are reported but which are not scanned,
// by default.
var DefaultChangeOnlyPaths = []string{
	"/var/log", "/var/tmp", "/dev/shm",
	"/root/.bash_history", "/root/.zsh_history", "/home/*/.bash_history", "/home/*/.zsh_history",
}

// DefaultSensitiveReads are the globs whose reads are reported by default.
var DefaultSensitiveReads = []string{
	"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/security/opasswd",
	"/root/.ssh/id_*", "/home/*/.ssh/id_*", "/etc/ssh/ssh_host_*_key", "/etc/ssl/private/*",
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:          true,
		Paths:            append([]string(nil), DefaultPaths...),
		ChangeOnlyPaths:  append([]string(nil), DefaultChangeOnlyPaths...),
		SensitiveReads:   append([]string(nil), DefaultSensitiveReads...),
		RingBufferBytes:  4 << 20,
		ScanInterval:     time.Hour,
		ScanOnStart:      true,
		StateDir:         "/var/lib/crumbs/scan",
		HashMaxFileBytes: 256 << 20,
	}
}

// Validate reports every invalid field of c, each naming its full config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("collectors.file.%s: "+format, append([]any{key}, a...)...))
	}
	if c.Enabled && len(c.Paths) == 0 {
		bad("paths", "empty: must name at least one glob")
	}
	for _, list := range []struct {
		key   string
		globs []string
	}{{"paths", c.Paths}, {"change_only_paths", c.ChangeOnlyPaths}, {"exclude_paths", c.ExcludePaths}, {"exclude_executables", c.ExcludeExecutables}} {
		for _, g := range list.globs {
			if err := checkGlob(g); err != nil {
				bad(list.key, "%q: %v", g, err)
			}
		}
	}
	for _, g := range c.SensitiveReads {
		if err := checkGlob(g); err != nil {
			bad("sensitive_reads", "%q: %v", g, err)
			continue
		}
		if _, err := readFilterKey(g); err != nil {
			bad("sensitive_reads", "%q: %v", g, err)
		}
	}
	for _, u := range c.ExcludeUsers {
		if strings.TrimSpace(u) == "" {
			bad("exclude_users", "empty user name")
		}
	}
	page := os.Getpagesize()
	if rb := c.RingBufferBytes; rb <= 0 || rb&(rb-1) != 0 || rb%page != 0 {
		bad("ring_buffer_bytes", "%d: must be a power of two and a multiple of the page size (%d)", rb, page)
	}
	if c.ScanInterval < 0 || (c.ScanInterval > 0 && c.ScanInterval < time.Minute) {
		bad("scan_interval", "%s: must be 0 (off) or at least 1m", c.ScanInterval)
	}
	if c.StateDir == "" {
		bad("state_dir", "empty: must name a directory")
	}
	if c.HashMaxFileBytes < 0 {
		bad("hash_max_file_bytes", "%d: must not be negative", c.HashMaxFileBytes)
	}
	if err := kernel.ValidateRefuse("collectors.file.refuse", c.Refuse); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkGlob(g string) error {
	if !filepath.IsAbs(g) {
		return errors.New("must be an absolute path")
	}
	if _, err := filepath.Match(g, ""); err != nil {
		return fmt.Errorf("bad glob: %w", err)
	}
	return nil
}
