package collectors

import (
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

func TestRedactCmdLine(t *testing.T) {
	r := newTestRedactor(t, `--vault-pin[= ](\S+)`)
	for _, tc := range []struct{ name, in, want string }{
		{"no secret", "/usr/bin/ls -la /tmp", "/usr/bin/ls -la /tmp"},
		{"empty", "", ""},
		{"password equals", "app --password=hunter2 --verbose", "app --password=[REDACTED] --verbose"},
		{"password separate", "app --password hunter2 --verbose", "app --password [REDACTED] --verbose"},
		{"db-password", "app --db-password=s3cr3t", "app --db-password=[REDACTED]"},
		{"password-file left", "app --password-file=/run/secrets/db", "app --password-file=/run/secrets/db"},
		{"password-stdin left", "docker login --password-stdin -u bob", "docker login --password-stdin -u bob"},
		{"tokenizer left", "train --tokenizer=bert", "train --tokenizer=bert"},
		{"token=", "client token=abc123 other", "client token=[REDACTED] other"},
		{"aws env", "env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG aws s3 ls", "env AWS_SECRET_ACCESS_KEY=[REDACTED] aws s3 ls"},
		{"star secret", "env MY_APP_SECRET=xyz run", "env MY_APP_SECRET=[REDACTED] run"},
		{"star token", "GITHUB_TOKEN=ghp_123 gh pr list", "GITHUB_TOKEN=[REDACTED] gh pr list"},
		{"url creds", "psql postgres://alice:pa55@db:5432/app", "psql postgres://alice:[REDACTED]@db:5432/app"},
		{"url no creds", "curl https://example.com/a:b@c", "curl https://example.com/a:b@c"},
		{"query token", "curl https://api/x?token=abc&y=1", "curl https://api/x?token=[REDACTED]&y=1"},
		{"bearer header", "curl -H Authorization: Bearer eyJhbGciOi.x.y https://api", "curl -H Authorization: Bearer [REDACTED] https://api"},
		{"basic header", "curl -H authorization: basic dXNlcjpwYXNz", "curl -H authorization: basic [REDACTED]"},
		{"api key header", "curl -H X-Api-Key: k123 https://api", "curl -H X-Api-Key: [REDACTED] https://api"},
		{"mysql attached", "mysql -uroot -phunter2 shop", "mysql -uroot -p[REDACTED] shop"},
		{"mysql prompt keeps db", "mysql -u root -p shop", "mysql -u root -p shop"},
		{"mysql path", "/usr/bin/mysqldump -pX db", "/usr/bin/mysqldump -p[REDACTED] db"},
		{"-p elsewhere left", "ssh -p 2222 host", "ssh -p 2222 host"},
		{"sshpass", "sshpass -p hunter2 ssh host", "sshpass -p [REDACTED] ssh host"},
		{"curl user", "curl -u bob:pw https://x", "curl -u [REDACTED] https://x"},
		{"redis", "redis-cli -a pw ping", "redis-cli -a [REDACTED] ping"},
		{"custom pattern", "hsm --vault-pin 1234", "hsm --vault-pin [REDACTED]"},
		{"sh -c", "sh -c mysql -pX", "sh -c mysql -pX"}, // the tool is not the first word of the line
		{"two secrets", "a --token t1 --secret=t2", "a --token [REDACTED] --secret=[REDACTED]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, r.CmdLine(tc.in)); diff != "" {
				t.Errorf("CmdLine(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestRedactArgs(t *testing.T) {
	r := newTestRedactor(t)
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"none", []string{"ls", "-l"}, []string{"ls", "-l"}},
		{"separate", []string{"app", "--password", "x y", "-v"}, []string{"app", "--password", "[REDACTED]", "-v"}},
		{"equals", []string{"app", "--api-key=k"}, []string{"app", "--api-key=[REDACTED]"}},
		{"next is option", []string{"app", "--token", "--verbose"}, []string{"app", "--token", "--verbose"}},
		{"mysql", []string{"/usr/bin/mysql", "-pX", "db"}, []string{"/usr/bin/mysql", "-p[REDACTED]", "db"}},
		{"sshpass", []string{"sshpass", "-p", "pw", "ssh"}, []string{"sshpass", "-p", "[REDACTED]", "ssh"}},
		{"sh -c", []string{"sh", "-c", "mysql -pX db"}, []string{"sh", "-c", "mysql -p[REDACTED] db"}},
		{"header arg", []string{"curl", "-H", "Authorization: Bearer abcdefgh123"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]string(nil), tc.in...)
			if diff := cmp.Diff(tc.want, r.Args(in)); diff != "" {
				t.Errorf("Args(%q) (-want +got):\n%s", tc.in, diff)
			}
			if diff := cmp.Diff(tc.in, in); diff != "" {
				t.Errorf("Args changed its argument (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedactNative(t *testing.T) {
	r := newTestRedactor(t)
	ev := map[string]any{"process": map[string]any{
		"cmd_line": "app --password=x",
		"args":     []any{"app", "--password=x"},
		"parent":   map[string]any{"cmd_line": "sh -c app --token t"},
	}}
	r.Native(ev)
	want := map[string]any{"process": map[string]any{
		"cmd_line": "app --password=[REDACTED]",
		"args":     []any{"app", "--password=[REDACTED]"},
		"parent":   map[string]any{"cmd_line": "sh -c app --token [REDACTED]"},
	}}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("Native (-want +got):\n%s", diff)
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

// FuzzRedact checks that redaction never panics, is idempotent, and never leaves a
// password given as --password=VALUE.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"app --password=x", "mysql -pX", "a://u:p@h", "Authorization: Bearer abcdefghij", "TOKEN=1 x"} {
		f.Add(s)
	}
	r := newTestRedactor(f)
	f.Fuzz(func(t *testing.T, s string) {
		once := r.CmdLine(s)
		if twice := r.CmdLine(once); twice != once {
			t.Errorf("not idempotent: %q -> %q -> %q", s, once, twice)
		}
		_ = r.Args(strings.Split(s, " "))
		secret := "Zq9" + strings.Map(func(c rune) rune {
			if c >= 'a' && c <= 'z' {
				return c
			}
			return -1
		}, s)
		if out := r.CmdLine("app --password=" + secret); strings.Contains(out, secret) {
			t.Errorf("secret %q left in %q", secret, out)
		}
	})
}

func BenchmarkRedact(b *testing.B) {
	r := newTestRedactor(b)
	for _, bc := range []struct{ name, in string }{
		{"clean", "/usr/lib/jvm/java-17/bin/java -Xmx2g -cp /opt/app/lib/* com.example.Main --port 8080 --workers 4"},
		{"candidate", "/usr/bin/python3 /opt/app/manage.py runserver --settings=app.settings.prod --noreload"},
		{"secret", "/usr/bin/app --db-url postgres://app:hunter2@db:5432/app --token=abc123 --verbose"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				_ = r.CmdLine(bc.in)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/cmdline")
		})
	}
}
