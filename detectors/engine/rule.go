// Package engine judges enriched events with rules. Rules are YAML files (one rule each) whose
// condition is a CEL expression over the event; the engine indexes them by source kind,
// evaluates each event against the rules of its kind, and returns the alerts they raise.
package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Rule kinds.
const (
	KindMatch = "match"
)

// Severities, lowest first.
var Severities = []string{"informational", "low", "medium", "high", "critical"}

// Sources are the event kinds a rule may read.
var Sources = []string{"process", "network", "file", "identity", "system"}

// Rule is one detection rule, as written in its YAML file.
type Rule struct {
	ID          string   `yaml:"id"`
	Title       string   `yaml:"title"`
	Description string   `yaml:"description"`
	Severity    string   `yaml:"severity"`
	Tags        []string `yaml:"tags"`
	Source      string   `yaml:"source"`
	Kind        string   `yaml:"kind"`
	Condition   string   `yaml:"condition"`
	GroupBy     []string `yaml:"group_by"`

	File string `yaml:"-"` // where the rule was read from
	Line int    `yaml:"-"` // line of the rule's first key

	// Cond decides whether an event matches: a compiled CEL condition, or a Sigma detection.
	Cond    Condition
	groupBy [][]string // GroupBy split into path elements
}

// Condition decides whether one event (its CEL activation, see Activation) matches.
type Condition interface {
	Match(act map[string]any) (bool, error)
}

// celCondition is a compiled, type-checked CEL condition.
type celCondition struct{ prg cel.Program }

func (c celCondition) Match(act map[string]any) (bool, error) {
	out, _, err := c.prg.Eval(act)
	if err != nil {
		// A field absent from this event (a map key CEL could not find) is no match.
		if strings.Contains(err.Error(), "no such key") {
			return false, nil
		}
		return false, err
	}
	hit, _ := out.Value().(bool)
	return hit, nil
}

// Problem is one thing wrong with a rule file, located at a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) Error() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Problems is every problem found in a rule set; its Error lists them one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// ParseRule reads and compiles one rule file. Every problem is returned, each with its line.
func ParseRule(file string, data []byte) (*Rule, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{{File: file, Line: yamlErrLine(err), Msg: "invalid YAML: " + err.Error()}}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: 1, Msg: "a rule file holds one YAML mapping"}}
	}
	root := doc.Content[0]
	lines := map[string]int{}
	known := map[string]bool{"id": true, "title": true, "description": true, "severity": true, "tags": true,
		"source": true, "kind": true, "condition": true, "group_by": true}
	var ps Problems
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		lines[k.Value] = k.Line
		if !known[k.Value] {
			ps = append(ps, Problem{file, k.Line, fmt.Sprintf("unknown key %q", k.Value)})
		}
	}
	r := &Rule{File: file, Line: root.Line}
	if err := root.Decode(r); err != nil {
		return nil, append(ps, Problem{file, yamlErrLine(err), err.Error()})
	}
	at := func(key string) int {
		if l, ok := lines[key]; ok {
			return l
		}
		return root.Line
	}
	bad := func(key, format string, a ...any) {
		ps = append(ps, Problem{file, at(key), key + ": " + fmt.Sprintf(format, a...)})
	}
	if r.ID == "" {
		bad("id", "is required")
	}
	if r.Title == "" {
		bad("title", "is required")
	}
	if !slices.Contains(Severities, r.Severity) {
		bad("severity", "%q: must be one of %s", r.Severity, strings.Join(Severities, ", "))
	}
	if !slices.Contains(Sources, r.Source) {
		bad("source", "%q: must be one of %s", r.Source, strings.Join(Sources, ", "))
	}
	if r.Kind != KindMatch {
		bad("kind", "%q: must be one of %s", r.Kind, KindMatch)
	}
	if r.Condition == "" {
		bad("condition", "is required")
	} else if slices.Contains(Sources, r.Source) {
		prg, err := compile(r.Source, r.Condition)
		if err != nil {
			bad("condition", "%v", err)
		}
		r.Cond = celCondition{prg}
	}
	for _, g := range r.GroupBy {
		if g == "" {
			bad("group_by", "empty field path")
			continue
		}
		r.groupBy = append(r.groupBy, strings.Split(g, "."))
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return r, nil
}

// LoadFS reads every *.yml and *.yaml file under dir in fsys. The set is refused as a whole
// when any rule has a problem, or two rules share an id.
func LoadFS(fsys fs.FS, dir string) ([]*Rule, error) {
	var rules []*Rule
	var ps Problems
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) || isFixture(p) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		r, rps := ParseRule(p, data)
		ps = append(ps, rps...)
		if r != nil {
			rules = append(rules, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rules in %s: %w", dir, err)
	}
	seen := map[string]*Rule{}
	for _, r := range rules {
		if first, ok := seen[r.ID]; ok {
			ps = append(ps, Problem{r.File, r.Line, fmt.Sprintf("id %q already used by %s:%d", r.ID, first.File, first.Line)})
		}
		seen[r.ID] = r
	}
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].File < ps[j].File })
		return nil, ps
	}
	return rules, nil
}

// isFixture tells rule test fixtures (name.fixtures.yaml, or under a fixtures folder) apart
// from rules.
func isFixture(p string) bool {
	base := path.Base(p)
	return strings.Contains(base, ".fixture") || strings.Contains(p, "/fixtures/")
}

func yamlErrLine(err error) int {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return 1
	}
	var line int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); e == nil {
		return line
	}
	return 1
}
