package sigma

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// What a rule set does with a Sigma file crumbs refuses (detector.sigma_refused).
const (
	RefusedFail = "fail" // the set is invalid, as with a bad native rule (default)
	RefusedSkip = "skip" // the file is left out, reported through Format.OnSkip; the rest loads
)

// Levels are Sigma's levels, lowest first.
var Levels = []string{"informational", "low", "medium", "high", "critical"}

// Statuses are Sigma's rule statuses.
var Statuses = []string{"stable", "test", "experimental", "deprecated", "unsupported"}

// The default filter (detector.sigma_min_level, detector.sigma_status): medium and above, and
// the statuses SigmaHQ keeps in its rules folders. Informational and low rules describe
// activity (a file deleted, a directory listed) more than an attack, and raise an alert per
// event on an ordinary host; deprecated rules have a replacement, and unsupported ones cannot
// be expressed for usual backends.
var (
	DefaultMinLevel = "medium"
	DefaultStatuses = []string{"stable", "test", "experimental"}
)

// Filter chooses the Sigma rules that raise alerts, by level and status. A rule left out
// raises no alert of its own; a correlation rule that is kept may still use it. The zero
// Filter keeps every rule.
type Filter struct {
	// MinLevel is the lowest level kept; a rule without a level counts as medium (the
	// severity its alerts get). Empty keeps every level.
	MinLevel string
	// Statuses are the statuses kept (case-insensitive); a rule without a status is kept.
	// Nil keeps every status.
	Statuses []string
}

// leavesOut says why the filter leaves out a rule of this level and status: its status
// ("deprecated"), "below level X", or "" when the rule is kept.
func (f Filter) leavesOut(level, status string) string {
	status = strings.ToLower(strings.TrimSpace(status))
	if f.Statuses != nil && status != "" && !slices.ContainsFunc(f.Statuses, func(s string) bool { return strings.EqualFold(s, status) }) {
		return status
	}
	if level == "" {
		level = "medium"
	}
	if f.MinLevel != "" && slices.Index(Levels, level) < slices.Index(Levels, f.MinLevel) {
		return "below level " + f.MinLevel
	}
	return ""
}

// FilterCounts say what became of the Sigma rules of a set: each detection or correlation rule
// of a file that loaded is loaded or left out by the filter; a refused file counts once.
type FilterCounts struct {
	Rules   int            // every rule, and every refused file
	Loaded  int            // rules that raise alerts
	Refused int            // files refused (see their reason)
	Left    map[string]int // rules left out, by reason: "below level medium", "deprecated", ...
}

// String is "152 Sigma rules: 97 loaded, 41 below level medium, 14 deprecated, 3 refused".
func (c FilterCounts) String() string {
	parts := []string{fmt.Sprintf("%d loaded", c.Loaded)}
	reasons := make([]string, 0, len(c.Left))
	for r := range c.Left {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if c.Left[reasons[i]] != c.Left[reasons[j]] {
			return c.Left[reasons[i]] > c.Left[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", c.Left[r], r))
	}
	if c.Refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused", c.Refused))
	}
	return fmt.Sprintf("%d Sigma rules: %s", c.Rules, strings.Join(parts, ", "))
}

// Format reads Sigma rule files wherever crumbs reads rules: it is the engine.Format that
// claims files with logsource and detection (or correlation). Single-event rules become
// match rules (one per crumbs event kind they read, sharing the rule's id); correlation rules
// become threshold (event_count, value_count) or sequence (temporal, temporal_ordered) rules
// over the conditions of the rules they reference.
type Format struct {
	// Refused is RefusedFail (default) or RefusedSkip.
	Refused string
	// OnSkip is called for each refused file when Refused is skip.
	OnSkip func(LintResult)
	// Filter chooses the rules that raise alerts by level and status; the zero Filter keeps
	// every rule.
	Filter Filter
	// Results is what became of every file of the last Load, in path order.
	Results []LintResult
	// Counts say what became of the rules of the last Load.
	Counts FilterCounts
}

// Claims tells Sigma files from the others.
func (f *Format) Claims(data []byte) bool { return IsSigma(data) }

// Load lints the files as one set and returns the engine rules of those that loaded. A
// refused file is a problem (file: reason) unless Refused is skip.
func (f *Format) Load(files []engine.SourceFile) ([]*engine.Rule, engine.Problems) {
	f.Results = lintFiles(files, f.Filter)
	f.Counts = CountRules(f.Results)
	var rules []*engine.Rule
	var ps engine.Problems
	for _, r := range f.Results {
		switch {
		case r.Loaded():
			rules = append(rules, r.Engine...)
		case f.Refused == RefusedSkip:
			if f.OnSkip != nil {
				f.OnSkip(r)
			}
		default:
			ps = append(ps, engine.Problem{File: r.File, Msg: reason(r)})
		}
	}
	return rules, ps
}

// reason is why a file was refused, without its file name.
func reason(r LintResult) string {
	var re *RuleError
	if errors.As(r.Err, &re) {
		return re.Reason
	}
	return r.Err.Error()
}

// Reason is why a file was refused (without the file name); "" when it loaded.
func (r LintResult) Reason() string {
	if r.Err == nil {
		return ""
	}
	return reason(r)
}

// LintFiles lints files as one rule set, in the order given: correlation rules may reference
// rules of any file of the set, and an id used by an earlier file refuses the later one.
// Every loaded file gets its engine rules.
func LintFiles(files []engine.SourceFile) []LintResult {
	return lintFiles(files, Filter{})
}

// LintFilesFiltered is LintFiles with a level and status filter: every LintResult says which
// of its rules the filter left out (LeftOut), and only the others raise alerts.
func LintFilesFiltered(files []engine.SourceFile, filter Filter) []LintResult {
	return lintFiles(files, filter)
}

func lintFiles(files []engine.SourceFile, filter Filter) []LintResult {
	results := make([]LintResult, len(files))
	for i, f := range files {
		results[i] = LintFile(f.Path, f.Data)
	}
	refuseDuplicateIDs(results)
	resolveCorrelations(results)
	buildEngineRules(results, filter)
	return results
}

// CountRules counts what became of the rules of a set.
func CountRules(results []LintResult) FilterCounts {
	c := FilterCounts{Left: map[string]int{}}
	for _, r := range results {
		if !r.Loaded() {
			c.Rules++
			c.Refused++
			continue
		}
		n := len(r.Rules) + len(r.Correlations)
		c.Rules += n
		for _, why := range r.LeftOut {
			c.Left[why]++
		}
		c.Loaded += n - len(r.LeftOut)
	}
	return c
}

// refuseDuplicateIDs refuses a file using a rule id (or name) an earlier loaded file uses.
func refuseDuplicateIDs(results []LintResult) {
	seen := map[string]string{}
	for i := range results {
		r := &results[i]
		if !r.Loaded() {
			continue
		}
		var ids []string
		for _, c := range r.Rules {
			ids = append(ids, c.ID)
		}
		for _, c := range r.Correlations {
			ids = append(ids, c.ID)
		}
		for _, id := range ids {
			if first, ok := seen[id]; ok && id != "" && first != r.File {
				r.Err = &RuleError{File: r.File, Reason: fmt.Sprintf("id %s: already used by %s", id, first)}
				r.Rules, r.Correlations = nil, nil
				break
			}
		}
		if r.Loaded() {
			for _, id := range ids {
				seen[id] = r.File
			}
		}
	}
}

// buildEngineRules turns every loaded file's rules into engine rules, refusing the files
// whose correlations the engine cannot run. A rule referenced only by correlations that do
// not set generate raises no alert of its own (Sigma's default), nor does a rule the filter
// leaves out (a correlation may still use it); a correlation rule the filter leaves out is not
// built.
func buildEngineRules(results []LintResult, filter Filter) {
	known := map[string]*Compiled{}
	for _, r := range results {
		for _, c := range r.Rules {
			known[c.ID] = c
			if c.Name != "" {
				known[c.Name] = c
			}
		}
	}
	quiet := map[*Compiled]bool{}
	for i := range results {
		r := &results[i]
		var out []*engine.Rule
		r.LeftOut = nil
		for _, cr := range r.Correlations {
			if why := filter.leavesOut(cr.Level, cr.Status); why != "" {
				r.LeftOut = append(r.LeftOut, why)
				continue
			}
			er, err := correlationRule(cr, known)
			if err != nil {
				r.Err = &RuleError{File: r.File, Title: cr.Title, Reason: "correlation: " + err.Error()}
				break
			}
			out = append(out, er)
		}
		if !r.Loaded() {
			r.Rules, r.Correlations, r.LeftOut = nil, nil, nil
			continue
		}
		r.Engine = out
		for _, cr := range r.Correlations {
			for _, ref := range cr.Correlation.Rules {
				if c := known[ref]; c != nil {
					quiet[c] = true
				}
			}
		}
	}
	// A rule any correlation asks to generate does generate.
	for _, r := range results {
		for _, cr := range r.Correlations {
			for _, ref := range cr.Correlation.Rules {
				if c := known[ref]; c != nil && cr.Correlation.Generate {
					quiet[c] = false
				}
			}
		}
	}
	for i := range results {
		r := &results[i]
		var match []*engine.Rule
		for _, c := range r.Rules {
			if why := filter.leavesOut(c.Level, c.Status); why != "" {
				r.LeftOut = append(r.LeftOut, why)
				continue
			}
			if !quiet[c] {
				match = append(match, c.MatchRules()...)
			}
		}
		r.Engine = append(match, r.Engine...)
		if err := prepareAll(r.Engine); err != nil {
			r.Err = &RuleError{File: r.File, Reason: err.Error()}
			r.Rules, r.Correlations, r.Engine, r.LeftOut = nil, nil, nil, nil
		}
	}
}

// prepareAll prepares engine rules built from Sigma; a problem here is a bug of the mapping,
// reported as the file's refusal rather than hidden.
func prepareAll(rules []*engine.Rule) error {
	for _, er := range rules {
		if ps := engine.Prepare(er); len(ps) > 0 {
			msgs := make([]string, len(ps))
			for i, p := range ps {
				msgs[i] = p.Msg
			}
			return fmt.Errorf("engine rule %s (%s): %s", er.ID, er.Source, strings.Join(msgs, "; "))
		}
	}
	return nil
}

// MatchRules returns the engine rules of a single-event rule: one match rule per crumbs event
// kind it reads, all with the rule's id.
func (c *Compiled) MatchRules() []*engine.Rule {
	out := make([]*engine.Rule, 0, len(c.Sources))
	for _, src := range c.Sources {
		out = append(out, &engine.Rule{
			ID: engineID(c.ID, c.Name, c.File, c.Title), Title: c.Title, Description: c.Description, Severity: c.Severity, Tags: c.Tags,
			Author: c.Author, Level: c.Level, Format: engine.FormatSigma, Source: src, Kind: engine.KindMatch,
			Cond: c.Cond, File: c.File,
		})
	}
	return out
}

// correlationRule builds the engine rule of a correlation rule.
func correlationRule(cr *Rule, known map[string]*Compiled) (*engine.Rule, error) {
	c := cr.Correlation
	sev := cr.Level
	if sev == "" {
		sev = "medium"
	}
	er := &engine.Rule{
		ID: engineID(cr.ID, cr.Name, cr.File, cr.Title), Title: cr.Title, Description: cr.Description, Severity: sev, Tags: cr.Tags,
		Author: cr.Author, Level: cr.Level, Format: engine.FormatSigma, File: cr.File, Window: c.Timespan,
	}
	refs := make([]*Compiled, len(c.Rules))
	for i, ref := range c.Rules {
		if refs[i] = known[ref]; refs[i] == nil {
			return nil, fmt.Errorf("rules: %q is not a loaded rule id or name", ref)
		}
	}
	switch c.Type {
	case EventCount, ValueCount:
		return thresholdRule(er, c, refs)
	default:
		return sequenceRule(er, c, refs)
	}
}

// fieldPath is where a correlation field (a Sigma field or an alias) is in the events of
// rule ref of kind src.
func fieldPath(c *Correlation, field, ref string, rule *Compiled, src string) (string, error) {
	name := field
	if per, ok := c.Aliases[field]; ok {
		if name, ok = per[ref]; !ok {
			return "", fmt.Errorf("aliases: %s: no field given for rule %s", field, ref)
		}
	}
	paths, ok := rule.FieldPaths(name)
	if !ok || paths[src] == "" {
		return "", fmt.Errorf("field %s: crumbs has no equivalent in the events of rule %s", name, ref)
	}
	if strings.Contains(paths[src], "[") {
		return "", fmt.Errorf("field %s: is an element of a list (%s), which crumbs cannot group or count by", name, paths[src])
	}
	return paths[src], nil
}

// sharedPath is the path of a field in every referenced rule's events, which must agree.
func sharedPath(c *Correlation, field string, refs []*Compiled, src string) (string, error) {
	var out string
	for i, rule := range refs {
		p, err := fieldPath(c, field, c.Rules[i], rule, src)
		if err != nil {
			return "", err
		}
		if out != "" && p != out {
			return "", fmt.Errorf("field %s: is %s in some rules' events and %s in others: crumbs counts over one field", field, out, p)
		}
		out = p
	}
	return out, nil
}

// correlationOps maps Sigma's condition operators onto the engine's.
var correlationOps = map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}

// thresholdRule: event_count counts the referenced rules' events per group and window,
// value_count the distinct values of a field.
func thresholdRule(er *engine.Rule, c *Correlation, refs []*Compiled) (*engine.Rule, error) {
	var srcs []string
	for _, r := range refs {
		for _, s := range r.Sources {
			if !slices.Contains(srcs, s) {
				srcs = append(srcs, s)
			}
		}
	}
	if len(srcs) != 1 {
		sort.Strings(srcs)
		return nil, fmt.Errorf("%s over events of several crumbs kinds (%s): a crumbs threshold counts the events of one kind", c.Type, strings.Join(srcs, ", "))
	}
	er.Source, er.Kind = srcs[0], engine.KindThreshold
	for _, g := range c.GroupBy {
		p, err := sharedPath(c, g, refs, er.Source)
		if err != nil {
			return nil, fmt.Errorf("group-by: %w", err)
		}
		er.GroupBy = append(er.GroupBy, p)
	}
	op, ok := correlationOps[c.Condition.Op]
	if !ok {
		return nil, fmt.Errorf("condition: %s: not an operator crumbs knows (gt, gte, lt, lte, eq)", c.Condition.Op)
	}
	er.Threshold = &engine.Threshold{Aggregate: engine.AggCount, Op: op, Value: float64(c.Condition.Value)}
	if c.Type == ValueCount {
		p, err := sharedPath(c, c.Condition.Field, refs, er.Source)
		if err != nil {
			return nil, fmt.Errorf("condition: %w", err)
		}
		er.Threshold.Aggregate, er.Threshold.Field = engine.AggDistinct, p
	}
	conds := make(anyCondition, len(refs))
	for i, r := range refs {
		conds[i] = r.Cond
	}
	er.Cond = conds
	return er, nil
}

// sequenceRule: temporal needs every referenced rule within the timespan, in any order;
// temporal_ordered in the order listed.
func sequenceRule(er *engine.Rule, c *Correlation, refs []*Compiled) (*engine.Rule, error) {
	if cc := c.Condition; cc != nil && !temporalAll(cc, len(refs)) {
		return nil, fmt.Errorf("condition: %s %d: crumbs runs %s as all of its rules", cc.Op, cc.Value, c.Type)
	}
	er.Kind = engine.KindSequence
	er.Sequence = &engine.Sequence{Unordered: c.Type == Temporal}
	for i, r := range refs {
		if len(r.Sources) != 1 {
			return nil, fmt.Errorf("rules: %s reads several crumbs event kinds (%s); a sequence step reads one", c.Rules[i], strings.Join(r.Sources, ", "))
		}
		st := engine.Step{Name: c.Rules[i], Source: r.Sources[0], Cond: r.Cond}
		for _, g := range c.GroupBy {
			p, err := fieldPath(c, g, c.Rules[i], r, st.Source)
			if err != nil {
				return nil, fmt.Errorf("group-by: %w", err)
			}
			st.GroupBy = append(st.GroupBy, p)
		}
		er.Sequence.Steps = append(er.Sequence.Steps, st)
	}
	first := er.Sequence.Steps[0]
	er.Source, er.GroupBy = first.Source, first.GroupBy
	return er, nil
}

// temporalAll tells whether a temporal condition asks for all n rules.
func temporalAll(cc *CorrelationCondition, n int) bool {
	switch cc.Op {
	case "gte", "eq":
		return cc.Value == int64(n)
	case "gt":
		return cc.Value == int64(n-1)
	}
	return false
}

// anyCondition holds when one of its conditions does (the events an event_count counts).
type anyCondition []engine.Condition

func (a anyCondition) Match(act map[string]any) (bool, error) {
	for _, c := range a {
		if ok, err := c.Match(act); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// MatchFields is Match on the event's fields, when every condition can be decided from them.
func (a anyCondition) MatchFields(f engine.Fields) (hit, handled bool, err error) {
	for _, c := range a {
		fc, ok := c.(engine.FieldsCondition)
		if !ok {
			return false, false, nil
		}
		hit, handled, err := fc.MatchFields(f)
		if !handled {
			return false, false, nil
		}
		if hit || err != nil {
			return hit, true, err
		}
	}
	return false, true, nil
}

// engineID is the rule's id in the engine and its alerts: the Sigma id, else its name, else
// (the specification makes id optional) one made of its file and title.
func engineID(id, name, file, title string) string {
	switch {
	case id != "":
		return id
	case name != "":
		return name
	}
	return "sigma:" + file + ":" + title
}
