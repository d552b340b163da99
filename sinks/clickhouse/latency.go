package clickhouse

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// latencyReservoirSize bounds the latency samples a Sink keeps.
const latencyReservoirSize = 16384

// latencyReservoir keeps a uniform random sample of at most latencyReservoirSize latencies
// out of every one observed (Vitter's algorithm R), so quantiles over a whole run can be
// computed in bounded memory.
type latencyReservoir struct {
	mu      sync.Mutex
	samples []time.Duration
	seen    uint64
}

func (r *latencyReservoir) observe(ds []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range ds {
		r.seen++
		if len(r.samples) < latencyReservoirSize {
			r.samples = append(r.samples, d)
			continue
		}
		if j := rand.Uint64N(r.seen); j < latencyReservoirSize {
			r.samples[j] = d
		}
	}
}

func (r *latencyReservoir) snapshot() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples)
}

func (r *latencyReservoir) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples, r.seen = r.samples[:0], 0
}

// Quantile returns the q-quantile (0 <= q <= 1) of samples, nearest rank; 0 when empty.
func Quantile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(max(i, 0), len(s)-1)]
}
