package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// testScope is the scope of the role tests: the default topics and the stages' groups.
func testScope(cfg kafka.Config) kafka.Scope {
	return kafka.Scope{Topics: cfg.Topics(), Groups: map[kafka.Role]string{
		kafka.RoleEnricher: "crumbs-enrich", kafka.RoleDetector: "crumbs-detect", kafka.RoleSink: "crumbs-sink",
		kafka.RoleAlerts: "crumbs-alerts", kafka.RoleTriage: "crumbs-triage",
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

// families are the topics the role tests try: one of each family.
func families(tp kafka.Topics) []struct{ name, topic string } {
	return []struct{ name, topic string }{
		{"raw", tp.Raw("process")}, {"enriched", tp.Enriched("process")}, {"context", tp.Context("change")},
		{"alerts", tp.Alerts()}, {"incidents", tp.Incidents()}, {"dlq", tp.DLQ()}, {"health", tp.Health()}, {"state", tp.State("crumbs-detect")},
		{"triage", tp.Triage()}, {"deliveries", tp.Deliveries()}, {"retry", tp.Retry("sink")},
	}
}

// roleOps lists every operation the role tests try.
func roleOps(tp kafka.Topics) []string {
	var ops []string
	for _, f := range families(tp) {
		ops = append(ops, "produce "+f.name, "consume "+f.name)
	}
	for _, g := range []string{"crumbs-enrich", "crumbs-detect", "crumbs-sink", "crumbs-alerts", "crumbs-triage"} {
		ops = append(ops, "join group "+g)
	}
	// The stages' transactional ids are their group and host name; replays share one.
	for _, id := range []string{"crumbs-enrich-h1", "crumbs-detect-h1", "crumbs-alerts-h1", "crumbs-dlq-replay"} {
		ops = append(ops, "transact as "+id)
	}
	return append(ops, "create topic", "delete topic", "alter topic config", "grant acl")
}

// roleNeeds is what each role needs, written out here rather than read from the role table:
// this is the specification the table is checked against. The admin is left out: what it
// may do differs between the embedded broker (its superuser) and a real cluster.
var roleNeeds = map[kafka.Role][]string{
	kafka.RoleCollector: {"produce raw", "produce health"},
	kafka.RoleEnricher: {"consume raw", "consume context", "produce enriched", "produce dlq",
		"join group crumbs-enrich", "transact as crumbs-enrich-h1"},
	kafka.RoleDetector: {"consume enriched", "consume triage", "produce alerts", "produce incidents", "produce dlq", "produce state", "consume state",
		"join group crumbs-detect", "transact as crumbs-detect-h1"},
	kafka.RoleSink: {"consume enriched", "consume alerts", "consume triage", "consume context", "consume retry", "produce dlq",
		"join group crumbs-sink"},
	kafka.RoleAlerts: {"consume alerts", "consume incidents", "consume triage", "consume deliveries", "produce deliveries", "produce dlq",
		"join group crumbs-alerts"},
	kafka.RoleContext: {"produce context", "consume context"},
	kafka.RoleTriage:  {"consume alerts", "consume triage", "produce triage", "join group crumbs-triage"},
	kafka.RoleDLQReplay: {"consume dlq", "produce dlq", "produce raw", "produce enriched", "produce retry",
		"produce alerts", "produce incidents", "produce triage", "transact as crumbs-dlq-replay"},
}

// checkRoles has each role, configured by roleCfg, try every operation, and compares what
// the broker allowed with want. superuser seeds the topics with a record each.
func checkRoles(t *testing.T, superuser kafka.Config, roleCfg func(kafka.Role) kafka.Config, want map[kafka.Role][]string) {
	t.Helper()
	if got := slices.Sorted(maps.Keys(want)); !slices.Equal(got, slices.Sorted(slices.Values(kafka.Roles()))) {
		t.Fatalf("the test covers roles %v, the table has %v: add the new role's needs here", got, kafka.Roles())
	}
	tp := superuser.Topics()
	su, err := kgo.NewClient(append(superuser.ClientOpts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close()
	if err := superuser.EnsureTopics(t.Context(), su, superuser.AllTopics("crumbs-detect")); err != nil {
		t.Fatal(err)
	}
	// One record in partition 0 of each topic, for consumers to find, and a topic per role
	// to try deleting.
	for _, f := range families(tp) {
		if err := su.ProduceSync(t.Context(), &kgo.Record{Topic: f.topic, Partition: 0, Value: []byte("seed")}).FirstErr(); err != nil {
			t.Fatalf("seed %s: %v", f.topic, err)
		}
	}
	for _, r := range kafka.Roles() {
		if _, err := kadm.NewClient(su).CreateTopic(t.Context(), 1, -1, nil, tp.Prefix+".scratch."+string(r)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range kafka.Roles() {
		t.Run(string(r), func(t *testing.T) {
			rcfg := roleCfg(r)
			var allowed []string
			for _, op := range roleOps(tp) {
				ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
				err := roleOp(ctx, rcfg, op, families(tp), r)
				cancel()
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

// TestRolesAreRefusedOutsideTheirGrants: on the embedded broker, each role, authenticated
// with its generated credentials, tries every operation on every family of topics, every
// stage's group and transactional ids, creating and deleting topics, changing a topic's
// retention and granting ACLs. What the broker allows must be exactly what the role needs;
// everything else must be refused by the broker with an authorization error.
func TestRolesAreRefusedOutsideTheirGrants(t *testing.T) {
	cfg := kafka.DefaultConfig()
	cfg.Embedded = kafka.EmbeddedConfig{Port: 0}
	emb, err := kafka.StartSecureEmbedded(t.Context(), cfg, testScope(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	want := maps.Clone(roleNeeds)
	want[kafka.RoleAdmin] = roleOps(cfg.Topics()) // the embedded broker's superuser
	checkRoles(t, emb.ClientConfig(cfg, kafka.RoleAdmin), func(r kafka.Role) kafka.Config { return emb.ClientConfig(cfg, r) }, want)
}

// TestACLScriptGivesAClusterTheSameRoles: the script of `crumbs kafka acls`, run by a shell
// with kafka-acls.sh and kafka-configs.sh that record their arguments, sets up a cluster
// (kfake with SASL and ACLs, an operator as its only superuser) on which every role may do
// exactly what it may on the embedded broker, and the admin role create, configure and delete
// topics but read and write none.
func TestACLScriptGivesAClusterTheSameRoles(t *testing.T) {
	cfg := kafka.DefaultConfig()
	scope := testScope(cfg)
	var script strings.Builder
	err := scope.WriteACLScript(&script, kafka.ACLScript{BootstrapServer: "kafka-1:9092,kafka-2:9092", CommandConfig: "/etc/kafka/admin client.properties",
		Principal: "User:crumbs-{role}", SCRAMMechanism: kafka.MechanismScramSHA512})
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	for _, tool := range []string{"kafka-acls.sh", "kafka-configs.sh"} {
		rec := "#!/bin/sh\n{ echo " + tool + "; for a in \"$@\"; do printf '%s\\n' \"$a\"; done; echo --; } >> " + calls + "\n"
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(rec), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	passwords := map[string]string{}
	env := []string{"PATH=" + bin + ":/usr/bin:/bin"}
	for _, r := range kafka.Roles() {
		passwords[r.Username()] = "pw-of-" + string(r) + "-0123456789"
		env = append(env, kafka.PasswordVariable(r)+"="+passwords[r.Username()])
	}
	cmd := exec.Command("sh", "-c", script.String())
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run the script: %v\n%s\nscript:\n%s", err, out, script.String())
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(kafka.MechanismScramSHA512, "operator", "operator-password"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	op := cfg
	op.Brokers = cluster.ListenAddrs()
	op.Security.SASL = kafka.SASLConfig{Mechanism: kafka.MechanismScramSHA512, Username: "operator", Password: "operator-password"}
	opcl, err := kgo.NewClient(op.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer opcl.Close()
	applyRecordedCalls(t, opcl, strings.Split(strings.TrimSuffix(string(b), "--\n"), "--\n"), passwords)

	want := maps.Clone(roleNeeds)
	want[kafka.RoleAdmin] = []string{"create topic", "delete topic", "alter topic config"}
	checkRoles(t, op, func(r kafka.Role) kafka.Config {
		c := op
		c.Security.SASL = kafka.SASLConfig{Mechanism: kafka.MechanismScramSHA512, Username: r.Username(), Password: passwords[r.Username()]}
		return c
	}, want)
}

// applyRecordedCalls does what the recorded kafka-configs.sh and kafka-acls.sh calls ask.
func applyRecordedCalls(t *testing.T, cl *kgo.Client, calls []string, passwords map[string]string) {
	t.Helper()
	var upserts []kadm.UpsertSCRAM
	acls := kmsg.NewPtrCreateACLsRequest()
	for _, call := range calls {
		args := strings.Split(strings.TrimSuffix(call, "\n"), "\n")
		flags := map[string][]string{}
		for i := 1; i < len(args); i++ {
			if !strings.HasPrefix(args[i], "--") {
				t.Fatalf("%s: argument %q where a flag belongs", args[0], args[i])
			}
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				flags[args[i]] = append(flags[args[i]], args[i+1])
				i++
			} else {
				flags[args[i]] = append(flags[args[i]], "")
			}
		}
		if diff := cmp.Diff([]string{"kafka-1:9092,kafka-2:9092"}, flags["--bootstrap-server"]); diff != "" {
			t.Errorf("%s --bootstrap-server (-want +got):\n%s", args[0], diff)
		}
		if diff := cmp.Diff([]string{"/etc/kafka/admin client.properties"}, flags["--command-config"]); diff != "" {
			t.Errorf("%s --command-config (-want +got):\n%s", args[0], diff)
		}
		switch args[0] {
		case "kafka-configs.sh":
			user, cfg := flags["--entity-name"][0], flags["--add-config"][0]
			if want := "SCRAM-SHA-512=[password=" + passwords[user] + "]"; cfg != want || flags["--entity-type"][0] != "users" {
				t.Fatalf("kafka-configs.sh for %s: --entity-type %v --add-config %q, want users and %q", user, flags["--entity-type"], cfg, want)
			}
			upserts = append(upserts, kadm.UpsertSCRAM{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: passwords[user]})
		case "kafka-acls.sh":
			if len(flags["--add"]) != 1 {
				t.Fatalf("kafka-acls.sh without --add: %q", args)
			}
			c := kmsg.NewCreateACLsRequestCreation()
			c.Principal, c.Host, c.PermissionType = flags["--allow-principal"][0], "*", kmsg.ACLPermissionTypeAllow
			c.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
			if p := flags["--resource-pattern-type"]; len(p) > 0 && p[0] == "prefixed" {
				c.ResourcePatternType = kmsg.ACLResourcePatternTypePrefixed
			}
			switch {
			case flags["--topic"] != nil:
				c.ResourceType, c.ResourceName = kmsg.ACLResourceTypeTopic, flags["--topic"][0]
			case flags["--group"] != nil:
				c.ResourceType, c.ResourceName = kmsg.ACLResourceTypeGroup, flags["--group"][0]
			case flags["--transactional-id"] != nil:
				c.ResourceType, c.ResourceName = kmsg.ACLResourceTypeTransactionalId, flags["--transactional-id"][0]
			case flags["--cluster"] != nil:
				c.ResourceType, c.ResourceName = kmsg.ACLResourceTypeCluster, "kafka-cluster"
			default:
				t.Fatalf("kafka-acls.sh names no resource: %q", args)
			}
			for _, name := range flags["--operation"] {
				op, err := kmsg.ParseACLOperation(name)
				if err != nil {
					t.Fatalf("kafka-acls.sh --operation %s: %v", name, err)
				}
				c.Operation = op
				acls.Creations = append(acls.Creations, c)
			}
		default:
			t.Fatalf("unexpected command %q", args[0])
		}
	}
	if len(upserts) != len(kafka.Roles()) {
		t.Fatalf("%d users created, want one per role (%d)", len(upserts), len(kafka.Roles()))
	}
	if _, err := kadm.NewClient(cl).AlterUserSCRAMs(t.Context(), nil, upserts); err != nil {
		t.Fatal(err)
	}
	resp, err := acls.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatal(err)
		}
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
	tp := cfg.Topics()
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
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(strings.TrimPrefix(op, "transact as ")), 60000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	case op == "create topic":
		resp, err := adm.CreateTopic(ctx, 1, -1, nil, tp.Raw("created-by-"+string(r)))
		if err != nil {
			return err
		}
		return resp.Err
	case op == "delete topic":
		resp, err := adm.DeleteTopic(ctx, tp.Prefix+".scratch."+string(r))
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

func TestRetentionValidate(t *testing.T) {
	tests := []struct {
		name    string
		mangle  func(*kafka.RetentionConfig)
		wantErr string
	}{
		{name: "defaults", mangle: func(*kafka.RetentionConfig) {}},
		{name: "no limits", mangle: func(r *kafka.RetentionConfig) { r.Raw = kafka.TopicRetention{} }},
		{name: "negative hours", mangle: func(r *kafka.RetentionConfig) { r.Enriched.Hours = -1 }, wantErr: "kafka.retention.enriched.hours: -1: must not be negative"},
		{name: "hours on a compacted family", mangle: func(r *kafka.RetentionConfig) { r.Context.Hours = 24 }, wantErr: "kafka.retention.context.hours: 24: a compacted family"},
		{name: "too few bytes", mangle: func(r *kafka.RetentionConfig) { r.DLQ.Bytes = 1024 }, wantErr: "kafka.retention.dlq.bytes: 1024: must be 0 (no limit) or at least"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kafka.DefaultRetention()
			tc.mangle(&r)
			err := r.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
