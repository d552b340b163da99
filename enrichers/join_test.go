package enrichers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/schemas"
)

var t0 = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func ts(d time.Duration) schemas.Timestamp { return schemas.TimestampOf(t0.Add(d)) }

func newTestEnricher(t testing.TB) *Enricher {
	t.Helper()
	e, err := New(DefaultConfig(), testKafkaConfig(nil), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func put(t testing.TB, tables *ContextTables, recs ...any) {
	t.Helper()
	for _, r := range recs {
		if err := tables.Put(r, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func execEvent(host string, at time.Time, path, sha, user string) *schemas.ProcessEvent {
	ev := &schemas.ProcessEvent{
		Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at.UnixNano(), Host: schemas.Host{ID: "m-" + host, Name: host}, Kind: schemas.KindProcess},
		Action:   schemas.ActionExec,
	}
	ev.Process.File = schemas.File{Path: path, Name: filepath.Base(path), SHA256: sha}
	ev.Process.UserName = user
	ev.Process.Args = []string{path}
	return ev
}

func encodeEvent(t testing.TB, serde *avro.Serde, ev any) []byte {
	t.Helper()
	r := ev.(schemas.Record)
	name, _ := r.AvroSchema()
	b, err := serde.Encode(nil, name, r.Native())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeEnrichment decodes an enriched event and returns its enrichment.
func decodeEnrichment(t testing.TB, serde *avro.Serde, value []byte) *schemas.Enrichment {
	t.Helper()
	sc, native, err := serde.Decode(value)
	if err != nil {
		t.Fatalf("decode enriched event: %v", err)
	}
	var en *schemas.Enrichment
	switch sc.Name {
	case schemas.ProcessSchema:
		ev, err := schemas.ProcessEventFromNative(native)
		if err != nil {
			t.Fatal(err)
		}
		en = ev.Enrichment
	case schemas.FileSchema:
		var ev schemas.FileEvent
		if err := schemas.FromNative(native, &ev); err != nil {
			t.Fatal(err)
		}
		en = ev.Enrichment
	case schemas.IdentitySchema:
		var ev schemas.IdentityEvent
		if err := schemas.FromNative(native, &ev); err != nil {
			t.Fatal(err)
		}
		en = ev.Enrichment
	case schemas.NetworkSchema:
		var ev schemas.NetworkEvent
		if err := schemas.FromNative(native, &ev); err != nil {
			t.Fatal(err)
		}
		en = ev.Enrichment
	case schemas.SystemSchema:
		var ev schemas.SystemEvent
		if err := schemas.FromNative(native, &ev); err != nil {
			t.Fatal(err)
		}
		en = ev.Enrichment
	}
	if en == nil {
		t.Fatal("enriched event has no enrichment")
	}
	return en
}

// TestJoin enriches events of every kind through both encoders (the scanner and goavro) and
// checks the enrichment against context loaded into the tables.
func TestJoin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "opt", "shop", "bin", "shop")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho shop 1.4.2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	goodSHA := fileSHA(t, bin)
	const otherSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

	e := newTestEnricher(t)
	chg := &schemas.ChangeRecord{Kind: "change", ID: "CHG-1042", Type: schemas.ChangeLaunch, Title: "Black Friday launch",
		Services: []string{"shop"}, StartsAt: ts(0), EndsAt: ts(24 * time.Hour),
		Expected: []schemas.ExpectedEffect{{Service: "shop-db", Metric: "network_bytes", UpToFactor: 4}}}
	hostChg := &schemas.ChangeRecord{Kind: "change", ID: "CHG-7", Type: schemas.ChangeMaintenance, Title: "disk swap",
		Hosts: []string{"web-1"}, StartsAt: ts(time.Hour), EndsAt: ts(2 * time.Hour)}
	dep1 := &schemas.DeployRecord{Kind: "deploy", ID: "DEP-76", Service: "shop", Version: "1.4.1", DeployedAt: ts(-48 * time.Hour),
		Artifacts: []schemas.Artifact{{Path: bin, SHA256: otherSHA, Owner: "shop", Group: "shop", Mode: "0755"}}}
	dep2 := &schemas.DeployRecord{Kind: "deploy", ID: "DEP-77", Service: "shop", Version: "1.4.2", Hosts: []string{"web-1"}, DeployedAt: ts(-time.Hour),
		Artifacts: []schemas.Artifact{{Path: bin, SHA256: goodSHA, Owner: "shop", Group: "shop", Mode: "0755"}}}
	oracle := &schemas.AccountRecord{Kind: "account", ID: "oracle", Name: "oracle", Type: schemas.AccountService, Interactive: true,
		AllowedSources: []string{"10.20.0.0/16"}, AllowedUsers: []string{"alice", "bob"}}
	put(t, e.Tables(),
		&schemas.InventoryRecord{Kind: "inventory", ID: "web-1", Host: "web-1", Service: "shop", Environment: "prod", Role: "web"},
		&schemas.InventoryRecord{Kind: "inventory", ID: "db-1", Host: "db-1", Service: "shop-db", Environment: "prod", Role: "db"},
		chg, hostChg, dep1, dep2, oracle)
	chgRef := schemas.ChangeRef{ID: chg.ID, Type: chg.Type, Title: chg.Title, Expected: chg.Expected}
	hostChgRef := schemas.ChangeRef{ID: hostChg.ID, Type: hostChg.Type, Title: hostChg.Title}
	dep1Ref := &schemas.DeployRef{ID: "DEP-76", Service: "shop", Version: "1.4.1", DeployedAt: int64(dep1.DeployedAt)}
	dep2Ref := &schemas.DeployRef{ID: "DEP-77", Service: "shop", Version: "1.4.2", DeployedAt: int64(dep2.DeployedAt)}
	oracleRef := &schemas.AccountRef{Name: "oracle", Type: "service", Interactive: true, AllowedSources: oracle.AllowedSources, AllowedUsers: oracle.AllowedUsers}
	web := func(d time.Duration) (string, time.Time) { return "web-1", t0.Add(d) }
	shop := func(en schemas.Enrichment) *schemas.Enrichment {
		en.Service, en.Environment, en.Role = "shop", "prod", "web"
		return &en
	}
	fileEv := func(action, path, sha, mode string) *schemas.FileEvent {
		h, at := web(30 * time.Minute)
		return &schemas.FileEvent{Envelope: schemas.Envelope{EventID: schemas.NewEventID(), Time: at.UnixNano(), Host: schemas.Host{ID: "m1", Name: h}, Kind: schemas.KindFile},
			Action: action, File: schemas.TargetFile{Path: path, SHA256: sha, Owner: "shop", Group: "shop", Mode: mode}}
	}
	cases := []struct {
		name string
		ev   any
		want *schemas.Enrichment
	}{
		{"exec of a manifest binary: match", execEvent("web-1", t0.Add(30*time.Minute), bin, goodSHA, "shop"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictMatch})},
		{"exec of a changed binary: mismatch", execEvent("web-1", t0.Add(30*time.Minute), bin, otherSHA, "shop"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictMismatch,
				VerdictReason: "sha256 " + otherSHA + ", manifest " + goodSHA + " (deploy DEP-77, shop 1.4.2)"})},
		{"exec before the host's deploy: the previous deploy's manifest", execEvent("web-1", t0.Add(-2*time.Hour), bin, otherSHA, "shop"),
			shop(schemas.Enrichment{Deploy: dep1Ref, Verdict: schemas.VerdictMatch})},
		{"exec before any deploy: unmanaged", execEvent("web-1", t0.Add(-72*time.Hour), bin, goodSHA, "shop"),
			shop(schemas.Enrichment{Verdict: schemas.VerdictUnmanaged, VerdictReason: "no deployment on the host at the event's time"})},
		{"exec beside a manifest binary: unknown", execEvent("web-1", t0.Add(30*time.Minute), filepath.Join(filepath.Dir(bin), "evil"), goodSHA, "shop"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictUnknown,
				VerdictReason: "in " + filepath.Dir(bin) + ", managed by deploy DEP-77 (shop 1.4.2), but in no manifest"})},
		{"exec elsewhere: unmanaged", execEvent("web-1", t0.Add(30*time.Minute), "/usr/bin/curl", goodSHA, "shop"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictUnmanaged})},
		{"inside a host change window and a service one", execEvent("web-1", t0.Add(90*time.Minute), "", "", "oracle"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef, hostChgRef}, Deploy: dep2Ref, Account: oracleRef})},
		{"just after the change window ends", execEvent("web-1", t0.Add(24*time.Hour), "", "", ""),
			shop(schemas.Enrichment{Deploy: dep2Ref})},
		{"just before the change window starts", execEvent("web-1", t0.Add(-time.Nanosecond), "", "", ""),
			shop(schemas.Enrichment{Deploy: dep2Ref})},
		{"unknown host", execEvent("laptop-9", t0.Add(time.Minute), "/usr/bin/ls", "", ""),
			&schemas.Enrichment{Verdict: schemas.VerdictUnmanaged, VerdictReason: "no deployment on the host at the event's time"}},
		{"other service on a host without deploys", execEvent("db-1", t0.Add(time.Minute), "", "", ""),
			&schemas.Enrichment{Service: "shop-db", Environment: "prod", Role: "db"}},
		{"file write with a wrong mode: mismatch", fileEv(schemas.ActionChmod, bin, goodSHA, "0777"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictMismatch,
				VerdictReason: "mode 0777, manifest 0755 (deploy DEP-77, shop 1.4.2)"})},
		{"file scan matching the manifest", fileEv(schemas.ActionScanChanged, bin, goodSHA, "755"),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictMatch})},
		{"managed file deleted: mismatch", fileEv(schemas.ActionDelete, bin, "", ""),
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref, Verdict: schemas.VerdictMismatch,
				VerdictReason: "deleted (deploy DEP-77, shop 1.4.2)"})},
		{"identity: su to a service account", &schemas.IdentityEvent{
			Envelope: schemas.Envelope{EventID: "id-1", Time: t0.Add(25 * time.Hour).UnixNano(), Host: schemas.Host{ID: "m1", Name: "web-1"}, Kind: schemas.KindIdentity},
			Action:   schemas.ActionSessionOpen, Identity: schemas.Identity{Service: "su", User: "mallory", TargetUser: "oracle", Result: schemas.ResultSuccess}},
			shop(schemas.Enrichment{Deploy: dep2Ref, Account: oracleRef})},
		{"network event: service and change window", &schemas.NetworkEvent{
			Envelope: schemas.Envelope{EventID: "n-1", Time: t0.Add(time.Minute).UnixNano(), Host: schemas.Host{ID: "m1", Name: "web-1"}, Kind: schemas.KindNetwork},
			Action:   schemas.ActionConnect, Process: schemas.Actor{User: schemas.User{Name: "www-data"}}},
			shop(schemas.Enrichment{Changes: []schemas.ChangeRef{chgRef}, Deploy: dep2Ref})},
		{"system event", &schemas.SystemEvent{
			Envelope: schemas.Envelope{EventID: "s-1", Time: t0.Add(time.Minute).UnixNano(), Host: schemas.Host{ID: "m1", Name: "db-1"}, Kind: schemas.KindSystem},
			System:   schemas.System{Scope: "service", Unit: "postgres.service"}},
			&schemas.Enrichment{Service: "shop-db", Environment: "prod", Role: "db"}},
	}
	serde := e.deps.Serde
	// The batch path (enrichBatch, JoinAll) must give byte for byte what the one-event path
	// gives, with a record it cannot read and one goavro must read among the others.
	t.Run("batch", func(t *testing.T) {
		var recs []*kgo.Record
		var want [][]byte
		for range 3 { // more than one JoinAll batch
			for _, tc := range cases {
				raw := encodeEvent(t, serde, tc.ev)
				v, _, err := e.EnrichValue(raw)
				if err != nil {
					t.Fatal(err)
				}
				recs, want = append(recs, &kgo.Record{Value: raw}), append(want, v)
			}
		}
		confluent := append([]byte{0, 0, 0, 0, 1}, encodeEvent(t, serde, cases[0].ev)[10:]...)
		recs = append(recs, &kgo.Record{Value: []byte("garbage")}, &kgo.Record{Value: confluent})
		outs, errs := e.enrichBatch(recs)
		for i := range want {
			if errs[i] != nil || len(outs[i]) != 1 {
				t.Fatalf("record %d: %v, %d outputs", i, errs[i], len(outs[i]))
			}
			if !bytes.Equal(outs[i][0].Value, want[i]) {
				t.Errorf("record %d (%s): batch output differs from the one-event path", i, cases[i%len(cases)].name)
			}
		}
		if errs[len(want)] == nil {
			t.Errorf("garbage record: no error")
		}
		if _, _, err := e.EnrichValue(confluent); (err == nil) != (errs[len(want)+1] == nil) {
			t.Errorf("Confluent-framed record: batch error %v, one-event error %v", errs[len(want)+1], err)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := encodeEvent(t, serde, tc.ev)
			fast, kind, err := e.EnrichValue(raw)
			if err != nil {
				t.Fatalf("enrich: %v", err)
			}
			slow, kind2, err := e.enrichNative(raw)
			if err != nil {
				t.Fatalf("enrich with goavro: %v", err)
			}
			if kind != kind2 {
				t.Errorf("kind: scanner %q, goavro %q", kind, kind2)
			}
			opts := cmpopts.EquateEmpty()
			if diff := cmp.Diff(tc.want, decodeEnrichment(t, serde, fast), opts); diff != "" {
				t.Errorf("enrichment (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(decodeEnrichment(t, serde, slow), decodeEnrichment(t, serde, fast), opts); diff != "" {
				t.Errorf("scanner and goavro differ (-goavro +scanner):\n%s", diff)
			}
		})
	}
}

// TestExecAfterBinaryChanged is the manifest check end to end on a real file: an exec of the
// binary a deploy lists matches; once the file is changed on disk, the next exec mismatches.
func TestExecAfterBinaryChanged(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "shop")
	if err := os.WriteFile(bin, []byte("release 1.4.2"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newTestEnricher(t)
	put(t, e.Tables(),
		&schemas.InventoryRecord{ID: "web-1", Host: "web-1", Service: "shop"},
		&schemas.DeployRecord{ID: "DEP-77", Service: "shop", Version: "1.4.2", DeployedAt: ts(0),
			Artifacts: []schemas.Artifact{{Path: bin, SHA256: fileSHA(t, bin), Mode: "0755"}}})
	verdict := func(at time.Duration) string {
		t.Helper()
		out, _, err := e.EnrichValue(encodeEvent(t, e.deps.Serde, execEvent("web-1", t0.Add(at), bin, fileSHA(t, bin), "shop")))
		if err != nil {
			t.Fatal(err)
		}
		return decodeEnrichment(t, e.deps.Serde, out).Verdict
	}
	got := []string{verdict(time.Minute)}
	if err := os.WriteFile(bin, []byte("release 1.4.2 with a backdoor"), 0o755); err != nil {
		t.Fatal(err)
	}
	got = append(got, verdict(2*time.Minute))
	if diff := cmp.Diff([]string{schemas.VerdictMatch, schemas.VerdictMismatch}, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// TestEnrichRefusesBadRecords checks that what is not a well-formed event is an error (the
// record is dead-lettered), not a crash.
func TestEnrichRefusesBadRecords(t *testing.T) {
	e := newTestEnricher(t)
	good := encodeEvent(t, e.deps.Serde, execEvent("web-1", t0, "/bin/ls", "", ""))
	inv, err := e.deps.Serde.Encode(nil, schemas.InventorySchema, (&schemas.InventoryRecord{ID: "x"}).Native())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"not a frame":    []byte("hello"),
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(append([]byte{}, good...), 1, 2, 3),
		"context record": inv,
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := e.EnrichValue(v); err == nil {
				t.Error("no error")
			}
		})
	}
}

// FuzzScanner checks that the scanner never panics and agrees with goavro on what is a
// well-formed process event.
func FuzzScanner(f *testing.F) {
	e := newTestEnricher(f)
	f.Add(encodeEvent(f, e.deps.Serde, execEvent("web-1", t0, "/bin/ls", "", "root")))
	f.Fuzz(func(t *testing.T, b []byte) {
		fastOut, _, fastErr := e.EnrichValue(b)
		_, _, slowErr := e.enrichNative(b)
		if fastErr == nil && slowErr != nil {
			t.Fatalf("scanner accepted what goavro refuses (%v)", slowErr)
		}
		if fastErr == nil {
			if _, _, err := e.deps.Serde.Decode(fastOut); err != nil {
				t.Fatalf("enriched output does not decode: %v", err)
			}
		}
	})
}

// TestTablesIndexesFollowPutsAndDeletes joins after sequences of puts, replacements and
// tombstones, and checks that the per-host and per-service indexes hold nothing once every
// record is gone.
func TestTablesIndexesFollowPutsAndDeletes(t *testing.T) {
	inv := func(id, host, svc string) *schemas.InventoryRecord {
		return &schemas.InventoryRecord{ID: id, Host: host, Service: svc, Environment: "prod", Role: "web"}
	}
	dep := func(id, svc string, hosts []string, paths ...string) *schemas.DeployRecord {
		d := &schemas.DeployRecord{ID: id, Service: svc, Hosts: hosts, Version: "1", DeployedAt: ts(-time.Hour)}
		for _, p := range paths {
			d.Artifacts = append(d.Artifacts, schemas.Artifact{Path: p, SHA256: goodSHA})
		}
		return d
	}
	chg := func(id string, services, hosts []string) *schemas.ChangeRecord {
		return &schemas.ChangeRecord{ID: id, Type: schemas.ChangePlanned, Title: id, Services: services, Hosts: hosts, StartsAt: ts(-time.Hour), EndsAt: ts(time.Hour)}
	}
	type step struct {
		put       any
		del       [2]string // kind, id
		host      string    // joined after the step with path
		path      string
		service   string
		changes   []string
		deployID  string
		verdict   string
		knownSvcs []string // KnownService must say true for these, false for "gone"
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"inventory moves a host to another service", []step{
			{put: inv("i1", "h1", "a")}, {put: chg("c-a", []string{"a"}, nil)}, {put: chg("c-b", []string{"b"}, nil)},
			{host: "h1", service: "a", changes: []string{"c-a"}, verdict: schemas.VerdictUnmanaged, path: "/x"},
			{put: inv("i1", "h1", "b"), host: "h1", service: "b", changes: []string{"c-b"}, path: "/x", verdict: schemas.VerdictUnmanaged, knownSvcs: []string{"b"}},
		}},
		{"two inventory records name one host: deleting the older keeps the newer", []step{
			{put: inv("i1", "h1", "a")}, {put: inv("i2", "h1", "b")},
			{del: [2]string{schemas.ContextInventory, "i1"}, host: "h1", service: "b", knownSvcs: []string{"b"}},
		}},
		{"host deploy beats an older service deploy; tombstone falls back", []step{
			{put: inv("i1", "h1", "a")}, {put: dep("d-svc", "a", nil, "/opt/a/bin/x")},
			{put: &schemas.DeployRecord{ID: "d-host", Service: "a", Hosts: []string{"h1"}, Version: "2", DeployedAt: ts(-time.Minute)}},
			{host: "h1", service: "a", deployID: "d-host", path: "/opt/a/bin/x", verdict: schemas.VerdictUnmanaged},
			{del: [2]string{schemas.ContextDeploy, "d-host"}, host: "h1", service: "a", deployID: "d-svc", path: "/opt/a/bin/x", verdict: schemas.VerdictMatch},
		}},
		{"an artifact in / makes every path under a managed directory", []step{
			{put: inv("i1", "h1", "a")}, {put: dep("d1", "a", nil, "/tool")},
			{host: "h1", service: "a", deployID: "d1", path: "/usr/bin/curl", verdict: schemas.VerdictUnknown},
		}},
		{"a path outside the managed tops is unmanaged, one beside an artifact unknown", []step{
			{put: inv("i1", "h1", "a")}, {put: dep("d1", "a", nil, "/opt/a/bin/x", "/srv/a/y")},
			{host: "h1", service: "a", deployID: "d1", path: "/usr/bin/curl", verdict: schemas.VerdictUnmanaged},
			{host: "h1", service: "a", deployID: "d1", path: "/srv/a/z", verdict: schemas.VerdictUnknown},
			{host: "h1", service: "a", deployID: "d1", path: "/opt/evil", verdict: schemas.VerdictUnmanaged},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tables := NewContextTables(1000, 10)
			for i, st := range tc.steps {
				if st.put != nil {
					put(t, tables, st.put)
				}
				if st.del[0] != "" {
					tables.Delete(st.del[0], st.del[1])
				}
				if st.host == "" {
					continue
				}
				var en schemas.Enrichment
				var j joined
				tables.Join(&Subject{Host: st.host, Time: t0.UnixNano(), Path: st.path}, &en, &j)
				j.into(&en)
				got := step{host: st.host, path: st.path, service: en.Service, verdict: en.Verdict}
				for _, c := range en.Changes {
					got.changes = append(got.changes, c.ID)
				}
				if en.Deploy != nil {
					got.deployID = en.Deploy.ID
				}
				want := st
				want.put, want.del, want.knownSvcs = nil, [2]string{}, nil
				if diff := cmp.Diff(want, got, cmp.AllowUnexported(step{}), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("step %d: join (-want +got):\n%s", i, diff)
				}
				for _, s := range st.knownSvcs {
					if !tables.KnownService(s) {
						t.Errorf("step %d: service %s not known", i, s)
					}
				}
			}
			// Tombstone everything: nothing may be left in the indexes.
			for _, kind := range ContextKinds {
				for _, r := range tables.List(kind) {
					_, id := recordKey(r)
					tables.Delete(kind, id)
				}
			}
			if tables.hosts.len() != 0 || len(tables.services) != 0 {
				t.Errorf("after deleting every record: %d host and %d service contexts left", tables.hosts.len(), len(tables.services))
			}
		})
	}
}

// TestRemovedContextLeavesNoJoin: once a deploy or change is tombstoned, no host keeps a join
// that holds it (the memory is freed), and the next event joins without it.
func TestRemovedContextLeavesNoJoin(t *testing.T) {
	tables := NewContextTables(1000, 10)
	put(t, tables,
		&schemas.InventoryRecord{ID: "i1", Host: "h1", Service: "a"},
		&schemas.DeployRecord{ID: "d1", Service: "a", Version: "1", DeployedAt: ts(-time.Hour), Artifacts: []schemas.Artifact{{Path: "/opt/a/x", SHA256: goodSHA}}},
		&schemas.ChangeRecord{ID: "c1", Type: schemas.ChangePlanned, Title: "c1", Services: []string{"a"}, StartsAt: ts(-time.Hour), EndsAt: ts(time.Hour)})
	join := func() *hostJoin {
		var en schemas.Enrichment
		var j joined
		tables.Join(&Subject{Host: "h1", Time: t0.UnixNano(), Path: "/opt/a/x"}, &en, &j)
		return j.host
	}
	if hj := join(); hj.deploy == nil || len(hj.changes) != 1 {
		t.Fatalf("join before the tombstones: deploy %v, %d changes", hj.deploy, len(hj.changes))
	}
	for _, kind := range []string{schemas.ContextDeploy, schemas.ContextChange} {
		id := map[string]string{schemas.ContextDeploy: "d1", schemas.ContextChange: "c1"}[kind]
		tables.Delete(kind, id)
		if last := tables.hosts.get("h1").last.Load(); last != nil {
			t.Errorf("after tombstoning %s %s the host still holds a join", kind, id)
		}
	}
	if hj := join(); hj.deploy != nil || len(hj.changes) != 0 {
		t.Errorf("join after the tombstones: deploy %v, %d changes", hj.deploy, len(hj.changes))
	}
}
