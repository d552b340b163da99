package enrichers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/yamlsafe"
	"github.com/threatcrumbs/crumbs/schemas"
)

// ErrInvalidContext marks context input that is refused; nothing of it is published.
var ErrInvalidContext = errors.New("invalid context")

// ContextKinds are the kinds of context records that can be published.
var ContextKinds = []string{schemas.ContextChange, schemas.ContextDeploy, schemas.ContextInventory, schemas.ContextAccount}

// Problem is one reason context input is refused: which record (source, position, line, kind
// and id as far as known), which field, and what is wrong. It is the JSON body of an HTTP 400.
type Problem struct {
	Source  string `json:"source,omitempty"`
	Record  int    `json:"record,omitempty"` // 1-based position in the input
	Line    int    `json:"line,omitempty"`
	Kind    string `json:"kind,omitempty"`
	ID      string `json:"id,omitempty"`
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
}

// String says where the problem is and what it is, in one line.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Source)
	if p.Record > 0 {
		fmt.Fprintf(&b, ": record %d", p.Record)
		if p.Line > 0 {
			fmt.Fprintf(&b, " (line %d)", p.Line)
		}
	}
	if p.Kind != "" || p.ID != "" {
		fmt.Fprintf(&b, " %s %q", p.Kind, p.ID)
	}
	if p.Field != "" {
		fmt.Fprintf(&b, ": field %s", p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Problem)
	return b.String()
}

// InvalidContextError lists every problem of refused context input. It matches
// ErrInvalidContext with errors.Is.
type InvalidContextError struct {
	Problems []Problem
}

func (e *InvalidContextError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid context:\n" + strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalidContext) true.
func (e *InvalidContextError) Is(target error) bool { return target == ErrInvalidContext }

// ContextRecord is one validated context record ready to publish, or a tombstone (Native nil).
type ContextRecord struct {
	Kind   string
	ID     string
	Schema string
	Native map[string]any // nil: a tombstone that deletes ID
	Record any            // *schemas.ChangeRecord, *DeployRecord, *InventoryRecord or *AccountRecord

	pos, line int // where it was in the input, for problems found across records
}

// Services says whether a service is known, i.e. listed by some inventory record. Nil knows
// every service (no check).
type Services func(service string) bool

// ParseOptions are the choices of one parse.
type ParseOptions struct {
	// Kind of every record; empty takes each record's own kind field (the directory sync).
	Kind string
	// Source names the input in problems (file name, "request").
	Source string
	// Origin is stored with each record as its source (api, cli, file:<path>).
	Origin string
	// Known says which services exist; services named by inventory records of the same
	// input count as known. Nil skips the check.
	Known Services
	// Now is the publication time stored as updated_at; zero means time.Now().
	Now time.Time
}

// ParseContext reads context records from JSON or YAML (one record or a list) and validates
// all of them. On any problem it returns an *InvalidContextError naming each bad record (by
// position, line and id), the field and the problem, and no records: nothing partial.
func ParseContext(data []byte, o ParseOptions) ([]ContextRecord, error) {
	if o.Kind != "" && !slices.Contains(ContextKinds, o.Kind) {
		return nil, invalid(Problem{Source: o.Source, Field: "kind", Problem: fmt.Sprintf("unknown kind %q (have: %s)", o.Kind, strings.Join(ContextKinds, ", "))})
	}
	doc, err := yamlsafe.ParseOne(data, yamlsafe.DefaultLimits())
	if errors.Is(err, yamlsafe.ErrLimit) {
		return nil, invalid(Problem{Source: o.Source, Problem: err.Error()})
	}
	if err != nil {
		return nil, invalid(Problem{Source: o.Source, Line: yamlsafe.Line(err), Problem: fmt.Sprintf("not JSON or YAML: %v", err)})
	}
	if doc == nil || len(doc.Content) == 0 {
		return nil, invalid(Problem{Source: o.Source, Problem: "no records"})
	}
	nodes := []*yaml.Node{doc.Content[0]}
	if doc.Content[0].Kind == yaml.SequenceNode {
		nodes = doc.Content[0].Content
	}
	if len(nodes) == 0 {
		return nil, invalid(Problem{Source: o.Source, Problem: "no records"})
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	var probs []Problem
	out := make([]ContextRecord, 0, len(nodes))
	for i, n := range nodes {
		rec, ps := parseOne(n, o, now.UnixNano())
		for _, p := range ps {
			p.Source, p.Record, p.Line = o.Source, i+1, n.Line
			probs = append(probs, p)
		}
		if len(ps) == 0 {
			rec.pos, rec.line = i+1, n.Line
			out = append(out, rec)
		}
	}
	probs = append(probs, checkServices(out, o)...)
	probs = append(probs, checkDuplicates(out, o.Source)...)
	if len(probs) > 0 {
		return nil, invalid(probs...)
	}
	return out, nil
}

// MaxProblems is how many problems a refusal lists; the rest are summed up in a last one
// ("and N more problems"), so a large bad input gets a short answer.
const MaxProblems = 100

func invalid(ps ...Problem) error {
	if len(ps) > MaxProblems {
		more := len(ps) - MaxProblems
		ps = append(ps[:MaxProblems:MaxProblems], Problem{Source: ps[0].Source, Problem: fmt.Sprintf("and %d more problems", more)})
	}
	return &InvalidContextError{Problems: ps}
}

// recordTypes maps each context kind to the Go type its records decode into.
var recordTypes = map[string]reflect.Type{
	schemas.ContextChange:    reflect.TypeFor[schemas.ChangeRecord](),
	schemas.ContextDeploy:    reflect.TypeFor[schemas.DeployRecord](),
	schemas.ContextInventory: reflect.TypeFor[schemas.InventoryRecord](),
	schemas.ContextAccount:   reflect.TypeFor[schemas.AccountRecord](),
}

// parseOne decodes and validates one record node. Problems carry kind, id, field and problem.
func parseOne(n *yaml.Node, o ParseOptions, now int64) (ContextRecord, []Problem) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return ContextRecord{}, []Problem{{Kind: o.Kind, Problem: "not a record (want a mapping of field names to values)"}}
	}
	kind, id := scalarField(n, "kind"), scalarField(n, "id")
	base := Problem{Kind: kind, ID: id}
	if o.Kind != "" {
		base.Kind = o.Kind
	}
	fail := func(field, format string, a ...any) []Problem {
		p := base
		p.Field, p.Problem = field, fmt.Sprintf(format, a...)
		return []Problem{p}
	}
	switch {
	case o.Kind == "" && kind == "":
		return ContextRecord{}, fail("kind", "is required (%s)", strings.Join(ContextKinds, ", "))
	case o.Kind == "" && !slices.Contains(ContextKinds, kind):
		return ContextRecord{}, fail("kind", "unknown kind %q (have: %s)", kind, strings.Join(ContextKinds, ", "))
	case o.Kind != "" && kind != "" && kind != o.Kind:
		return ContextRecord{}, fail("kind", "%q, but the records published here are %q", kind, o.Kind)
	}
	if o.Kind != "" {
		kind = o.Kind
	}
	base.Kind = kind
	typ := recordTypes[kind]
	if ps := checkShape(n, typ, base); len(ps) > 0 {
		return ContextRecord{}, ps
	}
	ptr := reflect.New(typ)
	if err := n.Decode(ptr.Interface()); err != nil {
		return ContextRecord{}, fail("", "%s", strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "))
	}
	rec := ContextRecord{Kind: kind, ID: id, Schema: schemas.ContextSchemas[kind], Record: ptr.Interface()}
	var fps []schemas.FieldProblem
	switch r := ptr.Interface().(type) {
	case *schemas.ChangeRecord:
		r.Kind, r.UpdatedAt, r.Source = kind, now, o.Origin
		fps = r.Validate()
		rec.Native = schemas.ToNative(r)
	case *schemas.DeployRecord:
		r.Kind, r.UpdatedAt, r.Source = kind, now, o.Origin
		fps = r.Validate()
		rec.Native = schemas.ToNative(r)
	case *schemas.AccountRecord:
		r.Kind, r.UpdatedAt, r.Source = kind, now, o.Origin
		fps = r.Validate()
		rec.Native = schemas.ToNative(r)
	case *schemas.InventoryRecord:
		r.Kind, r.UpdatedAt, r.Source = kind, now, o.Origin
		fps = schemas.ValidateInventory(r)
		rec.Native = r.Native()
	}
	var ps []Problem
	for _, fp := range fps {
		p := base
		p.Field, p.Problem = fp.Field, fp.Problem
		ps = append(ps, p)
	}
	return rec, ps
}

// scalarField returns the value of a top-level scalar field of a mapping node.
func scalarField(n *yaml.Node, name string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if v := resolve(n.Content[i+1]); n.Content[i].Value == name && v.Kind == yaml.ScalarNode {
			return v.Value
		}
	}
	return ""
}

// resolve returns the node an alias stands for (yamlsafe has bounded what aliases expand to).
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// checkShape reports unknown fields and malformed times by field name, which the YAML
// decoder would only report by line.
func checkShape(n *yaml.Node, typ reflect.Type, base Problem) []Problem {
	fields := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	var ps []Problem
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, resolve(n.Content[i+1])
		ft, ok := fields[k]
		p := base
		p.Field = k
		switch {
		case !ok:
			p.Problem = "unknown field"
			ps = append(ps, p)
		case ft == reflect.TypeFor[schemas.Timestamp]():
			if v.Kind != yaml.ScalarNode {
				p.Problem = "want an RFC 3339 time (e.g. 2026-11-27T06:00:00Z)"
				ps = append(ps, p)
			} else if _, err := schemas.ParseTimestamp(v.Value); err != nil {
				p.Problem = err.Error()
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// checkServices refuses records naming a service that no inventory record lists, neither the
// materialised inventory (o.Known) nor an inventory record of the same input.
func checkServices(recs []ContextRecord, o ParseOptions) []Problem {
	if o.Known == nil {
		return nil
	}
	local := map[string]bool{}
	for _, r := range recs {
		if inv, ok := r.Record.(*schemas.InventoryRecord); ok {
			local[inv.Service] = true
		}
	}
	var ps []Problem
	for _, r := range recs {
		var refs []schemas.FieldRef
		switch x := r.Record.(type) {
		case *schemas.ChangeRecord:
			refs = x.ReferencedServices()
		case *schemas.DeployRecord:
			refs = x.ReferencedServices()
		}
		for _, ref := range refs {
			if !local[ref.Value] && !o.Known(ref.Value) {
				ps = append(ps, Problem{Source: o.Source, Record: r.pos, Line: r.line,
					Kind: r.Kind, ID: r.ID, Field: ref.Field,
					Problem: fmt.Sprintf("unknown service %q: no inventory record lists it (publish the inventory first)", ref.Value)})
			}
		}
	}
	return ps
}

// checkDuplicates refuses the same kind and id twice in one input: which one wins would depend
// on partitioning.
func checkDuplicates(recs []ContextRecord, source string) []Problem {
	first := map[[2]string]int{}
	var ps []Problem
	for _, r := range recs {
		k := [2]string{r.Kind, r.ID}
		if pos, dup := first[k]; dup {
			ps = append(ps, Problem{Source: source, Record: r.pos, Line: r.line,
				Kind: r.Kind, ID: r.ID, Field: "id", Problem: fmt.Sprintf("also record %d: an id may appear once", pos)})
			continue
		}
		first[k] = r.pos
	}
	return ps
}

// Tombstone returns the record that deletes kind/id.
func Tombstone(kind, id string) (ContextRecord, error) {
	if !slices.Contains(ContextKinds, kind) {
		return ContextRecord{}, invalid(Problem{Field: "kind", Problem: fmt.Sprintf("unknown kind %q (have: %s)", kind, strings.Join(ContextKinds, ", "))})
	}
	if strings.TrimSpace(id) == "" {
		return ContextRecord{}, invalid(Problem{Kind: kind, Field: "id", Problem: "is required"})
	}
	return ContextRecord{Kind: kind, ID: id, Schema: schemas.ContextSchemas[kind]}, nil
}

// PublishContext produces records (and tombstones) to their compacted topics, keyed by id,
// and waits until the brokers acknowledged all of them (acks=all, idempotent producer). The
// input is validated as a whole before (ParseContext), so invalid input publishes nothing; a
// broker failure midway returns an error, and publishing the same input again is safe because
// records are idempotent by id.
//
// Not a Kafka transaction: the commit marker takes an offset that kafka.Table, which waits
// for the offset before the end, never sees, so a transactional publish would keep every
// enricher from becoming ready.
func PublishContext(ctx context.Context, kcfg kafka.Config, serde *avro.Serde, recs []ContextRecord) error {
	if len(recs) == 0 {
		return nil
	}
	records := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		var v []byte
		if r.Native != nil {
			var err error
			if v, err = serde.Encode(nil, r.Schema, r.Native); err != nil {
				return fmt.Errorf("encode %s %s: %w", r.Kind, r.ID, err)
			}
		}
		records = append(records, &kgo.Record{Topic: kcfg.Topics().Context(r.Kind), Key: []byte(r.ID), Value: v})
	}
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("publish context: kafka client: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("publish context: %w", err)
	}
	return nil
}
