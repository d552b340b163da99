package outputs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// childEnv, when set, makes the test binary run an alerts stage as a child process with the
// JSON configuration it holds, until it is killed (TestKilledMidDeliveryDeliversOnce).
const childEnv = "CRUMBS_TEST_OUTPUTS_CHILD"

type childConfig struct {
	Brokers    []string
	URL, Group string
}

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChild(v))
	}
	os.Exit(m.Run())
}

func runChild(v string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(v), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = cc.Brokers
	s, err := outputs.New(outputs.Config{Group: cc.Group, MaxInFlight: 1000, CommitInterval: time.Hour, Outputs: []outputs.OutputConfig{
		{Name: "hook", Type: "webhook", URL: cc.URL, Retry: fastRetry},
	}}, kcfg, outputs.Deps{InstanceID: cc.Group + "-instance"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestKilledMidDeliveryDeliversOnce kills (SIGKILL) a stage while a receiver holds one of its
// requests unanswered, after it delivered others whose offsets it never committed
// (commit_interval 1h), and starts it again: the receiver gets every alert exactly once. The
// delivered alerts are not sent again because their state was read back from
// crumbs.deliveries; the one in flight, never acknowledged, is sent again.
func TestKilledMidDeliveryDeliversOnce(t *testing.T) {
	b := newBroker(t)
	testDone := make(chan struct{})
	const n, holdAt = 30, 12
	var (
		mu       sync.Mutex
		seen     int
		held     = make(chan struct{})
		holdOnce sync.Once
	)
	rcv := &webhookReceiver{}
	srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		hold := seen == holdAt
		mu.Unlock()
		if hold { // answer nothing until the client is gone
			_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection once the body is read
			holdOnce.Do(func() { close(held) })
			select {
			case <-r.Context().Done():
			case <-testDone:
			}
			return
		}
		rcv.ServeHTTP(w, r)
	}), nil, false)
	t.Cleanup(func() { close(testDone) }) // runs before the server's Close, which waits for handlers
	var all []*schemas.Alert
	for i := range n {
		a := alert(i, "high")
		a.RuleID, a.GroupKey = "rule", fmt.Sprint(i%5) // several partitions
		all = append(all, a)
	}
	b.produce(t, all...)

	cc, _ := json.Marshal(childConfig{Brokers: b.kcfg.Brokers, URL: srv.URL, Group: "alerts-kill"})
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+string(cc))
	if testing.Verbose() {
		child.Stderr = os.Stderr
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(time.Minute):
		_ = child.Process.Kill()
		t.Fatal("the child stage did not reach the held request within a minute")
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	before, _ := rcv.got.count()
	if before != holdAt-1 {
		t.Fatalf("receiver accepted %d alerts before the kill, want %d", before, holdAt-1)
	}

	reg := prometheus.NewRegistry()
	startStage(t, b, outputs.Config{Group: "alerts-kill", Outputs: []outputs.OutputConfig{{Name: "hook", Type: "webhook", URL: srv.URL, Retry: fastRetry}}},
		func(d *outputs.Deps) { d.InstanceID, d.Metrics = "alerts-kill-instance", reg })
	eventually(t, "every alert", func() bool { _, distinct := rcv.got.count(); return distinct == n })
	time.Sleep(300 * time.Millisecond) // a duplicate would come right behind
	total, distinct := rcv.got.count()
	if total != n || distinct != n {
		t.Errorf("receiver accepted %d requests for %d alerts, want each of %d once", total, distinct, n)
	}
	if skipped := metric(t, reg, "crumbs_output_replays_skipped_total", nil); skipped != holdAt-1 {
		t.Errorf("replays skipped = %v, want the %d alerts delivered before the kill", skipped, holdAt-1)
	}
}

// TestDeliversOnceAfterA30sOutage: the receiver is down (connection refused) for 30 s while
// alerts arrive; afterwards every alert is delivered, each once, and none is dead-lettered.
func TestDeliversOnceAfterA30sOutage(t *testing.T) {
	b := newBroker(t)
	rcv := &webhookReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *http.Server {
		srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		return srv
	}
	srv := serve(ln)
	reg := prometheus.NewRegistry()
	retry := outputs.RetryConfig{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{Name: "hook", Type: "webhook", URL: "http://" + addr, Retry: retry}}},
		func(d *outputs.Deps) { d.Metrics = reg })
	var all []*schemas.Alert
	for i := range 25 {
		all = append(all, alert(i, "high"))
	}
	b.produce(t, all[:5]...)
	eventually(t, "5 alerts before the outage", func() bool { n, _ := rcv.got.count(); return n == 5 })

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	b.produce(t, all[5:]...)
	time.Sleep(30 * time.Second)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv = serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Logf("receiver down for %s", time.Since(down).Round(time.Millisecond))
	eventually(t, "25 alerts", func() bool { _, d := rcv.got.count(); return d == 25 })
	time.Sleep(300 * time.Millisecond)
	total, distinct := rcv.got.count()
	if total != 25 || distinct != 25 {
		t.Errorf("receiver accepted %d requests for %d alerts, want each of 25 once", total, distinct)
	}
	if n := len(b.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if r := metric(t, reg, "crumbs_output_retries_total", nil); r < 1 {
		t.Errorf("retries = %v, want some", r)
	}
	if d := metric(t, reg, "crumbs_output_delivered_total", nil); d != 25 {
		t.Errorf("delivered metric = %v, want 25", d)
	}
}

// TestRateLimitSummarizes: over the limit, alerts are held back and delivered as one summary
// that counts them; with exceed: delay, every alert is delivered, late.
func TestRateLimitSummarizes(t *testing.T) {
	b := newBroker(t)
	sum := &webhookReceiver{}
	del := &webhookReceiver{}
	sumSrv, delSrv := startHTTP(t, sum, nil, false), startHTTP(t, del, nil, false)
	reg := prometheus.NewRegistry()
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{
		{Name: "sum", Type: "webhook", URL: sumSrv.URL, Retry: fastRetry,
			RateLimit: outputs.RateLimitConfig{PerMinute: 0.001, Burst: 2, SummaryInterval: 300 * time.Millisecond}},
		{Name: "delay", Type: "webhook", URL: delSrv.URL, Retry: fastRetry,
			RateLimit: outputs.RateLimitConfig{PerMinute: 1200, Burst: 1, Exceed: "delay"}},
	}}, func(d *outputs.Deps) { d.Metrics = reg })
	var all []*schemas.Alert
	for i := range 6 {
		a := alert(i, []string{"low", "high"}[i%2])
		a.RuleID, a.GroupKey = fmt.Sprintf("rule-%d", i%2), "k" // one partition: consumed in order
		all = append(all, a)
	}
	b.produce(t, all...)
	eventually(t, "two alerts and a summary", func() bool { n, _ := sum.got.count(); return n == 3 })
	eventually(t, "six delayed alerts", func() bool { n, _ := del.got.count(); return n == 6 })

	keys := sum.got.keys()
	if diff := cmp.Diff([]string{"alert-0000/sum", "alert-0001/sum"}, keys[:2]); diff != "" {
		t.Errorf("alerts delivered within the limit (-want +got):\n%s", diff)
	}
	s := sum.got.get(keys[2])[0].Body["alert"].(map[string]any)
	got := map[string]any{"rule_id": s["rule_id"], "count": s["count"], "severity": s["severity"], "evidence": s["evidence"], "summary": s["summary"], "title": s["title"]}
	want := map[string]any{"rule_id": outputs.SummaryRuleID, "count": 4.0, "severity": "high",
		"evidence": []any{"alert-0002", "alert-0003", "alert-0004", "alert-0005"},
		"summary":  "By rule: rule-0 (2), rule-1 (2). By severity: high (2), low (2).",
		"title":    "4 alerts held back by the rate limit of output sum"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(keys[2], "summary-") {
		t.Errorf("summary's idempotency key %q does not start with summary-", keys[2])
	}
	rl := func(output, action string) float64 {
		return metric(t, reg, "crumbs_output_rate_limited_total", map[string]string{"output": output, "action": action})
	}
	if got := rl("sum", "summarized"); got != 4 {
		t.Errorf("summarized = %v, want 4", got)
	}
	if got := rl("delay", "delayed"); got != 5 {
		t.Errorf("delayed = %v, want 5", got)
	}
}

// metric sums the series of a counter or gauge whose labels include labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestBadRecordsAreDeadLettered: a record that is not an alert, and an alert without an id,
// go to crumbs.dlq with their reason; the alert behind them is delivered.
func TestBadRecordsAreDeadLettered(t *testing.T) {
	b := newBroker(t)
	rcv := &webhookReceiver{refuse: func(id string) bool { return id == "alert-0002" }}
	srv := startHTTP(t, rcv, nil, false)
	stage, _ := startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{Name: "hook", Type: "webhook", URL: srv.URL, Retry: fastRetry}}})
	alertsTopic := b.kcfg.Topics().Alerts()
	b.produceRaw(t, &kgo.Record{Topic: alertsTopic, Key: []byte("k"), Value: []byte("not avro")})
	noID := alert(0, "high")
	noID.AlertID = ""
	b.produce(t, noID, alert(1, "high"), alert(2, "high"))
	eventually(t, "three dead letters and one delivery", func() bool {
		n, _ := rcv.got.count()
		return n == 1 && len(b.deadLetters(t)) == 3
	})
	var reasons []string
	for _, dl := range b.deadLetters(t) {
		if got := kafka.Header(dl, kafka.HeaderStage); got != outputs.StageName {
			t.Errorf("dead letter's stage header = %q", got)
		}
		reasons = append(reasons, kafka.Header(dl, outputs.HeaderOutput)+": "+kafka.Header(dl, kafka.HeaderReason))
	}
	slices.Sort(reasons)
	if len(reasons) != 3 || !strings.Contains(reasons[0], "not an Avro") || !strings.Contains(reasons[1], "empty alert id") ||
		!strings.HasPrefix(reasons[2], "hook: refused by the receiver: HTTP 400") {
		t.Errorf("dead letters' reasons: %q", reasons)
	}
	if got := stage.Counters().Snapshot(); got.In != 4 || got.Out != 1 || got.DeadLettered != 3 {
		t.Errorf("counters = %+v, want in 4, out 1, dead-lettered 3", got)
	}
}

// TestDeadLetterSentBackReachesOnlyItsOutput: a dead letter produced back to crumbs.alerts with
// its headers is delivered only by the output named in crumbs.output.
func TestDeadLetterSentBackReachesOnlyItsOutput(t *testing.T) {
	b := newBroker(t)
	one, two := &webhookReceiver{}, &webhookReceiver{}
	s1, s2 := startHTTP(t, one, nil, false), startHTTP(t, two, nil, false)
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{
		{Name: "one", Type: "webhook", URL: s1.URL, Retry: fastRetry}, {Name: "two", Type: "webhook", URL: s2.URL, Retry: fastRetry},
	}})
	serde, _ := avro.NewBuiltinSerde()
	v, _ := serde.Encode(nil, schemas.AlertSchema, alert(1, "high").Native())
	b.produceRaw(t, &kgo.Record{Topic: b.kcfg.Topics().Alerts(), Key: []byte("k"), Value: v,
		Headers: []kgo.RecordHeader{{Key: outputs.HeaderOutput, Value: []byte("two")}}})
	b.produce(t, alert(2, "high"))
	eventually(t, "deliveries", func() bool { n1, _ := one.got.count(); n2, _ := two.got.count(); return n1 == 1 && n2 == 2 })
	if diff := cmp.Diff([]string{"alert-0002/one"}, one.got.keys()); diff != "" {
		t.Errorf("output one (-want +got):\n%s", diff)
	}
}

// TestConfigValidate: every invalid key is reported with its full name.
func TestConfigValidate(t *testing.T) {
	ok := outputs.OutputConfig{Name: "hook", Type: "webhook", URL: "https://example.org/hook"}
	with := func(f func(*outputs.OutputConfig)) outputs.Config {
		c := outputs.DefaultConfig()
		o := ok
		f(&o)
		c.Outputs = []outputs.OutputConfig{ok, o}
		return c
	}
	tests := []struct {
		name string
		cfg  outputs.Config
		want []string // substrings of the error, one per problem
	}{
		{"valid", with(func(o *outputs.OutputConfig) { o.Name = "other" }), nil},
		{"duplicate name", with(func(*outputs.OutputConfig) {}), []string{`alerts.outputs[1].name: "hook": already the name of alerts.outputs[0]`}},
		{"unknown type", with(func(o *outputs.OutputConfig) { o.Name, o.Type = "x", "teams" }), []string{`alerts.outputs[1].type: "teams": must be one of`}},
		{"bad url and severity", with(func(o *outputs.OutputConfig) { o.Name, o.URL, o.MinSeverity = "x", "ftp://x", "urgent" }),
			[]string{`alerts.outputs[1].url: "ftp://x": must be an http or https URL`, `alerts.outputs[1].min_severity: "urgent"`}},
		{"key of another type", with(func(o *outputs.OutputConfig) { o.Name, o.RoutingKey, o.Path = "x", "k", "/tmp/x" }),
			[]string{"alerts.outputs[1].routing_key: not a key of a webhook output (it belongs to: pagerduty)", "alerts.outputs[1].path: not a key of a webhook output"}},
		{"deliver and updates", with(func(o *outputs.OutputConfig) { o.Name, o.Deliver, o.Updates = "x", "events", "some" }),
			[]string{`alerts.outputs[1].deliver: "events": must be alerts or incidents`, `alerts.outputs[1].updates: "some": must be none, final or all`}},
		{"bad template", with(func(o *outputs.OutputConfig) { o.Name, o.Fields = "x", map[string]string{"a": "{{.Title"} }),
			[]string{"alerts.outputs[1].fields.a: template:"}},
		{"pagerduty without key", outputs.Config{Group: "g", MaxInFlight: 1, CommitInterval: time.Second, Outputs: []outputs.OutputConfig{{Name: "pd", Type: "pagerduty"}}},
			[]string{"alerts.outputs[0].routing_key: required for a pagerduty output"}},
		{"syslog", outputs.Config{Group: "g", MaxInFlight: 1, CommitInterval: time.Second, Outputs: []outputs.OutputConfig{
			{Name: "s", Type: "syslog", Network: "sctp", Address: "nohost", Facility: "local9", SDID: "no at"}}},
			[]string{`alerts.outputs[0].network: "sctp"`, `alerts.outputs[0].address: "nohost"`, `alerts.outputs[0].facility: "local9"`, `alerts.outputs[0].sd_id: "no at"`}},
		{"email", outputs.Config{Group: "g", MaxInFlight: 1, CommitInterval: time.Second, Outputs: []outputs.OutputConfig{
			{Name: "m", Type: "email", Address: "mx:25", From: "nobody", Username: "u"}}},
			[]string{`alerts.outputs[0].from: "nobody"`, "alerts.outputs[0].to: must name at least one recipient", "alerts.outputs[0].password: set username and password both or neither"}},
		{"file", outputs.Config{Group: "g", MaxInFlight: 1, CommitInterval: time.Second, Outputs: []outputs.OutputConfig{
			{Name: "f", Type: "file", Path: "relative.jsonl", MaxSize: 10}}},
			[]string{`alerts.outputs[0].path: "relative.jsonl": must be an absolute path or -`, "alerts.outputs[0].max_size: 10: must be at least 4096 bytes"}},
		{"rate limit and stage", outputs.Config{Group: "", MaxInFlight: 0, CommitInterval: time.Second, Outputs: []outputs.OutputConfig{
			{Name: "f", Type: "file", Path: "-", RateLimit: outputs.RateLimitConfig{PerMinute: 1, Exceed: "drop"}, Retry: outputs.RetryConfig{InitialBackoff: time.Minute, MaxBackoff: time.Second}}}},
			[]string{"alerts.group: must not be empty", "alerts.max_in_flight: 0", `alerts.outputs[0].rate_limit.exceed: "drop"`, "alerts.outputs[0].retry.max_backoff: 1s: must be at least retry.initial_backoff (1m0s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var lines []string
			if err != nil {
				lines = strings.Split(err.Error(), "\n")
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestNewRefusesTemplatesThatFail: templates are rendered once at start, so a field that does
// not exist or a function misused is the output's configuration error, named.
func TestNewRefusesTemplatesThatFail(t *testing.T) {
	cfg := outputs.DefaultConfig()
	cfg.Outputs = []outputs.OutputConfig{{Name: "chat", Type: "slack", URL: "https://hooks.example/x", Text: "{{.Nope}}",
		Fields: map[string]string{"n": `{{truncate "x" .Title}}`}}}
	_, err := outputs.New(cfg, kafka.DefaultConfig(), outputs.Deps{})
	if err == nil {
		t.Fatal("New accepted templates that fail")
	}
	for _, w := range []string{"alerts.outputs[0].text:", "can't evaluate field Nope", "alerts.outputs[0].fields.n:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
	cfg.Outputs[0].Text, cfg.Outputs[0].Fields = "{{truncate 20 .Title}} {{join .Tags \", \"}} {{json .Evidence}} {{rfc3339 .Time}}", nil
	if _, err := outputs.New(cfg, kafka.DefaultConfig(), outputs.Deps{}); err != nil {
		t.Errorf("valid templates refused: %v", err)
	}
}

// TestOutputStringHidesCredentials: `crumbs config` prints outputs with fmt; their secrets and a
// Slack URL's path (its credential) are not shown.
func TestOutputStringHidesCredentials(t *testing.T) {
	got := fmt.Sprint([]outputs.OutputConfig{{Name: "chat", Type: "slack", URL: "https://hooks.slack.com/services/T0/B0/SECRETPATH"},
		{Name: "pd", Type: "pagerduty", RoutingKey: "SECRETKEY"}, {Name: "m", Type: "email", Password: "SECRETPW"}})
	if strings.Contains(got, "SECRET") {
		t.Errorf("credentials shown: %s", got)
	}
	if !strings.Contains(got, "https://hooks.slack.com/...") {
		t.Errorf("URL not shown by its host: %s", got)
	}
}
