package enrichers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// childEnv makes the test binary run an enricher instead of the tests (the exactly-once
// test kills it with SIGKILL).
const childEnv = "CRUMBS_TEST_ENRICHER_BROKERS"

func TestMain(m *testing.M) {
	if brokers := os.Getenv(childEnv); brokers != "" {
		os.Exit(runChildEnricher(strings.Split(brokers, ",")))
	}
	os.Exit(m.Run())
}

func runChildEnricher(brokers []string) int {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	cfg := DefaultConfig()
	cfg.MaxPollRecords = 100
	e, err := New(cfg, testKafkaConfig(brokers), Deps{TransactionalID: "crumbs-enrich-test", KafkaOpts: shortSession})
	if err == nil {
		err = e.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// shortSession lets the group notice a killed member within seconds, not the default 45s.
var shortSession = []kgo.Opt{kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(time.Second)}

// runEnricher runs an enricher until the test ends.
func runEnricher(t *testing.T, kcfg kafka.Config, cfg Config, txnID string) *Enricher {
	t.Helper()
	e, err := New(cfg, kcfg, Deps{TransactionalID: txnID, KafkaOpts: shortSession})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.Run(ctx); err != nil {
			t.Errorf("enricher: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

// produceRaw writes raw events to their topics, keyed by host id.
func produceRaw(t testing.TB, kcfg kafka.Config, serde *avro.Serde, events ...any) {
	t.Helper()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, ev := range events {
		var env schemas.Envelope
		switch e := ev.(type) {
		case *schemas.ProcessEvent:
			env = e.Envelope
		case *schemas.IdentityEvent:
			env = e.Envelope
		}
		recs = append(recs, &kgo.Record{Topic: kcfg.Topics().Raw(env.Kind), Key: []byte(env.Host.ID), Value: encodeEvent(t, serde, ev)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readEnriched reads committed enriched records of a kind until want distinct event ids were
// seen or the deadline passes, and returns how often each id was seen with its last value.
func readEnriched(t testing.TB, kcfg kafka.Config, serde *avro.Serde, kind string, want int, within time.Duration) (map[string]int, map[string][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(append(kcfg.ClientOpts(), kgo.ConsumeTopics(kcfg.Topics().Enriched(kind)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts, values := map[string]int{}, map[string][]byte{}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for len(counts) < want && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			native, err := serde.DecodePrefix(r.Value, schemas.EnvelopeSchema)
			if err != nil {
				t.Errorf("decode enriched record: %v", err)
				return
			}
			env, _ := schemas.EnvelopeFromNative(native)
			counts[env.EventID]++
			values[env.EventID] = r.Value
		})
	}
	return counts, values
}

func publish(t testing.TB, kcfg kafka.Config, serde *avro.Serde, kind, doc string) {
	t.Helper()
	recs, err := ParseContext([]byte(doc), ParseOptions{Kind: kind, Source: kind + ".json", Origin: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := PublishContext(ctx, kcfg, serde, recs); err != nil {
		t.Fatal(err)
	}
}

// TestEnricherThroughKafka publishes context to its topics, runs the enricher on the embedded
// broker and checks what comes out on the enriched topic: the manifest verdict before and
// after the binary changed on disk, and the change window's id inside the window only.
func TestEnricherThroughKafka(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "shop")
	if err := os.WriteFile(bin, []byte("release 1.4.2"), 0o755); err != nil {
		t.Fatal(err)
	}
	publish(t, kcfg, serde, "inventory", `{"kind": "inventory", "id": "web-1", "host": "web-1", "service": "shop", "environment": "prod", "role": "web"}`)
	publish(t, kcfg, serde, "change", `{"kind": "change", "id": "CHG-1042", "type": "launch", "title": "Black Friday launch",
 "services": ["shop"], "hosts": [], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z",
 "expected": [{"service": "shop", "metric": "network_bytes", "up_to_factor": 4}]}`)
	publish(t, kcfg, serde, "deploy", fmt.Sprintf(`{"kind": "deploy", "id": "DEP-77", "service": "shop", "version": "1.4.2", "hosts": ["web-1"],
 "deployed_at": "2026-11-26T10:00:00Z",
 "artifacts": [{"path": %q, "sha256": %q, "owner": "shop", "group": "shop", "mode": "0755"}]}`, bin, fileSHA(t, bin)))

	runEnricher(t, kcfg, DefaultConfig(), "enrich-through-kafka")

	inWindow := execEvent("web-1", t0.Add(time.Hour), bin, fileSHA(t, bin), "shop")
	if err := os.WriteFile(bin, []byte("release 1.4.2, patched by someone"), 0o755); err != nil {
		t.Fatal(err)
	}
	afterChange := execEvent("web-1", t0.Add(2*time.Hour), bin, fileSHA(t, bin), "shop")
	justAfter := execEvent("web-1", t0.Add(24*time.Hour), "", "", "shop")
	produceRaw(t, kcfg, serde, inWindow, afterChange, justAfter)

	_, values := readEnriched(t, kcfg, serde, schemas.KindProcess, 3, time.Minute)
	type got struct {
		Changes []string
		Deploy  string
		Verdict string
	}
	summary := func(id string) got {
		v, ok := values[id]
		if !ok {
			t.Fatalf("event %s was not enriched", id)
		}
		en := decodeEnrichment(t, serde, v)
		g := got{Verdict: en.Verdict}
		for _, c := range en.Changes {
			g.Changes = append(g.Changes, c.ID)
		}
		if en.Deploy != nil {
			g.Deploy = en.Deploy.Version
		}
		return g
	}
	want := []got{
		{Changes: []string{"CHG-1042"}, Deploy: "1.4.2", Verdict: schemas.VerdictMatch},
		{Changes: []string{"CHG-1042"}, Deploy: "1.4.2", Verdict: schemas.VerdictMismatch},
		{Deploy: "1.4.2"},
	}
	gotAll := []got{summary(inWindow.EventID), summary(afterChange.EventID), summary(justAfter.EventID)}
	if diff := cmp.Diff(want, gotAll); diff != "" {
		t.Errorf("enriched (-want +got):\n%s", diff)
	}
}

// TestEnricherKilledExactlyOnce kills an enricher (SIGKILL, in a child process) in the middle
// of a stream, restarts it, and checks that every event is on the enriched topic exactly once
// for a read_committed reader.
func TestEnricherKilledExactlyOnce(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	publish(t, kcfg, serde, "inventory", `{"id": "web-1", "host": "web-1", "service": "shop"}`)
	const n = 20000
	events := make([]any, n)
	for i := range events {
		events[i] = execEvent("web-1", t0.Add(time.Duration(i)*time.Millisecond), "/bin/true", "", "shop")
	}
	produceRaw(t, kcfg, serde, events...)

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+strings.Join(kcfg.Brokers, ","))
	var stderr strings.Builder
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once part of the stream is committed, so that it dies between or inside
	// transactions, never at a clean end.
	partial, _ := readEnriched(t, kcfg, serde, schemas.KindProcess, 1000, 2*time.Minute)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if len(partial) == 0 || len(partial) >= n {
		t.Fatalf("the first enricher committed %d of %d events before it was killed; want part of them\n%s", len(partial), n, stderr.String())
	}
	t.Logf("killed the first enricher after it committed at least %d of %d events", len(partial), n)

	cfg := DefaultConfig()
	cfg.MaxPollRecords = 100
	runEnricher(t, kcfg, cfg, "crumbs-enrich-test") // same transactional id: fences the dead one
	counts, _ := readEnriched(t, kcfg, serde, schemas.KindProcess, n, 3*time.Minute)
	var dups []string
	for id, c := range counts {
		if c != 1 {
			dups = append(dups, fmt.Sprintf("%s x%d", id, c))
		}
	}
	if len(counts) != n || len(dups) > 0 {
		t.Errorf("enriched events: %d distinct of %d; duplicated: %v", len(counts), n, dups)
	}
	// A last read to the end, after the enricher has had time to (wrongly) produce more.
	final, _ := readEnriched(t, kcfg, serde, schemas.KindProcess, n+1, 3*time.Second)
	total := 0
	for _, c := range final {
		total += c
	}
	if total != n {
		t.Errorf("enriched records on the topic: %d, want %d", total, n)
	}
}

// TestLateContext documents what happens to context that arrives after events it would have
// applied to: events already enriched are not enriched again (the enriched topic is
// append-only and the detector sees what was known at enrichment time); events enriched after
// the enricher has applied the record get it, by their event time, even when that time is
// before the record arrived.
func TestLateContext(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	publish(t, kcfg, serde, "inventory", `{"id": "web-1", "host": "web-1", "service": "shop"}`)
	e := runEnricher(t, kcfg, DefaultConfig(), "late-context")
	early := execEvent("web-1", t0.Add(time.Hour), "", "", "shop")
	produceRaw(t, kcfg, serde, early)
	if counts, _ := readEnriched(t, kcfg, serde, schemas.KindProcess, 1, time.Minute); counts[early.EventID] != 1 {
		t.Fatalf("early event enriched %d times, want 1", counts[early.EventID])
	}
	publish(t, kcfg, serde, "change", `{"id": "CHG-9", "type": "planned_change", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-27T08:00:00Z"}`)
	for ctx, cancel := context.WithTimeout(context.Background(), time.Minute); ; {
		if _, ok := e.Tables().Get("change", "CHG-9"); ok {
			cancel()
			break
		}
		select {
		case <-ctx.Done():
			cancel()
			t.Fatal("the enricher never applied CHG-9")
		case <-time.After(10 * time.Millisecond):
		}
	}
	late := execEvent("web-1", t0.Add(time.Hour), "", "", "shop")
	produceRaw(t, kcfg, serde, late)
	counts, values := readEnriched(t, kcfg, serde, schemas.KindProcess, 2, time.Minute)
	changes := func(id string) []string {
		var out []string
		for _, c := range decodeEnrichment(t, serde, values[id]).Changes {
			out = append(out, c.ID)
		}
		return out
	}
	got := map[string]any{"early count": counts[early.EventID], "early changes": changes(early.EventID),
		"late count": counts[late.EventID], "late changes": changes(late.EventID)}
	want := map[string]any{"early count": 1, "early changes": []string(nil), "late count": 1, "late changes": []string{"CHG-9"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("late context (-want +got):\n%s", diff)
	}
}
