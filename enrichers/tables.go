package enrichers

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/threatcrumbs/crumbs/schemas"
)

// ContextTables is the materialised context of all four kinds, indexed for the join: per host
// its inventory, changes and deploys and a pointer to its service's, so that an event costs one
// lookup by host name; deploys in deployed_at order (history, so an event gets the deploy
// current at its time), manifests by path, accounts by name. Memory is bounded: at most
// maxRecords records per kind and deployHistory deploys per service or host; beyond that the oldest are evicted and counted. Safe for concurrent use.
type ContextTables struct {
	mu            sync.RWMutex
	maxRecords    int
	deployHistory int

	inventory map[string]*schemas.InventoryRecord // by id
	changes   map[string]*change                  // by id
	deploys   map[string]*deploy                  // by id
	hosts     hostIndex
	services  map[string]*serviceContext // by service name
	gen       uint64                     // bumped by every change, so hosts' joins are redone
	// dropJoins is set when a change or deploy is removed: the hosts' last joins may hold it,
	// and are dropped once the Put or Delete is done, so that removed context is freed.
	dropJoins bool
	// joinsMade is set when a host's join is made, so that removals before any event (a
	// topic of tombstones read at start) sweep nothing. Atomic: joins are made under RLock.
	joinsMade atomic.Bool

	accounts       map[string]*account // by id
	accountsByName map[string]*account

	held    map[string]int    // records held per kind
	evicted map[string]uint64 // records evicted per kind
	bytes   map[string]int64  // estimated bytes held per kind
	sizes   map[[2]string]int64
	sources map[[2]string]string // where each record was published from
}

// hostContext is what applies to one host: its inventory record, the changes and deploys that
// name it, and its service's context (nil without inventory). It is removed when empty.
type hostContext struct {
	name    string // in nameBuf when it fits
	nameBuf [32]byte
	next    *hostContext // of another name with the same hash
	inv     *schemas.InventoryRecord
	changes []*change
	deploys []*deploy // by deployed_at
	svc     *serviceContext
	// last is the host's most recent join, reused by events of the host in the interval it
	// holds for (until any context changes): most events then cost two lookups, the host's
	// and the manifest's, instead of one for every record the join reads.
	last atomic.Pointer[hostJoin]
}

// hostJoin is what applies to one host over an interval of event time: its inventory, the
// change windows active and the current deploy, with the Avro encoding of those enrichment
// fields. It is never changed once made.
type hostJoin struct {
	gen      uint64
	from, to int64 // event times [from, to) it holds for
	service  string
	env      string
	role     string
	changes  []*change
	deploy   *deploy
	enc      []byte // service, environment, role, changes and deploy, as appendEnrichmentUnion writes them
}

// noHost is the join of a host without context.
var noHost = &hostJoin{enc: appendHostJoin(nil, &hostJoin{})}

// serviceContext is what applies to every host of a service. It is removed when empty and no
// inventory record lists the service, so a host's svc pointer is always the live one.
type serviceContext struct {
	changes []*change
	deploys []*deploy // by deployed_at
	refs    int       // inventory records listing the service
}

// change is a change window with its reference as the enrichment carries it.
type change struct {
	rec *schemas.ChangeRecord
	ref schemas.ChangeRef
	enc []byte // ref in Avro binary, for the fast encoder
}

// deploy is a deployment with its manifest indexed by path and its managed directories.
type deploy struct {
	rec      *schemas.DeployRecord
	ref      schemas.DeployRef
	enc      []byte
	manifest *manifestIndex
	dirs     map[string]struct{} // directories holding an artifact
	tops     []string            // first path elements of dirs, to call most paths unmanaged at once
}

// account is an account policy as the enrichment carries it.
type account struct {
	rec *schemas.AccountRecord
	ref schemas.AccountRef
	enc []byte
}

// NewContextTables returns empty tables holding at most maxRecords records per kind and
// deployHistory deploys per service or host.
func NewContextTables(maxRecords, deployHistory int) *ContextTables {
	return &ContextTables{
		maxRecords: maxRecords, deployHistory: deployHistory,
		inventory: map[string]*schemas.InventoryRecord{}, changes: map[string]*change{}, deploys: map[string]*deploy{},
		hosts: newHostIndex(), services: map[string]*serviceContext{},
		accounts: map[string]*account{}, accountsByName: map[string]*account{},
		held: map[string]int{}, evicted: map[string]uint64{}, bytes: map[string]int64{}, sizes: map[[2]string]int64{}, sources: map[[2]string]string{},
	}
}

// Put adds or replaces a record (*schemas.ChangeRecord, *DeployRecord, *InventoryRecord or
// *AccountRecord) by its id; source is where it was published from (its source field).
func (t *ContextTables) Put(rec any, source string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	defer t.dropStaleJoins()
	kind, id := recordKey(rec)
	if kind == "" {
		return fmt.Errorf("context tables: not a context record: %T", rec)
	}
	defer func() { t.sources[[2]string{kind, id}] = source }()
	switch r := rec.(type) {
	case *schemas.InventoryRecord:
		t.deleteLocked(schemas.ContextInventory, r.ID)
		t.makeRoom(schemas.ContextInventory)
		t.putInventory(r)
	case *schemas.ChangeRecord:
		t.deleteLocked(schemas.ContextChange, r.ID)
		t.makeRoom(schemas.ContextChange)
		t.putChange(r)
	case *schemas.DeployRecord:
		t.deleteLocked(schemas.ContextDeploy, r.ID)
		t.makeRoom(schemas.ContextDeploy)
		t.putDeploy(r)
	case *schemas.AccountRecord:
		t.deleteLocked(schemas.ContextAccount, r.ID)
		t.makeRoom(schemas.ContextAccount)
		t.putAccount(r)
	default:
		return fmt.Errorf("context tables: not a context record: %T", rec)
	}
	return nil
}

// Delete removes the record of a kind with id (a tombstone on its topic).
func (t *ContextTables) Delete(kind, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.deleteLocked(kind, id)
	t.dropStaleJoins()
}

// dropStaleJoins forgets every host's last join after a change or deploy was removed (one
// sweep for all the records a Put evicts at once).
func (t *ContextTables) dropStaleJoins() {
	if t.dropJoins && t.joinsMade.Swap(false) {
		t.hosts.each(func(h *hostContext) { h.last.Store(nil) })
	}
	t.dropJoins = false
}

func (t *ContextTables) track(kind, id string, size int64) {
	t.held[kind]++
	t.bytes[kind] += size
	t.sizes[[2]string{kind, id}] = size
}

func (t *ContextTables) untrack(kind, id string) {
	k := [2]string{kind, id}
	t.held[kind]--
	t.bytes[kind] -= t.sizes[k]
	delete(t.sizes, k)
	delete(t.sources, k)
}

// recordKey returns the kind and id of a context record; kind is empty for anything else.
func recordKey(rec any) (kind, id string) {
	switch r := rec.(type) {
	case *schemas.InventoryRecord:
		return schemas.ContextInventory, r.ID
	case *schemas.ChangeRecord:
		return schemas.ContextChange, r.ID
	case *schemas.DeployRecord:
		return schemas.ContextDeploy, r.ID
	case *schemas.AccountRecord:
		return schemas.ContextAccount, r.ID
	}
	return "", ""
}

// service returns the context of a service, creating it.
func (t *ContextTables) service(name string) *serviceContext {
	s := t.services[name]
	if s == nil {
		s = &serviceContext{}
		t.services[name] = s
	}
	return s
}

// tidy removes a host's and a service's context when nothing is left in them.
func (t *ContextTables) tidy(host, service string) {
	if h := t.hosts.get(host); h != nil && h.inv == nil && len(h.changes) == 0 && len(h.deploys) == 0 {
		t.hosts.remove(host)
	}
	if s := t.services[service]; s != nil && s.refs <= 0 && len(s.changes) == 0 && len(s.deploys) == 0 {
		delete(t.services, service)
	}
}

func (t *ContextTables) putInventory(r *schemas.InventoryRecord) {
	t.inventory[r.ID] = r
	svc := t.service(r.Service)
	svc.refs++
	h := t.hosts.add(r.Host)
	h.inv, h.svc = r, svc
	t.track(schemas.ContextInventory, r.ID, recordOverhead+int64(len(r.ID)+len(r.Host)+len(r.Service)+len(r.Environment)+len(r.Role)))
}

func (t *ContextTables) putChange(r *schemas.ChangeRecord) {
	c := &change{rec: r, ref: schemas.ChangeRef{ID: r.ID, Type: r.Type, Title: r.Title, Expected: r.Expected}}
	c.enc = appendChangeRef(nil, &c.ref)
	t.changes[r.ID] = c
	if len(r.Hosts) > 0 { // named hosts only; empty hosts means every host of its services
		for _, name := range r.Hosts {
			h := t.hosts.add(name)
			h.changes = append(h.changes, c)
		}
	} else {
		for _, name := range r.Services {
			s := t.service(name)
			s.changes = append(s.changes, c)
		}
	}
	t.track(schemas.ContextChange, r.ID, recordOverhead+int64(2*len(c.enc)+len(r.Services)*24+len(r.Hosts)*24))
}

func (t *ContextTables) putDeploy(r *schemas.DeployRecord) {
	d := &deploy{rec: r, ref: schemas.DeployRef{ID: r.ID, Service: r.Service, Version: r.Version, DeployedAt: int64(r.DeployedAt)},
		manifest: newManifestIndex(r.Artifacts), dirs: map[string]struct{}{}}
	tops := map[string]struct{}{}
	d.enc = appendDeployRef(nil, &d.ref)
	size := recordOverhead + int64(len(d.enc))
	for i := range r.Artifacts {
		a := &r.Artifacts[i]
		dir := path.Dir(a.Path)
		d.dirs[dir] = struct{}{}
		tops[topOf(dir)] = struct{}{}
		size += artifactOverhead + int64(len(a.Path)+len(a.SHA256)+len(a.Owner)+len(a.Group)+len(a.Mode))
	}
	size += d.manifest.size()
	d.tops = slices.Sorted(maps.Keys(tops))
	if slices.ContainsFunc(d.tops, func(top string) bool { return len(top) < 2 || top[0] != '/' }) {
		d.tops = nil // an artifact in / (or a relative path): every path may be under a managed directory
	}
	t.deploys[r.ID] = d
	if len(r.Hosts) > 0 {
		for _, name := range r.Hosts {
			h := t.hosts.add(name)
			h.deploys = t.insertDeploy(h.deploys, d)
		}
	} else {
		s := t.service(r.Service)
		s.deploys = t.insertDeploy(s.deploys, d)
	}
	t.track(schemas.ContextDeploy, r.ID, size)
}

// insertDeploy keeps a history sorted by deployed_at, trimmed to deployHistory entries.
func (t *ContextTables) insertDeploy(hist []*deploy, d *deploy) []*deploy {
	i := sort.Search(len(hist), func(i int) bool { return hist[i].ref.DeployedAt > d.ref.DeployedAt })
	hist = slices.Insert(hist, i, d)
	if len(hist) > t.deployHistory {
		hist = slices.Delete(hist, 0, len(hist)-t.deployHistory)
	}
	return hist
}

func (t *ContextTables) putAccount(r *schemas.AccountRecord) {
	a := &account{rec: r, ref: schemas.AccountRef{Name: r.Name, Type: r.Type, Interactive: r.Interactive,
		AllowedSources: r.AllowedSources, AllowedUsers: r.AllowedUsers}}
	a.enc = appendAccountRef(nil, &a.ref)
	t.accounts[r.ID] = a
	t.accountsByName[r.Name] = a
	t.track(schemas.ContextAccount, r.ID, recordOverhead+int64(2*len(a.enc)))
}

// Rough sizes of the Go structures around the strings, for the memory estimate.
const (
	recordOverhead   = 256
	artifactOverhead = 160
)

func (t *ContextTables) deleteLocked(kind, id string) {
	switch kind {
	case schemas.ContextInventory:
		r, ok := t.inventory[id]
		if !ok {
			return
		}
		delete(t.inventory, id)
		if s := t.services[r.Service]; s != nil {
			s.refs--
		}
		if h := t.hosts.get(r.Host); h != nil && h.inv == r {
			h.inv, h.svc = nil, nil
		}
		t.tidy(r.Host, r.Service)
	case schemas.ContextChange:
		c, ok := t.changes[id]
		if !ok {
			return
		}
		delete(t.changes, id)
		t.dropJoins = true
		for _, name := range c.rec.Hosts {
			if h := t.hosts.get(name); h != nil {
				h.changes = dropFrom(h.changes, c)
				t.tidy(name, "")
			}
		}
		for _, name := range c.rec.Services {
			if s := t.services[name]; s != nil {
				s.changes = dropFrom(s.changes, c)
				t.tidy("", name)
			}
		}
	case schemas.ContextDeploy:
		d, ok := t.deploys[id]
		if !ok {
			return
		}
		delete(t.deploys, id)
		t.dropJoins = true
		for _, name := range d.rec.Hosts {
			if h := t.hosts.get(name); h != nil {
				h.deploys = dropFrom(h.deploys, d)
				t.tidy(name, "")
			}
		}
		if s := t.services[d.rec.Service]; s != nil {
			s.deploys = dropFrom(s.deploys, d)
			t.tidy("", d.rec.Service)
		}
	case schemas.ContextAccount:
		a, ok := t.accounts[id]
		if !ok {
			return
		}
		delete(t.accounts, id)
		if t.accountsByName[a.rec.Name] == a {
			delete(t.accountsByName, a.rec.Name)
		}
	default:
		return
	}
	t.untrack(kind, id)
}

func dropFrom[T comparable](s []T, v T) []T {
	if i := slices.Index(s, v); i >= 0 {
		s = slices.Delete(s, i, i+1)
	}
	return s
}

// makeRoom evicts records of kind when it is full: the oldest tenth of the bound at once (by
// updated_at; for changes, those that ended first; for deploys, the earliest deployed), so
// that a steady stream of new records costs one sort per many inserts.
func (t *ContextTables) makeRoom(kind string) {
	if t.held[kind] < t.maxRecords {
		return
	}
	type aged struct {
		id  string
		age int64
	}
	var all []aged
	switch kind {
	case schemas.ContextInventory:
		for id, r := range t.inventory {
			all = append(all, aged{id, r.UpdatedAt})
		}
	case schemas.ContextChange:
		for id, c := range t.changes {
			all = append(all, aged{id, int64(c.rec.EndsAt)})
		}
	case schemas.ContextDeploy:
		for id, d := range t.deploys {
			all = append(all, aged{id, d.ref.DeployedAt})
		}
	case schemas.ContextAccount:
		for id, a := range t.accounts {
			all = append(all, aged{id, a.rec.UpdatedAt})
		}
	}
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.age, b.age) })
	n := max(1, t.maxRecords/10)
	for _, a := range all[:min(n, len(all))] {
		t.deleteLocked(kind, a.id)
		t.evicted[kind]++
	}
}

// Stats are the tables' sizes per context kind.
type Stats struct {
	Held    map[string]int
	Evicted map[string]uint64
	Bytes   map[string]int64 // estimated
}

// Stats returns the records held and evicted and the estimated bytes, per kind.
func (t *ContextTables) Stats() Stats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := Stats{Held: map[string]int{}, Evicted: map[string]uint64{}, Bytes: map[string]int64{}}
	for _, k := range ContextKinds {
		s.Held[k], s.Evicted[k], s.Bytes[k] = t.held[k], t.evicted[k], t.bytes[k]
	}
	return s
}

// KnownService reports whether an inventory record lists service.
func (t *ContextTables) KnownService(service string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.services[service]
	return s != nil && s.refs > 0
}

// Get returns the record of a kind with id.
func (t *ContextTables) Get(kind, id string) (any, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.getLocked(kind, id)
}

func (t *ContextTables) getLocked(kind, id string) (any, bool) {
	switch kind {
	case schemas.ContextInventory:
		if r, ok := t.inventory[id]; ok {
			return r, true
		}
	case schemas.ContextChange:
		if c, ok := t.changes[id]; ok {
			return c.rec, true
		}
	case schemas.ContextDeploy:
		if d, ok := t.deploys[id]; ok {
			return d.rec, true
		}
	case schemas.ContextAccount:
		if a, ok := t.accounts[id]; ok {
			return a.rec, true
		}
	}
	return nil, false
}

// List returns the records of a kind, sorted by id.
func (t *ContextTables) List(kind string) []any {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var ids []string
	switch kind {
	case schemas.ContextInventory:
		ids = keys(t.inventory)
	case schemas.ContextChange:
		ids = keys(t.changes)
	case schemas.ContextDeploy:
		ids = keys(t.deploys)
	case schemas.ContextAccount:
		ids = keys(t.accounts)
	}
	slices.Sort(ids)
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		if r, ok := t.getLocked(kind, id); ok {
			out = append(out, r)
		}
	}
	return out
}

// Sources returns the id and source of every record of a kind.
func (t *ContextTables) Sources(kind string) map[string]string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := map[string]string{}
	for k, src := range t.sources {
		if k[0] == kind {
			out[k[1]] = src
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Subject is what the join needs to know of an event.
type Subject struct {
	Host string // host name
	Time int64  // event time, ns since the epoch
	// Path is the executable or file to judge against the manifests; empty: not judged.
	Path                       string
	SHA256, Owner, Group, Mode string
	Deleted                    bool   // the file is gone (delete, scan_removed)
	User                       string // account name whose policy applies; empty: none
}

// Join finds the context of s at its time: it sets the artifact verdict on en and puts the
// host's join (inventory, active change windows, current deploy) and the account policy in j
// (j.into sets them on en). s's strings are not kept.
func (t *ContextTables) Join(s *Subject, en *schemas.Enrichment, j *joined) {
	items := [1]joinItem{{s: s}}
	t.JoinAll(items[:])
	*j = items[0].j
	en.Verdict, en.VerdictReason = items[0].verdict, items[0].reason
}

// joinItem is one event's join: its subject in, what Join finds out.
type joinItem struct {
	s               *Subject
	j               joined
	verdict, reason string
	host            *hostContext
	entry           manifestEntry
}

// JoinAll joins many events at once, step by step across all of them: the host lookups, then
// the hosts' joins, then the manifest lookups, then the verdicts. The context is far larger
// than the caches and every step of one event waits on memory for the one before; across
// events the steps do not depend on each other, so the processor overlaps their misses.
// Batches of a few dozen keep the items themselves in the cache.
func (t *ContextTables) JoinAll(items []joinItem) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range items {
		items[i].host = t.hosts.get(items[i].s.Host)
	}
	for i := range items {
		it := &items[i]
		it.j = joined{host: noHost}
		if h := it.host; h != nil {
			hj := h.last.Load()
			if hj == nil || hj.gen != t.gen || it.s.Time < hj.from || it.s.Time >= hj.to {
				hj = t.joinHost(h, it.s.Time)
				h.last.Store(hj)
				t.joinsMade.Store(true)
			}
			it.j.host = hj
		}
	}
	for i := range items {
		it := &items[i]
		if d := it.j.host.deploy; d != nil && it.s.Path != "" {
			it.entry = d.manifest.lookup(it.s.Path)
		}
	}
	for i := range items {
		it := &items[i]
		if it.s.Path != "" {
			it.verdict, it.reason = judge(it.j.host.deploy, it.entry, it.s)
		}
		if it.s.User != "" {
			it.j.account = t.accountsByName[it.s.User]
		}
		it.host, it.entry = nil, nil
	}
}

// joinHost makes the join of a host at time at, and the interval around it over which none
// of the host's or its service's change windows starts or ends and no deploy happens.
func (t *ContextTables) joinHost(h *hostContext, at int64) *hostJoin {
	hj := &hostJoin{gen: t.gen, from: math.MinInt64, to: math.MaxInt64}
	bound := func(b int64) {
		if b <= at {
			hj.from = max(hj.from, b)
		} else {
			hj.to = min(hj.to, b)
		}
	}
	if inv := h.inv; inv != nil {
		hj.service, hj.env, hj.role = inv.Service, inv.Environment, inv.Role
	}
	changeLists, deployLists := [][]*change{h.changes}, [][]*deploy{h.deploys}
	if h.svc != nil {
		changeLists, deployLists = append(changeLists, h.svc.changes), append(deployLists, h.svc.deploys)
	}
	for _, cs := range changeLists {
		hj.changes = activeChanges(hj.changes, cs, at)
		for _, c := range cs {
			bound(int64(c.rec.StartsAt))
			bound(int64(c.rec.EndsAt))
		}
	}
	if len(hj.changes) > 1 {
		slices.SortFunc(hj.changes, func(a, b *change) int {
			return cmp.Or(cmp.Compare(a.rec.StartsAt, b.rec.StartsAt), cmp.Compare(a.rec.ID, b.rec.ID))
		})
	}
	for _, ds := range deployLists {
		if d := currentDeploy(ds, at); d != nil && (hj.deploy == nil || d.ref.DeployedAt > hj.deploy.ref.DeployedAt) {
			hj.deploy = d
		}
		for _, d := range ds {
			bound(d.ref.DeployedAt)
		}
	}
	hj.enc = appendHostJoin(nil, hj)
	return hj
}

// into sets the join found by Join on en (the fast encoder writes it pre-encoded instead).
func (j *joined) into(en *schemas.Enrichment) {
	en.Service, en.Environment, en.Role = j.host.service, j.host.env, j.host.role
	en.Changes = en.Changes[:0]
	for _, c := range j.host.changes {
		en.Changes = append(en.Changes, c.ref)
	}
	if j.host.deploy != nil {
		en.Deploy = &j.host.deploy.ref
	}
	if j.account != nil {
		en.Account = &j.account.ref
	}
}

// joined is what Join found, for the fast encoder.
type joined struct {
	host    *hostJoin
	account *account
}

func activeChanges(out, cs []*change, at int64) []*change {
	for _, c := range cs {
		if int64(c.rec.StartsAt) <= at && at < int64(c.rec.EndsAt) {
			out = append(out, c)
		}
	}
	return out
}

// currentDeploy returns the latest deploy of a history at or before at.
func currentDeploy(hist []*deploy, at int64) *deploy {
	i := sort.Search(len(hist), func(i int) bool { return hist[i].ref.DeployedAt > at })
	if i == 0 {
		return nil
	}
	return hist[i-1]
}

// judge compares an executable or file with the manifest of the deploy current at its time;
// entry is the manifest's entry for its path (nil: none).
func judge(d *deploy, entry manifestEntry, s *Subject) (verdict, reason string) {
	if d == nil {
		return schemas.VerdictUnmanaged, "no deployment on the host at the event's time"
	}
	if entry == nil {
		if d.tops != nil && !slices.Contains(d.tops, topOf(s.Path)) {
			return schemas.VerdictUnmanaged, ""
		}
		for dir := path.Dir(s.Path); ; dir = path.Dir(dir) {
			if _, managed := d.dirs[dir]; managed {
				return schemas.VerdictUnknown, fmt.Sprintf("in %s, managed by deploy %s (%s %s), but in no manifest", dir, d.ref.ID, d.ref.Service, d.ref.Version)
			}
			if dir == "/" || dir == "." {
				return schemas.VerdictUnmanaged, ""
			}
		}
	}
	// The artifact as published is read only where the entry does not say enough.
	a := func() *schemas.Artifact { return &d.rec.Artifacts[entry.artifact()] }
	var diffs []string
	if s.Deleted {
		diffs = append(diffs, "deleted")
	}
	if s.SHA256 != "" {
		// Compared decoded; as text when the manifest's did not decode.
		if same, decided := entry.sameSHA256(s.SHA256); !same && (decided || s.SHA256 != a().SHA256) {
			diffs = append(diffs, fmt.Sprintf("sha256 %s, manifest %s", s.SHA256, a().SHA256))
		}
	}
	if s.Owner != "" && a().Owner != "" && s.Owner != a().Owner {
		diffs = append(diffs, fmt.Sprintf("owner %s, manifest %s", s.Owner, a().Owner))
	}
	if s.Group != "" && a().Group != "" && s.Group != a().Group {
		diffs = append(diffs, fmt.Sprintf("group %s, manifest %s", s.Group, a().Group))
	}
	if s.Mode != "" && a().Mode != "" {
		got, err := schemas.ParseMode(s.Mode)
		if want, ok := entry.mode(); err != nil || !ok || got != want {
			diffs = append(diffs, fmt.Sprintf("mode %s, manifest %s", s.Mode, a().Mode))
		}
	}
	where := func() string { return fmt.Sprintf(" (deploy %s, %s %s)", d.ref.ID, d.ref.Service, d.ref.Version) }
	if len(diffs) > 0 {
		return schemas.VerdictMismatch, joinDiffs(diffs) + where()
	}
	if s.SHA256 == "" && !s.Deleted {
		return schemas.VerdictMatch, "sha256 not compared: the event carries none" + where()
	}
	return schemas.VerdictMatch, ""
}

// topOf returns the first element of an absolute path with its slash ("/opt" of
// "/opt/shop/bin"), or the path itself when it has no other.
func topOf(p string) string {
	if len(p) > 1 {
		if i := strings.IndexByte(p[1:], '/'); i >= 0 {
			return p[:i+1]
		}
	}
	return p
}

func joinDiffs(d []string) string {
	out := d[0]
	for _, s := range d[1:] {
		out += "; " + s
	}
	return out
}
