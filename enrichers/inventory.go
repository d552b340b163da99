package enrichers

import (
	"sync"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Inventory is the materialised inventory: host name to its service, environment and role.
// Safe for concurrent use.
type Inventory struct {
	mu      sync.RWMutex
	byID    map[string]*schemas.InventoryRecord
	byHost  map[string]*schemas.InventoryRecord
	max     int
	evicted uint64
}

// NewInventory returns an empty inventory holding at most max records.
func NewInventory(max int) *Inventory {
	return &Inventory{byID: map[string]*schemas.InventoryRecord{}, byHost: map[string]*schemas.InventoryRecord{}, max: max}
}

// Put adds or replaces the record with rec.ID.
func (inv *Inventory) Put(rec *schemas.InventoryRecord) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if old, ok := inv.byID[rec.ID]; ok && inv.byHost[old.Host] == old {
		delete(inv.byHost, old.Host)
	}
	if _, ok := inv.byID[rec.ID]; !ok && len(inv.byID) >= inv.max {
		inv.evictOne()
	}
	inv.byID[rec.ID] = rec
	inv.byHost[rec.Host] = rec
}

// evictOne drops the record updated longest ago. Called with mu held.
func (inv *Inventory) evictOne() {
	var oldest *schemas.InventoryRecord
	for _, r := range inv.byID {
		if oldest == nil || r.UpdatedAt < oldest.UpdatedAt {
			oldest = r
		}
	}
	if oldest != nil {
		inv.deleteLocked(oldest.ID)
		inv.evicted++
	}
}

// Delete removes the record with id (a tombstone on the topic).
func (inv *Inventory) Delete(id string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.deleteLocked(id)
}

func (inv *Inventory) deleteLocked(id string) {
	if old, ok := inv.byID[id]; ok {
		delete(inv.byID, id)
		if inv.byHost[old.Host] == old {
			delete(inv.byHost, old.Host)
		}
	}
}

// Lookup returns the inventory record of a host name.
func (inv *Inventory) Lookup(host string) (*schemas.InventoryRecord, bool) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	r, ok := inv.byHost[host]
	return r, ok
}

// Len returns how many records are held, and how many were evicted for the bound.
func (inv *Inventory) Len() (held int, evicted uint64) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return len(inv.byID), inv.evicted
}
