package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// testScope is the scope of the role tests: the default topics and the stages' groups.
func testScope(cfg kafka.Config) kafka.Scope {
	return kafka.Scope{Topics: cfg.Topics(), Groups: map[kafka.Role]string{
		kafka.RoleEnricher: "crumbs-enrich", kafka.RoleDetector: "crumbs-detect", kafka.RoleSink: "crumbs-sink",
		kafka.RoleAlerts: "crumbs-alerts", kafka.RoleTriage: "crumbs-triage", kafka.RoleDLQReplay: "crumbs-dlq-replay",
	}}
}

// startSecure starts a secure embedded broker in memory with every topic of the pipeline.
func startSecure(t *testing.T, cfg kafka.Config, extra ...func(*kafka.Config)) (*kafka.Embedded, kafka.Config) {
	t.Helper()
	for _, f := range extra {
		f(&cfg)
	}
	emb, err := kafka.StartSecureEmbedded(t.Context(), cfg, testScope(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	admin := emb.ClientConfig(cfg, kafka.RoleAdmin)
	cl, err := kgo.NewClient(admin.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := admin.EnsureTopics(t.Context(), cl, admin.AllTopics("crumbs-detect")); err != nil {
		t.Fatal(err)
	}
	return emb, cfg
}

// TestRolesAreRefusedOutsideTheirGrants: each role, authenticated with its generated
// credentials, tries every operation on every family of topics, every stage's group and
// transactional ids, creating and deleting topics, changing a topic's retention and granting
// ACLs. What the broker allows must be exactly what the role needs; everything else must be
// refused by the broker with an authorization error.
func TestRolesAreRefusedOutsideTheirGrants(t *testing.T) {
	base := kafka.DefaultConfig()
	base.Embedded = kafka.EmbeddedConfig{Port: 0}
	emb, cfg := startSecure(t, base)
	tp := cfg.Topics()
	families := []struct{ name, topic string }{
		{"raw", tp.Raw("process")}, {"enriched", tp.Enriched("process")}, {"context", tp.Context("change")},
		{"alerts", tp.Alerts()}, {"dlq", tp.DLQ()}, {"health", tp.Health()}, {"state", tp.State("crumbs-detect")},
		{"triage", tp.Triage()}, {"deliveries", tp.Deliveries()},
	}
	groups := []string{"crumbs-enrich", "crumbs-detect", "crumbs-sink", "crumbs-alerts", "crumbs-triage", "crumbs-dlq-replay"}
	transactional := []string{"crumbs-enrich", "crumbs-detect", "crumbs-alerts", "crumbs-dlq-replay"}

	// The admin puts one record in partition 0 of each topic, for consumers to find, and a
	// topic per role to try deleting.
	admin, err := kgo.NewClient(append(emb.ClientConfig(cfg, kafka.RoleAdmin).ClientOpts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, f := range families {
		if err := admin.ProduceSync(t.Context(), &kgo.Record{Topic: f.topic, Partition: 0, Value: []byte("seed")}).FirstErr(); err != nil {
			t.Fatalf("seed %s: %v", f.topic, err)
		}
	}
	for _, r := range kafka.Roles() {
		if _, err := kadm.NewClient(admin).CreateTopic(t.Context(), 1, -1, nil, "crumbs.scratch."+string(r)); err != nil {
			t.Fatal(err)
		}
	}

	var allOps []string
	for _, f := range families {
		allOps = append(allOps, "produce "+f.name, "consume "+f.name)
	}
	for _, g := range groups {
		allOps = append(allOps, "join group "+g)
	}
	for _, g := range transactional {
		allOps = append(allOps, "transact as "+g)
	}
	allOps = append(allOps, "create topic", "delete topic", "alter topic config", "grant acl")

	// What each role needs, written out here rather than read from the role table: this is
	// the specification the table is checked against.
	want := map[kafka.Role][]string{
		kafka.RoleAdmin:     allOps, // the embedded broker's superuser
		kafka.RoleCollector: {"produce raw", "produce health"},
		kafka.RoleEnricher: {"consume raw", "consume context", "produce enriched", "produce dlq",
			"join group crumbs-enrich", "transact as crumbs-enrich"},
		kafka.RoleDetector: {"consume enriched", "produce alerts", "produce dlq", "produce state", "consume state",
			"join group crumbs-detect", "transact as crumbs-detect"},
		kafka.RoleSink: {"consume enriched", "consume alerts", "consume context", "produce dlq", "join group crumbs-sink"},
		kafka.RoleAlerts: {"consume alerts", "consume triage", "consume deliveries", "produce deliveries", "produce dlq",
			"join group crumbs-alerts", "transact as crumbs-alerts"},
		kafka.RoleContext: {"produce context", "consume context"},
		kafka.RoleTriage:  {"consume alerts", "consume triage", "produce triage", "join group crumbs-triage"},
		kafka.RoleDLQReplay: {"consume dlq", "produce raw", "produce enriched", "produce alerts",
			"join group crumbs-dlq-replay", "transact as crumbs-dlq-replay"},
	}
	if got := slices.Sorted(func(yield func(kafka.Role) bool) {
		for r := range want {
			if !yield(r) {
				return
			}
		}
	}); !slices.Equal(got, slices.Sorted(slices.Values(kafka.Roles()))) {
		t.Fatalf("the test covers roles %v, the table has %v: add the new role's needs here", got, kafka.Roles())
	}

	for _, r := range kafka.Roles() {
		t.Run(string(r), func(t *testing.T) {
			rcfg := emb.ClientConfig(cfg, r)
			try := func(op string) error {
				ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
				defer cancel()
				return roleOp(ctx, rcfg, op, families, r)
			}
			var allowed []string
			for _, op := range allOps {
				err := try(op)
				switch {
				case err == nil:
					allowed = append(allowed, op)
				case isAuthorizationError(err):
				default:
					t.Errorf("%s: %v: neither done nor refused for authorization", op, err)
				}
			}
			if diff := cmp.Diff(sorted(want[r]), sorted(allowed)); diff != "" {
				t.Errorf("operations the broker allowed role %s (-want +got):\n%s", r, diff)
			}
		})
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func isAuthorizationError(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed,
		kerr.TransactionalIDAuthorizationFailed, kerr.ClusterAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// roleOp does one operation as the client configuration's role: nil when the broker allowed
// it, its error otherwise.
func roleOp(ctx context.Context, cfg kafka.Config, op string, families []struct{ name, topic string }, r kafka.Role) error {
	verb, arg, _ := strings.Cut(op, " ")
	topicOf := func(family string) string {
		for _, f := range families {
			if f.name == family {
				return f.topic
			}
		}
		panic("no family " + family)
	}
	switch verb {
	case "produce":
		cl, err := kgo.NewClient(cfg.ClientOpts()...)
		if err != nil {
			return err
		}
		defer cl.Close()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topicOf(arg), Value: []byte("by " + string(r))}).FirstErr()
	case "consume":
		cl, err := kgo.NewClient(append(cfg.ClientOpts(),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topicOf(arg): {0: kgo.NewOffset().AtStart()}}))...)
		if err != nil {
			return err
		}
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				return err
			}
			if fs.NumRecords() > 0 {
				return nil
			}
		}
		return ctx.Err()
	}
	cl, err := kgo.NewClient(cfg.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	switch {
	case strings.HasPrefix(op, "join group "):
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = strings.TrimPrefix(op, "join group "), 10000, 10000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", (&kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}).AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil && !errors.Is(err, kerr.MemberIDRequired) {
			return err
		}
		return nil
	case strings.HasPrefix(op, "transact as "):
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(strings.TrimPrefix(op, "transact as ")+"-"+string(r)), 60000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	case op == "create topic":
		resp, err := adm.CreateTopic(ctx, 1, -1, nil, "crumbs.raw.created-by-"+string(r))
		if err != nil {
			return err
		}
		return resp.Err
	case op == "delete topic":
		resp, err := adm.DeleteTopic(ctx, "crumbs.scratch."+string(r))
		if err != nil {
			return err
		}
		return resp.Err
	case op == "alter topic config":
		v := "1073741824"
		resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: &v}}, topicOf("raw"))
		if err != nil {
			return err
		}
		ar, err := resp.On(topicOf("raw"), nil)
		if err != nil {
			return err
		}
		return ar.Err
	case op == "grant acl":
		req := kmsg.NewPtrCreateACLsRequest()
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "crumbs.", kmsg.ACLResourcePatternTypePrefixed
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:"+r.Username(), "*", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, res := range resp.Results {
			if err := kerr.ErrorForCode(res.ErrorCode); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown operation %q", op)
}
