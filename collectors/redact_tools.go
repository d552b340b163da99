package collectors

import (
	"strings"
)

// toolOpt is an option of a tool whose value is a secret although its name does not say so.
type toolOpt struct {
	flag     string
	separate bool                // the value is the next argument (-p x)
	attached bool                // the value may follow in the same argument (-px); a long option also takes --opt=x
	value    func(string) string // what of the value is redacted; nil: all of it
}

// toolSpec is what the Redactor knows of one tool.
type toolSpec struct {
	sub  string    // the subcommand its options belong to (docker login); empty: any
	opts []toolOpt // its secret options
	// argv redacts secrets given by position (htpasswd -b file user PASSWORD); nil: none.
	argv func(v *argv, args []string, toolAt int)
}

func opts(flags string, separate, attached bool, value func(string) string) []toolOpt {
	var out []toolOpt
	for _, f := range strings.Fields(flags) {
		out = append(out, toolOpt{flag: f, separate: separate, attached: attached, value: value})
	}
	return out
}

func join(lists ...[]toolOpt) []toolOpt {
	var out []toolOpt
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// toolSpecs is the table of tools and the options that carry their secrets. mysql's `-p x`
// prompts for the password and x is the database, so only the attached form is a secret; 7z
// and rar likewise.
var toolSpecs = func() map[string]*toolSpec {
	m := map[string]*toolSpec{}
	add := func(names string, s *toolSpec) {
		for _, n := range strings.Fields(names) {
			m[n] = s
		}
	}
	add("mysql mysqldump mysqladmin mysqlimport mysqlshow mysqlcheck mysqlpump mysqlbinlog mariadb mariadb-dump mariadb-admin mariadb-import mariadb-check",
		&toolSpec{opts: opts("-p", false, true, nil)})
	add("sshpass", &toolSpec{opts: opts("-p", true, true, nil)})
	add("redis-cli valkey-cli", &toolSpec{opts: opts("-a --pass", true, false, nil)})
	add("mongo mongosh mongodump mongorestore mongoexport mongoimport mongostat mongotop", &toolSpec{opts: opts("-p", true, false, nil)})
	add("ldapsearch ldapmodify ldapadd ldapdelete ldapmodrdn ldapcompare ldapwhoami ldapexop ldapurl",
		&toolSpec{opts: opts("-w", true, true, nil)})
	add("ldappasswd", &toolSpec{opts: opts("-w -s -a", true, true, nil)})
	add("curl", &toolSpec{opts: join(
		opts("-u --user -U --proxy-user", true, true, userColonPass),
		opts("--oauth2-bearer -b --cookie", true, true, nil))})
	add("openssl", &toolSpec{opts: join(
		opts("-pass -passin -passout -password -srppass", true, false, opensslPass),
		opts("-k -K", true, false, nil))})
	add("docker podman nerdctl buildah oras crane regctl helm", &toolSpec{sub: "login", opts: opts("-p --password", true, true, nil)})
	add("skopeo", &toolSpec{opts: opts("--creds --src-creds --dest-creds", true, true, userColonPass)})
	add("zip unzip zipcloak funzip", &toolSpec{opts: opts("-P", true, true, nil)})
	add("7z 7za 7zr 7zz", &toolSpec{opts: opts("-p", false, true, nil)})
	add("rar unrar", &toolSpec{opts: opts("-p -hp", false, true, nil)})
	add("ssh-keygen", &toolSpec{opts: opts("-N -P", true, true, nil)})
	add("smbclient rpcclient smbcacls smbget smbtree smbmap smbcquotas net", &toolSpec{opts: join(
		opts("-U --user", true, true, userPercentPass),
		opts("-p", true, false, nil))})
	add("sqlcmd bcp osql isql", &toolSpec{opts: opts("-P", true, true, nil)})
	add("useradd usermod", &toolSpec{opts: opts("-p", true, true, nil)})
	add("nmcli", &toolSpec{opts: opts("password wifi-sec.psk 802-1x.password", true, false, nil)})
	add("htpasswd", &toolSpec{argv: htpasswdArgv})
	add("aws", &toolSpec{argv: awsConfigureArgv})
	add("vault", &toolSpec{argv: vaultLoginArgv})
	add("wpa_passphrase", &toolSpec{argv: func(v *argv, args []string, at int) {
		if at+2 < len(args) {
			v.set(at+2, Redacted)
		}
	}})
	return m
}()

// redact applies the tool's options to args[i]; it reports whether the option was the tool's
// and how many elements after i it took.
func (s *toolSpec) redact(v *argv, args []string, i, toolAt int) (int, bool) {
	if s.sub != "" && !hasSubcommand(args, toolAt, s.sub) {
		return 0, false
	}
	a := args[i]
	for _, o := range s.opts {
		switch {
		case a == o.flag && o.separate:
			if i+1 < len(args) {
				v.set(i+1, o.redactValue(args[i+1]))
			}
			return 1, true
		case strings.HasPrefix(o.flag, "--") && len(a) > len(o.flag) && a[len(o.flag)] == '=' && strings.HasPrefix(a, o.flag):
			v.set(i, o.flag+"="+o.redactValue(a[len(o.flag)+1:]))
			return 0, true
		case o.attached && len(a) > len(o.flag) && strings.HasPrefix(a, o.flag) && !strings.HasPrefix(o.flag, "--"):
			v.set(i, o.flag+o.redactValue(a[len(o.flag):]))
			return 0, true
		}
	}
	return 0, false
}

func (o toolOpt) redactValue(s string) string {
	if o.value != nil {
		return o.value(s)
	}
	if s == "" {
		return s
	}
	return Redacted
}

// hasSubcommand tells whether the first argument after the tool that is not an option is sub.
func hasSubcommand(args []string, toolAt int, sub string) bool {
	for _, a := range args[toolAt+1:] {
		if !strings.HasPrefix(a, "-") {
			return a == sub
		}
	}
	return false
}

// userColonPass keeps the user of user:password (curl -u, skopeo --creds); a value without
// a colon is a user name alone (curl asks for the password); "token:" is a token.
func userColonPass(s string) string {
	user, pass, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return s
	case pass != "":
		if pass == Redacted {
			return s
		}
		return user + ":" + Redacted
	case user != "" && user != Redacted:
		return Redacted + ":"
	}
	return s
}

// userPercentPass keeps the user of Samba's user%password.
func userPercentPass(s string) string {
	user, pass, ok := strings.Cut(s, "%")
	if !ok || pass == "" || pass == Redacted {
		return s
	}
	return user + "%" + Redacted
}

// opensslPass redacts pass:secret and leaves the other sources (env:, file:, fd:, stdin),
// which name no secret.
func opensslPass(s string) string {
	if strings.HasPrefix(s, "pass:") && len(s) > len("pass:") {
		return "pass:" + Redacted
	}
	return s
}

// htpasswdArgv: with -b the password is the last argument (htpasswd -b[c] file user password,
// htpasswd -nb user password).
func htpasswdArgv(v *argv, args []string, toolAt int) {
	batch := false
	for _, a := range args[toolAt+1:] {
		if len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.IndexByte(a, 'b') > 0 {
			batch = true
		}
	}
	if last := len(args) - 1; batch && last > toolAt+1 && !strings.HasPrefix(args[last], "-") {
		v.set(last, Redacted)
	}
}

// awsConfigureArgv: aws configure set NAME VALUE, where NAME is a secret
// (aws_secret_access_key, aws_session_token, profile.x.aws_secret_access_key).
func awsConfigureArgv(v *argv, args []string, toolAt int) {
	for j := toolAt + 1; j+3 < len(args); j++ {
		if args[j] == "configure" && args[j+1] == "set" && isSecretName(args[j+2], false) {
			v.set(j+3, Redacted)
		}
	}
}

// vaultLoginArgv: vault login TOKEN (a token given as the first argument of login).
func vaultLoginArgv(v *argv, args []string, toolAt int) {
	if !hasSubcommand(args, toolAt, "login") {
		return
	}
	seen := false
	for j := toolAt + 1; j < len(args); j++ {
		a := args[j]
		switch {
		case strings.HasPrefix(a, "-"):
		case !seen:
			seen = true // login
		case strings.IndexByte(a, '=') < 0:
			v.set(j, Redacted)
			return
		}
	}
}
