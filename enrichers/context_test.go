package enrichers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threatcrumbs/crumbs/pkg/avro"
)

const goodSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func knownShop(s string) bool { return s == "shop" || s == "shop-db" }

// TestParseContextRefusals checks that each kind of invalid input is refused with a problem
// naming the record, the field and what is wrong, and that nothing of the input is returned.
func TestParseContextRefusals(t *testing.T) {
	cases := []struct {
		name string
		kind string
		doc  string
		want []Problem
	}{
		{"unknown kind", "incident", `{"id": "x"}`,
			[]Problem{{Source: "in", Field: "kind", Problem: `unknown kind "incident" (have: change, deploy, inventory, account)`}}},
		{"record of another kind", "change", `{"kind": "deploy", "id": "D"}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "change", ID: "D", Field: "kind", Problem: `"deploy", but the records published here are "change"`}}},
		{"missing field", "inventory", `[{"id": "web-1", "host": "web-1", "service": "shop"}, {"id": "web-2", "host": "web-2"}]`,
			[]Problem{{Source: "in", Record: 2, Line: 1, Kind: "inventory", ID: "web-2", Field: "service", Problem: "is required"}}},
		{"unknown field", "inventory", "id: web-1\nhost: web-1\nservice: shop\nrack: 7\n",
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "inventory", ID: "web-1", Field: "rack", Problem: "unknown field"}}},
		{"end before start", "change", `{"id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "2026-11-28T06:00:00Z", "ends_at": "2026-11-27T06:00:00Z"}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "change", ID: "CHG-1", Field: "ends_at", Problem: "2026-11-27T06:00:00Z is not after starts_at 2026-11-28T06:00:00Z"}}},
		{"malformed time", "change", `{"id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "tomorrow", "ends_at": "2026-11-27T06:00:00Z"}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "change", ID: "CHG-1", Field: "starts_at", Problem: `"tomorrow" is not an RFC 3339 time (e.g. 2026-11-27T06:00:00Z)`}}},
		{"bad change type", "change", `{"id": "CHG-1", "type": "party", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "change", ID: "CHG-1", Field: "type", Problem: `"party": must be planned_change, launch, campaign or maintenance`}}},
		{"bad CIDR", "account", `{"id": "oracle", "name": "oracle", "type": "service", "allowed_sources": ["10.20.0.0/33", "bastion.example.com", "10.1.2.3"]}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "account", ID: "oracle", Field: "allowed_sources[0]", Problem: `"10.20.0.0/33": not a CIDR (e.g. 10.20.0.0/16)`}}},
		{"bad source", "account", `{"id": "oracle", "name": "oracle", "type": "robot", "allowed_sources": ["10.20.0.300"]}`,
			[]Problem{
				{Source: "in", Record: 1, Line: 1, Kind: "account", ID: "oracle", Field: "type", Problem: `"robot": must be human, service or system`},
				{Source: "in", Record: 1, Line: 1, Kind: "account", ID: "oracle", Field: "allowed_sources[0]", Problem: `"10.20.0.300": neither a CIDR, an IP address nor a host name`}}},
		{"malformed sha256", "deploy", `{"id": "DEP-1", "service": "shop", "version": "1", "deployed_at": "2026-11-26T10:00:00Z",
			"artifacts": [{"path": "/opt/shop/bin/shop", "sha256": "9f86d0"}]}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "deploy", ID: "DEP-1", Field: "artifacts[0].sha256", Problem: `"9f86d0": not a sha256 (64 hex digits)`}}},
		{"bad mode and relative path", "deploy", `{"id": "DEP-1", "service": "shop", "version": "1", "deployed_at": "2026-11-26T10:00:00Z",
			"artifacts": [{"path": "bin/shop", "sha256": "` + goodSHA + `", "mode": "rwx"}]}`,
			[]Problem{
				{Source: "in", Record: 1, Line: 1, Kind: "deploy", ID: "DEP-1", Field: "artifacts[0].path", Problem: `"bin/shop": must be an absolute, clean path`},
				{Source: "in", Record: 1, Line: 1, Kind: "deploy", ID: "DEP-1", Field: "artifacts[0].mode", Problem: `"rwx": not an octal mode such as 0755`}}},
		{"unknown service", "deploy", `{"id": "DEP-1", "service": "shopp", "version": "1", "deployed_at": "2026-11-26T10:00:00Z"}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "deploy", ID: "DEP-1", Field: "service", Problem: `unknown service "shopp": no inventory record lists it (publish the inventory first)`}}},
		{"unknown service in an expected effect", "change", `{"id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z",
			"expected": [{"service": "cache", "metric": "network_bytes", "up_to_factor": 4}]}`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "change", ID: "CHG-1", Field: "expected[0].service", Problem: `unknown service "cache": no inventory record lists it (publish the inventory first)`}}},
		{"duplicate id", "inventory", "- {id: a, host: a, service: shop}\n- {id: a, host: b, service: shop}\n",
			[]Problem{{Source: "in", Record: 2, Line: 2, Kind: "inventory", ID: "a", Field: "id", Problem: "also record 1: an id may appear once"}}},
		{"not a record", "inventory", `["web-1"]`,
			[]Problem{{Source: "in", Record: 1, Line: 1, Kind: "inventory", Problem: "not a record (want a mapping of field names to values)"}}},
		{"empty", "inventory", ``, []Problem{{Source: "in", Problem: "no records"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := ParseContext([]byte(tc.doc), ParseOptions{Kind: tc.kind, Source: "in", Known: knownShop})
			if !errors.Is(err, ErrInvalidContext) {
				t.Fatalf("error %v, want ErrInvalidContext", err)
			}
			if recs != nil {
				t.Errorf("records returned with an error: %v", recs)
			}
			var inv *InvalidContextError
			if !errors.As(err, &inv) {
				t.Fatalf("error %T, want *InvalidContextError", err)
			}
			if diff := cmp.Diff(tc.want, inv.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseContextDesignExamples parses the records of DESIGN.md as a change system publishes
// them and checks their Avro round trip.
func TestParseContextDesignExamples(t *testing.T) {
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{
		"change": `{"kind": "change", "id": "CHG-1042", "type": "launch", "title": "Black Friday launch",
 "services": ["shop"], "hosts": [], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z",
 "expected": [{"service": "shop-db", "metric": "network_bytes", "up_to_factor": 4}]}`,
		"deploy": `{"kind": "deploy", "id": "DEP-77", "service": "shop", "version": "1.4.2", "hosts": ["web-1"],
 "deployed_at": "2026-11-26T10:00:00Z",
 "artifacts": [{"path": "/opt/shop/bin/shop", "sha256": "` + goodSHA + `", "owner": "shop", "group": "shop", "mode": "0755"}]}`,
		"inventory": `{"kind": "inventory", "id": "web-1", "host": "web-1", "service": "shop", "environment": "prod", "role": "web"}`,
		"account":   "kind: account\nid: oracle\nname: oracle\ntype: service\ninteractive: true\nallowed_sources: [10.20.0.0/16]\nallowed_users: [alice, bob]\n",
	}
	for kind, doc := range docs {
		t.Run(kind, func(t *testing.T) {
			recs, err := ParseContext([]byte(doc), ParseOptions{Kind: kind, Source: "design", Origin: "cli", Known: knownShop, Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			b, err := serde.Encode(nil, recs[0].Schema, recs[0].Native)
			if err != nil {
				t.Fatal(err)
			}
			got, source, err := decodeContext(serde, kind, b)
			if err != nil {
				t.Fatal(err)
			}
			if source != "cli" {
				t.Errorf("source %q, want cli", source)
			}
			if diff := cmp.Diff(recs[0].Record, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Avro round trip (-parsed +decoded):\n%s", diff)
			}
			// JSON written back (the API's GET) reads as the same record.
			js, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseContext(js, ParseOptions{Kind: kind, Source: "again", Origin: "cli", Known: knownShop, Now: t0})
			if err != nil {
				t.Fatalf("%s\n%v", js, err)
			}
			if diff := cmp.Diff(recs[0].Record, again[0].Record, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("JSON round trip (-parsed +again):\n%s", diff)
			}
		})
	}
}

// FuzzParseContext checks that no input makes the parser panic and that what it accepts
// encodes under the schema.
func FuzzParseContext(f *testing.F) {
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{"kind": "change", "id": "C", "type": "launch", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"}`)
	f.Add(`[{"kind": "inventory", "id": "w", "host": "w", "service": "shop"}]`)
	f.Add("kind: account\nid: a\nname: a\ntype: human\n")
	f.Fuzz(func(t *testing.T, doc string) {
		recs, err := ParseContext([]byte(doc), ParseOptions{Source: "fuzz"})
		if err != nil {
			return
		}
		for _, r := range recs {
			if _, err := serde.Encode(nil, r.Schema, r.Native); err != nil {
				t.Fatalf("accepted record does not encode: %v", err)
			}
		}
	})
}

// apiCall makes one authenticated request and decodes the JSON answer.
func apiCall(t *testing.T, base, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %s", method, path, b)
	}
	return resp.StatusCode, out
}

// TestContextAPI runs the API on the embedded broker: authentication, publish, read back,
// refusal with a JSON body naming record, field and problem, and delete.
func TestContextAPI(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	const token = "s3cret-token-for-tests"
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.API.Tokens = "127.0.0.1:0", []string{token}
	api, err := NewContextAPI(cfg, kcfg, serde, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := api.Run(ctx); err != nil {
			t.Errorf("api: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	addr, err := api.Addr(actx)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()

	type step struct {
		name, token, method, path, body string
		status                          int
		want                            map[string]any
	}
	steps := []step{
		{"no token", "", "GET", "/v1/context/change", "", 401, map[string]any{"error": "missing or unknown bearer token"}},
		{"wrong token", "guess", "GET", "/v1/context/change", "", 401, map[string]any{"error": "missing or unknown bearer token"}},
		{"unknown service before inventory", token, "POST", "/v1/context/change",
			`{"id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"}`,
			400, map[string]any{"error": "invalid context: nothing was published", "problems": []any{map[string]any{
				"source": "request", "record": 1.0, "line": 1.0, "kind": "change", "id": "CHG-1", "field": "services[0]",
				"problem": `unknown service "shop": no inventory record lists it (publish the inventory first)`}}}},
		{"inventory", token, "POST", "/v1/context/inventory", `[{"id": "web-1", "host": "web-1", "service": "shop"}]`,
			200, map[string]any{"published": 1.0, "kind": "inventory", "ids": []any{"web-1"}}},
		{"change", token, "POST", "/v1/context/change",
			"id: CHG-1\ntype: launch\nservices: [shop]\nstarts_at: 2026-11-27T06:00:00Z\nends_at: 2026-11-28T06:00:00Z\n",
			200, map[string]any{"published": 1.0, "kind": "change", "ids": []any{"CHG-1"}}},
		{"end before start: nothing partial", token, "POST", "/v1/context/change",
			`[{"id": "CHG-2", "type": "launch", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"},
			  {"id": "CHG-3", "type": "launch", "services": ["shop"], "starts_at": "2026-11-28T06:00:00Z", "ends_at": "2026-11-27T06:00:00Z"}]`,
			400, map[string]any{"error": "invalid context: nothing was published", "problems": []any{map[string]any{
				"source": "request", "record": 2.0, "line": 2.0, "kind": "change", "id": "CHG-3", "field": "ends_at",
				"problem": "2026-11-27T06:00:00Z is not after starts_at 2026-11-28T06:00:00Z"}}}},
		{"read back", token, "GET", "/v1/context/change/CHG-1", "", 200, map[string]any{"kind": "change", "id": "CHG-1", "type": "launch", "title": "",
			"services": []any{"shop"}, "hosts": nil, "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z", "expected": nil}},
		{"CHG-2 was not published", token, "GET", "/v1/context/change/CHG-2", "", 404, map[string]any{"error": `no change record with id "CHG-2"`}},
		{"unknown kind", token, "POST", "/v1/context/incident", `{}`, 404, map[string]any{"error": `unknown kind "incident" (have: change, deploy, inventory, account)`,
			"problems": []any{map[string]any{"field": "kind", "problem": `unknown kind "incident"`}}}},
		{"delete", token, "DELETE", "/v1/context/change/CHG-1", "", 200, map[string]any{"deleted": 1.0, "kind": "change", "ids": []any{"CHG-1"}}},
		{"deleted", token, "GET", "/v1/context/change", "", 200, map[string]any{"kind": "change", "records": []any{}}},
	}
	for _, s := range steps {
		status, got := apiCall(t, base, s.token, s.method, s.path, s.body)
		if status != s.status {
			t.Errorf("%s: status %d, want %d (%v)", s.name, status, s.status, got)
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("%s: answer (-want +got):\n%s", s.name, diff)
		}
	}
	// What the API published is what an enricher materialises.
	tables, err := ReadContext(ctx, kcfg, serde, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"change": 0, "deploy": 0, "inventory": 1, "account": 0}, tables.Stats().Held); diff != "" {
		t.Errorf("materialised records (-want +got):\n%s", diff)
	}
}

// TestContextDirSync keeps a directory in sync: files added are published, a changed file
// republishes and deletes what it no longer holds, an invalid file is refused and keeps what
// it published, a removed file's records are deleted, and a fresh sync (a restart) reconciles
// from the records' sources.
func TestContextDirSync(t *testing.T) {
	kcfg := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, doc string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.ContextDir = dir
	newSync := func() *ContextDir {
		t.Helper()
		d, err := NewContextDir(cfg, kcfg, serde, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tables, err := ReadContext(ctx, kcfg, serde, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.tables = tables
		return d
	}
	type state struct {
		Result SyncResult
		IDs    map[string][]string
	}
	sync := func(d *ContextDir) state {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := d.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := ReadContext(ctx, kcfg, serde, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string][]string{}
		for _, k := range ContextKinds {
			for _, r := range tables.List(k) {
				_, id := recordKey(r)
				ids[k] = append(ids[k], id)
			}
		}
		for i := range res.Invalid {
			res.Invalid[i] = filepath.Base(res.Invalid[i])
		}
		return state{res, ids}
	}
	write("inventory/hosts.yaml", "- {id: web-1, host: web-1, service: shop}\n- {id: web-2, host: web-2, service: shop}\n")
	write("changes.json", `[{"kind": "change", "id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"},
	  {"kind": "change", "id": "CHG-2", "type": "maintenance", "hosts": ["web-2"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-27T08:00:00Z"}]`)
	write(".git/config.yaml", "not: context")
	write("README.md", "# context")
	d := newSync()
	steps := []struct {
		name string
		edit func()
		want state
	}{
		{"first sync", func() {}, state{SyncResult{Published: 4},
			map[string][]string{"inventory": {"web-1", "web-2"}, "change": {"CHG-1", "CHG-2"}}}},
		{"nothing changed", func() {}, state{SyncResult{},
			map[string][]string{"inventory": {"web-1", "web-2"}, "change": {"CHG-1", "CHG-2"}}}},
		{"entry removed from a file", func() {
			write("changes.json", `[{"kind": "change", "id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "2026-11-27T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"}]`)
		}, state{SyncResult{Published: 1, Deleted: 1},
			map[string][]string{"inventory": {"web-1", "web-2"}, "change": {"CHG-1"}}}},
		{"invalid file keeps what it published", func() {
			write("changes.json", `[{"kind": "change", "id": "CHG-1", "type": "launch", "services": ["shop"], "starts_at": "2026-11-29T06:00:00Z", "ends_at": "2026-11-28T06:00:00Z"}]`)
			write("deploy/shop.yaml", "id: DEP-1\nservice: shop\nversion: '2'\ndeployed_at: 2026-11-26T10:00:00Z\nartifacts: [{path: /opt/shop/bin/shop, sha256: "+goodSHA+"}]\n")
		}, state{SyncResult{Published: 1, Invalid: []string{"changes.json"}},
			map[string][]string{"inventory": {"web-1", "web-2"}, "change": {"CHG-1"}, "deploy": {"DEP-1"}}}},
		{"file removed", func() {
			if err := os.Remove(filepath.Join(dir, "changes.json")); err != nil {
				t.Fatal(err)
			}
		}, state{SyncResult{Deleted: 1},
			map[string][]string{"inventory": {"web-1", "web-2"}, "deploy": {"DEP-1"}}}},
		{"removed while not running: a restart reconciles", func() {
			if err := os.Remove(filepath.Join(dir, "deploy", "shop.yaml")); err != nil {
				t.Fatal(err)
			}
			d = newSync()
		}, state{SyncResult{Published: 2, Deleted: 1},
			map[string][]string{"inventory": {"web-1", "web-2"}}}},
	}
	for _, s := range steps {
		s.edit()
		if diff := cmp.Diff(s.want, sync(d)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
	}
}

// TestParseContextBounded: the 2.9 MB body of aliases of issue 14 (626 MiB allocated, 43 MiB
// of error text) is refused with one short problem, allocating little; a body with thousands
// of bad records lists a hundred problems and sums up the rest.
func TestParseContextBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("- &r0 {id: web-1, host: web-1, service: shop}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "- &r%d [*r%d, *r%d, *r%d, *r%d, *r%d, *r%d, *r%d, *r%d, *r%d, *r%d]\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for b.Len() < 2_900_000 {
		b.WriteString("- *r8\n")
	}
	body := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ParseContext(body, ParseOptions{Kind: "inventory", Source: "request"})
	runtime.ReadMemStats(&after)
	var inv *InvalidContextError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v, want *InvalidContextError", err)
	}
	want := []Problem{{Source: "request", Problem: "YAML input of more than 100000 nodes (aliases counted as what they expand to)"}}
	if diff := cmp.Diff(want, inv.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("%d KiB allocated to refuse %d bytes", alloc>>10, len(body))
	}

	var many strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&many, "- {id: h%d, host: h%d}\n", i, i)
	}
	_, err = ParseContext([]byte(many.String()), ParseOptions{Kind: "inventory", Source: "request"})
	if !errors.As(err, &inv) {
		t.Fatalf("error %v, want *InvalidContextError", err)
	}
	if len(inv.Problems) != MaxProblems+1 {
		t.Fatalf("%d problems, want %d", len(inv.Problems), MaxProblems+1)
	}
	if diff := cmp.Diff(Problem{Source: "request", Problem: "and 2900 more problems"}, inv.Problems[MaxProblems]); diff != "" {
		t.Errorf("last problem (-want +got):\n%s", diff)
	}
	if n := len(err.Error()); n > 16<<10 {
		t.Errorf("error text of %d bytes", n)
	}
}
