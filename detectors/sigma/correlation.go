package sigma

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Correlation types (Sigma correlation rules, specification v2).
const (
	EventCount      = "event_count"
	ValueCount      = "value_count"
	Temporal        = "temporal"
	TemporalOrdered = "temporal_ordered"
)

// Correlation is a correlation rule's `correlation:` section, validated. It is what the
// engine's windowed kinds need: event_count and value_count map onto a threshold over a
// window, temporal and temporal_ordered onto a sequence (ordered or not) within a window.
type Correlation struct {
	Type      string
	Rules     []string // ids or names of the rules correlated, in order for temporal_ordered
	GroupBy   []string // Sigma field names (or aliases) the events are grouped by
	Timespan  time.Duration
	Condition *CorrelationCondition // nil for temporal kinds without one
	Generate  bool                  // whether the correlated rules also raise their own alerts
	Aliases   map[string]map[string]string
}

// CorrelationCondition is the count condition: Op (gt, gte, lt, lte, eq) Value, and for
// value_count the Field whose distinct values are counted.
type CorrelationCondition struct {
	Op    string
	Value int64
	Field string
}

func parseCorrelation(v any) (*Correlation, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("must be a mapping")
	}
	c := &Correlation{}
	c.Type, _ = m["type"].(string)
	switch c.Type {
	case EventCount, ValueCount, Temporal, TemporalOrdered:
	default:
		return nil, fmt.Errorf("type %q: must be one of event_count, value_count, temporal, temporal_ordered", c.Type)
	}
	var err error
	if c.Rules, err = stringList(m["rules"]); err != nil || len(c.Rules) == 0 {
		return nil, errors.New("rules: must list the rules correlated")
	}
	if c.GroupBy, err = stringList(m["group-by"]); err != nil {
		return nil, fmt.Errorf("group-by: %w", err)
	}
	ts, _ := m["timespan"].(string)
	if c.Timespan, err = parseTimespan(ts); err != nil {
		return nil, fmt.Errorf("timespan %q: %w", ts, err)
	}
	if g, ok := m["generate"]; ok {
		b, ok := g.(bool)
		if !ok {
			return nil, errors.New("generate: must be true or false")
		}
		c.Generate = b
	}
	if a, ok := m["aliases"]; ok {
		if c.Aliases, err = parseAliases(a); err != nil {
			return nil, fmt.Errorf("aliases: %w", err)
		}
	}
	cond, hasCond := m["condition"]
	switch {
	case hasCond:
		if c.Condition, err = parseCorrelationCondition(cond); err != nil {
			return nil, fmt.Errorf("condition: %w", err)
		}
	case c.Type == EventCount || c.Type == ValueCount:
		return nil, fmt.Errorf("condition: is required for %s", c.Type)
	}
	if c.Type == ValueCount && (c.Condition == nil || c.Condition.Field == "") {
		return nil, errors.New("condition: field: is required for value_count")
	}
	if len(c.Rules) < 2 && (c.Type == Temporal || c.Type == TemporalOrdered) {
		return nil, fmt.Errorf("rules: %s needs at least two rules", c.Type)
	}
	return c, nil
}

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("must be a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("must be a list of strings")
}

func parseAliases(v any) (map[string]map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("must be a mapping of alias to rule: field")
	}
	out := map[string]map[string]string{}
	for alias, per := range m {
		pm, ok := per.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: must be a mapping of rule to field", alias)
		}
		out[alias] = map[string]string{}
		for rule, f := range pm {
			s, ok := f.(string)
			if !ok {
				return nil, fmt.Errorf("%s.%s: must be a field name", alias, rule)
			}
			out[alias][rule] = s
		}
	}
	return out, nil
}

func parseCorrelationCondition(v any) (*CorrelationCondition, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("must be a mapping such as {gte: 10}")
	}
	cc := &CorrelationCondition{}
	for k, vv := range m {
		switch k {
		case "field":
			s, ok := vv.(string)
			if !ok {
				return nil, errors.New("field: must be a field name")
			}
			cc.Field = s
		case "gt", "gte", "lt", "lte", "eq":
			if cc.Op != "" {
				return nil, fmt.Errorf("%s: only one comparison is supported, %s already given", k, cc.Op)
			}
			n, ok := toInt64(vv)
			if !ok {
				return nil, fmt.Errorf("%s: must be an integer", k)
			}
			cc.Op, cc.Value = k, n
		default:
			return nil, fmt.Errorf("%s: unknown key (gt, gte, lt, lte, eq, field)", k)
		}
	}
	if cc.Op == "" {
		return nil, errors.New("needs one of gt, gte, lt, lte, eq")
	}
	return cc, nil
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		return int64(x), x < 1<<63
	case float64:
		return int64(x), float64(int64(x)) == x
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// parseTimespan reads a Sigma timespan: a number and a unit, s m h d w (M for months of 30
// days, y for years of 365 days).
func parseTimespan(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, errors.New("must be a number and a unit (s, m, h, d, w, M, y)")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s[:len(s)-1]), 10, 64)
	if err != nil || n <= 0 || n > 1e6 {
		return 0, errors.New("must be a positive number and a unit (s, m, h, d, w, M, y)")
	}
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour,
		'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'M': 30 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	u, ok := units[s[len(s)-1]]
	if !ok {
		return 0, errors.New("unit must be one of s, m, h, d, w, M, y")
	}
	return time.Duration(n) * u, nil
}
