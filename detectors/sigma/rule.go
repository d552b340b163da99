package sigma

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/threatcrumbs/crumbs/pkg/yamlsafe"
)

// Rule is one Sigma rule as read from its file: a detection rule or a correlation rule.
type Rule struct {
	File           string
	Doc            int // index of the YAML document the rule came from, 0 first
	Title          string
	ID             string
	Name           string
	Status         string
	Description    string
	Author         string
	Level          string
	Tags           []string
	References     []string
	FalsePositives []string
	Logsource      Logsource
	Detection      *Detection   // nil for a correlation rule
	Correlation    *Correlation // nil for a detection rule
}

// Logsource is the rule's logsource section.
type Logsource struct {
	Product    string
	Category   string
	Service    string
	Definition string
}

// Detection is the rule's detection section: named searches and the condition over them.
type Detection struct {
	Searches   map[string]any // search identifier → its YAML value (map, list or scalar)
	Conditions []string       // one or more condition expressions, OR-ed
}

// RuleError is a rule refused: the file (and the rule's title when known) and why.
type RuleError struct {
	File   string
	Title  string
	Reason string
}

func (e *RuleError) Error() string { return e.File + ": " + e.Reason }

// IsSigma tells whether data reads as a Sigma rule file: a YAML mapping (in any of its
// documents) with both logsource and detection, or with correlation.
func IsSigma(data []byte) bool {
	docs, err := yamlsafe.Parse(data, limits())
	if err != nil {
		return false
	}
	for _, d := range docs {
		if len(d.Content) == 0 || d.Content[0].Tag == "!!null" {
			continue
		}
		m := d.Content[0]
		if m.Kind != yaml.MappingNode {
			return false
		}
		has := map[string]bool{}
		for i := 0; i+1 < len(m.Content); i += 2 {
			has[m.Content[i].Value] = true
		}
		if (has["logsource"] && has["detection"]) || has["correlation"] {
			return true
		}
	}
	return false
}

// limits bound a Sigma file: the YAML limits of every crumbs input, at most maxDocs documents.
func limits() yamlsafe.Limits {
	l := yamlsafe.DefaultLimits()
	l.MaxDocuments = maxDocs
	return l
}

// ParseFile reads every rule of a Sigma file. A collection is expanded as the specification
// says: an `action: global` document is merged into every following document, `action: reset`
// forgets it, `action: repeat` repeats the previous rule with its own keys merged in. Any
// problem refuses the file as a whole, with a *RuleError.
func ParseFile(path string, data []byte) ([]*Rule, error) {
	docs, err := decodeDocs(data)
	if err != nil {
		return nil, &RuleError{File: path, Reason: "invalid YAML: " + err.Error()}
	}
	var (
		rules  []*Rule
		global map[string]any
		prev   map[string]any
	)
	for i, d := range docs {
		action, _ := d["action"].(string)
		delete(d, "action")
		switch action {
		case "global":
			global = merge(global, d)
			continue
		case "reset":
			global = nil
			continue
		case "repeat":
			if prev == nil {
				return nil, &RuleError{File: path, Reason: fmt.Sprintf("document %d: action repeat with no previous rule", i+1)}
			}
			d = merge(prev, d)
		case "":
			d = merge(global, d)
		default:
			return nil, &RuleError{File: path, Reason: fmt.Sprintf("document %d: action %q: must be global, reset or repeat", i+1, action)}
		}
		prev = d
		r, err := ruleFromDoc(path, i, d)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return nil, &RuleError{File: path, Reason: "no rule in file"}
	}
	return rules, nil
}

// maxDocs bounds the documents read from one file.
const maxDocs = 1000

func decodeDocs(data []byte) ([]map[string]any, error) {
	nodes, err := yamlsafe.Parse(data, limits())
	if err != nil {
		return nil, err
	}
	var docs []map[string]any
	for _, n := range nodes {
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		m, ok := normalizeYAML(v).(map[string]any)
		if !ok {
			return nil, fmt.Errorf("document %d is not a mapping", len(docs)+1)
		}
		docs = append(docs, m)
	}
	return docs, nil
}

// normalizeYAML turns map[any]any into map[string]any all the way down.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, vv := range x {
			x[k] = normalizeYAML(vv)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[fmt.Sprint(k)] = normalizeYAML(vv)
		}
		return out
	case []any:
		for i, vv := range x {
			x[i] = normalizeYAML(vv)
		}
		return x
	}
	return v
}

// merge returns base with over merged in: maps recursively, anything else replaced.
func merge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

func ruleFromDoc(path string, idx int, d map[string]any) (*Rule, error) {
	r := &Rule{File: path, Doc: idx}
	fail := func(format string, a ...any) error {
		return &RuleError{File: path, Title: r.Title, Reason: fmt.Sprintf(format, a...)}
	}
	var err error
	str := func(key string) string {
		if err != nil {
			return ""
		}
		v, ok := d[key]
		if !ok || v == nil {
			return ""
		}
		switch x := v.(type) {
		case string:
			return x
		case map[string]any, []any:
			err = fail("%s: must be a string", key)
			return ""
		}
		return fmt.Sprint(v)
	}
	strs := func(key string) []string {
		if err != nil {
			return nil
		}
		v, ok := d[key]
		if !ok || v == nil {
			return nil
		}
		l, ok := v.([]any)
		if !ok {
			if s, ok := v.(string); ok {
				return []string{s}
			}
			err = fail("%s: must be a list of strings", key)
			return nil
		}
		out := make([]string, 0, len(l))
		for _, e := range l {
			switch e.(type) {
			case map[string]any, []any:
				err = fail("%s: must be a list of strings", key)
				return nil
			}
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	r.Title = str("title")
	r.ID = str("id")
	r.Name = str("name")
	r.Status = str("status")
	r.Description = str("description")
	r.Author = str("author")
	r.Level = strings.ToLower(str("level"))
	r.Tags = strs("tags")
	r.References = strs("references")
	r.FalsePositives = strs("falsepositives")
	if err != nil {
		return nil, err
	}
	if r.Title == "" {
		return nil, fail("title: is required")
	}
	if r.Level != "" && !validLevel(r.Level) {
		return nil, fail("level %q: must be one of informational, low, medium, high, critical", r.Level)
	}
	if c, ok := d["correlation"]; ok {
		cor, cerr := parseCorrelation(c)
		if cerr != nil {
			return nil, fail("correlation: %v", cerr)
		}
		r.Correlation = cor
		return r, nil
	}
	ls, ok := d["logsource"].(map[string]any)
	if !ok {
		return nil, fail("logsource: is required and must be a mapping")
	}
	for k, v := range ls {
		s, _ := v.(string)
		switch k {
		case "product":
			r.Logsource.Product = strings.ToLower(s)
		case "category":
			r.Logsource.Category = strings.ToLower(s)
		case "service":
			r.Logsource.Service = strings.ToLower(s)
		case "definition":
			r.Logsource.Definition = s
		}
	}
	det, derr := parseDetection(d["detection"])
	if derr != nil {
		return nil, fail("detection: %v", derr)
	}
	r.Detection = det
	return r, nil
}

func validLevel(l string) bool {
	switch l {
	case "informational", "low", "medium", "high", "critical":
		return true
	}
	return false
}

func parseDetection(v any) (*Detection, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("is required and must be a mapping")
	}
	d := &Detection{Searches: map[string]any{}}
	for k, vv := range m {
		if k == "condition" {
			switch c := vv.(type) {
			case string:
				d.Conditions = []string{c}
			case []any:
				for _, e := range c {
					s, ok := e.(string)
					if !ok {
						return nil, errors.New("condition: a list of conditions holds strings")
					}
					d.Conditions = append(d.Conditions, s)
				}
			default:
				return nil, errors.New("condition: must be a string or a list of strings")
			}
			continue
		}
		if k == "timeframe" {
			return nil, errors.New("timeframe: aggregations in detection are not supported; use a correlation rule")
		}
		d.Searches[k] = vv
	}
	if len(d.Conditions) == 0 {
		return nil, errors.New("condition: is required")
	}
	if len(d.Searches) == 0 {
		return nil, errors.New("no search identifier")
	}
	return d, nil
}

// searchNames returns the rule's search identifiers, sorted.
func (d *Detection) searchNames() []string {
	names := make([]string, 0, len(d.Searches))
	for n := range d.Searches {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
