package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/schemas"
)

// Triage actions (crumbs alerts ack|resolve|assign|note|false-positive|reopen, the console's
// buttons, POST /api/v1/alerts/{id}/{action}).
const (
	ActionAck           = "ack"
	ActionResolve       = "resolve"
	ActionAssign        = "assign"
	ActionNote          = "note"
	ActionFalsePositive = "false_positive"
	ActionReopen        = "reopen"
)

// Actions are the triage actions.
var Actions = []string{ActionAck, ActionResolve, ActionAssign, ActionNote, ActionFalsePositive, ActionReopen}

// Bounds of what a change carries.
const (
	MaxNoteBytes     = 4096
	MaxNotes         = 200
	MaxAssigneeBytes = 200
)

// ErrInvalidChange: the change cannot be made as asked (unknown action, a note too long, ...).
var ErrInvalidChange = errors.New("invalid triage change")

// Change is one change of an alert's triage.
type Change struct {
	Action   string
	Assignee string // assign: who (empty: nobody)
	Note     string // note: its text; any other action may carry one too
	// SuppressFor is how long a false positive suppresses (0: no suppression).
	SuppressFor time.Duration
	// Scope is schemas.SuppressHost or schemas.SuppressGroupKey (empty: host).
	Scope string
	By    string // the user or token making the change
}

// Triager changes alerts' triage: it reads the alert and its current triage, applies a change
// and publishes the new state on crumbs.triage (acks=all, idempotent), from which the sink
// writes alert_triage, the alerts stage resolves PagerDuty incidents and the detector
// suppresses. Changes to one alert through one Triager are serialised; it remembers what it
// published so that a change right after another builds on it before the sink has written it.
// Two processes changing one alert in the same second may lose one of the changes' notes.
type Triager struct {
	store  *query.Store
	client *kgo.Client
	serde  *avro.Serde
	topic  string
	now    func() time.Time

	mu     sync.Mutex
	locks  map[string]*sync.Mutex
	recent map[string]*schemas.TriageState // published, by alert id (bounded: cleared at maxRecent)
}

const maxRecent = 10000

// NewTriager returns a Triager publishing with a client of kcfg (its own role's credentials).
func NewTriager(kcfg kafka.Config, store *query.Store, serde *avro.Serde) (*Triager, error) {
	if serde == nil {
		var err error
		if serde, err = avro.NewBuiltinSerde(); err != nil {
			return nil, fmt.Errorf("triage: load schemas: %w", err)
		}
	}
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return nil, fmt.Errorf("triage: kafka client: %w", err)
	}
	return &Triager{store: store, client: cl, serde: serde, topic: kcfg.Topics().Triage(), now: time.Now,
		locks: map[string]*sync.Mutex{}, recent: map[string]*schemas.TriageState{}}, nil
}

// Close closes the Kafka client.
func (t *Triager) Close() { t.client.Close() }

func (t *Triager) lock(id string) func() {
	t.mu.Lock()
	l := t.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		t.locks[id] = l
	}
	t.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		t.mu.Lock()
		if len(t.locks) > maxRecent {
			clear(t.locks) // held locks stay valid for their holders
		}
		t.mu.Unlock()
	}
}

// validate checks what a change carries.
func (c Change) validate(maxSuppress time.Duration) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidChange}, a...)...)
	}
	switch c.Action {
	case ActionAck, ActionResolve, ActionReopen:
	case ActionAssign:
		if len(c.Assignee) > MaxAssigneeBytes || !utf8.ValidString(c.Assignee) || strings.ContainsAny(c.Assignee, "\r\n\t") {
			return bad("assignee: at most %d bytes of text on one line", MaxAssigneeBytes)
		}
	case ActionNote:
		if strings.TrimSpace(c.Note) == "" {
			return bad("note: empty")
		}
	case ActionFalsePositive:
		if c.SuppressFor < 0 || c.SuppressFor > maxSuppress {
			return bad("suppress_for %s: must be between 0 and %s", c.SuppressFor, maxSuppress)
		}
		if c.Scope != "" && c.Scope != schemas.SuppressHost && c.Scope != schemas.SuppressGroupKey {
			return bad("scope %q: must be host or group_key", c.Scope)
		}
	default:
		return bad("action %q: must be one of %s", c.Action, strings.Join(Actions, ", "))
	}
	if len(c.Note) > MaxNoteBytes || !utf8.ValidString(c.Note) {
		return bad("note: at most %d bytes of UTF-8", MaxNoteBytes)
	}
	return nil
}

// Apply makes the change to the alert with id and returns the state published.
// ErrInvalidChange and query.ErrNotFound (no such alert) are the caller's to report.
func (t *Triager) Apply(ctx context.Context, id string, c Change, maxSuppress time.Duration) (*schemas.TriageState, error) {
	if err := c.validate(maxSuppress); err != nil {
		return nil, err
	}
	unlock := t.lock(id)
	defer unlock()
	a, err := t.store.AlertByID(ctx, id)
	if err != nil {
		return nil, err
	}
	cur, err := t.store.Triage(ctx, id)
	if err != nil {
		return nil, err
	}
	next := &schemas.TriageState{AlertID: id, State: schemas.TriageNew, Notes: []schemas.TriageNote{}}
	if cur != nil {
		next = fromQuery(cur)
	}
	t.mu.Lock()
	if r := t.recent[id]; r != nil && r.Version >= next.Version {
		cp := *r
		cp.Notes = append([]schemas.TriageNote(nil), r.Notes...)
		next = &cp
	}
	t.mu.Unlock()
	now := t.now()
	next.Version = max(next.Version+1, now.UnixNano())
	next.UpdatedAt, next.UpdatedBy = now.UnixNano(), c.By
	next.RuleID, next.Host, next.GroupKey, next.AlertTime = a.RuleID, a.Host, a.GroupKey, a.Time.UnixNano()
	// The inbox counts triaged alerts by these, as first raised (the latest version may differ).
	next.Severity, next.Service, next.Tags = a.Severity, a.Service, a.Tags
	if sev, svc, tags, ok, err := t.store.FirstRaised(ctx, id, a.Time); err == nil && ok {
		next.Severity, next.Service, next.Tags = sev, svc, tags
	}
	if next.Tags == nil {
		next.Tags = []string{}
	}
	switch c.Action {
	case ActionAck:
		next.State = schemas.TriageAcknowledged
		if next.Assignee == "" {
			next.Assignee = c.By
		}
	case ActionResolve:
		next.State = schemas.TriageResolved
	case ActionReopen:
		next.State, next.SuppressUntil, next.SuppressScope = schemas.TriageAcknowledged, 0, ""
	case ActionAssign:
		next.Assignee = c.Assignee
	case ActionFalsePositive:
		next.State, next.SuppressUntil, next.SuppressScope = schemas.TriageFalsePositive, 0, ""
		if c.SuppressFor > 0 {
			next.SuppressUntil = now.Add(c.SuppressFor).UnixNano()
			next.SuppressScope = c.Scope
			if next.SuppressScope == "" {
				next.SuppressScope = schemas.SuppressHost
			}
		}
	}
	if c.Note != "" {
		if len(next.Notes) >= MaxNotes {
			return nil, fmt.Errorf("%w: the alert has %d notes already", ErrInvalidChange, MaxNotes)
		}
		next.Notes = append(next.Notes, schemas.TriageNote{At: now.UnixNano(), By: c.By, Text: c.Note})
	}
	v, err := t.serde.Encode(nil, schemas.TriageSchema, next)
	if err != nil {
		return nil, fmt.Errorf("encode triage of %s: %w", id, err)
	}
	if err := t.client.ProduceSync(ctx, &kgo.Record{Topic: t.topic, Key: []byte(id), Value: v}).FirstErr(); err != nil {
		return nil, fmt.Errorf("publish triage of %s to %s: %w", id, t.topic, err)
	}
	t.mu.Lock()
	if len(t.recent) >= maxRecent {
		clear(t.recent)
	}
	t.recent[id] = next
	t.mu.Unlock()
	return next, nil
}

// Visible waits until ClickHouse shows the alert's triage at version or later, or until
// ctx is done; it reports whether it does.
func (t *Triager) Visible(ctx context.Context, id string, version int64) bool {
	for {
		if cur, err := t.store.Triage(ctx, id); err == nil && cur != nil && int64(cur.Version) >= version {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func fromQuery(q *query.Triage) *schemas.TriageState {
	s := &schemas.TriageState{AlertID: q.AlertID, Version: int64(q.Version), State: q.State, Assignee: q.Assignee,
		UpdatedAt: q.UpdatedAt.UnixNano(), UpdatedBy: q.UpdatedBy, RuleID: q.RuleID, Host: q.Host, GroupKey: q.GroupKey, AlertTime: q.AlertTime.UnixNano(),
		SuppressScope: q.SuppressScope, Notes: []schemas.TriageNote{}}
	if !q.SuppressUntil.IsZero() {
		s.SuppressUntil = q.SuppressUntil.UnixNano()
	}
	for _, n := range q.Notes {
		s.Notes = append(s.Notes, schemas.TriageNote{At: n.At.UnixNano(), By: n.By, Text: n.Text})
	}
	return s
}
