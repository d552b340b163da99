package containers

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Reasons an event went out without its container's metadata
// (crumbs_collector_container_metadata_missing_total{reason}).
const (
	MissingPending   = "pending"    // asked; the answer was not there yet
	MissingNoRuntime = "no_runtime" // no runtime socket answered at start
	MissingNotFound  = "not_found"  // no runtime knows the container
	MissingQueueFull = "queue_full" // too many containers waiting to be asked
)

// Resolver answers, without blocking, what is known of a container id, and asks the runtimes
// in the background about ids it does not know yet. Safe for concurrent use; Run owns its
// one goroutine's work.
type Resolver struct {
	cfg      Config
	log      *slog.Logger
	runtimes []Runtime
	pods     *PodWatch // nil outside Kubernetes
	status   Status

	mu      sync.Mutex
	lru     *list.List // of *entry, most recently used first
	byID    map[string]*list.Element
	pending map[string]bool
	queue   chan string

	missing         *prometheus.CounterVec
	lookups         *prometheus.CounterVec
	noRuntimeLogged atomic.Bool
}

type entry struct {
	id    string
	c     *schemas.Container // nil: no runtime knows it
	at    time.Time
	podRV uint64 // the pod watch's version c's pod was merged at
}

// Status says what the resolver can ask on this host (crumbs doctor, the start log).
type Status struct {
	Runtimes   []string // runtime@socket that answered
	Refused    []string // runtime@socket: why not
	Kubernetes string   // "off", or the API server and node watched
}

// String is the one line crumbs doctor prints.
func (s Status) String() string {
	var b strings.Builder
	if len(s.Runtimes) == 0 {
		b.WriteString("no container runtime socket answered: events carry container ids only")
	} else {
		b.WriteString("asks " + strings.Join(s.Runtimes, ", "))
	}
	if len(s.Refused) > 0 {
		b.WriteString("; not: " + strings.Join(s.Refused, ", "))
	}
	b.WriteString("; kubernetes: " + s.Kubernetes)
	return b.String()
}

// New finds the runtime sockets that answer and, in Kubernetes, prepares the pod watch.
// A socket that is missing or does not answer is left out and said in Status; New fails only
// on an invalid configuration. reg may be nil.
func New(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{cfg: cfg, log: log, lru: list.New(), byID: map[string]*list.Element{}, pending: map[string]bool{},
		queue: make(chan string, cfg.QueueSize),
		missing: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crumbs_collector_container_metadata_missing_total",
			Help: "Events of a container that went out without its name, image and pod, by reason."}, []string{"reason"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crumbs_collector_container_lookups_total",
			Help: "Questions to the container runtimes, by runtime and result (found, not_found, error)."}, []string{"runtime", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{r.missing, r.lookups} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register container metadata metrics: %w", err)
			}
		}
	}
	for _, s := range cfg.Sockets {
		name, path, _ := parseSocket(s)
		octx, cancel := context.WithTimeout(ctx, cfg.LookupTimeout)
		rt, err := Open(octx, name, path)
		cancel()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.status.Refused = append(r.status.Refused, name+"@"+path+": no socket")
			continue
		case err != nil:
			r.status.Refused = append(r.status.Refused, name+"@"+path+": "+err.Error())
			continue
		}
		r.runtimes = append(r.runtimes, rt)
		r.status.Runtimes = append(r.status.Runtimes, name+"@"+path)
	}
	r.status.Kubernetes = "off"
	if k, on := cfg.Kubernetes.resolve(); on {
		pw, err := NewPodWatch(k, log)
		if err != nil {
			r.status.Kubernetes = "off: " + err.Error()
			log.Warn("kubernetes pod metadata off", "error", err)
		} else {
			r.pods = pw
			r.status.Kubernetes = "pods of node " + k.NodeName + " from " + k.APIServer
		}
	}
	if len(r.runtimes) == 0 {
		log.Warn("no container runtime socket answered: events carry container ids without name, image or pod",
			"tried", strings.Join(r.status.Refused, "; "))
	} else {
		log.Info("container metadata", "runtimes", strings.Join(r.status.Runtimes, ", "), "kubernetes", r.status.Kubernetes)
	}
	return r, nil
}

// Status says what the resolver asks.
func (r *Resolver) Status() Status { return r.status }

// Lookup returns what is known of the container with the id, or nil, and never blocks: an
// id not known yet is queued for Run to ask, and its event goes out without metadata
// (counted by reason).
func (r *Resolver) Lookup(id string) *schemas.Container {
	if r == nil || id == "" {
		return nil
	}
	if len(r.runtimes) == 0 {
		r.missing.WithLabelValues(MissingNoRuntime).Inc()
		return nil
	}
	now := time.Now()
	r.mu.Lock()
	if el, ok := r.byID[id]; ok {
		e := el.Value.(*entry)
		if e.c != nil || now.Sub(e.at) < r.cfg.NegativeTTL {
			r.lru.MoveToFront(el)
			c := r.withPod(e)
			r.mu.Unlock()
			if c == nil {
				r.missing.WithLabelValues(MissingNotFound).Inc()
			}
			return c
		}
	}
	if r.pending[id] {
		r.mu.Unlock()
		r.missing.WithLabelValues(MissingPending).Inc()
		return nil
	}
	select {
	case r.queue <- id:
		r.pending[id] = true
		r.mu.Unlock()
		r.missing.WithLabelValues(MissingPending).Inc()
	default:
		r.mu.Unlock()
		r.missing.WithLabelValues(MissingQueueFull).Inc()
	}
	return nil
}

// withPod returns e's container with its pod's labels and workload from the pod watch, merged
// once per change of the watch. r.mu is held.
func (r *Resolver) withPod(e *entry) *schemas.Container {
	if e.c == nil || e.c.Pod == nil || r.pods == nil {
		return e.c
	}
	rv := r.pods.Version()
	if rv == e.podRV {
		return e.c
	}
	p, ok := r.pods.Pod(e.c.Pod.Namespace, e.c.Pod.Name)
	if !ok {
		return e.c
	}
	c := *e.c
	pod := *e.c.Pod
	pod.Labels, pod.WorkloadKind, pod.WorkloadName = p.Labels, p.WorkloadKind, p.WorkloadName
	if pod.UID == "" {
		pod.UID = p.UID
	}
	c.Pod = &pod
	e.c, e.podRV = &c, rv // the events already published keep the container they were given
	return e.c
}

// Run asks the runtimes about the queued ids, and watches the node's pods, until ctx is done.
func (r *Resolver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if r.pods != nil {
		wg.Go(func() { r.pods.Run(ctx) })
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-r.queue:
			c := r.ask(ctx, id)
			r.mu.Lock()
			delete(r.pending, id)
			r.put(id, c)
			r.mu.Unlock()
		}
	}
}

// ask asks each runtime in turn about id.
func (r *Resolver) ask(ctx context.Context, id string) *schemas.Container {
	for _, rt := range r.runtimes {
		actx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
		c, err := rt.Inspect(actx, id)
		cancel()
		switch {
		case err == nil:
			r.lookups.WithLabelValues(rt.Name(), "found").Inc()
			return c
		case errors.Is(err, ErrNotFound):
			r.lookups.WithLabelValues(rt.Name(), "not_found").Inc()
		default:
			r.lookups.WithLabelValues(rt.Name(), "error").Inc()
			r.log.Debug("container runtime lookup failed", "runtime", rt.Name(), "container_id", id, "error", err)
		}
	}
	return nil
}

// put remembers c for id, dropping the least recently used entry when full. r.mu is held.
func (r *Resolver) put(id string, c *schemas.Container) {
	if el, ok := r.byID[id]; ok {
		e := el.Value.(*entry)
		e.c, e.at, e.podRV = c, time.Now(), 0
		r.lru.MoveToFront(el)
		return
	}
	if r.lru.Len() >= r.cfg.CacheSize {
		last := r.lru.Back()
		r.lru.Remove(last)
		delete(r.byID, last.Value.(*entry).id)
	}
	r.byID[id] = r.lru.PushFront(&entry{id: id, c: c, at: time.Now()})
}

// Close releases the runtimes' connections.
func (r *Resolver) Close() {
	if r == nil {
		return
	}
	for _, rt := range r.runtimes {
		_ = rt.Close()
	}
}

// Annotate sets the container of the process an event names (process.container) from its
// container id, nil without one. It overwrites what the event held: a collector may reuse one
// event value for the next event. Events of other kinds are left as they are.
func (r *Resolver) Annotate(event any) {
	if r == nil {
		return
	}
	switch e := event.(type) {
	case *schemas.ProcessEvent:
		e.Process.Container = r.Lookup(e.Process.ContainerID)
	case *schemas.NetworkEvent:
		e.Process.Container = r.Lookup(e.Process.ContainerID)
	case *schemas.FileEvent:
		e.Process.Container = r.Lookup(e.Process.ContainerID)
	case *schemas.IdentityEvent:
		e.Process.Container = r.Lookup(e.Process.ContainerID)
	}
}

// MissingCounter is crumbs_collector_container_metadata_missing_total, by reason.
func (r *Resolver) MissingCounter() *prometheus.CounterVec { return r.missing }

// LookupsCounter is crumbs_collector_container_lookups_total, by runtime and result.
func (r *Resolver) LookupsCounter() *prometheus.CounterVec { return r.lookups }

// RuntimeNames returns the names of the runtimes that answered (RuntimeContainerd, ...).
func (s Status) RuntimeNames() []string {
	out := make([]string, len(s.Runtimes))
	for i, r := range s.Runtimes {
		out[i], _, _ = strings.Cut(r, "@")
	}
	return out
}
