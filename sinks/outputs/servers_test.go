package outputs_test

// Real local servers of each output's protocol. Each checks what it receives against the
// protocol's shape (independently of the code under test) and keeps what it accepted.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// received keeps what a server accepted, by delivery key, in order.
type received[T any] struct {
	mu    sync.Mutex
	order []string
	byKey map[string][]T
	first map[string]time.Time // when a key was first accepted
}

func (r *received[T]) add(key string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey == nil {
		r.byKey, r.first = map[string][]T{}, map[string]time.Time{}
	}
	if _, ok := r.first[key]; !ok {
		r.first[key] = time.Now()
	}
	r.order = append(r.order, key)
	r.byKey[key] = append(r.byKey[key], v)
}

// count is how many were accepted in all, and under how many distinct keys.
func (r *received[T]) count() (all, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order), len(r.byKey)
}

func (r *received[T]) get(key string) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.byKey[key])
}

// firstAt returns when each key was first accepted.
func (r *received[T]) firstAt() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.first))
	for k, v := range r.first {
		out[k] = v
	}
	return out
}

func (r *received[T]) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// webhookRequest is what a webhook receiver saw of one request.
type webhookRequest struct {
	Body   map[string]any
	Header http.Header
	At     time.Time
}

// webhookReceiver verifies the HMAC-SHA256 signature of every request with its own code and
// answers 401 to a bad one; refuse, when set, picks requests to answer 400.
type webhookReceiver struct {
	secret string
	refuse func(alertID string) bool
	got    received[webhookRequest]
	bad    received[string]
}

func (wr *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if wr.secret != "" {
		m := hmac.New(sha256.New, []byte(wr.secret))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Crumbs-Signature"))) {
			wr.bad.add("signature", r.Header.Get("X-Crumbs-Signature"))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("X-Crumbs-Alert-Id")
	if wr.refuse != nil && wr.refuse(id) {
		http.Error(w, "we do not take this one", http.StatusBadRequest)
		return
	}
	wr.got.add(r.Header.Get("Idempotency-Key"), webhookRequest{Body: v, Header: r.Header.Clone(), At: time.Now()})
	w.WriteHeader(http.StatusNoContent)
}

// slackReceiver implements an incoming webhook: a JSON object with text, answered "ok".
type slackReceiver struct{ got received[map[string]any] }

func (sr *slackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	text, _ := v["text"].(string)
	if text == "" {
		http.Error(w, "no_text", http.StatusBadRequest)
		return
	}
	att, _ := v["attachments"].([]any)
	var footer string
	if len(att) == 1 {
		footer, _ = att[0].(map[string]any)["footer"].(string)
	}
	sr.got.add(footer, v)
	_, _ = io.WriteString(w, "ok")
}

// pagerDutyReceiver implements POST /v2/enqueue of the Events API v2: it validates an event
// as PagerDuty documents it and answers 202 with the dedup key, or 400 with the errors.
type pagerDutyReceiver struct {
	routingKey string
	got        received[map[string]any] // by dedup key + "/" + event action
}

func (pr *pagerDutyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/enqueue" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var ev map[string]any
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		pr.invalid(w, "Event object is invalid")
		return
	}
	var errs []string
	if ev["routing_key"] != pr.routingKey {
		errs = append(errs, "'routing_key' is invalid")
	}
	action, _ := ev["event_action"].(string)
	dedup, _ := ev["dedup_key"].(string)
	switch action {
	case "trigger":
		p, _ := ev["payload"].(map[string]any)
		if p == nil {
			errs = append(errs, "'payload' is missing")
			break
		}
		for _, k := range []string{"summary", "source", "severity"} {
			if s, _ := p[k].(string); s == "" {
				errs = append(errs, fmt.Sprintf("'payload.%s' is missing or blank", k))
			}
		}
		if !slices.Contains([]string{"critical", "error", "warning", "info"}, p["severity"].(string)) {
			errs = append(errs, "'payload.severity' is invalid")
		}
	case "acknowledge", "resolve":
		if dedup == "" {
			errs = append(errs, "'dedup_key' is missing")
		}
	default:
		errs = append(errs, "'event_action' is invalid")
	}
	if len(errs) > 0 {
		pr.invalid(w, errs...)
		return
	}
	pr.got.add(dedup+"/"+action, ev)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": dedup})
}

func (pr *pagerDutyReceiver) invalid(w http.ResponseWriter, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": errs})
}

// alertmanagerReceiver implements POST /api/v2/alerts: a JSON array of postable alerts, each
// with labels (valid names), an optional RFC 3339 startsAt, endsAt and generatorURL.
type alertmanagerReceiver struct{ got received[map[string]any] }

func (ar *alertmanagerReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var alerts []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
		http.Error(w, `{"code":400,"message":"body not an array of alerts"}`, http.StatusBadRequest)
		return
	}
	for _, a := range alerts {
		labels, _ := a["labels"].(map[string]any)
		if len(labels) == 0 || labels["alertname"] == nil {
			http.Error(w, `{"code":400,"message":"labels: alertname required"}`, http.StatusBadRequest)
			return
		}
		for _, k := range []string{"startsAt", "endsAt"} {
			if s, ok := a[k].(string); ok {
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					http.Error(w, `{"code":400,"message":"bad time"}`, http.StatusBadRequest)
					return
				}
			}
		}
		id := labels["alert_id"]
		if id == nil {
			id = labels["incident_id"]
		}
		ar.got.add(fmt.Sprint(id), a)
	}
	w.WriteHeader(http.StatusOK)
}

// startHTTP serves h over HTTP, or over TLS (with client certificates required when mtls).
func startHTTP(t testing.TB, h http.Handler, p *pki, mtls bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if p != nil {
		srv.TLS = p.serverTLS(mtls)
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// syslogReceiver listens for RFC 5424 messages over udp, tcp (octet counting) or tls and
// parses them with go-syslog; it keeps them by their alert_id parameter.
type syslogReceiver struct {
	addr  string
	got   received[*rfc5424.SyslogMessage]
	bad   received[string]
	mu    sync.Mutex
	conns []net.Conn
}

// closeConns closes the stream connections accepted so far, as a restarted receiver would.
func (sr *syslogReceiver) closeConns() {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	for _, c := range sr.conns {
		c.Close()
	}
	sr.conns = nil
}

func startSyslog(t testing.TB, network string, p *pki) *syslogReceiver {
	t.Helper()
	sr := &syslogReceiver{}
	keep := func(m syslog.Message, err error, raw string) {
		sm, ok := m.(*rfc5424.SyslogMessage)
		if err != nil || !ok || sm.StructuredData == nil {
			sr.bad.add("parse", fmt.Sprintf("%v: %q", err, raw))
			return
		}
		var id string
		for _, params := range *sm.StructuredData {
			id = params["alert_id"]
		}
		sr.got.add(id, sm)
	}
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		sr.addr = pc.LocalAddr().String()
		go func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				m, err := rfc5424.NewMachine().Parse(buf[:n])
				keep(m, err, string(buf[:n]))
			}
		}()
		return sr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if network == "tls" {
		ln = tls.NewListener(ln, p.serverTLS(false))
	}
	t.Cleanup(func() { ln.Close() })
	sr.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sr.mu.Lock()
			sr.conns = append(sr.conns, c)
			sr.mu.Unlock()
			go func() {
				defer c.Close()
				octetcounting.NewParser(syslog.WithListener(func(r *syslog.Result) { keep(r.Message, r.Error, "") })).Parse(c)
			}()
		}
	}()
	return sr
}

// smtpMail is one message an SMTP server accepted.
type smtpMail struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string
}

// smtpReceiver is a go-smtp server: STARTTLS offered when tlsCfg is set, PLAIN auth with
// user/password when user is set (and then required before MAIL).
type smtpReceiver struct {
	addr     string
	user, pw string
	got      received[smtpMail]
}

func startSMTP(t *testing.T, tlsCfg *tls.Config, user, pw string) *smtpReceiver {
	t.Helper()
	sr := &smtpReceiver{user: user, pw: pw}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &smtpSession{sr: sr, conn: c}, nil })
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = tlsCfg
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sr.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return sr
}

type smtpSession struct {
	sr     *smtpReceiver
	conn   *smtp.Conn
	authed string
	m      smtpMail
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pw string) error {
		if user != s.sr.user || pw != s.sr.pw {
			return errors.New("invalid credentials")
		}
		s.authed = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.sr.user != "" && s.authed == "" {
		return smtp.ErrAuthRequired
	}
	s.m = smtpMail{From: from, User: s.authed}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "nobody@example.org" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.m.To = append(s.m.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.m.TLS = s.conn.TLSConnectionState()
	s.m.Data = b
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "not a message: " + err.Error()}
	}
	s.sr.got.add(msg.Header.Get("X-Crumbs-Alert-Id"), s.m)
	return nil
}

func (s *smtpSession) Reset()        { s.m = smtpMail{} }
func (s *smtpSession) Logout() error { return nil }

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
