package collectors

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
)

// HostCheck is one thing crumbs doctor checks on this host, and what it found.
type HostCheck struct {
	Check  string `json:"check"`  // "btf", "tp_btf", "clickhouse", ...
	Status string `json:"status"` // ok, refused (a capability the kernel refuses), missing, or a value (lockdown)
	Detail string `json:"detail"` // the kernel's answer, the path, the address, the error
	// Required: crumbs cannot run as configured without it; doctor exits 1 when it is not ok.
	Required bool `json:"required"`
}

// Statuses of a HostCheck besides a plain value.
const (
	CheckOK      = "ok"
	CheckRefused = "refused"
	CheckMissing = "missing"
)

// Failed reports whether c is required and not ok.
func (c HostCheck) Failed() bool { return c.Required && c.Status != CheckOK }

// requiredCapabilities are those every kernel collector needs.
var requiredCapabilities = map[kernel.Capability]bool{kernel.BTF: true, kernel.RingBuffer: true, kernel.Tracepoint: true}

// KernelChecks says what this kernel allows: its release, BTF, lockdown mode, tracefs, and
// each BPF capability with the kernel's answer (each tried by loading and attaching the
// smallest program of its kind).
func KernelChecks() []HostCheck {
	out := []HostCheck{{Check: "kernel", Status: CheckOK, Detail: kernel.Release()}}
	mode, source := kernel.Lockdown()
	lockdown := HostCheck{Check: "lockdown", Status: mode, Detail: source}
	if mode == "" {
		lockdown.Status, lockdown.Detail = "unknown", "securityfs is not mounted and the kernel configuration forces no mode"
	}
	out = append(out, lockdown)
	tracefs := HostCheck{Check: "tracefs", Status: CheckOK, Required: true}
	if ok, at := kernel.TracefsMounted(); ok {
		tracefs.Detail = "mounted at " + at
	} else {
		tracefs.Status, tracefs.Detail = CheckMissing, "not mounted: mount -t tracefs tracefs /sys/kernel/tracing (scripts/ensure-deps.sh does)"
	}
	out = append(out, tracefs)
	for _, p := range kernel.ProbeCapabilities() {
		c := HostCheck{Check: string(p.Capability), Status: CheckOK, Detail: p.Answer, Required: requiredCapabilities[p.Capability]}
		if p.Capability == kernel.BTF && p.Allowed {
			_, c.Detail = kernel.BTFInfo()
		}
		if !p.Allowed {
			c.Status = CheckRefused
			if c.Required {
				c.Status = CheckMissing
			}
		}
		out = append(out, c)
	}
	return out
}

// DiskCheck says how much space is free for dir (or, when it does not exist yet, for the
// nearest directory above it that does): missing below min bytes.
func DiskCheck(check, dir string, min int64) HostCheck {
	c := HostCheck{Check: check, Status: CheckOK, Required: true}
	if dir == "" {
		c.Detail = "not used"
		return c
	}
	at := filepath.Clean(dir)
	var st unix.Statfs_t
	for {
		err := unix.Statfs(at, &st)
		if err == nil {
			break
		}
		parent := filepath.Dir(at)
		if !os.IsNotExist(err) || parent == at {
			c.Status, c.Detail = CheckMissing, fmt.Sprintf("%s: %v", dir, err)
			return c
		}
		at = parent
	}
	free := int64(st.Bavail) * st.Bsize
	c.Detail = fmt.Sprintf("%s: %s free", dir, bytesText(free))
	if at != filepath.Clean(dir) {
		c.Detail += " (on " + at + "; the directory is created at start)"
	}
	if free < min {
		c.Status = CheckMissing
		c.Detail += fmt.Sprintf(", want at least %s", bytesText(min))
	}
	return c
}

// bytesText writes n bytes in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
