package engine

import (
	"container/list"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// entryKey names one state: a rule, the partition its events came from, a group key.
type entryKey struct {
	rule  string
	part  int32
	group string
}

// entry is the in-memory state of one key.
type entry struct {
	key      entryKey
	elem     *list.Element
	deadline int64 // pending timer, 0 when none
	st       entryState
}

// entryState is what the changelog keeps of a key (JSON): what every kind needs, and the
// kind's own part.
type entryState struct {
	HostID   string       `json:"host_id,omitempty"`
	HostName string       `json:"host_name,omitempty"`
	Service  string       `json:"service,omitempty"`
	Changes  []changeNote `json:"changes,omitempty"`

	Buckets    []*bucket   `json:"buckets,omitempty"`     // threshold: open buckets, oldest first
	FiredUntil int64       `json:"fired_until,omitempty"` // threshold: end of the last window alerted
	NextEnd    int64       `json:"next_end,omitempty"`    // threshold: end of the next window to judge
	Seq        *seqState   `json:"seq,omitempty"`
	Term       *termState  `json:"term,omitempty"`
	Spike      *spikeState `json:"spike,omitempty"`
	Deadline   int64       `json:"deadline,omitempty"` // the pending timer, restored with the state

	// EarlyEnd is the end of the window (threshold) or interval (spike) whose alert was raised
	// early and is raised again, final, when it closes; 0 when none. EarlyTime is that
	// alert's Time, which the final one keeps (ClickHouse replaces a row by its sorting key,
	// which holds the time).
	EarlyEnd  int64 `json:"early_end,omitempty"`
	EarlyTime int64 `json:"early_time,omitempty"`

	// Tree is the process tree of the key's first event, whose incident its alerts join.
	Tree *treeRef `json:"tree,omitempty"`
	// Incident is the incident of the alert raised early, which its final version keeps.
	Incident string `json:"incident,omitempty"`
	// Throttle is an open throttle window (the entry's group starts with throttlePrefix).
	Throttle *throttleState `json:"throttle,omitempty"`
	// Inc is an open incident (the entry's rule is incidentRule).
	Inc *incidentState `json:"inc,omitempty"`
}

// get returns the entry of a key, creating it (and evicting the least recently updated one
// beyond the cap); every call marks it updated and dirty.
func (e *Engine) get(key entryKey) *entry {
	en := e.entries[key]
	if en == nil {
		en = &entry{key: key}
		en.elem = e.lru.PushBack(en)
		e.entries[key] = en
		for len(e.entries) > e.opt.MaxStateKeys {
			old := e.lru.Front().Value.(*entry)
			e.remove(old)
			e.stats.Evicted++
		}
	} else {
		e.lru.MoveToBack(en.elem)
	}
	e.dirty[key] = struct{}{}
	return en
}

// remove drops an entry; the changelog gets a tombstone.
func (e *Engine) remove(en *entry) {
	if e.entries[en.key] != en {
		return
	}
	delete(e.entries, en.key)
	e.lru.Remove(en.elem)
	e.dirty[en.key] = struct{}{}
}

// noteEvent records the host, service, process tree and changes of an event on an entry.
func (e *Engine) noteEvent(en *entry, act map[string]any) {
	if en.st.HostName == "" {
		h, _ := act["host"].(map[string]any)
		en.st.HostID, en.st.HostName = str(h["id"]), str(h["name"])
		en.st.Service = serviceOf(act)
	}
	if en.st.Tree == nil && e.opt.IncidentSpan > 0 {
		en.st.Tree = e.treeOf(act)
	}
	en.st.Changes = mergeChanges(en.st.Changes, changesOf(act))
}

// StateRecord is one changelog record: Value nil is a tombstone.
type StateRecord struct {
	Partition int32
	Key       []byte
	Value     []byte
}

// watermarkRule is the rule part of a partition clocks' changelog key; its value is a
// clockRecord (JSON), or from older engines one integer, the clock of every kind.
const watermarkRule = "\x00watermark"

// StateKey is the changelog key of a rule's state for a partition and group key.
func StateKey(rule string, part int32, group string) []byte {
	return []byte(rule + "\x00" + strconv.Itoa(int(part)) + "\x00" + group)
}

func parseStateKey(k []byte) (entryKey, error) {
	ks := string(k)
	if rest, ok := strings.CutPrefix(ks, incidentRule+"\x00"); ok {
		num, group, _ := strings.Cut(rest, "\x00")
		p, err := strconv.Atoi(num)
		if err != nil {
			return entryKey{}, fmt.Errorf("state key %q: partition: %w", k, err)
		}
		return entryKey{rule: incidentRule, part: int32(p), group: group}, nil
	}
	if rest, ok := strings.CutPrefix(ks, watermarkRule+"\x00"); ok {
		p, err := strconv.Atoi(strings.TrimSuffix(rest, "\x00"))
		if err != nil {
			return entryKey{}, fmt.Errorf("state key %q: partition: %w", k, err)
		}
		return entryKey{rule: watermarkRule, part: int32(p)}, nil
	}
	parts := strings.SplitN(ks, "\x00", 3)
	if len(parts) != 3 {
		return entryKey{}, fmt.Errorf("state key %q: want rule, partition and group key", k)
	}
	p, err := strconv.Atoi(parts[1])
	if err != nil {
		return entryKey{}, fmt.Errorf("state key %q: partition: %w", k, err)
	}
	return entryKey{rule: parts[0], part: int32(p), group: parts[2]}, nil
}

// Changes returns the state changed since the last call, as changelog records, in a stable
// order: the values of updated keys, tombstones of removed ones, and partition clocks.
func (e *Engine) Changes() ([]StateRecord, error) {
	keys := make([]entryKey, 0, len(e.dirty))
	for k := range e.dirty {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.part != b.part {
			return a.part < b.part
		}
		if a.rule != b.rule {
			return a.rule < b.rule
		}
		return a.group < b.group
	})
	out := make([]StateRecord, 0, len(keys)+len(e.parts))
	for _, k := range keys {
		rec := StateRecord{Partition: k.part, Key: StateKey(k.rule, k.part, k.group)}
		if en := e.entries[k]; en != nil {
			en.st.Deadline = en.deadline
			v, err := json.Marshal(&en.st)
			if err != nil {
				return nil, fmt.Errorf("encode state of rule %s key %q: %w", k.rule, k.group, err)
			}
			rec.Value = v
		}
		out = append(out, rec)
	}
	clear(e.dirty)
	parts := make([]int32, 0, len(e.parts))
	for p, ps := range e.parts {
		if ps.wmDirty {
			parts = append(parts, p)
			ps.wmDirty = false
		}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		v, err := e.parts[p].record()
		if err != nil {
			return nil, fmt.Errorf("encode clocks of partition %d: %w", p, err)
		}
		out = append(out, StateRecord{Partition: p, Key: StateKey(watermarkRule, p, ""), Value: v})
	}
	return out, nil
}

// Pending reports whether state changed since the last Changes: whether Changes has
// records to return.
func (e *Engine) Pending() bool {
	if len(e.dirty) > 0 {
		return true
	}
	for _, p := range e.parts {
		if p.wmDirty {
			return true
		}
	}
	return false
}

// Restore loads one changelog record of a partition being assigned: a key's state, a
// tombstone, or the partition's clock. State of rules no longer loaded is skipped.
func (e *Engine) Restore(key, value []byte) error {
	k, err := parseStateKey(key)
	if err != nil {
		return err
	}
	if k.rule == watermarkRule {
		if value == nil {
			return nil
		}
		if err := e.partition(k.part).restore(value); err != nil {
			return fmt.Errorf("restore clocks of partition %d: %w", k.part, err)
		}
		return nil
	}
	if value == nil {
		if en := e.entries[k]; en != nil {
			e.remove(en)
			delete(e.dirty, k)
		}
		return nil
	}
	if e.set.byID[k.rule] == nil && k.rule != incidentRule {
		return nil
	}
	var st entryState
	if err := json.Unmarshal(value, &st); err != nil {
		return fmt.Errorf("restore state of rule %s key %q: %w", k.rule, k.group, err)
	}
	en := e.get(k)
	delete(e.dirty, k)
	en.st, en.deadline = st, 0
	if st.Deadline != 0 {
		e.schedule(en, st.Deadline)
	}
	return nil
}

// DropPartition forgets a partition's state and clock (revoked, or to be restored again
// after an aborted transaction). Nothing is written to the changelog.
func (e *Engine) DropPartition(part int32) {
	for k, en := range e.entries {
		if k.part == part {
			delete(e.entries, k)
			e.lru.Remove(en.elem)
			delete(e.dirty, k)
		}
	}
	delete(e.parts, part)
}

// timer is a pending window close of an entry.
type timer struct {
	at  int64
	key entryKey
}

// timerHeap is a min-heap of timers by time.
type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
