package console

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Roles of console users and API tokens.
const (
	// RoleRead reads pages and the read API.
	RoleRead = "read"
	// RoleTriage reads, and changes alerts' triage (acknowledge, resolve, assign, note, false
	// positive and its suppression).
	RoleTriage = "triage"
)

// Config configures the console and its triage API (keys under `console.`).
type Config struct {
	// Listen is the address the console serves on. Default 127.0.0.1:8421. An address other
	// than loopback needs TLS (console.tls.cert_file and key_file): the console refuses to
	// start without it.
	Listen string `mapstructure:"listen"`
	// TLS serves the console over TLS (keys under `console.tls.`).
	TLS TLSConfig `mapstructure:"tls"`
	// Users may log in with a name and password. Default none.
	Users []User `mapstructure:"users"`
	// Tokens may log in (the login page's token field) and call the API (Authorization:
	// Bearer <token>). Default none.
	Tokens []Token `mapstructure:"tokens"`
	// SessionTTL is how long a login lasts. Default 12h.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
	// MaxSessions bounds the sessions held; the oldest goes beyond it. Default 10000.
	MaxSessions int `mapstructure:"max_sessions"`
	// SuppressFor is how long a false positive suppresses its rule on its host (or group key)
	// when the analyst does not say. Default 168h (7 days).
	SuppressFor time.Duration `mapstructure:"suppress_for"`
	// MaxSuppressFor bounds a suppression. Default 2160h (90 days).
	MaxSuppressFor time.Duration `mapstructure:"max_suppress_for"`
	// PageSize is how many alerts the inbox lists. Default 50.
	PageSize int `mapstructure:"page_size"`
	// QueryTimeout bounds the ClickHouse queries of one page. Default 10s.
	QueryTimeout time.Duration `mapstructure:"query_timeout"`
}

// User is a console user (console.users[i]).
type User struct {
	// Name to log in with.
	Name string `mapstructure:"name"`
	// PasswordHash is the bcrypt hash of the password (`crumbs console hash-password`
	// prints one); a password is never configured in clear.
	PasswordHash string `mapstructure:"password_hash"`
	// Role is read or triage. Default read.
	Role string `mapstructure:"role"`
}

// Token is an API token (console.tokens[i]).
type Token struct {
	// Name names the token in triage records (updated_by) and logs.
	Name string `mapstructure:"name"`
	// Token is the secret; at least 16 characters.
	Token string `mapstructure:"token"`
	// Role is read or triage. Default read.
	Role string `mapstructure:"role"`
}

// TLSConfig configures TLS for the console (keys under `console.tls.`).
type TLSConfig struct {
	// CertFile is the PEM certificate chain; set with KeyFile, it turns TLS on (TLS 1.2 at
	// least; reread when it changes). Default empty.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default empty.
	KeyFile string `mapstructure:"key_file"`
}

// Enabled says whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8421", SessionTTL: 12 * time.Hour, MaxSessions: 10000, SuppressFor: 7 * 24 * time.Hour,
		MaxSuppressFor: 90 * 24 * time.Hour, PageSize: 50, QueryTimeout: 10 * time.Second}
}

// loopbackListen says whether a listen address can only be reached from this host.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validRole(r string) bool { return r == "" || r == RoleRead || r == RoleTriage }

// Validate reports every invalid key, each named.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("console.listen: %q: want host:port: %v", c.Listen, err))
	} else if !c.TLS.Enabled() && !loopbackListen(c.Listen) {
		errs = append(errs, fmt.Errorf("console.listen: %q is not a loopback address: set console.tls.cert_file and console.tls.key_file (TLS is required off loopback: passwords, tokens and session cookies never cross a network in clear), or listen on 127.0.0.1", c.Listen))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("console.tls.cert_file, console.tls.key_file: set both or neither"))
	}
	names := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("console.users.%d", i)
		if u.Name == "" || strings.ContainsAny(u.Name, " \t\r\n") || len(u.Name) > 100 {
			errs = append(errs, fmt.Errorf("%s.name: %q: must be 1 to 100 characters without spaces", key, u.Name))
		}
		if names[u.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q: named twice (users and tokens share names)", key, u.Name))
		}
		names[u.Name] = true
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("%s.password_hash: not a bcrypt hash (crumbs console hash-password prints one): %v", key, err))
		}
		if !validRole(u.Role) {
			errs = append(errs, fmt.Errorf("%s.role: %q: must be read or triage", key, u.Role))
		}
	}
	for i, t := range c.Tokens {
		key := fmt.Sprintf("console.tokens.%d", i)
		if t.Name == "" || len(t.Name) > 100 {
			errs = append(errs, fmt.Errorf("%s.name: %q: must be 1 to 100 characters", key, t.Name))
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q: named twice (users and tokens share names)", key, t.Name))
		}
		names[t.Name] = true
		if len(t.Token) < 16 {
			errs = append(errs, fmt.Errorf("%s.token: must be at least 16 characters", key))
		}
		if !validRole(t.Role) {
			errs = append(errs, fmt.Errorf("%s.role: %q: must be read or triage", key, t.Role))
		}
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("console.session_ttl: %s: must be at least 1m", c.SessionTTL))
	}
	if c.MaxSessions < 1 {
		errs = append(errs, fmt.Errorf("console.max_sessions: %d: must be at least 1", c.MaxSessions))
	}
	if c.SuppressFor <= 0 || c.SuppressFor > c.MaxSuppressFor {
		errs = append(errs, fmt.Errorf("console.suppress_for: %s: must be positive and at most console.max_suppress_for (%s)", c.SuppressFor, c.MaxSuppressFor))
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		errs = append(errs, fmt.Errorf("console.page_size: %d: must be between 1 and 1000", c.PageSize))
	}
	if c.QueryTimeout < time.Second {
		errs = append(errs, fmt.Errorf("console.query_timeout: %s: must be at least 1s", c.QueryTimeout))
	}
	return errors.Join(errs...)
}
