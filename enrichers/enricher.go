package enrichers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/telemetry"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Deps are what an Enricher uses besides its configuration. Nil fields get defaults.
type Deps struct {
	Log             *slog.Logger
	Metrics         prometheus.Registerer
	Counters        *telemetry.StageCounters
	Serde           *avro.Serde
	TransactionalID string // stable per instance; default group + "-0"
	// KafkaOpts are appended to the transactional client's options (e.g. a shorter
	// kgo.SessionTimeout). Default none.
	KafkaOpts []kgo.Opt
	// Kinds are the event kinds known; Config.Kinds names those enriched. Default
	// schemas.Kinds. Serde must hold their schemas.
	Kinds schemas.KindTable
}

// Enricher is the enrich stage.
type Enricher struct {
	cfg    Config
	kcfg   kafka.Config
	deps   Deps
	tables *ContextTables
	// fast reads events by writer-schema fingerprint without goavro (see scan.go); schemas
	// missing here go through goavro.
	fast     map[uint64]*fastSchema
	topics   kafka.Topics
	enriched map[string]string // enriched topic by kind
	// nativePaths are the dotted paths of each capture slot, by kind, for the goavro path.
	nativePaths map[string]map[int][]string
}

// fastSchema is an event schema the scanner reads.
type fastSchema struct {
	name    string
	kind    *schemas.Kind
	scanner *scanner
}

// New returns an enricher; nothing is opened until Run.
func New(cfg Config, kcfg kafka.Config, deps Deps) (*Enricher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Counters == nil {
		deps.Counters = telemetry.NewStageCounters(nil, "enrich", cfg.Group)
	}
	if deps.Serde == nil {
		s, err := avro.NewBuiltinSerde()
		if err != nil {
			return nil, fmt.Errorf("enricher: load schemas: %w", err)
		}
		deps.Serde = s
	}
	if deps.TransactionalID == "" {
		deps.TransactionalID = cfg.Group + "-0"
	}
	if deps.Kinds == nil {
		deps.Kinds = schemas.Kinds
	}
	for _, k := range cfg.Kinds {
		if _, ok := deps.Kinds.Lookup(k); !ok {
			return nil, fmt.Errorf("enricher.kinds: %q: no such event kind (have: %s)", k, strings.Join(deps.Kinds.Names(), ", "))
		}
	}
	e := &Enricher{cfg: cfg, kcfg: kcfg, deps: deps, tables: NewContextTables(cfg.MaxContextRecords, cfg.DeployHistory),
		fast: map[uint64]*fastSchema{}, topics: kcfg.Topics(), enriched: map[string]string{}, nativePaths: map[string]map[int][]string{}}
	for _, k := range deps.Kinds {
		e.enriched[k.Name] = e.topics.Enriched(k.Name)
	}
	if err := e.compileScanners(); err != nil {
		return nil, err
	}
	if deps.Metrics != nil {
		if err := registerTableMetrics(deps.Metrics, e.tables); err != nil {
			return nil, fmt.Errorf("enricher: register metrics: %w", err)
		}
	}
	return e, nil
}

// compileScanners builds a scanner for every kind's schema whose enrichment field has the
// shape the fast encoder writes, capturing the fields its join names.
func (e *Enricher) compileScanners() error {
	for _, k := range e.deps.Kinds {
		name := k.Codec.Schema
		sc, ok := e.deps.Serde.Lookup(name)
		if !ok {
			return fmt.Errorf("enricher: schema %s of kind %s is not known to the serde", name, k.Name)
		}
		slots, err := slotPaths(k)
		if err != nil {
			return fmt.Errorf("enricher: %w", err)
		}
		paths := map[int][]string{}
		for p, slot := range slots {
			paths[slot] = strings.Split(p, ".")
		}
		e.nativePaths[k.Name] = paths
		s, err := newScanner(sc.Codec.Schema(), slots)
		if err != nil {
			return fmt.Errorf("enricher: compile scanner for %s: %w", name, err)
		}
		if s.shape != enrichmentShape {
			e.deps.Log.Warn("enrichment field has a shape the fast encoder does not write; using goavro", "schema", name)
			continue
		}
		e.fast[sc.Fingerprint] = &fastSchema{name: name, kind: k, scanner: s}
	}
	return nil
}

// registerTableMetrics exports the tables' size per kind.
func registerTableMetrics(reg prometheus.Registerer, t *ContextTables) error {
	for _, kind := range ContextKinds {
		labels := prometheus.Labels{"kind": kind}
		cs := []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_enricher_context_records", ConstLabels: labels,
				Help: "Context records held in memory."}, func() float64 { return float64(t.Stats().Held[kind]) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crumbs_enricher_context_bytes", ConstLabels: labels,
				Help: "Estimated memory held by context records."}, func() float64 { return float64(t.Stats().Bytes[kind]) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crumbs_enricher_context_evicted_total", ConstLabels: labels,
				Help: "Context records evicted for the memory bound (enricher.max_context_records)."}, func() float64 { return float64(t.Stats().Evicted[kind]) }),
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tables returns the materialised context the enricher joins with.
func (e *Enricher) Tables() *ContextTables { return e.tables }

// Run materialises the context topics, waits until they are read in full, then enriches
// events until ctx is done.
func (e *Enricher) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	ready, err := materialise(ctx, &wg, e.kcfg, e.deps.Serde, e.tables, e.deps.Log)
	if err != nil {
		return fmt.Errorf("enricher: %w", err)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	e.deps.Log.Info("context materialised", "stage", "enrich", "records", e.tables.Stats().Held)

	topics := make([]string, len(e.cfg.Kinds))
	for i, k := range e.cfg.Kinds {
		topics[i] = e.topics.Raw(k)
	}
	c := e.deps.Counters
	return kafka.RunTransact(ctx, e.kcfg, kafka.TransactConfig{
		Stage: "enrich", Group: e.cfg.Group, TransactionalID: e.deps.TransactionalID,
		Topics: topics, MaxPollRecords: e.cfg.MaxPollRecords, Log: e.deps.Log,
		OnRecords: func(in, out, dlq int) { c.In(in); c.Out(out); c.DeadLettered(dlq) },
		Batch:     e.enrichBatch,
	}, nil, e.deps.KafkaOpts...)
}

// materialise reads the four context topics into tables in a goroutine added to wg, which
// stops when ctx is done. The channel is closed once the records present at start are applied.
func materialise(ctx context.Context, wg *sync.WaitGroup, kcfg kafka.Config, serde *avro.Serde, tables *ContextTables, log *slog.Logger) (<-chan struct{}, error) {
	t := kcfg.Topics()
	kinds := map[string]string{}
	var topics []string
	for _, k := range ContextKinds {
		kinds[t.Context(k)] = k
		topics = append(topics, t.Context(k))
	}
	apply := func(r *kgo.Record) {
		kind := kinds[r.Topic]
		if r.Value == nil {
			tables.Delete(kind, string(r.Key))
			return
		}
		rec, source, err := decodeContext(serde, kind, r.Value)
		if err == nil {
			err = tables.Put(rec, source)
		}
		if err != nil {
			// Refused at publish time already; nothing here can re-publish it.
			log.Warn("invalid context record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
	}
	table, err := kafka.OpenTable(ctx, kcfg, topics, apply, log)
	if err != nil {
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = table.Run(ctx)
	}()
	return table.Ready(), nil
}

// decodeContext decodes a context record of a kind from its Avro frame.
func decodeContext(serde *avro.Serde, kind string, value []byte) (any, string, error) {
	sc, native, err := serde.Decode(value)
	if err != nil {
		return nil, "", err
	}
	if want := schemas.ContextSchemas[kind]; sc.Name != want {
		return nil, "", fmt.Errorf("schema %s on the %s topic, want %s", sc.Name, kind, want)
	}
	m, _ := native.(map[string]any)
	source, _ := m["source"].(string)
	var rec any
	switch kind {
	case schemas.ContextInventory:
		rec, err = schemas.InventoryFromNative(native)
	case schemas.ContextChange:
		r := &schemas.ChangeRecord{}
		rec, err = r, schemas.FromNative(native, r)
	case schemas.ContextDeploy:
		r := &schemas.DeployRecord{}
		rec, err = r, schemas.FromNative(native, r)
	case schemas.ContextAccount:
		r := &schemas.AccountRecord{}
		rec, err = r, schemas.FromNative(native, r)
	default:
		err = fmt.Errorf("unknown context kind %q", kind)
	}
	return rec, source, err
}

// errNotAnEvent is the dead-letter reason for records whose schema is not an event's.
var errNotAnEvent = errors.New("record is not an event")

// enrich sets the enrichment of one raw event and returns the enriched record.
func (e *Enricher) enrich(r *kgo.Record) ([]*kgo.Record, error) {
	value, kind, err := e.EnrichValue(r.Value)
	if err != nil {
		return nil, err
	}
	return []*kgo.Record{{Topic: e.enriched[kind], Key: r.Key, Value: value, Headers: r.Headers}}, nil
}

// EnrichValue returns the enriched form of one framed raw event and its kind.
func (e *Enricher) EnrichValue(value []byte) ([]byte, string, error) {
	if fs := e.fastSchemaOf(value); fs != nil {
		return e.enrichFast(fs, value)
	}
	return e.enrichNative(value)
}

// enrichFast scans the fields the join needs and splices the encoded enrichment into the raw
// bytes; the writer schema stays the same.
func (e *Enricher) enrichFast(fs *fastSchema, value []byte) ([]byte, string, error) {
	var ev scannedEvent
	if err := ev.scan(fs, value); err != nil {
		return nil, "", err
	}
	var en schemas.Enrichment
	var j joined
	e.tables.Join(&ev.subject, &en, &j)
	return ev.enriched(en.Verdict, en.VerdictReason, &j), ev.kind.Name, nil
}

// scannedEvent is a raw event read by the scanner: what the join needs of it and where its
// enrichment lies.
type scannedEvent struct {
	value   []byte
	sc      scanned
	kind    *schemas.Kind
	subject Subject // its strings point into value
}

// scan reads a framed raw event of a fast schema.
func (ev *scannedEvent) scan(fs *fastSchema, value []byte) error {
	body := value[10:]
	if len(body) > math.MaxInt32 {
		return &avro.DecodeError{Schema: fs.name, Err: errors.New("event larger than 2 GiB")}
	}
	ev.value = value
	if err := fs.scanner.scan(body, &ev.sc); err != nil {
		return &avro.DecodeError{Schema: fs.name, Err: err}
	}
	str := func(slot int) string {
		if sp := ev.sc.strs[slot]; sp.end > sp.start {
			return unsafe.String(&body[sp.start], int(sp.end-sp.start))
		}
		return ""
	}
	if str(slotKind) != fs.kind.Name {
		return fmt.Errorf("%w: kind %q in a %s", errNotAnEvent, str(slotKind), fs.name)
	}
	ev.kind = fs.kind
	ev.subject = subjectOf(&fs.kind.Join, ev.sc.time, str)
	return nil
}

// enriched returns the event with its enrichment: the raw bytes with the enrichment field's
// value replaced, cut from a slab.
func (ev *scannedEvent) enriched(verdict, reason string, j *joined) []byte {
	body := ev.value[10:]
	w := slabPool.Get().(*slab)
	out := w.alloc(len(ev.value) + enrichedSize(verdict, reason, j))
	slabPool.Put(w)
	out = append(out, ev.value[:10]...)
	out = append(out, body[:ev.sc.enStart]...)
	out = appendEnrichmentUnion(out, verdict, reason, j)
	return append(out, body[ev.sc.enEd:]...)
}

// joinBatch is how many events enrichBatch joins at once.
const joinBatch = 32

// enrichBatch enriches a polled batch: the events the scanner reads are joined joinBatch at a
// time (ContextTables.JoinAll), others one by one through enrich.
func (e *Enricher) enrichBatch(recs []*kgo.Record) ([][]*kgo.Record, []error) {
	outs, errs := make([][]*kgo.Record, len(recs)), make([]error, len(recs))
	made, ptrs := make([]kgo.Record, len(recs)), make([]*kgo.Record, len(recs))
	var (
		evs   [joinBatch]scannedEvent
		idx   [joinBatch]int
		items [joinBatch]joinItem
	)
	for base := 0; base < len(recs); base += joinBatch {
		n := 0
		for i := base; i < min(base+joinBatch, len(recs)); i++ {
			value := recs[i].Value
			fs := e.fastSchemaOf(value)
			if fs == nil {
				outs[i], errs[i] = e.enrich(recs[i])
				continue
			}
			if errs[i] = evs[n].scan(fs, value); errs[i] != nil {
				continue
			}
			idx[n], items[n] = i, joinItem{s: &evs[n].subject}
			n++
		}
		e.tables.JoinAll(items[:n])
		for k := range n {
			i, ev := idx[k], &evs[k]
			made[i] = kgo.Record{Topic: e.enriched[ev.kind.Name], Key: recs[i].Key, Headers: recs[i].Headers,
				Value: ev.enriched(items[k].verdict, items[k].reason, &items[k].j)}
			ptrs[i] = &made[i]
			outs[i] = ptrs[i : i+1 : i+1]
			*ev, items[k] = scannedEvent{}, joinItem{}
		}
	}
	return outs, errs
}

// fastSchemaOf returns the scanner's schema of a framed event, or nil when goavro must read it.
func (e *Enricher) fastSchemaOf(value []byte) *fastSchema {
	if fp, ok := avro.SingleObjectFingerprint(value); ok {
		return e.fast[fp]
	}
	return nil
}

// slab is what enriched values are cut from, pooled, so that an event costs no allocation of
// its own; a slab is freed when the last value cut from it is.
type slab struct{ b []byte }

const slabSize = 64 << 10

// alloc returns an empty slice with capacity n cut from the slab.
func (w *slab) alloc(n int) []byte {
	if n > slabSize/4 {
		return make([]byte, 0, n)
	}
	if cap(w.b)-len(w.b) < n {
		w.b = make([]byte, 0, slabSize)
	}
	l := len(w.b)
	w.b = w.b[:l+n]
	return w.b[l : l : l+n]
}

var slabPool = sync.Pool{New: func() any { return &slab{} }}

// enrichNative decodes with goavro, sets the enrichment and re-encodes: for schemas the
// scanner does not read (Confluent framing, an enrichment of another shape).
func (e *Enricher) enrichNative(value []byte) ([]byte, string, error) {
	sc, native, err := e.deps.Serde.Decode(value)
	if err != nil {
		return nil, "", err
	}
	m, ok := native.(map[string]any)
	if !ok || m["kind"] == nil {
		return nil, "", fmt.Errorf("%w: schema %s", errNotAnEvent, sc.Name)
	}
	env, err := schemas.EnvelopeFromNative(m)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", errNotAnEvent, err)
	}
	kind, ok := e.deps.Kinds.Lookup(env.Kind)
	if !ok || kind.Codec.Schema != sc.Name {
		return nil, "", fmt.Errorf("%w: kind %q in a %s", errNotAnEvent, env.Kind, sc.Name)
	}
	paths := e.nativePaths[kind.Name]
	s := subjectOf(&kind.Join, env.Time, func(slot int) string { return nativeString(m, paths[slot]) })
	en := &schemas.Enrichment{}
	var j joined
	e.tables.Join(&s, en, &j)
	j.into(en)
	m["enrichment"] = schemas.EnrichmentNative(en)
	out, err := e.deps.Serde.Encode(nil, sc.Name, m)
	if err != nil {
		return nil, "", fmt.Errorf("re-encode enriched event: %w", err)
	}
	return out, env.Kind, nil
}

func nativeString(m map[string]any, path []string) string {
	for i, p := range path {
		v := m[p]
		if i == len(path)-1 {
			s, _ := v.(string)
			return s
		}
		next, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		m = next
	}
	return ""
}

// subjectOf says what the join looks at in an event whose kind joins on j (the fields read
// by slot): its host and time, the account it acts as or on (the first user path not empty),
// and its artifact (an exec's executable, a changed file) when its action is one whose
// artifact is judged.
func subjectOf(j *schemas.JoinFields, at int64, get func(slot int) string) Subject {
	s := Subject{Host: get(slotHost), Time: at}
	for i := range j.User {
		if s.User = get(slotUser + i); s.User != "" {
			break
		}
	}
	if j.Path == "" {
		return s
	}
	action := get(slotAction)
	if len(j.ArtifactActions) > 0 && !slices.Contains(j.ArtifactActions, action) {
		return s
	}
	s.Path = get(slotPath)
	if np := get(slotNewPath); np != "" {
		s.Path = np
	}
	s.SHA256, s.Owner, s.Group, s.Mode = get(slotSHA), get(slotOwner), get(slotGroup), get(slotMode)
	s.Deleted = slices.Contains(j.DeletedActions, action)
	return s
}

// ReadContext materialises the context topics once, up to their ends at the time of the call,
// and returns the tables: what `crumbs context publish` checks services against.
func ReadContext(ctx context.Context, kcfg kafka.Config, serde *avro.Serde, log *slog.Logger) (*ContextTables, error) {
	if log == nil {
		log = slog.Default()
	}
	tables := NewContextTables(DefaultConfig().MaxContextRecords, DefaultConfig().DeployHistory)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	ready, err := materialise(ctx, &wg, kcfg, serde, tables, log)
	if err != nil {
		return nil, fmt.Errorf("read context: %w", err)
	}
	select {
	case <-ready:
		return tables, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("read context: %w", ctx.Err())
	}
}
