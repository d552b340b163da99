// Package enrichers joins raw events with what the organisation planned: context records
// (inventory now; changes, deploys and accounts as they are added) are materialised from their
// compacted topics in full by every instance, and each raw event from crumbs.raw.<kind> is
// written to crumbs.enriched.<kind> with its enrichment set, exactly once.
package enrichers

import (
	"errors"
	"fmt"
)

// Config configures the enricher (keys under `enricher.`).
type Config struct {
	// Group is the enricher's consumer group. Default "crumbs-enrich".
	Group string `mapstructure:"group"`
	// Kinds are the event kinds enriched (raw topics consumed). Default ["process"].
	Kinds []string `mapstructure:"kinds"`
	// MaxContextRecords bounds the records held per context kind; beyond it the oldest
	// updates are evicted and counted. Default 1000000.
	MaxContextRecords int `mapstructure:"max_context_records"`
	// MaxPollRecords is how many records one transaction carries at most. Default 5000.
	MaxPollRecords int `mapstructure:"max_poll_records"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Group: "crumbs-enrich", Kinds: []string{"process"}, MaxContextRecords: 1_000_000, MaxPollRecords: 5000}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("enricher.group: must not be empty"))
	}
	if len(c.Kinds) == 0 {
		errs = append(errs, errors.New("enricher.kinds: must name at least one kind"))
	}
	for _, k := range c.Kinds {
		if k != "process" {
			errs = append(errs, fmt.Errorf("enricher.kinds: %q: no such event kind yet (have: process)", k))
		}
	}
	if c.MaxContextRecords < 1 {
		errs = append(errs, fmt.Errorf("enricher.max_context_records: %d: must be at least 1", c.MaxContextRecords))
	}
	if c.MaxPollRecords < 1 {
		errs = append(errs, fmt.Errorf("enricher.max_poll_records: %d: must be at least 1", c.MaxPollRecords))
	}
	return errors.Join(errs...)
}
