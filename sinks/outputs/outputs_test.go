package outputs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
	"github.com/threatcrumbs/crumbs/sinks/outputs"
)

// fastRetry retries quickly, for tests.
var fastRetry = outputs.RetryConfig{InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}

// TestWebhook delivers over mutual TLS to a receiver that checks the HMAC signature itself:
// only alerts at or above the output's minimum severity, each once, with its idempotency key
// and the templated fields.
func TestWebhook(t *testing.T) {
	b := newBroker(t)
	p := newPKI(t)
	rcv := &webhookReceiver{secret: "s3cret"}
	srv := startHTTP(t, rcv, p, true)
	startStage(t, b, outputs.Config{ConsoleURL: "https://console.test", Outputs: []outputs.OutputConfig{{
		Name: "soc", Type: "webhook", URL: srv.URL + "/hook", Secret: "s3cret", MinSeverity: "medium",
		Headers: map[string]string{"X-Team": "secops"},
		Fields:  map[string]string{"where": "{{.Host.Name}}/{{.Service}}", "rule": "{{upper .RuleID}}"},
		TLS:     outputs.TLSConfig{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}, Retry: fastRetry,
	}}})
	var all []*schemas.Alert
	for i := range 6 {
		sev := []string{"low", "high", "critical"}[i%3]
		all = append(all, alert(i, sev))
	}
	b.produce(t, all...)
	eventually(t, "4 deliveries", func() bool { n, _ := rcv.got.count(); return n >= 4 })

	var gotKeys []string
	for _, k := range rcv.got.keys() {
		gotKeys = append(gotKeys, k)
	}
	slices.Sort(gotKeys)
	want := []string{"alert-0001/soc", "alert-0002/soc", "alert-0004/soc", "alert-0005/soc"}
	if diff := cmp.Diff(want, gotKeys); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	req := rcv.got.get("alert-0004/soc")[0]
	body := req.Body
	a := body["alert"].(map[string]any)
	gotView := map[string]any{
		"output": body["output"], "alert_id": a["alert_id"], "severity": a["severity"], "rule_id": a["rule_id"],
		"url": a["url"], "fields": body["fields"], "team": req.Header.Get("X-Team"), "alert_header": req.Header.Get("X-Crumbs-Alert-Id"),
		"evidence": a["evidence"],
	}
	wantView := map[string]any{
		"output": "soc", "alert_id": "alert-0004", "severity": "high", "rule_id": "rule-1", "url": "https://console.test/alerts/alert-0004",
		"fields": map[string]any{"where": "web-1/shop", "rule": "RULE-1"}, "team": "secops", "alert_header": "alert-0004",
		"evidence": []any{"ev-4"},
	}
	if diff := cmp.Diff(wantView, gotView); diff != "" {
		t.Errorf("webhook body (-want +got):\n%s", diff)
	}
	if n, _ := rcv.bad.count(); n != 0 {
		t.Errorf("%d requests with a bad signature", n)
	}
}

// TestWebhookWithoutClientCertificateIsRetried: the receiver requires a client certificate the
// output does not have; the handshake fails, which is retried and then dead-lettered.
func TestWebhookWithoutClientCertificateIsRetried(t *testing.T) {
	b := newBroker(t)
	p := newPKI(t)
	rcv := &webhookReceiver{}
	srv := startHTTP(t, rcv, p, true)
	retry := fastRetry
	retry.MaxAttempts = 3
	stage, _ := startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{
		Name: "nocert", Type: "webhook", URL: srv.URL, TLS: outputs.TLSConfig{CAFile: p.caFile}, Retry: retry,
	}}})
	b.produce(t, alert(1, "high"))
	eventually(t, "a dead letter", func() bool { return len(b.deadLetters(t)) == 1 })
	dl := b.deadLetters(t)[0]
	if got := kafka.Header(dl, outputs.HeaderOutput); got != "nocert" {
		t.Errorf("dead letter's output header = %q, want nocert", got)
	}
	if reason := kafka.Header(dl, kafka.HeaderReason); !strings.Contains(reason, "gave up retrying after 3 attempts") {
		t.Errorf("reason %q does not say it gave up after 3 attempts", reason)
	}
	if n, _ := rcv.got.count(); n != 0 {
		t.Errorf("the receiver accepted %d requests without a client certificate", n)
	}
	if got := stage.Counters().Snapshot().DeadLettered; got != 1 {
		t.Errorf("dead-lettered counter = %d, want 1", got)
	}
}

// TestSlack: Slack's markup characters in an alert are escaped, so an alert cannot mention
// @channel or forge a link.
func TestSlack(t *testing.T) {
	b := newBroker(t)
	rcv := &slackReceiver{}
	srv := startHTTP(t, rcv, nil, false)
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{
		Name: "chat", Type: "slack", URL: srv.URL + "/services/T0/B0/XXXX", Channel: "#soc", Text: "{{.Title}} <!channel>", Retry: fastRetry,
	}}})
	a := alert(7, "critical")
	b.produce(t, a)
	eventually(t, "a slack message", func() bool { n, _ := rcv.got.count(); return n == 1 })
	msg := rcv.got.get("crumbs · alert alert-0007")[0]
	att := msg["attachments"].([]any)[0].(map[string]any)
	got := map[string]any{"text": msg["text"], "channel": msg["channel"], "color": att["color"], "title": att["title"], "text2": att["text"]}
	want := map[string]any{"text": "Test alert 7 &lt;!channel&gt;", "channel": "#soc", "color": "#7b1fa2", "title": "Test alert 7",
		"text2": "summary &lt;7&gt; &amp; more"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slack message (-want +got):\n%s", diff)
	}
}

// TestPagerDutyTriggersAndResolves: an alert triggers an event whose dedup key is its id; its
// triage state becoming resolved sends a resolve for the same key; an acknowledged state
// sends nothing.
func TestPagerDutyTriggersAndResolves(t *testing.T) {
	b := newBroker(t)
	rcv := &pagerDutyReceiver{routingKey: "R0UT1NGKEY"}
	srv := startHTTP(t, rcv, nil, false)
	t.Setenv("CRUMBS_TEST_PD_KEY", "R0UT1NGKEY")
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{
		Name: "oncall", Type: "pagerduty", URL: srv.URL + "/v2/enqueue", RoutingKey: "env:CRUMBS_TEST_PD_KEY", MinSeverity: "high", Retry: fastRetry,
	}}})
	b.produce(t, alert(1, "high"), alert(2, "critical"))
	eventually(t, "two triggers", func() bool { n, _ := rcv.got.count(); return n == 2 })
	ev := rcv.got.get("alert-0002/trigger")[0]
	p := ev["payload"].(map[string]any)
	got := map[string]any{"severity": p["severity"], "source": p["source"], "summary": p["summary"], "group": p["group"], "component": p["component"]}
	want := map[string]any{"severity": "critical", "source": "web-1", "summary": "[critical] Test alert 2 on web-1", "group": "rule-2", "component": "shop"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trigger payload (-want +got):\n%s", diff)
	}

	serde, _ := avro.NewBuiltinSerde()
	triage := func(id, state string, version int64) {
		ts := &schemas.TriageState{AlertID: id, Version: version, State: state, UpdatedAt: time.Now().UnixNano(), UpdatedBy: "alice"}
		v, err := serde.Encode(nil, schemas.TriageSchema, ts.Native())
		if err != nil {
			t.Fatal(err)
		}
		b.produceRaw(t, &kgo.Record{Topic: b.kcfg.Topics().Triage(), Key: []byte(id), Value: v})
	}
	triage("alert-0001", schemas.TriageAcknowledged, 1)
	triage("alert-0002", schemas.TriageResolved, 2)
	eventually(t, "a resolve", func() bool { return len(rcv.got.get("alert-0002/resolve")) == 1 })
	var keys []string
	for _, k := range rcv.got.keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if diff := cmp.Diff([]string{"alert-0001/trigger", "alert-0002/resolve", "alert-0002/trigger"}, keys); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestAlertmanager posts to /api/v2/alerts with the alert's labels, annotations, start and
// end, and the console link as generatorURL.
func TestAlertmanager(t *testing.T) {
	b := newBroker(t)
	rcv := &alertmanagerReceiver{}
	srv := startHTTP(t, rcv, nil, false)
	startStage(t, b, outputs.Config{ConsoleURL: "https://console.test/", Outputs: []outputs.OutputConfig{{
		Name: "am", Type: "alertmanager", URL: srv.URL, EndsAfter: time.Hour, Labels: map[string]string{"team": "{{lower \"SecOps\"}}"}, Retry: fastRetry,
	}}})
	a := alert(3, "medium")
	b.produce(t, a)
	eventually(t, "an alertmanager alert", func() bool { n, _ := rcv.got.count(); return n == 1 })
	got := rcv.got.get("alert-0003")[0]
	start := time.Unix(0, a.Time).UTC()
	want := map[string]any{
		"labels": map[string]any{"alertname": "rule-0", "severity": "medium", "alert_id": "alert-0003", "host": "web-1", "service": "shop", "team": "secops"},
		"annotations": map[string]any{"summary": "[medium] Test alert 3 on web-1", "title": "Test alert 3", "description": "summary <3> & more",
			"count": "4", "tags": "attack.t1078,n3", "version": "1"},
		"startsAt": start.Format(time.RFC3339Nano), "endsAt": start.Add(time.Hour).Format(time.RFC3339Nano),
		"generatorURL": "https://console.test/alerts/alert-0003",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alertmanager alert (-want +got):\n%s", diff)
	}
}

// TestSyslog sends RFC 5424 messages over UDP, TCP with octet counting, and TLS, each parsed by
// an independent parser (go-syslog).
func TestSyslog(t *testing.T) {
	p := newPKI(t)
	for _, network := range []string{"udp", "tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			b := newBroker(t)
			rcv := startSyslog(t, network, p)
			startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{
				Name: "siem", Type: "syslog", Network: network, Address: rcv.addr, Facility: "local3",
				TLS: outputs.TLSConfig{CAFile: p.caFile}, Fields: map[string]string{"team": "sec\"ops]"}, Retry: fastRetry,
			}}})
			b.produce(t, alert(1, "high"), alert(2, "informational"))
			eventually(t, "two syslog messages", func() bool { n, _ := rcv.got.count(); return n == 2 })
			m := rcv.got.get("alert-0001")[0]
			type view struct {
				Facility, Severity        uint8
				Host, App, MsgID, Message string
				SD                        map[string]map[string]string
			}
			got := view{*m.Facility, *m.Severity, *m.Hostname, *m.Appname, *m.MsgID, *m.Message, *m.StructuredData}
			want := view{19, 3, "web-1", "crumbs", "alert", "\ufeff[high] Test alert 1 on web-1", map[string]map[string]string{"crumbs@32473": {
				"alert_id": "alert-0001", "rule_id": "rule-1", "severity": "high", "title": "Test alert 1", "host_id": "m1",
				"service": "shop", "count": "2", "group_key": "web-1|u1", "tag": "n1", "team": `sec"ops]`,
				"version": "1", "final": "true",
			}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("syslog message (-want +got):\n%s", diff)
			}
			if inf := rcv.got.get("alert-0002")[0]; *inf.Severity != 6 {
				t.Errorf("informational alert has syslog severity %d, want 6", *inf.Severity)
			}
			if n, _ := rcv.bad.count(); n != 0 {
				t.Errorf("%d messages did not parse: %v", n, rcv.bad.get("parse"))
			}
		})
	}
}

// TestSyslogTCPReconnects: the receiver closes the connection between two alerts; the second
// still arrives, on a new connection.
func TestSyslogTCPReconnects(t *testing.T) {
	b := newBroker(t)
	rcv := startSyslog(t, "tcp", nil)
	stage, _ := startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{{Name: "siem", Type: "syslog", Network: "tcp", Address: rcv.addr, Retry: fastRetry}}})
	b.produce(t, alert(1, "high"))
	eventually(t, "the first message", func() bool { n, _ := rcv.got.count(); return n == 1 })
	rcv.closeConns()
	b.produce(t, alert(2, "high"))
	eventually(t, "the second message", func() bool { n, _ := rcv.got.count(); return n == 2 })
	if got := stage.Counters().Snapshot().Out; got != 2 {
		t.Errorf("delivered %d, want 2", got)
	}
}

// TestEmail sends over STARTTLS with PLAIN auth to a go-smtp server; a recipient the server
// refuses (550) dead-letters the alert at once; a server without STARTTLS gets nothing.
func TestEmail(t *testing.T) {
	p := newPKI(t)
	b := newBroker(t)
	srv := startSMTP(t, p.serverTLS(false), "crumbs", "pw")
	clear := startSMTP(t, nil, "", "")
	t.Setenv("CRUMBS_TEST_SMTP_PW", "pw")
	noTLS := fastRetry
	noTLS.MaxAttempts = 2
	startStage(t, b, outputs.Config{Outputs: []outputs.OutputConfig{
		{Name: "mail", Type: "email", Address: srv.addr, Username: "crumbs", Password: "env:CRUMBS_TEST_SMTP_PW",
			From: "crumbs@example.org", To: []string{"soc@example.org", "oncall@example.org"}, Text: "Ärger: {{.Title}}\r\nBcc: evil@example.org",
			Rules: []string{"rule-1"}, TLS: outputs.TLSConfig{CAFile: p.caFile}, Retry: fastRetry},
		{Name: "refused", Type: "email", Address: srv.addr, Username: "crumbs", Password: "pw", From: "crumbs@example.org",
			To: []string{"nobody@example.org"}, Rules: []string{"rule-2"}, TLS: outputs.TLSConfig{CAFile: p.caFile}, Retry: fastRetry},
		{Name: "cleartext", Type: "email", Address: clear.addr, From: "crumbs@example.org", To: []string{"soc@example.org"},
			Rules: []string{"rule-1"}, Retry: noTLS},
	}})
	b.produce(t, alert(1, "high"), alert(2, "high"))
	eventually(t, "a mail and two dead letters", func() bool {
		n, _ := srv.got.count()
		return n == 1 && len(b.deadLetters(t)) == 2
	})
	m := srv.got.get("alert-0001")[0]
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(msg.Body)
	got := map[string]any{"tls": m.TLS, "user": m.User, "from": m.From, "to": m.To, "subject": subject, "bcc": msg.Header.Get("Bcc"),
		"message_id": msg.Header.Get("Message-Id"), "body_has_rule": strings.Contains(string(body), "rule-1")}
	want := map[string]any{"tls": true, "user": "crumbs", "from": "crumbs@example.org", "to": []string{"soc@example.org", "oncall@example.org"},
		"subject": "Ärger: Test alert 1 Bcc: evil@example.org", "bcc": "", "message_id": "<alert-0001.mail@example.org>", "body_has_rule": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mail (-want +got):\n%s", diff)
	}
	reasons := map[string]string{}
	for _, dl := range b.deadLetters(t) {
		reasons[kafka.Header(dl, outputs.HeaderOutput)] = kafka.Header(dl, kafka.HeaderReason)
	}
	if r := reasons["refused"]; !strings.Contains(r, "refused by the receiver") || !strings.Contains(r, "550") {
		t.Errorf("refused recipient's dead letter reason = %q", r)
	}
	if r := reasons["cleartext"]; !strings.Contains(r, "does not offer STARTTLS") {
		t.Errorf("cleartext server's dead letter reason = %q", r)
	}
	if n, _ := clear.got.count(); n != 0 {
		t.Errorf("%d mails sent in clear", n)
	}
}

// TestFileRotates writes JSON lines to a file rotated by size, keeping max_files rotated files;
// and to standard output.
func TestFileRotates(t *testing.T) {
	b := newBroker(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "alerts.jsonl")
	var stdout syncBuffer
	s, err := outputs.New(outputs.Config{Group: "file-test", MaxInFlight: 100, CommitInterval: 100 * time.Millisecond, Outputs: []outputs.OutputConfig{
		{Name: "file", Type: "file", Path: path, MaxSize: 4096, MaxFiles: 2},
		{Name: "out", Type: "file", Path: "-", MinSeverity: "critical"},
	}}, b.kcfg, outputs.Deps{Log: testLogger(t), Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var all []*schemas.Alert
	for i := range 40 {
		all = append(all, alert(i, []string{"high", "critical"}[i%2]))
	}
	// One partition's order is the file's order: the same key for all.
	for _, a := range all {
		a.RuleID, a.GroupKey = "rule", "key"
	}
	b.produce(t, all...)
	eventually(t, "60 lines written", func() bool { return s.Counters().Snapshot().Out == 60 })

	files, _ := filepath.Glob(path + "*")
	slices.Sort(files)
	if diff := cmp.Diff([]string{path, path + ".1", path + ".2"}, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	var ids []string
	for _, f := range []string{path + ".2", path + ".1", path} {
		st, _ := os.Stat(f)
		if st.Size() > 4096 {
			t.Errorf("%s is %d bytes, over max_size", f, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
		ids = append(ids, lineIDs(t, f)...)
	}
	// The kept files hold the newest alerts, in order, ending with the last.
	if len(ids) == 0 || ids[len(ids)-1] != "alert-0039" {
		t.Fatalf("last line is not the last alert: %v", ids)
	}
	first := 40 - len(ids)
	for i, id := range ids {
		if want := fmt.Sprintf("alert-%04d", first+i); id != want {
			t.Fatalf("line %d is %s, want %s (lines %v)", i, id, want, ids)
		}
	}
	if n := strings.Count(stdout.String(), "\n"); n != 20 {
		t.Errorf("standard output has %d lines, want the 20 critical alerts", n)
	}
}

func lineIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l outputs.JSONLine
		if err := jsonUnmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ids = append(ids, l.Alert.AlertID)
	}
	return ids
}
