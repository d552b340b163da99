package collectors

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Report says what a collector does on this host: each feature's way, what is lost, or why
// the collector cannot run (kernel.Report).
type Report = kernel.Report

// FeatureReport says how a collector does one of its jobs on this host.
type FeatureReport = kernel.FeatureReport

// Refusal is why a kernel capability was not used.
type Refusal = kernel.Refusal

// Unavailable is the error a collector's constructor returns when it cannot run on this
// host; its Report says why.
type Unavailable = kernel.Unavailable

// Feature states (FeatureReport.State).
const (
	StateFull     = kernel.Full
	StateFallback = kernel.Fallback
	StateOff      = kernel.Off
)

// Collector is a collector as the collect stage runs it; its Factory builds it.
type Collector interface {
	// Run collects until ctx is done and calls emit, from one goroutine, with each event (a
	// *schemas.<Kind>Event, which the serde encodes; emit must not keep it once it returns, as
	// a collector may reuse it), then releases the collector and returns.
	// While emit blocks, the collector reads nothing (the kernel ring buffer absorbs what
	// it can, and counts what it drops). It returns an error only when collecting fails for
	// another reason than ctx being done. A Collector runs once.
	Run(ctx context.Context, emit func(event any)) error
	// Report says what the collector does on this host.
	Report() Report
	// KernelDrops returns the records the kernel dropped so far because the ring buffer was
	// full (0 for a collector without kernel programs).
	KernelDrops() uint64
	// Close releases a collector that will not Run (crumbs doctor builds and closes them).
	Close()
}

// Deps is what a factory's constructor takes besides the collector's configuration.
type Deps struct {
	Host schemas.Host
	// HostRoot is where the host's root directory is in this process's view (collectors.host_root):
	// "" or "/" on the host, "/host" in a container that mounts it there. Collectors read the
	// host's files named in events, watched paths, passwd and group files, libraries and the
	// cgroup mount under it, and report host paths.
	HostRoot string
	Log      *slog.Logger
	// Built holds the collectors built before this one: the system collector takes network
	// totals from the one that is a NetTotals.
	Built []Collector
}

// Factory declares a collector once; the collect stage and crumbs doctor loop over the
// factories (collectors/registry) instead of naming each collector.
type Factory struct {
	// Name is the collector's name: its configuration key under collectors., its event kind
	// (its events go to crumbs.raw.<Name>) and its metrics' collector label.
	Name string
	// Schema is the full name of its events' Avro schema: its kind's (schemas.Kinds).
	Schema string
	// DefaultConfig returns its configuration with the documented defaults.
	DefaultConfig func() any
	// Enabled reports whether its configuration turns it on.
	Enabled func(cfg any) bool
	// New builds it from its configuration (DefaultConfig's type). The kernel programs are
	// loaded and attached from then on. When it cannot run on this host, New returns an
	// *Unavailable.
	New func(cfg any, deps Deps) (Collector, error)
}

// NewFactory builds the Factory of a collector whose configuration has type C.
func NewFactory[C any](name string, defaults func() C, enabled func(C) bool, build func(C, Deps) (Collector, error)) Factory {
	typed := func(cfg any) (C, error) {
		c, ok := cfg.(C)
		if !ok {
			return c, fmt.Errorf("collectors.%s: configuration of type %T, want %T", name, cfg, c)
		}
		return c, nil
	}
	return Factory{
		Name:          name,
		Schema:        schemaOf(name),
		DefaultConfig: func() any { return defaults() },
		Enabled: func(cfg any) bool {
			c, err := typed(cfg)
			return err == nil && enabled(c)
		},
		New: func(cfg any, deps Deps) (Collector, error) {
			c, err := typed(cfg)
			if err != nil {
				return nil, err
			}
			if deps.Log == nil {
				deps.Log = slog.New(slog.DiscardHandler)
			}
			return build(c, deps)
		},
	}
}

// schemaOf is the schema of the events of the kind a collector is named for.
func schemaOf(name string) string {
	if k, ok := schemas.Kinds.Lookup(name); ok {
		return k.Codec.Schema
	}
	return ""
}

// LogReport logs each degradation of a report once (see kernel.LogReport); log should name
// the collector.
func LogReport(log *slog.Logger, r Report) { kernel.LogReport(log, r) }
