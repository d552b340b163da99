package synthetic_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/collectors/synthetic"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestMixOfEveryKind: the default mix makes events of every built-in kind in about their
// shares, each a valid event of its kind that its codec decodes again.
func TestMixOfEveryKind(t *testing.T) {
	const n = 20000
	g, err := synthetic.New(synthetic.Config{Count: n, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	_, err = g.Run(context.Background(), func(k *schemas.Kind, ev schemas.Record) error {
		got[k.Name]++
		kind, _ := ev.Field("kind")
		id, _ := ev.Field("event_id")
		if kind != k.Name || id == "" {
			t.Fatalf("a %s event with kind %v and id %q", k.Name, kind, id)
		}
		back := k.Codec.New()
		if err := back.UnmarshalAvro(ev.AppendAvro(nil)); err != nil {
			t.Fatalf("%s event does not decode: %v", k.Name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range synthetic.DefaultMix {
		total += s
	}
	for _, k := range schemas.Kinds {
		want := float64(n) * float64(synthetic.DefaultMix[k.Name]) / float64(total)
		if math.Abs(float64(got[k.Name])-want) > 0.1*want {
			t.Errorf("%s: %d events of %d, want about %.0f", k.Name, got[k.Name], n, want)
		}
	}
}

func TestSuspiciousEveryNthProcessEvent(t *testing.T) {
	g, err := synthetic.New(synthetic.Config{Count: 1000, SuspiciousEach: 10, Mix: map[string]int{"process": 1, "network": 1}})
	if err != nil {
		t.Fatal(err)
	}
	procs, shells := 0, 0
	if _, err := g.Run(context.Background(), func(k *schemas.Kind, ev schemas.Record) error {
		if k.Name == schemas.KindProcess {
			procs++
			if ev.(*schemas.ProcessEvent).Process.File.Path == "/bin/sh" {
				shells++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if shells != procs/10 {
		t.Errorf("%d shells among %d process events, want every tenth", shells, procs)
	}
}

// TestGenericEventsOfAKindWithoutGenerator: a kind the package has no generator for gets
// events of its schema with made-up values.
func TestGenericEventsOfAKindWithoutGenerator(t *testing.T) {
	system, _ := schemas.Kinds.Lookup(schemas.KindSystem)
	other := *system
	other.Name, other.Table = "other", "other_events"
	kinds, err := schemas.Kinds.With(&other)
	if err == nil || !strings.Contains(err.Error(), "schema crumbs.SystemEvent is another kind's") {
		t.Fatalf("With: %v", err) // the table refuses a second kind on one schema ...
	}
	kinds = schemas.KindTable{&other} // ... which is all this generator needs
	g, err := synthetic.New(synthetic.Config{Count: 3, Kinds: kinds, Mix: map[string]int{"other": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(context.Background(), func(k *schemas.Kind, ev schemas.Record) error {
		unit, _ := ev.Field("system.unit")
		kind, _ := ev.Field("kind")
		if kind != "other" || unit == "" {
			t.Errorf("generic event: kind %v, system.unit %q", kind, unit)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestParseMix(t *testing.T) {
	got, err := synthetic.ParseMix("process=3, network=1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"process": 3, "network": 1}, got); diff != "" {
		t.Errorf("mix (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"process", "process=x", "process=-1"} {
		if _, err := synthetic.ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q): no error", bad)
		}
	}
	if _, err := synthetic.New(synthetic.Config{Mix: map[string]int{"proces": 1}}); err == nil || !strings.Contains(err.Error(), `"proces": no such event kind`) {
		t.Errorf("a mix naming no kind: %v", err)
	}
}
