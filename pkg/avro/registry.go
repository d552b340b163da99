package avro

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrRegistryUnavailable is the cause of a DecodeError when the schema registry could not be
// asked about a Confluent schema id: the record is not bad, and decodes once the registry
// answers again (crumbs dlq replay).
var ErrRegistryUnavailable = errors.New("schema registry unavailable")

// SchemaByID answers the schema text registered under a Confluent schema id. It returns an
// error wrapping ErrUnknownSchema when the registry has no such id, any other error when the
// registry could not be asked.
type SchemaByID func(id int32) (string, error)

// Bounds of what a Serde learns from a registry: hostile ids must not grow it without end.
const (
	maxRegistryIDs  = 4096            // schemas learnt by id
	maxUnknownIDs   = 1024            // ids the registry said it does not hold, remembered
	unknownIDRetry  = time.Minute     // before such an id is asked again
	registryBackoff = 5 * time.Second // after the registry failed, ids are not asked again for this long
)

type registrySource struct {
	byID SchemaByID

	mu      sync.Mutex
	unknown map[int32]time.Time // ids the registry does not hold, when it said so
	learnt  int
	downAt  time.Time  // the registry's last failure
	fetch   sync.Mutex // one question at a time: a burst of records of one new id asks once
}

// UseRegistry makes the Serde ask byID about Confluent schema ids it was not given with
// SetRegistryID: records other producers wrote with schemas registered in the registry
// decode with the writer schema the registry holds. A schema whose fingerprint the Serde
// knows decodes with what it has for it (its generated codec).
func (s *Serde) UseRegistry(byID SchemaByID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registry = &registrySource{byID: byID, unknown: map[int32]time.Time{}}
}

// fromRegistry learns the schema of a Confluent id from the registry. s.mu is not held.
func (s *Serde) fromRegistry(id int32) (*Schema, error) {
	r := s.registry
	r.fetch.Lock()
	defer r.fetch.Unlock()
	s.mu.RLock()
	sc, ok := s.byID[id]
	s.mu.RUnlock()
	if ok { // learnt while this one waited
		return sc, nil
	}
	now := time.Now()
	r.mu.Lock()
	at, unknown := r.unknown[id]
	down := !r.downAt.IsZero() && now.Sub(r.downAt) < registryBackoff
	full := r.learnt >= maxRegistryIDs
	r.mu.Unlock()
	switch {
	case unknown && now.Sub(at) < unknownIDRetry:
		return nil, fmt.Errorf("registry id %d: %w (the registry holds no such id)", id, ErrUnknownSchema)
	case down:
		return nil, fmt.Errorf("registry id %d: %w", id, ErrRegistryUnavailable)
	case full:
		return nil, fmt.Errorf("registry id %d: %w (already %d schemas learnt from the registry)", id, ErrUnknownSchema, maxRegistryIDs)
	}
	text, err := r.byID(id)
	if errors.Is(err, ErrUnknownSchema) {
		r.mu.Lock()
		if len(r.unknown) >= maxUnknownIDs {
			clear(r.unknown)
		}
		r.unknown[id] = now
		r.mu.Unlock()
		return nil, fmt.Errorf("registry id %d: %w", id, err)
	}
	if err != nil {
		r.mu.Lock()
		r.downAt = now
		r.mu.Unlock()
		return nil, fmt.Errorf("registry id %d: %w: %v", id, ErrRegistryUnavailable, err)
	}
	parsed, err := parseSchema(text)
	if err != nil {
		return nil, fmt.Errorf("registry id %d: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if known, ok := s.byFP[parsed.Fingerprint]; ok {
		parsed = known
	} else { // a version crumbs does not have: goavro decodes it
		s.byFP[parsed.Fingerprint] = parsed
	}
	s.byID[id] = parsed
	r.mu.Lock()
	r.learnt++
	r.mu.Unlock()
	return parsed, nil
}
