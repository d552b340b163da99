package kafka_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// The registry in these tests is franz-go's srfake: the Confluent Schema Registry's REST API
// served in-process. No real registry (Confluent's, Karapace, Apicurio) can be installed here.

func registered(t *testing.T, url string) (*avro.Serde, kafka.Config) {
	t.Helper()
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	cfg := kafka.DefaultConfig()
	cfg.SchemaRegistry.URL = url
	cfg.SchemaRegistry.StartTimeout = 2 * time.Second
	r, err := kafka.NewSchemaRegistry(t.Context(), cfg.SchemaRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(t.Context(), serde, cfg.TopicSchemas(), nil); err != nil {
		t.Fatal(err)
	}
	return serde, cfg
}

// TestSchemaRegistryInterop: crumbs registers its schemas under <topic>-value, writes the
// Confluent framing, and what it writes decodes as a Confluent consumer decodes it (schema
// by id from the registry, then plain Avro); records another producer wrote with a schema
// version crumbs does not hold decode with the registry's schema.
func TestSchemaRegistryInterop(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	serde, cfg := registered(t, reg.URL())

	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := cl.Subjects(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for topic := range cfg.TopicSchemas() {
		want = append(want, topic+"-value")
	}
	slices.Sort(want)
	slices.Sort(subjects)
	if diff := cmp.Diff(want, subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	for _, s := range []string{"crumbs.raw.process-value", "crumbs.enriched.network-value", "crumbs.alerts-value", "crumbs.context.deploy-value"} {
		if !slices.Contains(subjects, s) {
			t.Errorf("subject %s not registered", s)
		}
	}

	ev := &schemas.ProcessEvent{Envelope: schemas.Envelope{EventID: "01JX", Time: 42, Host: schemas.Host{ID: "h1", Name: "web-1"}, Kind: schemas.KindProcess},
		Action: schemas.ActionExec, Process: schemas.Process{PID: 7, CmdLine: "sleep 1", Args: []string{"sleep", "1"}, ContainerID: strings.Repeat("ab", 32),
			Container: &schemas.Container{Name: "web", Image: "nginx:1.27", Runtime: "containerd"}}}
	b, err := serde.Encode(nil, schemas.ProcessEventCodec.Schema, ev)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 {
		t.Fatalf("record starts with %#x, want the Confluent magic byte 0", b[0])
	}
	// A Confluent consumer: the id after the magic byte names the writer schema in the registry.
	id := binary.BigEndian.Uint32(b[1:5])
	s, err := cl.SchemaByID(t.Context(), int(id))
	if err != nil {
		t.Fatalf("schema id %d the record carries: %v", id, err)
	}
	codec, err := goavro.NewCodec(s.Schema)
	if err != nil {
		t.Fatal(err)
	}
	native, rest, err := codec.NativeFromBinary(b[5:])
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode with the registry's schema: %v (%d bytes left)", err, len(rest))
	}
	if diff := cmp.Diff(ev.Native(), native); diff != "" {
		t.Errorf("decoded by a Confluent consumer (-crumbs +consumer):\n%s", diff)
	}
	// crumbs reads its own records back.
	if _, got, err := serde.Decode(b); err != nil || !cmp.Equal(ev.Native(), got) {
		t.Errorf("crumbs decodes its Confluent record: %v\n%s", err, cmp.Diff(ev.Native(), got))
	}

	// Another producer registered an earlier version of the process schema under its own
	// subject, and writes with its id.
	earlier, err := schemas.Avro.ReadFile("avro/history/process-4e7b7f53c857184f.avsc")
	if err != nil {
		t.Fatal(err)
	}
	other, err := cl.CreateSchema(t.Context(), "other-value", sr.Schema{Schema: string(earlier)})
	if err != nil {
		t.Fatal(err)
	}
	oldCodec, err := goavro.NewCodec(string(earlier))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := avro.NewBuiltinSerde() // knows the earlier version by fingerprint, not its id
	if err != nil {
		t.Fatal(err)
	}
	r, err := kafka.NewSchemaRegistry(t.Context(), cfg.SchemaRegistry)
	if err != nil {
		t.Fatal(err)
	}
	fresh.UseRegistry(r.SchemaByID)
	old, _, err := oldCodec.NativeFromBinary(mustSingle(t, ev, oldCodec))
	if err != nil {
		t.Fatal(err)
	}
	frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(other.ID))
	ob, err := oldCodec.BinaryFromNative(frame, old)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := fresh.Decode(ob)
	if err != nil {
		t.Fatalf("decode a record of another producer's schema id %d: %v", other.ID, err)
	}
	if pid := got.(map[string]any)["process"].(map[string]any)["pid"]; pid != int32(7) {
		t.Errorf("pid = %v (%T), want 7", pid, pid)
	}

	// An id the registry does not hold is an unknown schema: the record is dead-lettered.
	if _, _, err := fresh.Decode([]byte{0, 0, 0, 0x27, 0x0f, 2}); !errors.Is(err, avro.ErrUnknownSchema) {
		t.Errorf("decode of id 9999: %v, want ErrUnknownSchema", err)
	}
	// A registry that does not answer is not a bad record.
	reg.Close()
	down, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	down.UseRegistry(r.SchemaByID)
	if _, _, err := down.Decode(ob); !errors.Is(err, avro.ErrRegistryUnavailable) {
		t.Errorf("decode while the registry is away: %v, want ErrRegistryUnavailable", err)
	}
}

// mustSingle encodes ev's native form under an earlier codec: the fields it has.
func mustSingle(t *testing.T, ev *schemas.ProcessEvent, c *goavro.Codec) []byte {
	t.Helper()
	n := ev.Native()
	p := n["process"].(map[string]any)
	delete(p, "container")
	b, err := c.BinaryFromNative(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSchemaRegistryRefuses: a registry that refuses crumbs' schema as incompatible with a
// subject's history is a permanent error naming the subject; one that is away is retried
// until start_timeout.
func TestSchemaRegistryRefuses(t *testing.T) {
	reg := srfake.New(srfake.WithAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("crumbs:s3cret"))))
	t.Cleanup(reg.Close)
	// srfake does not check compatibility: answer as Confluent's registry does.
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/subjects/crumbs.alerts-value/versions" {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema for subject \"crumbs.alerts-value\""}`)
		return true
	})
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	cfg := kafka.DefaultConfig()
	cfg.SchemaRegistry.URL, cfg.SchemaRegistry.StartTimeout = reg.URL(), 2*time.Second
	cfg.SchemaRegistry.Username, cfg.SchemaRegistry.PasswordFile = "crumbs", pw
	r, err := kafka.NewSchemaRegistry(t.Context(), cfg.SchemaRegistry)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Register(t.Context(), serde, cfg.TopicSchemas(), nil)
	if err == nil || !strings.Contains(err.Error(), "subject crumbs.alerts-value") || !strings.Contains(err.Error(), "incompatible") {
		t.Fatalf("register over an incompatible subject: %v", err)
	}
	if sc, _ := serde.Lookup(schemas.AlertSchema); sc.RegistryID != 0 {
		t.Errorf("alert schema got id %d although registering failed", sc.RegistryID)
	}

	reg.Close()
	cfg.SchemaRegistry.StartTimeout = time.Second
	r, err = kafka.NewSchemaRegistry(t.Context(), cfg.SchemaRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(t.Context(), serde, cfg.TopicSchemas(), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("register with the registry away: %v, want the start timeout", err)
	}
}
