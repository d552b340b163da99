// Package engine judges enriched events with stateful rules. In: rules (YAML files, one rule
// each, or built in Go by the Sigma loader) and decoded enriched events with the partition they
// came from. Out: alerts, and the changes of the per-rule, per-group-key window state, for the
// changelog topic. Windows run on event time: each partition keeps a clock per event kind (the
// highest event time seen of that kind; an event is late against its own kind's clock) and a
// watermark, the minimum of its active kinds' clocks less the allowed lateness; a window closes
// when the watermark passes its end. clock.go states the rule.
package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/pkg/yamlsafe"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Rule file formats.
const (
	FormatNative = "native" // crumbs' own YAML rules
	FormatSigma  = "sigma"  // Sigma rules, built by detectors/sigma
)

// Rule kinds.
const (
	KindMatch     = "match"     // every event that satisfies the condition
	KindThreshold = "threshold" // an aggregate per group key over a window, compared with a bound
	KindSequence  = "sequence"  // steps per group key within a window
	KindNewTerm   = "new_term"  // a value never seen for a key after a learning period
	KindSpike     = "spike"     // a value per key and interval against its rolling baseline
)

// Kinds lists the rule kinds.
var Kinds = []string{KindMatch, KindThreshold, KindSequence, KindNewTerm, KindSpike}

// What a change window active for the event's service or host does to a rule's alerts.
const (
	OnChangeIgnore   = "ignore"   // alert as if there were no change (default)
	OnChangeSuppress = "suppress" // no alert
	OnChangeExplain  = "explain"  // alert one severity lower, naming the change and its expected effects
)

// Threshold aggregates.
const (
	AggCount    = "count"
	AggSum      = "sum"
	AggDistinct = "distinct"
)

// Severities, lowest first.
var Severities = []string{"informational", "low", "medium", "high", "critical"}

// Sources are the event kinds a rule may read: those of schemas.Kinds.
var Sources = schemas.Kinds.Names()

// Rule is one detection rule. YAML rule files decode into it; the Sigma loader builds it in
// Go, setting Cond (and Step.Cond) instead of the CEL text, then calls Prepare.
type Rule struct {
	ID          string   `yaml:"id"`
	Title       string   `yaml:"title"`
	Description string   `yaml:"description"`
	Severity    string   `yaml:"severity"`
	Tags        []string `yaml:"tags"`
	// Author is credited in the rule's alerts (the Sigma licence requires it).
	Author string `yaml:"author"`
	// Level is a Sigma rule's level as written (empty when it has none, and for native rules).
	Level string `yaml:"-"`
	// Format is the rule's file format: native (default) or sigma; alerts carry it.
	Format string `yaml:"-"`
	// Source is the event kind read (enriched topic); sequence steps may name others.
	Source string `yaml:"source"`
	// Kind is one of Kinds.
	Kind string `yaml:"kind"`
	// Condition is a CEL expression over the event; ignored when Cond is set.
	Condition string `yaml:"condition"`
	// GroupBy are dotted field paths whose values form the group key.
	GroupBy []string `yaml:"group_by"`
	// OnChange is ignore (default), suppress or explain.
	OnChange string `yaml:"on_change"`
	// Window is the length of a threshold window or the span of a sequence.
	Window time.Duration `yaml:"window"`
	// Early makes a threshold or spike rule alert as soon as its condition holds, before its
	// window (or interval) closes; at the close the same alert (same id) is raised again with
	// the final figures and a higher Version, which replaces the early one downstream. Only
	// for aggregates that never decrease while a window fills: a threshold with op > or >=
	// over count or distinct (default true there) or over sum of a field that is never
	// negative (default false), a spike upwards (default false). Sequences need no option:
	// they alert when their last step matches.
	Early *bool `yaml:"early"`
	// Throttle folds the alerts of a match, new_term or sequence rule for one host and group
	// key, raised within this long of the first, into that first alert: one alert id (a hash
	// of the rule, host, group key and the first alert's event time) whose count grows, raised
	// again with a higher Version when its count doubles and, Final, when the window closes
	// (when anything was folded). Unset: the engine's default (detector.throttle); 0 turns it
	// off for the rule.
	Throttle *time.Duration `yaml:"throttle"`
	// EvidenceKey is a field path of the source: a throttled alert's evidence keeps one event
	// per distinct value of it (file paths with their temporary and lock siblings folded into
	// the file: /etc/passwd.12269, /etc/passwd+, /etc/passwd.lock are /etc/passwd), so that
	// every distinct value shows in the evidence before repeats do. Default file.path for
	// rules reading file events, none (the first events) for the others.
	EvidenceKey string `yaml:"evidence_key"`

	Threshold *Threshold `yaml:"threshold"` // kind threshold
	Sequence  *Sequence  `yaml:"sequence"`  // kind sequence
	NewTerm   *NewTerm   `yaml:"new_term"`  // kind new_term
	Spike     *Spike     `yaml:"spike"`     // kind spike

	// Cond decides whether an event matches: compiled from Condition by Prepare, or set by
	// the caller (a Sigma detection).
	Cond Condition `yaml:"-"`

	File string `yaml:"-"` // where the rule was read from
	Line int    `yaml:"-"` // line of the rule's first key

	lines       map[string]int // dotted YAML key -> line, for problems
	groupBy     [][]string
	evidenceKey []string // EvidenceKey resolved (nil: none)
	collapse    bool     // the evidence key is a file path: fold temporary and lock siblings
	early       bool     // Early resolved with its default
	order       int      // position in its rule set
	prepared    bool     // passed Prepare without problems
}

// Threshold configures a threshold rule: Aggregate over Window compared with Value.
type Threshold struct {
	// Aggregate is count (default), sum (of Field) or distinct (count of Field's values).
	Aggregate string `yaml:"aggregate"`
	// Field is summed or counted distinctly.
	Field string `yaml:"field"`
	// Op compares the aggregate with Value: >, >= (default), <, <=, ==, !=.
	Op string `yaml:"op"`
	// Value is the bound.
	Value float64 `yaml:"value"`
	// Slide makes the window sliding, advancing by Slide; zero means tumbling.
	Slide time.Duration `yaml:"slide"`
	// MaxDistinct caps the values remembered per window for distinct. Default 10000.
	MaxDistinct int `yaml:"max_distinct"`

	field []string
}

// Sequence configures a sequence rule: steps for one group key within the rule's Window.
type Sequence struct {
	// Unordered accepts the steps in any order (Sigma temporal); default ordered.
	Unordered bool `yaml:"unordered"`
	// Steps are matched in order; at least one must not be Absent.
	Steps []Step `yaml:"steps"`
}

// Step is one step of a sequence.
type Step struct {
	Name string `yaml:"name"`
	// Source is the event kind of the step; default the rule's.
	Source string `yaml:"source"`
	// Condition is a CEL expression over the step's source; ignored when Cond is set.
	Condition string `yaml:"condition"`
	// GroupBy overrides the rule's group-by paths for this step's source (same arity).
	GroupBy []string `yaml:"group_by"`
	// Count is how many matching events the step needs. Default 1.
	Count int `yaml:"count"`
	// Absent means the step must not occur between its neighbours (or, last, until the
	// window ends); the sequence is abandoned when it does.
	Absent bool `yaml:"absent"`
	// Cond is the compiled condition, or one the caller built.
	Cond Condition `yaml:"-"`

	groupBy [][]string
}

// NewTerm configures a new_term rule.
type NewTerm struct {
	// Fields form the term (a value or a tuple).
	Fields []string `yaml:"fields"`
	// Learning is how long after a group key is first seen its terms are only learnt.
	Learning time.Duration `yaml:"learning"`
	// MaxTerms caps the terms remembered per group key. Default 1000.
	MaxTerms int `yaml:"max_terms"`

	fields [][]string
}

// Spike configures a spike rule.
type Spike struct {
	// Field is summed per interval; empty counts events.
	Field string `yaml:"field"`
	// Interval is the length of one measured interval.
	Interval time.Duration `yaml:"interval"`
	// Baseline is how many past intervals form the rolling baseline. Default 10.
	Baseline int `yaml:"baseline"`
	// MinBaseline is how many past intervals are needed before judging. Default 3.
	MinBaseline int `yaml:"min_baseline"`
	// Method is stddev (mean + K standard deviations, default) or ratio (mean times Ratio).
	Method string `yaml:"method"`
	// K is the number of standard deviations. Default 3.
	K float64 `yaml:"k"`
	// Ratio is the factor for method ratio. Default 2.
	Ratio float64 `yaml:"ratio"`
	// Direction is up (default), down or both.
	Direction string `yaml:"direction"`
	// Metric names the value in changes' expected effects (e.g. network_bytes, cpu).
	Metric string `yaml:"metric"`

	field []string
}

// Condition decides whether one event (its CEL activation, see Activation) matches.
type Condition interface {
	Match(act map[string]any) (bool, error)
}

// PinnedCondition is a Condition that can only match events whose field (a dotted path)
// holds one of values; the engine indexes rules by it. Optional.
type PinnedCondition interface {
	Condition
	Pins() (field string, values []string, ok bool)
}

// KeyedCondition is a Condition that can only match events whose key, a string computed from
// the event's activation, is one of values; the engine indexes rules by it, computing each key
// (by name) once per event. Keys of the same name must compute the same thing. Optional; a
// condition that is pinned (PinnedCondition) is indexed by its pin instead.
type KeyedCondition interface {
	Condition
	IndexKey() (key IndexKey, values []string, ok bool)
}

// IndexKey names a function of an event's activation (see KeyedCondition); ok is false when
// the event has no value for it, and then no condition keyed by it can match.
type IndexKey struct {
	Name string
	Of   func(ev Fields) (value string, ok bool)
}

// LiteralCondition is a Condition that can only match events in which one of its literals
// occurs: a substring of the text its set's key computes from the activation (a command line,
// lower-cased). The engine indexes such conditions with one Aho-Corasick automaton per key over
// every literal, computing each key (by name) once per event, and evaluates a condition only
// when one of its literals occurs. Keys of the same name must compute the same text; a key
// without a value (ok false) holds no literal. Optional; a pinned or keyed condition is
// indexed by its pin or key instead.
type LiteralCondition interface {
	Condition
	Literals() (sets []LiteralSet, ok bool)
}

// LiteralSet is literals searched in the text of Key. Values must not be empty.
type LiteralSet struct {
	Key    IndexKey
	Values []string
}

// Problem is one thing wrong with a rule file, located at a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

// Error is file:line: message, or file: message when the line is unknown (0).
func (p Problem) Error() string {
	if p.Line <= 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Problems is every problem found in a rule set; its Error lists them one per line.
type Problems []Problem

func (ps Problems) Error() string {
	shown := ps[:min(len(ps), MaxProblems)]
	lines := make([]string, len(shown), len(shown)+1)
	for i, p := range shown {
		lines[i] = p.Error()
	}
	if more := len(ps) - len(shown); more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more problems", more))
	}
	return strings.Join(lines, "\n")
}

// MaxProblems is how many problems one rule file reports, and how many an error lists; the
// rest are summed up ("and N more problems"), so a large bad file gets a short answer.
const MaxProblems = 100

// capped keeps the first MaxProblems problems of one file and sums up the rest in a last one.
func capped(file string, ps Problems) Problems {
	if len(ps) <= MaxProblems {
		return ps
	}
	more := len(ps) - MaxProblems
	return append(ps[:MaxProblems:MaxProblems], Problem{File: file, Line: ps[MaxProblems].Line, Msg: fmt.Sprintf("and %d more problems", more)})
}

// allowedKeys lists the keys each YAML mapping of a rule may hold ("*" is a list element).
var allowedKeys = map[string][]string{
	"":                 {"id", "title", "description", "severity", "tags", "author", "source", "kind", "condition", "group_by", "on_change", "window", "early", "throttle", "evidence_key", "threshold", "sequence", "new_term", "spike"},
	"threshold":        {"aggregate", "field", "op", "value", "slide", "max_distinct"},
	"sequence":         {"unordered", "steps"},
	"sequence.steps.*": {"name", "source", "condition", "group_by", "count", "absent"},
	"new_term":         {"fields", "learning", "max_terms"},
	"spike":            {"field", "interval", "baseline", "min_baseline", "method", "k", "ratio", "direction", "metric"},
}

// ParseRule reads and compiles one rule file. Every problem is returned, each with its line.
func ParseRule(file string, data []byte) (*Rule, Problems) {
	doc, err := yamlsafe.ParseOne(data, yamlsafe.DefaultLimits())
	if errors.Is(err, yamlsafe.ErrLimit) {
		return nil, Problems{{File: file, Line: 1, Msg: err.Error()}}
	}
	if err != nil {
		return nil, Problems{{File: file, Line: yamlErrLine(err), Msg: "invalid YAML: " + err.Error()}}
	}
	if doc == nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: 1, Msg: "a rule file holds one YAML mapping"}}
	}
	root := doc.Content[0]
	r := &Rule{File: file, Line: root.Line, lines: map[string]int{}}
	ps := walkKeys(file, root, "", "", r.lines)
	if err := root.Decode(r); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				ps = append(ps, Problem{file, yamlErrLine(errors.New("yaml: " + m)), m})
			}
		} else {
			ps = append(ps, Problem{file, yamlErrLine(err), err.Error()})
		}
		return nil, capped(file, ps)
	}
	ps = append(ps, Prepare(r)...)
	if len(ps) > 0 {
		return nil, capped(file, ps)
	}
	return r, nil
}

// walkKeys records the line of every key and reports keys a rule does not know.
func walkKeys(file string, n *yaml.Node, pattern, prefix string, lines map[string]int) Problems {
	var ps Problems
	switch n.Kind {
	case yaml.MappingNode:
		allowed, checked := allowedKeys[pattern]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(prefix, k.Value)
			lines[key] = k.Line
			if checked && !slices.Contains(allowed, k.Value) {
				ps = append(ps, Problem{file, k.Line, fmt.Sprintf("unknown key %q", key)})
			}
			ps = append(ps, walkKeys(file, v, join(pattern, k.Value), key, lines)...)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			key := join(prefix, strconv.Itoa(i))
			lines[key] = c.Line
			ps = append(ps, walkKeys(file, c, join(pattern, "*"), key, lines)...)
		}
	}
	return ps
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// Prepare checks a rule, fills its defaults and compiles its conditions (unless Cond is set).
// Rules built in Go must pass through it (New calls it for rules not yet prepared).
func Prepare(r *Rule) Problems {
	if r.lines == nil {
		r.lines = map[string]int{}
	}
	if r.File == "" {
		r.File = "rule " + r.ID
	}
	if r.Format == "" {
		r.Format = FormatNative
	}
	c := &checker{r: r}
	c.common()
	r.early = false
	switch r.Kind {
	case KindMatch, KindNewTerm, KindSequence:
		if r.Early != nil {
			c.bad("early", "applies to threshold and spike rules only (a %s rule alerts as soon as its condition holds)", r.Kind)
		}
		c.throttle()
	case KindThreshold, KindSpike:
		if r.Throttle != nil {
			c.bad("throttle", "applies to match, new_term and sequence rules only (a %s rule raises one alert per group key and window already)", r.Kind)
		}
	}
	switch r.Kind {
	case KindMatch:
	case KindThreshold:
		c.threshold()
	case KindSequence:
		c.sequence()
	case KindNewTerm:
		c.newTerm()
	case KindSpike:
		c.spike()
	default:
		c.bad("kind", "%q: must be one of %s", r.Kind, strings.Join(Kinds, ", "))
	}
	r.prepared = len(c.ps) == 0
	return c.ps
}

// checker accumulates the problems of one rule.
type checker struct {
	r  *Rule
	ps Problems
}

// at is the line of a dotted key, else of its closest parent, else of the rule.
func (c *checker) at(key string) int {
	for k := key; k != ""; {
		if l, ok := c.r.lines[k]; ok {
			return l
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return c.r.Line
}

func (c *checker) bad(key, format string, a ...any) {
	c.ps = append(c.ps, Problem{c.r.File, c.at(key), key + ": " + fmt.Sprintf(format, a...)})
}

func (c *checker) common() {
	r := c.r
	if r.ID == "" {
		c.bad("id", "is required")
	}
	if r.Title == "" {
		c.bad("title", "is required")
	}
	if !slices.Contains(Severities, r.Severity) {
		c.bad("severity", "%q: must be one of %s", r.Severity, strings.Join(Severities, ", "))
	}
	if r.OnChange == "" {
		r.OnChange = OnChangeIgnore
	}
	if !slices.Contains([]string{OnChangeIgnore, OnChangeSuppress, OnChangeExplain}, r.OnChange) {
		c.bad("on_change", "%q: must be ignore, suppress or explain", r.OnChange)
	}
	if !slices.Contains(Sources, r.Source) {
		c.bad("source", "%q: must be one of %s", r.Source, strings.Join(Sources, ", "))
		return
	}
	if r.Kind != KindSequence {
		r.Cond = c.condition("condition", r.Source, r.Condition, r.Cond)
	}
	r.groupBy = c.paths("group_by", r.Source, r.GroupBy)
	if r.Window < 0 {
		c.bad("window", "%s: must not be negative", r.Window)
	}
}

// condition compiles a CEL condition unless one was given.
func (c *checker) condition(key, source, expr string, given Condition) Condition {
	if given != nil {
		return given
	}
	if strings.TrimSpace(expr) == "" {
		c.bad(key, "is required")
		return nil
	}
	cond, err := CompileCEL(source, expr)
	if err != nil {
		c.bad(key, "%v", err)
		return nil
	}
	return cond
}

// paths checks dotted field paths against the source's schema.
func (c *checker) paths(key, source string, ps []string) [][]string {
	out := make([][]string, 0, len(ps))
	for i, p := range ps {
		if _, err := FieldType(source, p); err != nil {
			c.bad(fmt.Sprintf("%s.%d", key, i), "%v", err)
			continue
		}
		out = append(out, strings.Split(p, "."))
	}
	return out
}

// numeric checks that a field exists and holds a number.
func (c *checker) numeric(key, source, p string) []string {
	t, err := FieldType(source, p)
	if err != nil {
		c.bad(key, "%v", err)
		return nil
	}
	if n := t.String(); n != "int" && n != "double" {
		c.bad(key, "%s is %s, not a number", p, n)
		return nil
	}
	return strings.Split(p, ".")
}

// throttle checks the throttle and resolves the evidence key.
func (c *checker) throttle() {
	r := c.r
	if r.Throttle != nil && *r.Throttle < 0 {
		c.bad("throttle", "%s: must not be negative (0 turns throttling off)", *r.Throttle)
	}
	r.evidenceKey, r.collapse = nil, false
	key := r.EvidenceKey
	if key == "" && r.Source == "file" && r.Kind != KindSequence {
		key = "file.path"
	}
	if key == "" || !slices.Contains(Sources, r.Source) {
		return
	}
	if _, err := FieldType(r.Source, key); err != nil {
		c.bad("evidence_key", "%v", err)
		return
	}
	r.evidenceKey = strings.Split(key, ".")
	r.collapse = r.Source == "file" && (key == "file.path" || key == "file.new_path")
}

func (c *checker) needWindow() {
	if c.r.Window <= 0 {
		c.bad("window", "is required for kind %s (a duration such as 5m)", c.r.Kind)
	}
}

func (c *checker) threshold() {
	c.needWindow()
	t := c.r.Threshold
	if t == nil {
		c.bad("threshold", "is required for kind threshold")
		return
	}
	if t.Aggregate == "" {
		t.Aggregate = AggCount
	}
	if t.Op == "" {
		t.Op = ">="
	}
	if t.MaxDistinct == 0 {
		t.MaxDistinct = 10000
	}
	switch t.Aggregate {
	case AggCount:
	case AggSum:
		t.field = c.numeric("threshold.field", c.r.Source, t.Field)
	case AggDistinct:
		if ps := c.paths("threshold.field", c.r.Source, []string{t.Field}); len(ps) == 1 {
			t.field = ps[0]
		}
	default:
		c.bad("threshold.aggregate", "%q: must be count, sum or distinct", t.Aggregate)
	}
	if !slices.Contains([]string{">", ">=", "<", "<=", "==", "!="}, t.Op) {
		c.bad("threshold.op", "%q: must be one of >, >=, <, <=, ==, !=", t.Op)
	}
	if t.Slide < 0 || (t.Slide > 0 && (t.Slide > c.r.Window || c.r.Window%t.Slide != 0)) {
		c.bad("threshold.slide", "%s: must divide the window (%s)", t.Slide, c.r.Window)
	}
	// Early alerting is sound only when the aggregate never decreases as a window fills
	// (count, distinct; sum when the author says so) and the bound is a floor.
	growing := t.Op == ">" || t.Op == ">="
	switch {
	case c.r.Early == nil:
		c.r.early = growing && (t.Aggregate == AggCount || t.Aggregate == AggDistinct)
	case *c.r.Early && !growing:
		c.bad("early", "needs threshold.op > or >= (with %s the condition may stop holding before the window closes)", t.Op)
	default:
		c.r.early = *c.r.Early
	}
}

func (c *checker) sequence() {
	c.needWindow()
	s := c.r.Sequence
	if s == nil || len(s.Steps) < 2 {
		c.bad("sequence.steps", "a sequence needs at least two steps")
		return
	}
	present := 0
	for i := range s.Steps {
		st := &s.Steps[i]
		key := fmt.Sprintf("sequence.steps.%d", i)
		if st.Source == "" {
			st.Source = c.r.Source
		}
		if !slices.Contains(Sources, st.Source) {
			c.bad(key+".source", "%q: must be one of %s", st.Source, strings.Join(Sources, ", "))
			continue
		}
		st.Cond = c.condition(key+".condition", st.Source, st.Condition, st.Cond)
		gb := st.GroupBy
		if len(gb) == 0 {
			gb = c.r.GroupBy
			key = ""
		}
		if len(gb) != len(c.r.GroupBy) {
			c.bad(key+".group_by", "has %d fields, the rule's group_by %d", len(gb), len(c.r.GroupBy))
		}
		if key == "" {
			st.groupBy = c.paths("group_by", st.Source, gb)
		} else {
			st.groupBy = c.paths(key+".group_by", st.Source, gb)
		}
		if st.Count == 0 {
			st.Count = 1
		}
		if st.Count < 0 || (st.Absent && st.Count != 1) {
			c.bad(fmt.Sprintf("sequence.steps.%d.count", i), "%d: must be at least 1 (and 1 for an absent step)", st.Count)
		}
		if !st.Absent {
			present++
		}
	}
	if present == 0 || s.Steps[0].Absent {
		c.bad("sequence.steps", "the first step must not be absent")
	}
	if s.Unordered && present != len(s.Steps) {
		c.bad("sequence.unordered", "an unordered sequence cannot have absent steps")
	}
	if len(s.Steps) > 32 {
		c.bad("sequence.steps", "at most 32 steps")
	}
}

func (c *checker) newTerm() {
	n := c.r.NewTerm
	if n == nil || len(n.Fields) == 0 {
		c.bad("new_term.fields", "is required for kind new_term")
		return
	}
	n.fields = c.paths("new_term.fields", c.r.Source, n.Fields)
	if n.Learning < 0 {
		c.bad("new_term.learning", "%s: must not be negative", n.Learning)
	}
	if n.MaxTerms == 0 {
		n.MaxTerms = 1000
	}
	if n.MaxTerms < 1 {
		c.bad("new_term.max_terms", "%d: must be at least 1", n.MaxTerms)
	}
}

func (c *checker) spike() {
	s := c.r.Spike
	if s == nil {
		c.bad("spike", "is required for kind spike")
		return
	}
	if s.Field != "" {
		s.field = c.numeric("spike.field", c.r.Source, s.Field)
	}
	if s.Interval <= 0 {
		c.bad("spike.interval", "is required (a duration such as 1m)")
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&s.Baseline, 10)
	def(&s.MinBaseline, 3)
	if s.K == 0 {
		s.K = 3
	}
	if s.Ratio == 0 {
		s.Ratio = 2
	}
	if s.Method == "" {
		s.Method = "stddev"
	}
	if s.Direction == "" {
		s.Direction = "up"
	}
	if s.MinBaseline < 1 || s.MinBaseline > s.Baseline {
		c.bad("spike.min_baseline", "%d: must be between 1 and baseline (%d)", s.MinBaseline, s.Baseline)
	}
	if s.Method != "stddev" && s.Method != "ratio" {
		c.bad("spike.method", "%q: must be stddev or ratio", s.Method)
	}
	if s.K < 0 || s.Ratio <= 1 {
		c.bad("spike.ratio", "k must be positive and ratio above 1 (k %g, ratio %g)", s.K, s.Ratio)
	}
	if !slices.Contains([]string{"up", "down", "both"}, s.Direction) {
		c.bad("spike.direction", "%q: must be up, down or both", s.Direction)
	}
	if c.r.Early != nil && *c.r.Early {
		if s.Direction == "down" {
			c.bad("early", "a drop shows only when its interval closes: early needs spike.direction up or both")
		}
		c.r.early = true
	}
}

// SourceFile is one rule file: its path (as named in problems) and content.
type SourceFile struct {
	Path string
	Data []byte
}

// Format reads rule files of a format other than crumbs' own (Sigma) into rules.
type Format interface {
	// Claims tells whether a file's content is of this format.
	Claims(data []byte) bool
	// Load turns the claimed files of one rule set (in path order) into prepared rules; a
	// problem refuses the set.
	Load(files []SourceFile) ([]*Rule, Problems)
}

// RuleDir is a folder (or one file) of rules: Dir in FS, its files named Prefix/path.
type RuleDir struct {
	FS     fs.FS
	Dir    string
	Prefix string // joined before the paths in FS; empty leaves them as they are
}

// LoadFS reads every *.yml and *.yaml file under dir in fsys. A file claimed by one of
// formats (Sigma) is read by it; the others are crumbs rules. The set is refused as a whole
// when any rule has a problem, or two rules share an id.
func LoadFS(fsys fs.FS, dir string, formats ...Format) ([]*Rule, error) {
	return LoadDirs([]RuleDir{{FS: fsys, Dir: dir}}, formats...)
}

// LoadDirs reads the rule files of every folder as one set, as LoadFS does for one.
func LoadDirs(dirs []RuleDir, formats ...Format) ([]*Rule, error) {
	var rules []*Rule
	var ps Problems
	claimed := make([][]SourceFile, len(formats))
	for _, d := range dirs {
		err := fs.WalkDir(d.FS, d.Dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() || !IsRuleFile(p) {
				return nil
			}
			name := p
			if d.Prefix != "" {
				name = path.Join(d.Prefix, p)
			}
			data, why, err := readRuleFile(d.FS, p)
			if err != nil {
				return err
			}
			if why != "" {
				ps = append(ps, Problem{File: name, Line: 1, Msg: why})
				return nil
			}
			for i, f := range formats {
				if f.Claims(data) {
					claimed[i] = append(claimed[i], SourceFile{Path: name, Data: data})
					return nil
				}
			}
			r, rps := ParseRule(name, data)
			ps = append(ps, rps...)
			if r != nil {
				rules = append(rules, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read rules in %s: %w", path.Join(d.Prefix, d.Dir), err)
		}
	}
	for i, f := range formats {
		sort.Slice(claimed[i], func(a, b int) bool { return claimed[i][a].Path < claimed[i][b].Path })
		rs, fps := f.Load(claimed[i])
		rules = append(rules, rs...)
		ps = append(ps, fps...)
	}
	ps = append(ps, duplicateIDs(rules)...)
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].File < ps[j].File })
		return nil, ps
	}
	return rules, nil
}

// readRuleFile reads one rule file, or says why it is refused: it must be a regular file (a
// FIFO or device would block or never end) of at most the YAML input limit.
func readRuleFile(fsys fs.FS, p string) ([]byte, string, error) {
	st, err := fs.Stat(fsys, p)
	if err != nil {
		return nil, "", err
	}
	maxBytes := yamlsafe.DefaultLimits().MaxBytes
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Sprintf("not a regular file (mode %s)", st.Mode().Type()), nil
	case st.Size() > int64(maxBytes):
		return nil, fmt.Sprintf("%d bytes: larger than the limit of %d", st.Size(), maxBytes), nil
	}
	f, err := fsys.Open(p)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > maxBytes {
		return nil, fmt.Sprintf("larger than the limit of %d bytes", maxBytes), nil
	}
	return data, "", nil
}

// perSource tells the engine rules of one Sigma rule that reads several event kinds apart
// from two rules sharing an id: match rules of one file, each reading its own kind.
func perSource(a, b *Rule) bool {
	return a.Format == FormatSigma && b.Format == FormatSigma && a.Kind == KindMatch && b.Kind == KindMatch &&
		a.File == b.File && a.Source != b.Source
}

func duplicateIDs(rules []*Rule) Problems {
	var ps Problems
	seen := map[string]*Rule{}
	for _, r := range rules {
		if first, ok := seen[r.ID]; ok && !perSource(first, r) {
			ps = append(ps, Problem{r.File, r.Line, fmt.Sprintf("id %q already used by %s:%d", r.ID, first.File, first.Line)})
			continue
		}
		seen[r.ID] = r
	}
	return ps
}

// IsRuleFile tells rule files (*.yml, *.yaml) from fixtures (name.fixtures.yaml, or under a
// fixtures folder) and everything else.
func IsRuleFile(p string) bool {
	return (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) && !isFixture(p)
}

func isFixture(p string) bool {
	return strings.Contains(path.Base(p), ".fixture") || strings.Contains(p, "/fixtures/") || strings.HasPrefix(p, "fixtures/")
}

func yamlErrLine(err error) int {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		if _, e := fmt.Sscanf(msg[i:], "line %d", &line); e == nil {
			return line
		}
	}
	return 1
}
