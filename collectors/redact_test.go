package collectors

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/schemas"
)

func newTestRedactor(t testing.TB, patterns ...string) *Redactor {
	t.Helper()
	r, err := NewRedactor(RedactConfig{Enabled: true, Patterns: patterns})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// redactForms is the table of tools and options whose secrets are redacted: each an argv and
// what it becomes. joined: the command line (argv joined) redacts the same way, which it
// cannot when a value holds spaces.
var redactForms = []struct {
	name   string
	in     []string
	want   []string
	joined bool
}{
	// Options and assignments named for a secret.
	{"--password=", []string{"app", "--password=hunter2", "--verbose"}, []string{"app", "--password=[REDACTED]", "--verbose"}, true},
	{"--password value", []string{"app", "--password", "hunter2", "-v"}, []string{"app", "--password", "[REDACTED]", "-v"}, true},
	{"value to the end of the argument", []string{"app", "--password=S3cret PW with space", "-v"}, []string{"app", "--password=[REDACTED]", "-v"}, false},
	{"separate value with spaces", []string{"app", "--password", "x y", "-v"}, []string{"app", "--password", "[REDACTED]", "-v"}, false},
	{"--db-pass=", []string{"app", "--db-pass=PW"}, []string{"app", "--db-pass=[REDACTED]"}, true},
	{"--db-password=", []string{"app", "--db-password=s3cr3t"}, []string{"app", "--db-password=[REDACTED]"}, true},
	{"--client-secret=", []string{"app", "--client-secret=PW"}, []string{"app", "--client-secret=[REDACTED]"}, true},
	{"--auth-token=", []string{"app", "--auth-token=PW"}, []string{"app", "--auth-token=[REDACTED]"}, true},
	{"--api-key=", []string{"app", "--api-key=PW"}, []string{"app", "--api-key=[REDACTED]"}, true},
	{"--apiKey camel case", []string{"app", "--apiKey=PW", "--accessToken", "PW2"}, []string{"app", "--apiKey=[REDACTED]", "--accessToken", "[REDACTED]"}, true},
	{"-Dkeystore.password=", []string{"java", "-Djavax.net.ssl.keyStorePassword=PW", "-jar", "a.jar"}, []string{"java", "-Djavax.net.ssl.keyStorePassword=[REDACTED]", "-jar", "a.jar"}, true},
	{"keytool -storepass", []string{"keytool", "-list", "-storepass", "PW"}, []string{"keytool", "-list", "-storepass", "[REDACTED]"}, true},
	{"two secrets", []string{"a", "--token", "t1", "--secret=t2"}, []string{"a", "--token", "[REDACTED]", "--secret=[REDACTED]"}, true},
	{"--password-file left", []string{"app", "--password-file=/run/secrets/db"}, []string{"app", "--password-file=/run/secrets/db"}, true},
	{"--password-stdin left", []string{"docker", "login", "--password-stdin", "-u", "bob"}, []string{"docker", "login", "--password-stdin", "-u", "bob"}, true},
	{"--no-password left", []string{"pg_dump", "--no-password", "shop"}, []string{"pg_dump", "--no-password", "shop"}, true},
	{"--tokenizer left", []string{"train", "--tokenizer=bert"}, []string{"train", "--tokenizer=bert"}, true},
	{"--token next is an option", []string{"app", "--token", "--verbose"}, []string{"app", "--token", "--verbose"}, true},
	{"--token-url left", []string{"app", "--token-url=https://auth/x"}, []string{"app", "--token-url=https://auth/x"}, true},
	// Environment-style assignments.
	{"GITHUB_PAT=", []string{"env", "GITHUB_PAT=ghp_x", "gh", "repo", "list"}, []string{"env", "GITHUB_PAT=[REDACTED]", "gh", "repo", "list"}, true},
	{"GITHUB_TOKEN=", []string{"env", "GITHUB_TOKEN=ghp_123", "gh"}, []string{"env", "GITHUB_TOKEN=[REDACTED]", "gh"}, true},
	{"*_SECRET=", []string{"env", "MY_APP_SECRET=xyz", "run"}, []string{"env", "MY_APP_SECRET=[REDACTED]", "run"}, true},
	{"*PASSWORD=", []string{"env", "DB_ROOTPASSWORD=xyz", "run"}, []string{"env", "DB_ROOTPASSWORD=[REDACTED]", "run"}, true},
	{"PGPASSWORD=", []string{"env", "PGPASSWORD=PW", "psql", "-h", "db"}, []string{"env", "PGPASSWORD=[REDACTED]", "psql", "-h", "db"}, true},
	{"MYSQL_PWD=", []string{"env", "MYSQL_PWD=PW", "mysql"}, []string{"env", "MYSQL_PWD=[REDACTED]", "mysql"}, true},
	{"AWS_SECRET_ACCESS_KEY=", []string{"env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "aws", "s3", "ls"}, []string{"env", "AWS_SECRET_ACCESS_KEY=[REDACTED]", "aws", "s3", "ls"}, true},
	{"AWS_ACCESS_KEY_ID left", []string{"env", "AWS_ACCESS_KEY_ID=AKIAX", "aws"}, []string{"env", "AWS_ACCESS_KEY_ID=AKIAX", "aws"}, true},
	{"PWD left", []string{"env", "PWD=/root", "OLDPWD=/", "ls"}, []string{"env", "PWD=/root", "OLDPWD=/", "ls"}, true},
	{"POSTGRES_PASSWORD_FILE left", []string{"env", "POSTGRES_PASSWORD_FILE=/run/secrets/pg", "postgres"}, []string{"env", "POSTGRES_PASSWORD_FILE=/run/secrets/pg", "postgres"}, true},
	{"token= in a query", []string{"curl", "https://api/x?token=abc&y=1"}, []string{"curl", "https://api/x?token=[REDACTED]&y=1"}, true},
	{"password= in a conninfo", []string{"psql", "host=db password=PW dbname=shop"}, []string{"psql", "host=db password=[REDACTED] dbname=shop"}, false},
	{"password= in mount options", []string{"mount", "-o", "username=u,password=PW", "//srv/share", "/mnt"}, []string{"mount", "-o", "username=u,password=[REDACTED]", "//srv/share", "/mnt"}, true},
	{"JSON body", []string{"curl", "-d", `{"user": "a", "password": "PW"}`, "https://api"}, []string{"curl", "-d", `{"user": "a", "password": "[REDACTED]"}`, "https://api"}, false},
	// URLs.
	{"URL user:password", []string{"psql", "postgres://alice:pa55@db:5432/app"}, []string{"psql", "postgres://alice:[REDACTED]@db:5432/app"}, true},
	{"git clone token", []string{"git", "clone", "https://ghp_TOKEN@github.com/o/r.git"}, []string{"git", "clone", "https://[REDACTED]@github.com/o/r.git"}, true},
	{"git clone user:token", []string{"git", "clone", "https://x-access-token:ghp_T@github.com/o/r"}, []string{"git", "clone", "https://x-access-token:[REDACTED]@github.com/o/r"}, true},
	{"ssh URL user left", []string{"git", "clone", "ssh://git@github.com/o/r"}, []string{"git", "clone", "ssh://git@github.com/o/r"}, true},
	{"URL without credentials", []string{"curl", "https://example.com/a:b@c"}, []string{"curl", "https://example.com/a:b@c"}, true},
	{"URL in an assignment", []string{"env", "DATABASE_URL=postgres://u:PW@db/x", "app"}, []string{"env", "DATABASE_URL=postgres://u:[REDACTED]@db/x", "app"}, true},
	// Headers.
	{"Authorization: Bearer", []string{"curl", "-H", "Authorization: Bearer eyJhbGciOi.x.y", "https://api"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]", "https://api"}, true},
	{"authorization: basic", []string{"curl", "-H", "authorization: basic dXNlcjpwYXNz"}, []string{"curl", "-H", "authorization: basic [REDACTED]"}, true},
	{"Cookie:", []string{"curl", "-H", "Cookie: session=abc; csrf=def", "https://x"}, []string{"curl", "-H", "Cookie: [REDACTED]", "https://x"}, false},
	{"X-Api-Key:", []string{"curl", "-H", "X-Api-Key: k123", "https://api"}, []string{"curl", "-H", "X-Api-Key: [REDACTED]", "https://api"}, true},
	{"git extraHeader", []string{"git", "-c", "http.extraHeader=Authorization: Basic eDpQVw==", "fetch"}, []string{"git", "-c", "http.extraHeader=Authorization: Basic [REDACTED]", "fetch"}, true},
	{"Bearer alone", []string{"grpcurl", "-rpc-header", "x: Bearer abcdefgh123", "h:1"}, []string{"grpcurl", "-rpc-header", "x: Bearer [REDACTED]", "h:1"}, true},
	// Tools.
	{"curl -uadmin:PW", []string{"curl", "-uadmin:PW", "https://x"}, []string{"curl", "-uadmin:[REDACTED]", "https://x"}, true},
	{"curl -u admin:PW", []string{"curl", "-u", "admin:PW", "https://x"}, []string{"curl", "-u", "admin:[REDACTED]", "https://x"}, true},
	{"curl --user=a:PW", []string{"curl", "--user=a:PW", "https://x"}, []string{"curl", "--user=a:[REDACTED]", "https://x"}, true},
	{"curl --user a:PW", []string{"curl", "--user", "a:PW", "https://x"}, []string{"curl", "--user", "a:[REDACTED]", "https://x"}, true},
	{"curl -u TOKEN:", []string{"curl", "-u", "TOKEN:", "https://x"}, []string{"curl", "-u", "[REDACTED]:", "https://x"}, true},
	{"curl -u user alone left", []string{"curl", "-u", "bob", "https://x"}, []string{"curl", "-u", "bob", "https://x"}, true},
	{"curl --cookie", []string{"curl", "--cookie", "sid=abc", "https://x"}, []string{"curl", "--cookie", "[REDACTED]", "https://x"}, true},
	{"openssl -pass pass:", []string{"openssl", "enc", "-aes256", "-pass", "pass:PW", "-in", "f"}, []string{"openssl", "enc", "-aes256", "-pass", "pass:[REDACTED]", "-in", "f"}, true},
	{"openssl -passin -passout", []string{"openssl", "pkcs12", "-passin", "pass:A", "-passout", "pass:B"}, []string{"openssl", "pkcs12", "-passin", "pass:[REDACTED]", "-passout", "pass:[REDACTED]"}, true},
	{"openssl env: and file: left", []string{"openssl", "pkcs12", "-passin", "env:PW", "-passout", "file:/run/pw", "-pass", "stdin"}, []string{"openssl", "pkcs12", "-passin", "env:PW", "-passout", "file:/run/pw", "-pass", "stdin"}, true},
	{"openssl enc -k", []string{"openssl", "enc", "-k", "PW"}, []string{"openssl", "enc", "-k", "[REDACTED]"}, true},
	{"docker login -p", []string{"docker", "login", "-u", "bob", "-p", "PW", "reg.io"}, []string{"docker", "login", "-u", "bob", "-p", "[REDACTED]", "reg.io"}, true},
	{"docker login --password", []string{"docker", "login", "--password", "PW", "reg.io"}, []string{"docker", "login", "--password", "[REDACTED]", "reg.io"}, true},
	{"docker login --password=", []string{"docker", "login", "--password=PW"}, []string{"docker", "login", "--password=[REDACTED]"}, true},
	{"docker run -p left", []string{"docker", "run", "-p", "8080:80", "nginx"}, []string{"docker", "run", "-p", "8080:80", "nginx"}, true},
	{"podman login -p", []string{"podman", "login", "-pPW", "reg.io"}, []string{"podman", "login", "-p[REDACTED]", "reg.io"}, true},
	{"aws configure set", []string{"aws", "configure", "set", "aws_secret_access_key", "PW"}, []string{"aws", "configure", "set", "aws_secret_access_key", "[REDACTED]"}, true},
	{"aws configure set session token", []string{"aws", "configure", "set", "aws_session_token", "PW", "--profile", "p"}, []string{"aws", "configure", "set", "aws_session_token", "[REDACTED]", "--profile", "p"}, true},
	{"aws configure set region left", []string{"aws", "configure", "set", "region", "eu-west-1"}, []string{"aws", "configure", "set", "region", "eu-west-1"}, true},
	{"zip -P", []string{"zip", "-P", "PW", "a.zip", "f"}, []string{"zip", "-P", "[REDACTED]", "a.zip", "f"}, true},
	{"unzip -P", []string{"unzip", "-PPW", "a.zip"}, []string{"unzip", "-P[REDACTED]", "a.zip"}, true},
	{"7z -pPW", []string{"7z", "x", "-pPW", "a.7z"}, []string{"7z", "x", "-p[REDACTED]", "a.7z"}, true},
	{"7z -p prompts", []string{"7z", "a", "-p", "a.7z", "f"}, []string{"7z", "a", "-p", "a.7z", "f"}, true},
	{"rar -hp", []string{"rar", "a", "-hpPW", "a.rar"}, []string{"rar", "a", "-hp[REDACTED]", "a.rar"}, true},
	{"ssh-keygen -N", []string{"ssh-keygen", "-t", "ed25519", "-N", "PW", "-f", "k"}, []string{"ssh-keygen", "-t", "ed25519", "-N", "[REDACTED]", "-f", "k"}, true},
	{"ssh-keygen -P", []string{"ssh-keygen", "-p", "-P", "OLD", "-N", "NEW", "-f", "k"}, []string{"ssh-keygen", "-p", "-P", "[REDACTED]", "-N", "[REDACTED]", "-f", "k"}, true},
	{"smbclient -U u%PW", []string{"smbclient", "//srv/s", "-U", "u%PW"}, []string{"smbclient", "//srv/s", "-U", "u%[REDACTED]"}, true},
	{"smbclient --user=u%PW", []string{"smbclient", "//srv/s", "--user=u%PW"}, []string{"smbclient", "//srv/s", "--user=u%[REDACTED]"}, true},
	{"htpasswd -b", []string{"htpasswd", "-b", "/etc/htpasswd", "u", "PW"}, []string{"htpasswd", "-b", "/etc/htpasswd", "u", "[REDACTED]"}, true},
	{"htpasswd -nb", []string{"htpasswd", "-nbB", "u", "PW"}, []string{"htpasswd", "-nbB", "u", "[REDACTED]"}, true},
	{"htpasswd without -b left", []string{"htpasswd", "-c", "/etc/htpasswd", "u"}, []string{"htpasswd", "-c", "/etc/htpasswd", "u"}, true},
	{"mysql -pPW", []string{"mysql", "-uroot", "-phunter2", "shop"}, []string{"mysql", "-uroot", "-p[REDACTED]", "shop"}, true},
	{"mysql -p prompts", []string{"mysql", "-u", "root", "-p", "shop"}, []string{"mysql", "-u", "root", "-p", "shop"}, true},
	{"mysqldump path", []string{"/usr/bin/mysqldump", "-pX", "db"}, []string{"/usr/bin/mysqldump", "-p[REDACTED]", "db"}, true},
	{"sshpass -p", []string{"sshpass", "-p", "hunter2", "ssh", "host"}, []string{"sshpass", "-p", "[REDACTED]", "ssh", "host"}, true},
	{"ssh -p left", []string{"ssh", "-p", "2222", "host"}, []string{"ssh", "-p", "2222", "host"}, true},
	{"redis-cli -a", []string{"redis-cli", "-a", "pw", "ping"}, []string{"redis-cli", "-a", "[REDACTED]", "ping"}, true},
	{"ldapsearch -w", []string{"ldapsearch", "-D", "cn=admin", "-w", "PW"}, []string{"ldapsearch", "-D", "cn=admin", "-w", "[REDACTED]"}, true},
	{"sqlcmd -P", []string{"sqlcmd", "-S", "db", "-U", "sa", "-P", "PW"}, []string{"sqlcmd", "-S", "db", "-U", "sa", "-P", "[REDACTED]"}, true},
	{"vault login", []string{"vault", "login", "hvs.TOKEN"}, []string{"vault", "login", "[REDACTED]"}, true},
	// Wrappers and shells.
	{"after sudo", []string{"sudo", "-u", "mysql", "mysql", "-pPW"}, []string{"sudo", "-u", "mysql", "mysql", "-p[REDACTED]"}, true},
	{"after env assignments", []string{"env", "LANG=C", "sshpass", "-p", "PW", "ssh", "h"}, []string{"env", "LANG=C", "sshpass", "-p", "[REDACTED]", "ssh", "h"}, true},
	{"sh -c", []string{"sh", "-c", "mysql -pX db"}, []string{"sh", "-c", "mysql -p[REDACTED] db"}, true},
	{"bash -lc", []string{"bash", "-lc", "curl -u a:PW https://x"}, []string{"bash", "-lc", "curl -u a:[REDACTED] https://x"}, true},
	{"no secret", []string{"/usr/bin/ls", "-la", "/tmp"}, []string{"/usr/bin/ls", "-la", "/tmp"}, true},
}

func TestRedactForms(t *testing.T) {
	r := newTestRedactor(t)
	for _, tc := range redactForms {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]string(nil), tc.in...)
			if diff := cmp.Diff(tc.want, r.Args(in)); diff != "" {
				t.Errorf("Args(%q) (-want +got):\n%s", tc.in, diff)
			}
			if diff := cmp.Diff(tc.in, in); diff != "" {
				t.Errorf("Args changed its argument (-want +got):\n%s", diff)
			}
			if !tc.joined {
				return
			}
			line := strings.Join(tc.in, " ")
			if diff := cmp.Diff(strings.Join(tc.want, " "), r.CmdLine(line)); diff != "" {
				t.Errorf("CmdLine(%q) (-want +got):\n%s", line, diff)
			}
		})
	}
}

// TestRedactCmdLine: command lines without their argv (a parent's, another kind's) are
// redacted word by word; custom patterns apply.
func TestRedactCmdLine(t *testing.T) {
	r := newTestRedactor(t, `--vault-pin[= ](\S+)`)
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"header over words", "curl -H Authorization: Bearer eyJhbGciOi.x.y https://api", "curl -H Authorization: Bearer [REDACTED] https://api"},
		{"quoted header", "sh -c curl -H 'Authorization: Bearer eyJhbGciOi' x", "sh -c curl -H 'Authorization: Bearer [REDACTED]' x"},
		{"cookie over words", "curl -H Cookie: a=1; b=2 https://x", "curl -H Cookie: [REDACTED] [REDACTED] https://x"},
		{"custom pattern", "hsm --vault-pin 1234", "hsm --vault-pin [REDACTED]"},
		{"shell assignment", "sh -c PGPASSWORD=x psql", "sh -c PGPASSWORD=[REDACTED] psql"},
		{"value with spaces keeps its tail without argv", "app --password=S3cret PW with space", "app --password=[REDACTED] PW with space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, r.CmdLine(tc.in)); diff != "" {
				t.Errorf("CmdLine(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// TestRedactNative redacts an event's argv, its command line as the redacted argv joined (a
// value with spaces loses all of it), and its parent's command line; a later event whose
// parent is that process gets the same redacted line.
func TestRedactNative(t *testing.T) {
	r := newTestRedactor(t)
	ev := map[string]any{"process": map[string]any{
		"cmd_line": "app --password=S3cret PW with space -v",
		"args":     []any{"app", "--password=S3cret PW with space", "-v"},
		"parent":   map[string]any{"cmd_line": "sh -c app --token t"},
	}}
	r.Native(ev)
	want := map[string]any{"process": map[string]any{
		"cmd_line": "app --password=[REDACTED] -v",
		"args":     []any{"app", "--password=[REDACTED]", "-v"},
		"parent":   map[string]any{"cmd_line": "sh -c app --token [REDACTED]"},
	}}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("Native (-want +got):\n%s", diff)
	}
	child := map[string]any{"process": map[string]any{
		"cmd_line": "cat /etc/hosts", "args": []string{"cat", "/etc/hosts"},
		"parent": map[string]any{"cmd_line": "app --password=S3cret PW with space -v"},
	}}
	r.Native(child)
	if got := child["process"].(map[string]any)["parent"].(map[string]any)["cmd_line"]; got != "app --password=[REDACTED] -v" {
		t.Errorf("parent command line %q, want it redacted as its argv was", got)
	}
	file := map[string]any{"process": map[string]any{"cmd_line": "app --password=S3cret PW with space -v"}}
	r.Native(file)
	if got := file["process"].(map[string]any)["cmd_line"]; got != "app --password=[REDACTED] -v" {
		t.Errorf("command line without argv %q, want it redacted as its argv was", got)
	}
	var nilR *Redactor
	nilR.Native(ev) // a nil Redactor redacts nothing
}

func TestRedactEvent(t *testing.T) {
	r := newTestRedactor(t)
	actor := schemas.Actor{CmdLine: "mysql -u root --password=x"}
	redacted := schemas.Actor{CmdLine: "mysql -u root --password=[REDACTED]"}
	tests := []struct {
		name     string
		in, want any
	}{
		{"process", &schemas.ProcessEvent{Process: schemas.Process{
			CmdLine: "app --password=x", Args: []string{"app", "--password=x"},
			Parent: schemas.Parent{CmdLine: "sh -c app --token t"}}},
			&schemas.ProcessEvent{Process: schemas.Process{
				CmdLine: "app --password=[REDACTED]", Args: []string{"app", "--password=[REDACTED]"},
				Parent: schemas.Parent{CmdLine: "sh -c app --token [REDACTED]"}}}},
		{"process, a value with spaces", &schemas.ProcessEvent{Process: schemas.Process{
			CmdLine: "app --password=S3cret PW with space -v", Args: []string{"app", "--password=S3cret PW with space", "-v"}}},
			&schemas.ProcessEvent{Process: schemas.Process{
				CmdLine: "app --password=[REDACTED] -v", Args: []string{"app", "--password=[REDACTED]", "-v"}}}},
		{"network", &schemas.NetworkEvent{Process: actor}, &schemas.NetworkEvent{Process: redacted}},
		{"file", &schemas.FileEvent{Process: actor}, &schemas.FileEvent{Process: redacted}},
		{"identity", &schemas.IdentityEvent{Process: actor}, &schemas.IdentityEvent{Process: redacted}},
		{"native", map[string]any{"process": map[string]any{"cmd_line": "app --password=x"}},
			map[string]any{"process": map[string]any{"cmd_line": "app --password=[REDACTED]"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.Event(tt.in)
			if diff := cmp.Diff(tt.want, tt.in); diff != "" {
				t.Errorf("Event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedactConfig(t *testing.T) {
	r, err := NewRedactor(RedactConfig{Enabled: false})
	if err != nil || r != nil {
		t.Errorf("disabled: got %v, %v; want nil, nil", r, err)
	}
	_, err = NewRedactor(RedactConfig{Enabled: true, Patterns: []string{"ok", "(bad"}})
	if err == nil || !strings.Contains(err.Error(), "collectors.redact.patterns[1]") {
		t.Errorf("bad pattern: error %v does not name collectors.redact.patterns[1]", err)
	}
}

// FuzzRedact checks that redaction never panics and is idempotent, on argv and command
// lines, and that a secret put in any form of the table is gone from the output, whatever
// surrounds it.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"app --password=x", "mysql -pX", "a://u:p@h", "Authorization: Bearer abcdefghij", "TOKEN=1 x",
		"curl -H 'Cookie: a=1; b=2'", `{"password": "x"}`, "sh -c 'sudo mysql -pX'", "htpasswd -b f u p"} {
		f.Add(s, "hunter2")
	}
	r := newTestRedactor(f)
	f.Fuzz(func(t *testing.T, s, secret string) {
		once := r.CmdLine(s)
		if twice := r.CmdLine(once); twice != once {
			t.Errorf("CmdLine not idempotent: %q -> %q -> %q", s, once, twice)
		}
		args := strings.Split(s, "\x00")
		onceArgs := r.Args(args)
		if twice := r.Args(onceArgs); !slices.Equal(twice, onceArgs) {
			t.Errorf("Args not idempotent: %q -> %q -> %q", args, onceArgs, twice)
		}
		// A secret of letters and digits only, so that it cannot end its argument early or
		// read as something else; at least 8, so that it is not found by chance elsewhere.
		secret = "Zq9" + strings.Map(func(c rune) rune {
			if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
				return c
			}
			return -1
		}, secret) + "x7Kw"
		for _, form := range redactForms {
			if slices.Equal(form.in, form.want) {
				continue
			}
			in := make([]string, 0, len(form.in)+1)
			for i, a := range form.in {
				if a != form.want[i] { // the secret is the last PW or hunter2 of the argument
					for _, old := range []string{"PW", "hunter2"} {
						if k := strings.LastIndex(a, old); k >= 0 {
							a = a[:k] + secret + a[k+len(old):]
							break
						}
					}
				}
				in = append(in, a)
			}
			if !slices.ContainsFunc(in, func(a string) bool { return strings.Contains(a, secret) }) {
				continue
			}
			if last := len(form.in) - 1; form.in[last] == form.want[last] {
				in = append(in, s) // whatever follows, unless the secret is the last argument
			}
			for _, out := range r.Args(in)[:len(form.in)] {
				if strings.Contains(out, secret) {
					t.Errorf("%s: secret %q left in %q", form.name, secret, r.Args(in))
				}
			}
		}
	})
}

// BenchmarkRedact measures redaction per exec: of a command line (CmdLine, word by word) and
// of an argv (Args), clean, with options that look like secrets, and with secrets.
func BenchmarkRedact(b *testing.B) {
	r := newTestRedactor(b)
	for _, bc := range []struct{ name, in string }{
		{"clean", "/usr/lib/jvm/java-17/bin/java -Xmx2g -cp /opt/app/lib/* com.example.Main --port 8080 --workers 4"},
		{"candidate", "/usr/bin/python3 /opt/app/manage.py runserver --settings=app.settings.prod --noreload"},
		{"secret", "/usr/bin/app --db-url postgres://app:hunter2@db:5432/app --token=abc123 --verbose"},
	} {
		b.Run("cmdline/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				_ = r.CmdLine(bc.in)
			}
		})
		args := strings.Split(bc.in, " ")
		b.Run("args/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				_ = r.Args(args)
			}
		})
	}
}
