package engine

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Throttling: the alerts of a match, new_term or sequence rule for one host and group key,
// raised within the rule's throttle window of the first, are one alert. The first is raised at
// once (version 1); the alerts after it are folded into it (its count and evidence grow) and
// it is raised again, with the same id and a higher version, each time its count doubles, so
// that readers see it grow without one record per event; when the partition's watermark passes
// the end of the window, it is raised a last time with Final set (only when something was
// folded: an alert alone stays as first raised). The state is an entry of the rule like a
// window's, so it goes to the changelog and survives a restart.

// throttlePrefix starts the group of a throttle entry in the entries and the changelog keys;
// events' group keys are texts of their fields, which do not start with a NUL.
const throttlePrefix = "\x00throttle\x00"

// maxEvidenceKeys caps the distinct evidence keys a throttled alert remembers and lists.
const maxEvidenceKeys = 100

// throttleState is an open throttle window of a rule, host and group key.
type throttleState struct {
	// Start is the event time of the first alert: the window is [Start, Start+throttle).
	Start int64 `json:"start"`
	// Emitted is the count of the last version raised.
	Emitted int64 `json:"emitted"`
	// Folded is how many alerts were folded into the first.
	Folded int64 `json:"folded,omitempty"`
	// Base is the first alert's summary, which the later versions extend.
	Base string `json:"base"`
	// Keys are the distinct evidence keys seen (at most maxEvidenceKeys); KeysFull says some
	// were left out.
	Keys     []string `json:"keys,omitempty"`
	KeysFull bool     `json:"keys_full,omitempty"`
	// Alert is the alert as it stands: id, version, count, evidence, incident.
	Alert schemas.Alert `json:"alert"`
	// Tree is the process tree of the first alert, whose incident the alert joined.
	Tree *treeRef `json:"tree,omitempty"`
}

// throttleOf is the throttle window of a rule: its own, else the engine's default; 0 for
// the kinds it does not apply to.
func (e *Engine) throttleOf(r *Rule) time.Duration {
	switch r.Kind {
	case KindMatch, KindNewTerm, KindSequence:
	default:
		return 0
	}
	if r.Throttle != nil {
		return *r.Throttle
	}
	return e.opt.Throttle
}

// evidenceKey is the value of the rule's evidence key in an event, a file path folded onto
// its file; "" when the rule has none.
func evidenceKey(r *Rule, act map[string]any) string {
	if r.evidenceKey == nil || act == nil {
		return ""
	}
	v := lookup(act, r.evidenceKey)
	if v == nil {
		return ""
	}
	k := keyPart(v)
	if r.collapse {
		k = RealPath(k)
	}
	return k
}

// RealPath is the file a temporary or lock file written beside it stands for: the sibling
// names tools use while they replace a file (shadow-utils' name.<pid>, name+, name-,
// name.lock; editors' .name.swp, name~, .#name; package managers' name.dpkg-new,
// name.rpmnew, ...) are folded onto name. Other paths are returned as they are.
func RealPath(p string) string {
	dir, name := path.Split(p)
	orig := name
	for range 2 { // .name.swp.lock at most: two suffixes
		switch {
		case strings.HasPrefix(name, ".#") && len(name) > 2:
			name = name[2:]
		case strings.HasPrefix(name, ".") && hasAnySuffix(name, ".swp", ".swo", ".swx") && len(name) > 5:
			name = name[1 : len(name)-4]
		case hasAnySuffix(name, ".lock", ".tmp", ".dpkg-new", ".dpkg-old", ".dpkg-tmp", ".dpkg-dist", ".rpmnew", ".rpmsave"):
			name = name[:strings.LastIndexByte(name, '.')]
		case len(name) > 1 && strings.ContainsRune("+-~", rune(name[len(name)-1])):
			name = name[:len(name)-1]
		default:
			if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i-1 >= 3 && allDigits(name[i+1:]) {
				name = name[:i]
			}
		}
	}
	if name == "" || name == "." || name == ".." {
		return p
	}
	if name == orig {
		return p
	}
	return dir + name
}

func hasAnySuffix(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) && len(s) > len(x) {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// throttle passes a rule's alert (version 1, not suppressed) through its throttle window:
// it returns the alert itself (first of a window, or throttling off), or nothing (folded
// into the window's alert), or the window's alert raised again (its count doubled); an alert
// after the end of a window not closed yet (the watermark behind) closes that window first.
// evKey is the alert's evidence key (match and new_term: its one event's).
func (e *Engine) throttle(part int32, r *Rule, a *Alert, evKey string) []*Alert {
	d := int64(e.throttleOf(r))
	if d <= 0 {
		return []*Alert{a}
	}
	key := entryKey{r.ID, part, throttlePrefix + a.Host.ID + "\x00" + a.GroupKey}
	var out []*Alert
	if en := e.entries[key]; en != nil && en.st.Throttle != nil && a.Time >= en.st.Throttle.Start+d {
		out = append(out, e.throttleClose(r, en)...)
	}
	en := e.get(key)
	th := en.st.Throttle
	if th == nil {
		a.AlertID = AlertID(r.ID, a.Host.ID+"|"+a.GroupKey, "throttle:"+strconv.FormatInt(a.Time, 10))
		a.Version, a.Final = 1, false
		th = &throttleState{Start: a.Time, Emitted: a.Count, Base: a.Summary, Alert: a.Alert, Tree: a.tree}
		th.Alert.Evidence = slices.Clone(a.Evidence)
		if evKey != "" {
			th.Keys = []string{evKey}
			if r.evidenceKey != nil {
				a.Summary += "; " + keyName(r) + ": " + evKey
			}
		}
		en.st.Throttle = th
		en.st.HostID, en.st.HostName, en.st.Service = a.Host.ID, a.Host.Name, a.Service
		e.schedule(en, a.Time+d)
		a.keep = func(id string) { th.Alert.IncidentID = id; e.dirty[key] = struct{}{} }
		return append(out, a)
	}
	e.ruleStats(r.ID).Grouped++
	th.Folded++
	ta := &th.Alert
	ta.Count += a.Count
	ta.WindowStart = min(ta.WindowStart, a.WindowStart)
	ta.WindowEnd = max(ta.WindowEnd, a.WindowEnd)
	newKey := evKey == "" || !slices.Contains(th.Keys, evKey)
	if newKey {
		for _, id := range a.Evidence {
			if len(ta.Evidence) < e.opt.MaxEvidence {
				ta.Evidence = append(ta.Evidence, id)
			}
		}
		if evKey != "" {
			if len(th.Keys) < maxEvidenceKeys {
				th.Keys = append(th.Keys, evKey)
			} else {
				th.KeysFull = true
			}
		}
	}
	if slices.Index(Severities, a.Severity) > slices.Index(Severities, ta.Severity) {
		// A later alert no change explains outranks a first one a change lowered.
		ta.Severity, ta.OriginalSeverity, ta.Changes, ta.Explanation = a.Severity, a.OriginalSeverity, a.Changes, a.Explanation
	}
	if ta.Count >= 2*th.Emitted {
		out = append(out, e.throttleVersion(r, part, th, false))
	}
	return out
}

// throttleVersion raises the window's alert again, one version up.
func (e *Engine) throttleVersion(r *Rule, part int32, th *throttleState, final bool) *Alert {
	added := th.Alert.Count - th.Emitted
	th.Alert.Version++
	th.Alert.Final = final
	th.Emitted = th.Alert.Count
	th.Alert.Summary = throttleSummary(r, th, e.throttleOf(r))
	a := &Alert{Alert: th.Alert, Partition: part, added: added, tree: th.Tree}
	a.Tags, a.Evidence, a.Changes = slices.Clone(a.Tags), slices.Clone(a.Evidence), slices.Clone(a.Changes)
	return a
}

// throttleSummary is the first alert's summary with the count and the distinct evidence keys.
func throttleSummary(r *Rule, th *throttleState, d time.Duration) string {
	s := fmt.Sprintf("%s; %d events within %s", th.Base, th.Alert.Count, shortDuration(d))
	if len(th.Keys) == 0 {
		return s
	}
	const shown = 20
	list := th.Keys[:min(len(th.Keys), shown)]
	s += ", " + keyName(r) + ": " + strings.Join(list, ", ")
	if more := len(th.Keys) - len(list); more > 0 || th.KeysFull {
		s += fmt.Sprintf(" and %d more", more)
		if th.KeysFull {
			s += "+"
		}
	}
	return s
}

// throttleClose ends a throttle window: its alert is raised a last time, Final, when an alert
// was folded into it.
func (e *Engine) throttleClose(r *Rule, en *entry) []*Alert {
	th := en.st.Throttle
	e.remove(en)
	if th == nil || th.Folded == 0 {
		return nil
	}
	return []*Alert{e.throttleVersion(r, en.key.part, th, true)}
}

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// keyName names what a rule's evidence keys are: its evidence key, or a new_term's fields.
func keyName(r *Rule) string {
	if r.evidenceKey == nil && r.NewTerm != nil {
		return strings.Join(r.NewTerm.Fields, ",")
	}
	return strings.Join(r.evidenceKey, ".")
}
