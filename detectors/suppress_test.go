package detectors_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestFalsePositiveSuppressesItsRule: an alert marked a false positive with a suppression for
// its group key makes the detector drop that rule's alerts for the same group key until the
// suppression expires; other group keys, and an expired suppression, still alert.
func TestFalsePositiveSuppressesItsRule(t *testing.T) {
	p := newPipeline(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	publish := func(st *schemas.TriageState) {
		t.Helper()
		v, err := serde.Encode(nil, schemas.TriageSchema, st)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.cl.ProduceSync(context.Background(), &kgo.Record{Topic: p.kcfg.Topics().Triage(), Key: []byte(st.AlertID), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fp := func(id, key string, until time.Time) *schemas.TriageState {
		return &schemas.TriageState{AlertID: id, Version: now.UnixNano(), State: schemas.TriageFalsePositive, UpdatedAt: now.UnixNano(),
			RuleID: "crumbs-brute-force-per-account", Host: "web-1", GroupKey: key, SuppressUntil: until.UnixNano(), SuppressScope: schemas.SuppressGroupKey}
	}
	publish(fp("old-root", "web-1|root", now.Add(time.Hour)))
	publish(fp("old-admin", "web-1|admin", now.Add(-time.Minute))) // expired
	resolved := fp("old-backup", "web-1|backup", now.Add(time.Hour))
	publish(resolved)
	resolved.State, resolved.Version = schemas.TriageResolved, resolved.Version+1 // reopened and resolved since: no suppression
	publish(resolved)

	stop := p.startDetector(t, nil, 0)
	defer stop()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	n := int64(0)
	for i := range 5 { // in time order: detector.allowed_lateness is 0 here
		for _, user := range []string{"root", "admin", "backup"} {
			login(t, p, fmt.Sprintf("%s-%d", user, i), user, t0.Add(time.Duration(i+1)*time.Second))
			n++
		}
	}
	login(t, p, "late", "nobody", t0.Add(2*time.Minute)) // moves the watermark past the windows
	p.waitCommitted(t, n+1)
	var got []string
	for _, a := range p.alerts(t) {
		if a.RuleID == "crumbs-brute-force-per-account" && a.Version == 1 {
			got = append(got, a.GroupKey)
		}
	}
	sort.Strings(got)
	if d := cmp.Diff([]string{"web-1|admin", "web-1|backup"}, got); d != "" {
		t.Errorf("brute-force alerts (-want +got):\n%s", d)
	}
}

// login produces a failed authentication of user on web-1.
func login(t *testing.T, p *pipeline, id, user string, at time.Time) {
	t.Helper()
	ev, err := engine.FixtureEvent("identity", map[string]any{
		"time": at.UnixNano(), "host": map[string]any{"id": "m1", "name": "web-1"}, "action": "auth",
		"identity": map[string]any{"service": "sshd", "user": user, "target_user": user, "result": "failure", "remote_host": "203.0.113.9"},
	}, id)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	v, err := serde.Encode(nil, schemas.IdentitySchema, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cl.ProduceSync(context.Background(), &kgo.Record{Topic: p.kcfg.Topics().Enriched("identity"), Key: []byte("m1"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
