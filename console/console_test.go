package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/bcrypt"

	"github.com/threatcrumbs/crumbs/console"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/pkg/testenv"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

const (
	readToken   = "read-token-0123456789"
	triageToken = "triage-token-0123456789"
	password    = "correct horse battery"
)

// server lands the test scenario, runs a sink on a broker of its own (for triage changes) and
// serves a console over it; it returns the console's base URL and the query store.
func server(t *testing.T) (string, *query.Store) {
	t.Helper()
	cfg := clickhousetest.Config(t)
	st := query.New(clickhousetest.Land(t, cfg, clickhousetest.New(time.Now())).Conn(), cfg.Database, "")

	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := kcfg.EnsureTopics(ctx, cl, kcfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	cfg.BatchMaxAge = 50 * time.Millisecond
	sink, err := clickhouse.New(cfg, kcfg, clickhouse.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := console.NewTriager(kcfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := console.DefaultConfig()
	ccfg.Listen = "127.0.0.1:0"
	ccfg.Users = []console.User{{Name: "alice", PasswordHash: string(hash), Role: console.RoleTriage}, {Name: "bob", PasswordHash: string(hash)}}
	ccfg.Tokens = []console.Token{{Name: "reader", Token: readToken}, {Name: "soar", Token: triageToken, Role: console.RoleTriage}}
	c, err := console.New(ccfg, console.Deps{Store: st, Triager: tr, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- sink.Run(ctx) }()
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("stage: %v", err)
			}
		}
		tr.Close()
	})
	addr, err := c.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr.String(), st
}

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, c, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// login logs a user in and returns the session's CSRF token.
func login(t *testing.T, c *http.Client, base, user, pw string) (int, string) {
	t.Helper()
	_, page := get(t, c, base+"/login")
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field on the login page:\n%s", page)
	}
	resp, _ := do(t, c, postForm(t, base+"/login", url.Values{"csrf": {m[1]}, "user": {user}, "password": {pw}}))
	if resp.StatusCode != http.StatusSeeOther {
		return resp.StatusCode, ""
	}
	_, page = get(t, c, base+"/alerts")
	m = csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field on the inbox:\n%s", page)
	}
	return resp.StatusCode, m[1]
}

func postForm(t *testing.T, u string, v url.Values) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// TestConsoleSecurity: pages and the API need a login or a token; headers forbid framing and
// inline script; a session's state changes need its CSRF token; the read role may not triage;
// text from events is escaped.
func TestConsoleSecurity(t *testing.T) {
	base, _ := server(t)
	anon := browser(t)
	resp, _ := get(t, anon, base+"/alerts")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("inbox without login: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, h := range []struct{ name, want string }{
		{"Content-Security-Policy", "default-src 'self'; script-src 'self'"},
		{"X-Frame-Options", "DENY"},
		{"X-Content-Type-Options", "nosniff"},
	} {
		if got := resp.Header.Get(h.name); !strings.Contains(got, h.want) {
			t.Errorf("%s: %q, want it to contain %q", h.name, got, h.want)
		}
	}
	if resp, _ := get(t, anon, base+"/api/v1/alerts"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, anon, base+"/api/v1/alerts", "Authorization", "Bearer not-a-token-at-all"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with a wrong token: %d, want 401", resp.StatusCode)
	}
	if code, _ := login(t, browser(t), base, "alice", "wrong password"); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong password: %d, want 401", code)
	}
	if code, _ := login(t, browser(t), base, "mallory", password); code != http.StatusUnauthorized {
		t.Errorf("login of an unknown user: %d, want 401", code)
	}
	// A login form posted without its cookie (from another site) is refused.
	if resp, _ := do(t, browser(t), postForm(t, base+"/login", url.Values{"csrf": {"0123"}, "user": {"alice"}, "password": {password}})); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's cookie: %d, want 403", resp.StatusCode)
	}

	alice := browser(t)
	code, csrf := login(t, alice, base, "alice", password)
	if code != http.StatusSeeOther {
		t.Fatalf("alice's login: %d", code)
	}
	u, _ := url.Parse(base)
	for _, ck := range alice.Jar.Cookies(u) {
		if ck.Name == "crumbs_session" && len(ck.Value) < 32 {
			t.Errorf("session id %q: too short", ck.Value)
		}
	}
	resp, page := get(t, alice, base+"/alerts/alert-db-volume")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alert page: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "<img src=x") || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the note's markup is not escaped on the alert page")
	}
	// Without the CSRF token, with a wrong one: refused; with it: done.
	for _, tok := range []string{"", strings.Repeat("0", len(csrf))} {
		resp, _ := do(t, alice, postForm(t, base+"/alerts/alert-db-volume/triage", url.Values{"csrf": {tok}, "action": {"resolve"}}))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("triage with csrf %q: %d, want 403", tok, resp.StatusCode)
		}
	}
	resp, _ = do(t, alice, postForm(t, base+"/alerts/alert-db-volume/triage", url.Values{"csrf": {csrf}, "action": {"note"}, "note": {"<b>checked</b>"}}))
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=note") {
		t.Errorf("triage with the csrf token: %d to %q, want 303 to the alert", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = get(t, alice, base+"/alerts/alert-db-volume")
	if !strings.Contains(page, "&lt;b&gt;checked&lt;/b&gt;") {
		t.Errorf("the new note is not on the alert page, escaped")
	}
	// bob has the read role.
	bob := browser(t)
	_, bobCSRF := login(t, bob, base, "bob", password)
	if resp, _ := do(t, bob, postForm(t, base+"/alerts/alert-db-volume/triage", url.Values{"csrf": {bobCSRF}, "action": {"resolve"}})); resp.StatusCode != http.StatusForbidden {
		t.Errorf("triage by a reader: %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/alerts/alert-db-volume/resolve", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	if resp, _ := do(t, anon, req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("API triage with a read token: %d, want 403", resp.StatusCode)
	}
}

// TestTriageAPI: a token with the triage role acknowledges, assigns, annotates and marks an
// alert a false positive through the API; each change is in ClickHouse when it answers, and
// the inbox counts it.
func TestTriageAPI(t *testing.T) {
	base, st := server(t)
	c := browser(t)
	call := func(action, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/alerts/alert-deployed-file-changed/"+action, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+triageToken)
		resp, out := do(t, c, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", action, resp.StatusCode, out)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	call("ack", "")
	call("assign", `{"assignee": "carol"}`)
	call("note", `{"note": "the deploy pipeline failed half way"}`)
	m := call("false_positive", `{"suppress_for": "24h", "scope": "group_key"}`)
	if m["state"] != "false_positive" || m["in_clickhouse"] != true {
		t.Errorf("false_positive answered %v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := st.Triage(ctx, "alert-deployed-file-changed")
	if err != nil || tr == nil {
		t.Fatalf("triage in ClickHouse: %v %v", tr, err)
	}
	type view struct {
		State, Assignee, By, Scope string
		Notes                      int
		Suppressing                bool
	}
	got := view{tr.State, tr.Assignee, tr.UpdatedBy, tr.SuppressScope, len(tr.Notes), tr.SuppressUntil.After(time.Now().Add(23 * time.Hour))}
	if d := cmp.Diff(view{"false_positive", "carol", "soar", "group_key", 1, true}, got); d != "" {
		t.Errorf("triage in ClickHouse (-want +got):\n%s", d)
	}
	for _, bad := range []struct{ action, body string }{
		{"close", ""}, {"note", `{"note": ""}`}, {"false_positive", `{"suppress_for": "100000h"}`}, {"ack", `{"unknown": 1}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/alerts/alert-deployed-file-changed/"+bad.action, strings.NewReader(bad.body))
		req.Header.Set("Authorization", "Bearer "+triageToken)
		if resp, out := do(t, c, req); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %d %s, want 400", bad.action, bad.body, resp.StatusCode, out)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/alerts/no-such-alert/ack", nil)
	req.Header.Set("Authorization", "Bearer "+triageToken)
	if resp, _ := do(t, c, req); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ack of no such alert: %d, want 404", resp.StatusCode)
	}
	resp, out := get(t, c, base+"/api/v1/alerts?since=24h&state=false_positive", "Authorization", "Bearer "+readToken)
	var in struct {
		Alerts []struct {
			ID    string `json:"alert_id"`
			State string `json:"state"`
		} `json:"alerts"`
		Total uint64 `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &in); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET alerts: %d %v %s", resp.StatusCode, err, out)
	}
	if in.Total != 1 || len(in.Alerts) != 1 || in.Alerts[0].ID != "alert-deployed-file-changed" {
		t.Errorf("false positives listed: %+v", in)
	}
	if resp, _ := get(t, c, base+"/api/v1/alerts?state=done", "Authorization", "Bearer "+readToken); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("state=done: %d, want 400", resp.StatusCode)
	}
}

// TestConfigRefusesPlainHTTPOffLoopback: the console does not start on a public address
// without TLS, nor with a password in clear.
func TestConfigRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*console.Config)
		want string
	}{
		{"public without tls", func(c *console.Config) { c.Listen = "0.0.0.0:8421" }, "console.listen"},
		{"password in clear", func(c *console.Config) { c.Users = []console.User{{Name: "a", PasswordHash: "hunter2"}} }, "console.users.0.password_hash"},
		{"short token", func(c *console.Config) { c.Tokens = []console.Token{{Name: "t", Token: "short"}} }, "console.tokens.0.token"},
		{"unknown role", func(c *console.Config) { c.Tokens = []console.Token{{Name: "t", Token: readToken, Role: "admin"}} }, "console.tokens.0.role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := console.DefaultConfig()
			tc.set(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if err := console.DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestTLS: with a certificate the console serves HTTPS, may listen off loopback, and its
// cookies are Secure.
func TestTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	cfg := console.DefaultConfig()
	cfg.Listen, cfg.TLS = "0.0.0.0:0", console.TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}
	cfg.Tokens = []console.Token{{Name: "reader", Token: readToken}}
	c, err := console.New(cfg, console.Deps{Store: query.New(nil, "unused", ""), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr, err := c.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr.String())
	cl := browser(t)
	cl.Transport = &http.Transport{TLSClientConfig: pki.ClientTLS(t, false)}
	resp, page := get(t, cl, "https://127.0.0.1:"+port+"/login")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="login"`) {
		t.Fatalf("login page over TLS: %d", resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("cookie %s: Secure %v HttpOnly %v SameSite %v; want Secure, HttpOnly, Strict", ck.Name, ck.Secure, ck.HttpOnly, ck.SameSite)
		}
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts == "" {
		t.Error("no Strict-Transport-Security over TLS")
	}
}
