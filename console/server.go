// Package console is crumbs' web console and triage API, served by `crumbs up` and `crumbs
// console`. In: alerts, events, triage and context from ClickHouse (package query), and
// analysts' logins and triage changes over HTTP. Out: server-rendered HTML pages (the alerts
// inbox, an alert, a host's timeline, the service graph, the context in force), a JSON API
// (GET /api/v1/alerts, POST /api/v1/alerts/{id}/{action}) and triage states on the compacted
// topic crumbs.triage (Triager).
//
// Security: users log in with a password (bcrypt hashes in configuration) or a token; a login
// is a random session id in an HttpOnly, SameSite=Strict cookie (Secure under TLS), held in
// memory; every state-changing request made with it carries the session's CSRF token; API
// clients send a bearer token instead (compared in constant time). The console listens on
// loopback unless TLS is configured. Every page sets a Content-Security-Policy that allows
// only its own scripts and styles (no inline script), and frames nothing. Every value from
// events is text escaped by html/template; assets are embedded in the binary.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/threatcrumbs/crumbs/pkg/tlsfiles"
	"github.com/threatcrumbs/crumbs/query"
)

// Deps are what the console uses besides its configuration.
type Deps struct {
	Store   *query.Store // required
	Triager *Triager     // nil: triage changes are refused (read-only console)
	Log     *slog.Logger
}

// Console is the console stage.
type Console struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	tls    *tls.Config
	tokens []tokenEntry
	users  map[string]User
	pages  *pages
	logins *rate.Limiter
	addr   chan net.Addr
	dummy  []byte // a bcrypt hash checked for unknown users, so that timing does not tell them apart

	mu       sync.Mutex
	sessions map[string]*session
}

type tokenEntry struct {
	sum        [32]byte
	name, role string
}

// session is one login.
type session struct {
	id, csrf   string
	name, role string
	expires    time.Time
	created    time.Time
}

// principal is who makes a request.
type principal struct {
	name, role string
	sess       *session // nil for bearer tokens
}

func (p principal) canTriage() bool { return p.role == RoleTriage }

// New checks the configuration and prepares the console; nothing listens until Run.
func New(cfg Config, deps Deps) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("console: no query store")
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	c := &Console{cfg: cfg, deps: deps, log: deps.Log, users: map[string]User{}, sessions: map[string]*session{},
		logins: rate.NewLimiter(rate.Limit(5), 10), addr: make(chan net.Addr, 1)}
	for _, t := range cfg.Tokens {
		role := t.Role
		if role == "" {
			role = RoleRead
		}
		c.tokens = append(c.tokens, tokenEntry{sum: sha256.Sum256([]byte(t.Token)), name: t.Name, role: role})
	}
	for _, u := range cfg.Users {
		if u.Role == "" {
			u.Role = RoleRead
		}
		c.users[u.Name] = u
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(randomID()), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c.dummy = dummy
	if cfg.TLS.Enabled() {
		tc, err := tlsfiles.ServerConfig(tlsfiles.Files{Key: "console.tls", CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile}, deps.Log)
		if err != nil {
			return nil, err
		}
		c.tls = tc
	}
	if c.pages, err = newPages(c); err != nil {
		return nil, err
	}
	if len(cfg.Users) == 0 && len(cfg.Tokens) == 0 {
		c.log.Warn("the console has no console.users and no console.tokens: nobody can log in", "listen", cfg.Listen)
	}
	return c, nil
}

// Addr returns the address the console listens on, once it does (tests listen on port 0).
func (c *Console) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-c.addr:
		c.addr <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run serves until ctx is done, then shuts the server down (5 s at most).
func (c *Console) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("console.listen: %s: %w", c.cfg.Listen, err)
	}
	c.addr <- ln.Addr()
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelInfo)}
	if c.tls != nil {
		srv.TLSConfig = c.tls
		ln = tls.NewListener(ln, c.tls)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	scheme := "http"
	if c.tls != nil {
		scheme = "https"
	}
	c.log.Info("console serving", "url", scheme+"://"+ln.Addr().String()+"/", "users", len(c.cfg.Users), "tokens", len(c.cfg.Tokens))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // expired sessions go
		defer wg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				c.mu.Lock()
				for id, s := range c.sessions {
					if now.After(s.expires) {
						delete(c.sessions, id)
					}
				}
				c.mu.Unlock()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	select {
	case err := <-done:
		return fmt.Errorf("console: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-done
	return err
}

// Handler returns the console's HTTP handler.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.authed(c.logout))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/alerts", http.StatusSeeOther) })
	mux.HandleFunc("GET /alerts", c.authed(c.pages.inbox))
	mux.HandleFunc("GET /alerts/{id}", c.authed(c.pages.alert))
	mux.HandleFunc("POST /alerts/{id}/triage", c.authed(c.pages.triage))
	mux.HandleFunc("GET /timeline", c.authed(c.pages.timeline))
	mux.HandleFunc("GET /graph", c.authed(c.pages.graph))
	mux.HandleFunc("GET /context", c.authed(c.pages.context))
	mux.HandleFunc("GET /api/v1/alerts", c.authed(c.apiAlerts))
	mux.HandleFunc("GET /api/v1/alerts/{id}", c.authed(c.apiAlert))
	mux.HandleFunc("POST /api/v1/alerts/{id}/{action}", c.authed(c.apiTriage))
	return securityHeaders(mux)
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

const (
	sessionCookie = "crumbs_session"
	loginCookie   = "crumbs_login"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// token returns the configured token equal to tok, comparing every one in constant time.
func (c *Console) token(tok string) (tokenEntry, bool) {
	sum := sha256.Sum256([]byte(tok))
	var found tokenEntry
	ok := 0
	for _, t := range c.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found, ok = t, 1
		}
	}
	return found, ok == 1 && tok != ""
}

// who returns the principal of r: a bearer token, else a live session.
func (c *Console) who(r *http.Request) (principal, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return principal{}, false
		}
		t, ok := c.token(tok)
		return principal{name: t.name, role: t.role}, ok
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return principal{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil || time.Now().After(s.expires) {
		return principal{}, false
	}
	return principal{name: s.name, role: s.role, sess: s}, true
}

// authed lets r through to next when it is authenticated and, when it changes state with a
// session, carries the session's CSRF token (a form field or the X-CSRF-Token header).
func (c *Console) authed(next func(http.ResponseWriter, *http.Request, principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := c.who(r)
		api := strings.HasPrefix(r.URL.Path, "/api/")
		if !ok {
			if api {
				w.Header().Set("WWW-Authenticate", `Bearer realm="crumbs"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "log in, or send Authorization: Bearer <token>"})
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && p.sess != nil {
			got := r.Header.Get(csrfHeader)
			if got == "" {
				r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
				got = r.PostFormValue(csrfField)
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(p.sess.csrf)) != 1 {
				if api {
					writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong CSRF token"})
				} else {
					http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				}
				return
			}
		}
		next(w, r, p)
	}
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil || c.tls != nil, SameSite: http.SameSiteStrictMode})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.who(r); ok {
		http.Redirect(w, r, "/alerts", http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, "", http.StatusOK)
}

// showLogin renders the login form with a fresh login CSRF token (double submit: a cookie
// and the form must agree).
func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, problem string, status int) {
	tok := randomID()
	c.setCookie(w, r, loginCookie, tok, 600)
	c.pages.render(w, status, "login", map[string]any{"CSRF": tok, "Problem": problem, "NoLogin": len(c.cfg.Users) == 0 && len(c.cfg.Tokens) == 0})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.showLogin(w, r, "the form could not be read", http.StatusBadRequest)
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue(csrfField))) != 1 {
		c.showLogin(w, r, "the login form expired: try again", http.StatusForbidden)
		return
	}
	if !c.logins.Allow() {
		c.showLogin(w, r, "too many login attempts: wait a moment", http.StatusTooManyRequests)
		return
	}
	name, role, ok := "", "", false
	if tok := r.PostFormValue("token"); tok != "" {
		var t tokenEntry
		t, ok = c.token(tok)
		name, role = t.name, t.role
	} else {
		user := r.PostFormValue("user")
		u, known := c.users[user]
		hash := c.dummy
		if known {
			hash = []byte(u.PasswordHash)
		}
		ok = bcrypt.CompareHashAndPassword(hash, []byte(r.PostFormValue("password"))) == nil && known
		name, role = u.Name, u.Role
	}
	if !ok {
		c.log.Warn("console login refused", "remote", r.RemoteAddr)
		c.showLogin(w, r, "unknown user, wrong password or unknown token", http.StatusUnauthorized)
		return
	}
	s := &session{id: randomID(), csrf: randomID(), name: name, role: role, created: time.Now(), expires: time.Now().Add(c.cfg.SessionTTL)}
	c.mu.Lock()
	if len(c.sessions) >= c.cfg.MaxSessions {
		var oldest *session
		for _, o := range c.sessions {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(c.sessions, oldest.id)
	}
	c.sessions[s.id] = s
	c.mu.Unlock()
	c.setCookie(w, r, loginCookie, "", -1)
	c.setCookie(w, r, sessionCookie, s.id, int(c.cfg.SessionTTL.Seconds()))
	c.log.Info("console login", "user", name, "role", role, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/alerts", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, p principal) {
	if p.sess != nil {
		c.mu.Lock()
		delete(c.sessions, p.sess.id)
		c.mu.Unlock()
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
