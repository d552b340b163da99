package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/threatcrumbs/crumbs/collectors/internal/kernel"
)

// Config configures the network collector; the mapstructure tags are its keys under
// collectors.network.
type Config struct {
	// Enabled turns the collector on: the collect stage builds it (Factory.Enabled). Default true.
	Enabled bool `mapstructure:"enabled"`
	// RingBufferBytes is the size of the kernel ring buffer that carries records to user
	// space (the BPF map's max_entries). A power of two and a multiple of the page size.
	// When it is full, records are dropped in the kernel and counted. Default 4 MiB.
	RingBufferBytes int `mapstructure:"ring_buffer_bytes"`
	// CoalesceWindow is how long a new TCP connection may stay unreported: one that closes
	// within it is reported by a single event, its connect or accept, carrying its bytes and
	// duration; one still open after it is reported then (within 1.5 times the window), and
	// by a close event when it ends. The kernel holds the connection meanwhile, so a short
	// connection is one ring-buffer record. 0 reports every connection when it opens and when
	// it closes. At most update_interval. Default 1s.
	CoalesceWindow time.Duration `mapstructure:"coalesce_window"`
	// Summarize sums the TCP connections that close within coalesce_window in the kernel,
	// per process, direction, remote address and service port (the remote port of an
	// outbound connection, the local port of an inbound one), instead of reporting each by an
	// event: every summary_interval, one connect_summary or accept_summary event per entry
	// carries how many connections it sums (network.packets), their bytes, and the span from
	// the first one's establishment to the last one's close. Connections open longer than the
	// window are reported as without it (connect or accept, updates, close). Needs
	// coalesce_window above 0. Default false: an event per connection.
	Summarize bool `mapstructure:"summarize"`
	// SummaryInterval is the period over which summarize sums short connections. At least 1s.
	// Default 10s.
	SummaryInterval time.Duration `mapstructure:"summary_interval"`
	// UpdateInterval is how long a TCP connection stays open before it gets an update event
	// with its bytes so far, and then again every interval. At least 1s. Default 60s.
	UpdateInterval time.Duration `mapstructure:"update_interval"`
	// UDPFlowInterval is the period over which UDP traffic is summed per (pid, remote
	// endpoint) into one udp_flow event. At least 1s. Default 10s.
	UDPFlowInterval time.Duration `mapstructure:"udp_flow_interval"`
	// DNS turns on DNS answer capture: dns events, and hostnames on connection events.
	// Default true.
	DNS bool `mapstructure:"dns"`
	// ExcludePorts drops events whose local or remote port is listed (1..65535). Default none.
	ExcludePorts []int `mapstructure:"exclude_ports"`
	// ExcludeExecutables drops events of processes whose executable path matches one of
	// these path.Match patterns (e.g. /usr/sbin/*). Default none.
	ExcludeExecutables []string `mapstructure:"exclude_executables"`
	// ExcludeUsers drops events of processes running as one of these users (name or
	// numeric uid). Default none.
	ExcludeUsers []string `mapstructure:"exclude_users"`
	// MaxConnections sizes the kernel maps of open TCP connections and of UDP flows per
	// interval; connections beyond it are not reported and are counted. Default 65536.
	MaxConnections int `mapstructure:"max_connections"`
	// Iterators chooses how open connections' bytes are refreshed and connections open longer
	// than coalesce_window are announced: auto takes the first the kernel allows of map_elem
	// (the map-element iterator, iter/bpf_map_elem, sees every connection: both jobs), tcp
	// (the tcp iterator, iter/tcp, reads the sockets of crumbs' network namespace: bytes;
	// user space announces from its walk of the connection map) and off (the walk only: open
	// connections' bytes are known when they close). map_elem and tcp use only that iterator;
	// a refused iterator falls back to the walk, with a warning. Default auto.
	Iterators string `mapstructure:"iterators"`
	// Refuse lists kernel capabilities (as crumbs doctor names them, e.g. tp_btf,
	// iter/tcp, ring_buffer) to treat as refused by the kernel: the collector takes the
	// fallback it takes when the kernel refuses them, or turns off what needs them. For
	// trying a fallback, or avoiding a kernel's bug. Default none.
	Refuse []string `mapstructure:"refuse"`
}

// The values of iterators.
const (
	IteratorsAuto    = "auto"
	IteratorsMapElem = "map_elem"
	IteratorsTCP     = "tcp"
	IteratorsOff     = "off"
)

// refusals returns the capabilities the configuration refuses, each with the key that does.
func (c Config) refusals() map[kernel.Capability]string {
	out := kernel.Refusals("collectors.network.refuse", c.Refuse)
	key := "collectors.network.iterators: " + c.Iterators
	switch c.Iterators {
	case IteratorsMapElem:
		out[kernel.IterTCP] = key
	case IteratorsTCP:
		out[kernel.IterMapElem] = key
	case IteratorsOff:
		out[kernel.IterTCP], out[kernel.IterMapElem] = key, key
	}
	return out
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:         true,
		RingBufferBytes: 4 << 20,
		CoalesceWindow:  time.Second,
		UpdateInterval:  60 * time.Second,
		UDPFlowInterval: 10 * time.Second,
		SummaryInterval: 10 * time.Second,
		DNS:             true,
		MaxConnections:  65536,
		Iterators:       IteratorsAuto,
	}
}

// Validate reports every invalid field of c, each naming its full config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, value any, format string, a ...any) {
		errs = append(errs, fmt.Errorf("collectors.network.%s: %v: "+format, append([]any{key, value}, a...)...))
	}
	page := os.Getpagesize()
	if rb := c.RingBufferBytes; rb <= 0 || rb&(rb-1) != 0 || rb%page != 0 {
		bad("ring_buffer_bytes", rb, "must be a power of two and a multiple of the page size (%d)", page)
	}
	if c.UpdateInterval < time.Second {
		bad("update_interval", c.UpdateInterval, "must be at least 1s")
	}
	if c.CoalesceWindow < 0 || c.CoalesceWindow > c.UpdateInterval {
		bad("coalesce_window", c.CoalesceWindow, "must be within 0..update_interval (%v)", c.UpdateInterval)
	}
	if c.UDPFlowInterval < time.Second {
		bad("udp_flow_interval", c.UDPFlowInterval, "must be at least 1s")
	}
	if c.SummaryInterval < time.Second {
		bad("summary_interval", c.SummaryInterval, "must be at least 1s")
	}
	if c.Summarize && c.CoalesceWindow == 0 {
		bad("summarize", c.Summarize, "needs coalesce_window above 0: it sums the connections that close within it")
	}
	for _, p := range c.ExcludePorts {
		if p < 1 || p > 65535 {
			bad("exclude_ports", p, "must be within 1..65535")
		}
	}
	for _, pat := range c.ExcludeExecutables {
		if _, err := filepath.Match(pat, ""); err != nil {
			bad("exclude_executables", pat, "%v", err)
		}
	}
	for _, u := range c.ExcludeUsers {
		if u == "" {
			bad("exclude_users", `""`, "must be a user name or uid")
		}
	}
	if c.MaxConnections < 16 || c.MaxConnections > 1<<24 {
		bad("max_connections", c.MaxConnections, "must be within 16..16777216")
	}
	switch c.Iterators {
	case IteratorsAuto, IteratorsMapElem, IteratorsTCP, IteratorsOff:
	default:
		bad("iterators", fmt.Sprintf("%q", c.Iterators), "must be auto, map_elem, tcp or off")
	}
	if err := kernel.ValidateRefuse("collectors.network.refuse", c.Refuse); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
