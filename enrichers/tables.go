package enrichers

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"sort"
	"sync"

	"github.com/threatcrumbs/crumbs/schemas"
)

// ContextTables is the materialised context of all four kinds, indexed for the join: inventory
// by host, changes by host and by service, deploys by host and by service in deployed_at order
// (history, so an event gets the deploy current at its time), manifests by path, accounts by
// name. Memory is bounded: at most maxRecords records per kind and deployHistory deploys per
// service or host; beyond that the oldest are evicted and counted. Safe for concurrent use.
type ContextTables struct {
	mu            sync.RWMutex
	maxRecords    int
	deployHistory int

	inventory   map[string]*schemas.InventoryRecord // by id
	invByHost   map[string]*schemas.InventoryRecord
	serviceRefs map[string]int // service -> inventory records listing it

	changes          map[string]*change // by id
	changesByHost    map[string][]*change
	changesByService map[string][]*change

	deploys          map[string]*deploy // by id
	deploysByHost    map[string][]*deploy
	deploysByService map[string][]*deploy

	accounts       map[string]*account // by id
	accountsByName map[string]*account

	held    map[string]int    // records held per kind
	evicted map[string]uint64 // records evicted per kind
	bytes   map[string]int64  // estimated bytes held per kind
	sizes   map[[2]string]int64
	sources map[[2]string]string // where each record was published from
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
	manifest map[string]*schemas.Artifact
	dirs     map[string]struct{} // directories holding an artifact
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
		inventory: map[string]*schemas.InventoryRecord{}, invByHost: map[string]*schemas.InventoryRecord{}, serviceRefs: map[string]int{},
		changes: map[string]*change{}, changesByHost: map[string][]*change{}, changesByService: map[string][]*change{},
		deploys: map[string]*deploy{}, deploysByHost: map[string][]*deploy{}, deploysByService: map[string][]*deploy{},
		accounts: map[string]*account{}, accountsByName: map[string]*account{},
		held: map[string]int{}, evicted: map[string]uint64{}, bytes: map[string]int64{}, sizes: map[[2]string]int64{}, sources: map[[2]string]string{},
	}
}

// Put adds or replaces a record (*schemas.ChangeRecord, *DeployRecord, *InventoryRecord or
// *AccountRecord) by its id; source is where it was published from (its source field).
func (t *ContextTables) Put(rec any, source string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
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
	t.deleteLocked(kind, id)
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

func (t *ContextTables) putInventory(r *schemas.InventoryRecord) {
	t.inventory[r.ID] = r
	t.invByHost[r.Host] = r
	t.serviceRefs[r.Service]++
	t.track(schemas.ContextInventory, r.ID, recordOverhead+int64(len(r.ID)+len(r.Host)+len(r.Service)+len(r.Environment)+len(r.Role)))
}

func (t *ContextTables) putChange(r *schemas.ChangeRecord) {
	c := &change{rec: r, ref: schemas.ChangeRef{ID: r.ID, Type: r.Type, Title: r.Title, Expected: r.Expected}}
	c.enc = appendChangeRef(nil, &c.ref)
	t.changes[r.ID] = c
	if len(r.Hosts) > 0 { // named hosts only; empty hosts means every host of its services
		for _, h := range r.Hosts {
			t.changesByHost[h] = append(t.changesByHost[h], c)
		}
	} else {
		for _, s := range r.Services {
			t.changesByService[s] = append(t.changesByService[s], c)
		}
	}
	t.track(schemas.ContextChange, r.ID, recordOverhead+int64(2*len(c.enc)+len(r.Services)*24+len(r.Hosts)*24))
}

func (t *ContextTables) putDeploy(r *schemas.DeployRecord) {
	d := &deploy{rec: r, ref: schemas.DeployRef{ID: r.ID, Service: r.Service, Version: r.Version, DeployedAt: int64(r.DeployedAt)},
		manifest: make(map[string]*schemas.Artifact, len(r.Artifacts)), dirs: map[string]struct{}{}}
	d.enc = appendDeployRef(nil, &d.ref)
	size := recordOverhead + int64(len(d.enc))
	for i := range r.Artifacts {
		a := &r.Artifacts[i]
		d.manifest[a.Path] = a
		d.dirs[path.Dir(a.Path)] = struct{}{}
		size += artifactOverhead + int64(len(a.Path)+len(a.SHA256)+len(a.Owner)+len(a.Group)+len(a.Mode))
	}
	t.deploys[r.ID] = d
	if len(r.Hosts) > 0 {
		for _, h := range r.Hosts {
			t.deploysByHost[h] = t.insertDeploy(t.deploysByHost[h], d)
		}
	} else {
		t.deploysByService[r.Service] = t.insertDeploy(t.deploysByService[r.Service], d)
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
		if t.invByHost[r.Host] == r {
			delete(t.invByHost, r.Host)
		}
		if t.serviceRefs[r.Service]--; t.serviceRefs[r.Service] <= 0 {
			delete(t.serviceRefs, r.Service)
		}
	case schemas.ContextChange:
		c, ok := t.changes[id]
		if !ok {
			return
		}
		delete(t.changes, id)
		for _, h := range c.rec.Hosts {
			dropFrom(t.changesByHost, h, c)
		}
		for _, s := range c.rec.Services {
			dropFrom(t.changesByService, s, c)
		}
	case schemas.ContextDeploy:
		d, ok := t.deploys[id]
		if !ok {
			return
		}
		delete(t.deploys, id)
		for _, h := range d.rec.Hosts {
			dropFrom(t.deploysByHost, h, d)
		}
		dropFrom(t.deploysByService, d.rec.Service, d)
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

func dropFrom[T comparable](idx map[string][]T, key string, v T) {
	s := idx[key]
	if i := slices.Index(s, v); i >= 0 {
		s = slices.Delete(s, i, i+1)
	}
	if len(s) == 0 {
		delete(idx, key)
	} else {
		idx[key] = s
	}
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
	return t.serviceRefs[service] > 0
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

// Join finds the context of s at its time: it sets the inventory fields and the artifact
// verdict on en, and puts the active change windows, the current deploy and the account
// policy in j (j.into sets them on en). s's strings are not kept.
func (t *ContextTables) Join(s *Subject, en *schemas.Enrichment, j *joined) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	*j = joined{changes: j.changes[:0]}
	service := ""
	if inv := t.invByHost[s.Host]; inv != nil {
		service = inv.Service
		en.Service, en.Environment, en.Role = inv.Service, inv.Environment, inv.Role
	}
	j.changes = activeChanges(j.changes, t.changesByHost[s.Host], s.Time)
	if service != "" {
		j.changes = activeChanges(j.changes, t.changesByService[service], s.Time)
	}
	if len(j.changes) > 1 {
		slices.SortFunc(j.changes, func(a, b *change) int {
			return cmp.Or(cmp.Compare(a.rec.StartsAt, b.rec.StartsAt), cmp.Compare(a.rec.ID, b.rec.ID))
		})
	}
	d := currentDeploy(t.deploysByHost[s.Host], s.Time)
	if service != "" {
		if ds := currentDeploy(t.deploysByService[service], s.Time); ds != nil && (d == nil || ds.ref.DeployedAt > d.ref.DeployedAt) {
			d = ds
		}
	}
	j.deploy = d
	if s.Path != "" {
		en.Verdict, en.VerdictReason = judge(d, s)
	}
	if s.User != "" {
		j.account = t.accountsByName[s.User]
	}
}

// into sets the refs found by Join on en (the fast encoder writes them pre-encoded instead).
func (j *joined) into(en *schemas.Enrichment) {
	en.Changes = en.Changes[:0]
	for _, c := range j.changes {
		en.Changes = append(en.Changes, c.ref)
	}
	if j.deploy != nil {
		en.Deploy = &j.deploy.ref
	}
	if j.account != nil {
		en.Account = &j.account.ref
	}
}

// joined is what Join found, for the fast encoder.
type joined struct {
	changes []*change
	deploy  *deploy
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

// judge compares an executable or file with the manifest of the deploy current at its time.
func judge(d *deploy, s *Subject) (verdict, reason string) {
	if d == nil {
		return schemas.VerdictUnmanaged, "no deployment on the host at the event's time"
	}
	a, ok := d.manifest[s.Path]
	if !ok {
		for dir := path.Dir(s.Path); ; dir = path.Dir(dir) {
			if _, managed := d.dirs[dir]; managed {
				return schemas.VerdictUnknown, fmt.Sprintf("in %s, managed by deploy %s (%s %s), but in no manifest", dir, d.ref.ID, d.ref.Service, d.ref.Version)
			}
			if dir == "/" || dir == "." {
				return schemas.VerdictUnmanaged, ""
			}
		}
	}
	var diffs []string
	if s.Deleted {
		diffs = append(diffs, "deleted")
	}
	if s.SHA256 != "" && s.SHA256 != a.SHA256 {
		diffs = append(diffs, fmt.Sprintf("sha256 %s, manifest %s", s.SHA256, a.SHA256))
	}
	if s.Owner != "" && a.Owner != "" && s.Owner != a.Owner {
		diffs = append(diffs, fmt.Sprintf("owner %s, manifest %s", s.Owner, a.Owner))
	}
	if s.Group != "" && a.Group != "" && s.Group != a.Group {
		diffs = append(diffs, fmt.Sprintf("group %s, manifest %s", s.Group, a.Group))
	}
	if s.Mode != "" && a.Mode != "" {
		got, err1 := schemas.ParseMode(s.Mode)
		want, err2 := schemas.ParseMode(a.Mode)
		if err1 != nil || err2 != nil || got != want {
			diffs = append(diffs, fmt.Sprintf("mode %s, manifest %s", s.Mode, a.Mode))
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

func joinDiffs(d []string) string {
	out := d[0]
	for _, s := range d[1:] {
		out += "; " + s
	}
	return out
}
