package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Engine evaluates events against a fixed rule set. Safe for concurrent use: rules are
// immutable once loaded; a reload builds a new Engine.
type Engine struct {
	bySource    map[string][]*Rule
	maxEvidence int
}

// New returns an engine over rules, indexed by source kind.
func New(rules []*Rule, maxEvidence int) *Engine {
	e := &Engine{bySource: map[string][]*Rule{}, maxEvidence: maxEvidence}
	for _, r := range rules {
		e.bySource[r.Source] = append(e.bySource[r.Source], r)
	}
	return e
}

// Rules returns how many rules the engine holds.
func (e *Engine) Rules() int {
	n := 0
	for _, rs := range e.bySource {
		n += len(rs)
	}
	return n
}

// Evaluate judges one event (goavro's native form of an event schema) and returns the alerts
// it raises. An error means a rule could not be evaluated on this event.
func (e *Engine) Evaluate(event map[string]any) ([]*schemas.Alert, error) {
	kind, _ := event["kind"].(string)
	rules := e.bySource[kind]
	if len(rules) == 0 {
		return nil, nil
	}
	act := Activation(event)
	var alerts []*schemas.Alert
	for _, r := range rules {
		hit, err := r.Cond.Match(act)
		if err != nil {
			return alerts, fmt.Errorf("rule %s (%s:%d): %w", r.ID, r.File, r.Line, err)
		}
		if hit {
			alerts = append(alerts, e.matchAlert(r, act))
		}
	}
	return alerts, nil
}

// matchAlert is the alert of a match rule: one per event, its window the event itself.
func (e *Engine) matchAlert(r *Rule, act map[string]any) *schemas.Alert {
	env, _ := schemas.EnvelopeFromNative(act)
	key := groupKey(r, act)
	en, _ := act["enrichment"].(map[string]any)
	service, _ := en["service"].(string)
	return &schemas.Alert{
		AlertID:     AlertID(r.ID, key, env.EventID),
		Time:        env.Time,
		RuleID:      r.ID,
		Title:       r.Title,
		Severity:    r.Severity,
		Tags:        r.Tags,
		GroupKey:    key,
		Host:        env.Host,
		Service:     service,
		WindowStart: env.Time,
		WindowEnd:   env.Time,
		Count:       1,
		Evidence:    []string{env.EventID},
		Summary:     summary(r, act),
	}
}

// AlertID is deterministic: a hash of the rule, the group key and the window, so a replayed
// evaluation yields the same id.
func AlertID(ruleID, groupKey, window string) string {
	h := sha256.Sum256([]byte(ruleID + "\x00" + groupKey + "\x00" + window))
	return hex.EncodeToString(h[:16])
}

// groupKey joins the values of the rule's group-by paths.
func groupKey(r *Rule, act map[string]any) string {
	parts := make([]string, len(r.groupBy))
	for i, p := range r.groupBy {
		parts[i] = fmt.Sprint(lookup(act, p))
	}
	return strings.Join(parts, "|")
}

func lookup(m map[string]any, p []string) any {
	var cur any = m
	for _, k := range p {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func summary(r *Rule, act map[string]any) string {
	body, _ := act[r.Source].(map[string]any)
	if cl, ok := body["cmd_line"].(string); ok && cl != "" {
		return r.Title + ": " + cl
	}
	return r.Title
}

// Activation turns goavro's native form into CEL's input: unions are unwrapped (null becomes
// an empty map) and Avro ints become int64.
func Activation(event map[string]any) map[string]any {
	out := make(map[string]any, len(event))
	for k, v := range event {
		out[k] = normalize(v)
	}
	if out["enrichment"] == nil {
		out["enrichment"] = map[string]any{}
	}
	return out
}

func normalize(v any) any {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case map[string]any:
		if len(x) == 1 {
			for k, inner := range x {
				if strings.HasPrefix(k, "crumbs.") { // a union branch
					return normalize(inner)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = normalize(vv)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = normalize(vv)
		}
		return out
	}
	return v
}
