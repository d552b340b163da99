package collectors

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Redacted replaces every secret the Redactor finds.
const Redacted = "[REDACTED]"

// RedactConfig configures the redaction of secrets in command lines (keys under
// `collectors.redact.`).
type RedactConfig struct {
	// Enabled turns redaction on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Patterns are Go regexps (RE2 syntax) added to the built-in rules. When a pattern has
	// a capture group, the text of its first group is replaced; otherwise the whole match.
	// They are tried on every argument and command line, so keep them anchored on a literal.
	// Default none.
	Patterns []string `mapstructure:"patterns"`
}

// DefaultRedactConfig returns the documented defaults.
func DefaultRedactConfig() RedactConfig { return RedactConfig{Enabled: true} }

// Validate reports every pattern that does not compile, naming its key.
func (c RedactConfig) Validate() error {
	var errs []error
	for i, p := range c.Patterns {
		if _, err := regexp.Compile(p); err != nil {
			errs = append(errs, fmt.Errorf("collectors.redact.patterns[%d]: %q: %w", i, p, err))
		}
	}
	return errors.Join(errs...)
}

// Redactor replaces secrets in command lines and arguments with [REDACTED]. The unit is the
// argument (an argv element): a secret runs to the end of its argument, so
// `--password=S3cret PW with space` loses all of its value. What it finds, without a regexp:
//
//   - options and assignments named for a secret, the value in the same argument or the next:
//     `--password=x`, `--db-pass x`, `-Dkeystore.password=x`, `GITHUB_PAT=x`, `PGPASSWORD=x`,
//     `MY_TOKEN=x`, `token=x` in a query string or a libpq conninfo; a name is a secret when one
//     of its words (split at - _ .) ends with password, passwd, passphrase, pass, pwd, secret,
//     token, credential(s) or creds, or is key, apikey, accesskey, secretkey, privatekey (and,
//     in upper-case environment names, PAT or AUTH), unless its last word says the value is
//     not the secret itself (`--password-file`, `--token-url`, `AWS_ACCESS_KEY_ID`);
//   - credentials in URLs: `scheme://user:[REDACTED]@host`, and a token alone as the user of
//     an http(s) URL (`https://[REDACTED]@github.com/...`);
//   - HTTP headers: Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key,
//     Api-Key, Private-Token, X-Auth-Token, X-Vault-Token (the scheme word kept:
//     `Authorization: Bearer [REDACTED]`), and `Bearer <token>` alone;
//   - options of well-known tools whose name does not say so (see toolSpecs): curl -u/--user
//     (the user kept), openssl -pass/-passin/-passout pass:, docker/podman login -p, zip -P,
//     7z/rar -p, ssh-keygen -N/-P, smbclient -U user%pass, htpasswd -b, mysql -p (attached
//     only: `-p x` prompts), sshpass -p, sqlcmd -P, ldapsearch -w, mongo -p, redis-cli -a,
//     aws configure set aws_secret_access_key, vault login; after sudo, env, nohup and the
//     like, and inside `sh -c '...'`.
//
// A nil *Redactor redacts nothing. It is safe for concurrent use.
type Redactor struct {
	custom []rule
	lines  lineCache
}

type rule struct {
	re    *regexp.Regexp
	group int
}

// NewRedactor compiles the configured patterns; it returns nil (redact nothing) when
// redaction is disabled.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled {
		return nil, nil
	}
	r := &Redactor{lines: lineCache{m: map[string]string{}}}
	for _, p := range cfg.Patterns {
		re := regexp.MustCompile(p) // validated above
		g := 0
		if re.NumSubexp() > 0 {
			g = 1
		}
		r.custom = append(r.custom, rule{re: re, group: g})
	}
	return r, nil
}

// Args returns args (an argv) with their secrets redacted, sharing args when nothing changed.
func (r *Redactor) Args(args []string) []string {
	if r == nil || len(args) == 0 {
		return args
	}
	out := redactArgv(args, false, 0)
	for _, ru := range r.custom {
		for i, a := range out {
			if v := ru.apply(a); v != a {
				if sameSlice(out, args) {
					out = append([]string(nil), args...)
				}
				out[i] = v
			}
		}
	}
	return out
}

// CmdLine redacts a command line: argv joined by spaces, where argument boundaries are lost.
// When the same line was seen with its argv (Native, for the event of its exec), the result
// of redacting that argv is used, so a secret with spaces is redacted in full in every event
// that names the line (a child's parent command line); otherwise the line is redacted word by
// word.
func (r *Redactor) CmdLine(s string) string {
	if r == nil || s == "" {
		return s
	}
	if v, ok := r.lines.get(s); ok {
		return v
	}
	words := strings.Split(s, " ")
	out := redactArgv(words, true, 0)
	if !sameSlice(out, words) {
		s = strings.Join(out, " ")
	}
	for _, ru := range r.custom {
		s = ru.apply(s)
	}
	return s
}

// String redacts one string as a command line (CmdLine).
func (r *Redactor) String(s string) string { return r.CmdLine(s) }

// Event redacts, in place, the command lines of an event: a generated event value (a
// process event's argv, command line and parent's command line; the acting process's
// command line of a network, file or identity event) or goavro's native form (see Native).
// A process event's command line, when it is its argv joined, becomes the redacted argv
// joined, remembered for CmdLine as in Native.
func (r *Redactor) Event(v any) {
	if r == nil {
		return
	}
	switch e := v.(type) {
	case *schemas.ProcessEvent:
		p := &e.Process
		red := r.Args(p.Args)
		if len(p.Args) > 0 && !sameSlice(red, p.Args) && p.CmdLine == strings.Join(p.Args, " ") {
			joined := strings.Join(red, " ")
			for _, ru := range r.custom {
				joined = ru.apply(joined)
			}
			r.lines.put(p.CmdLine, joined)
			p.CmdLine = joined
		} else {
			p.CmdLine = r.CmdLine(p.CmdLine)
		}
		p.Args, p.Parent.CmdLine = red, r.CmdLine(p.Parent.CmdLine)
	case *schemas.NetworkEvent:
		e.Process.CmdLine = r.CmdLine(e.Process.CmdLine)
	case *schemas.FileEvent:
		e.Process.CmdLine = r.CmdLine(e.Process.CmdLine)
	case *schemas.IdentityEvent:
		e.Process.CmdLine = r.CmdLine(e.Process.CmdLine)
	case map[string]any:
		r.Native(e)
	}
}

// Native redacts, in place, the command lines of an event in goavro's native form:
// process.args, process.cmd_line and process.parent.cmd_line, wherever present. Every event
// kind names the process that caused it under "process", so one walk serves all kinds. When
// the event carries argv and its command line is argv joined, the command line is the
// redacted argv joined, and remembered for CmdLine.
func (r *Redactor) Native(native any) {
	if r == nil {
		return
	}
	ev, ok := native.(map[string]any)
	if !ok {
		return
	}
	p, ok := ev["process"].(map[string]any)
	if !ok {
		return
	}
	var args []string
	switch a := p["args"].(type) {
	case []any:
		args = make([]string, 0, len(a))
		for _, v := range a {
			s, ok := v.(string)
			if !ok {
				args = nil
				break
			}
			args = append(args, s)
		}
		if red := r.Args(args); len(args) > 0 && !sameSlice(red, args) {
			for i := range a {
				a[i] = red[i]
			}
			r.joinedFrom(p, args, red)
			args = nil // cmd_line done
		}
	case []string:
		red := r.Args(a)
		p["args"] = red
		if len(a) > 0 && !sameSlice(red, a) {
			r.joinedFrom(p, a, red)
			args = nil
		} else {
			args = a
		}
	}
	if args != nil || p["args"] == nil {
		redactField(r, p, "cmd_line")
	}
	if par, ok := p["parent"].(map[string]any); ok {
		redactField(r, par, "cmd_line")
	}
}

// joinedFrom sets the event's command line from its redacted argv when the line is the argv
// joined (else redacts the line by itself), and remembers the pair for CmdLine.
func (r *Redactor) joinedFrom(p map[string]any, args, red []string) {
	line, _ := p["cmd_line"].(string)
	orig := strings.Join(args, " ")
	if line != orig {
		redactField(r, p, "cmd_line")
		return
	}
	joined := strings.Join(red, " ")
	for _, ru := range r.custom {
		joined = ru.apply(joined)
	}
	p["cmd_line"] = joined
	r.lines.put(orig, joined)
}

func redactField(r *Redactor, m map[string]any, key string) {
	if s, ok := m[key].(string); ok {
		m[key] = r.CmdLine(s)
	}
}

// lineCache remembers the redacted form of command lines that held a secret, by the line as
// the kernel gave it; bounded (emptied when full).
type lineCache struct {
	mu sync.Mutex
	m  map[string]string
}

const maxCachedLines = 1024

func (c *lineCache) get(s string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[s]
	return v, ok
}

func (c *lineCache) put(s, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedLines {
		clear(c.m)
	}
	c.m[s] = v
}

// apply replaces the secret group of every match.
func (ru rule) apply(s string) string {
	idx := ru.re.FindAllStringSubmatchIndex(s, -1)
	if idx == nil {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range idx {
		lo, hi := m[2*ru.group], m[2*ru.group+1]
		if lo < 0 || lo < last {
			continue
		}
		b.WriteString(s[last:lo])
		b.WriteString(Redacted)
		last = hi
	}
	b.WriteString(s[last:])
	return b.String()
}

func sameSlice(a, b []string) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// argv is an argv being redacted: copied on the first change.
type argv struct {
	in, out []string
}

func (v *argv) set(i int, s string) {
	if s == v.out[i] {
		return
	}
	if sameSlice(v.out, v.in) {
		v.out = append([]string(nil), v.in...)
	}
	v.out[i] = s
}

// maxDepth bounds the nesting of `sh -c` command lines redacted inside one another.
const maxDepth = 4

// redactArgv redacts an argv. words says the elements are the words of a joined command
// line rather than arguments: a header's value or a shell's -c command may then run over
// several of them.
func redactArgv(args []string, words bool, depth int) []string {
	v := &argv{in: args, out: args}
	tool, toolAt := toolOf(args)
	spec := toolSpecs[tool]
	if spec != nil && spec.argv != nil {
		spec.argv(v, args, toolAt)
	}
	skip := -1 // an element already handled by a rule that looks ahead
	for i := 0; i < len(args); i++ {
		if i <= skip || v.out[i] != args[i] {
			continue
		}
		a := args[i]
		if i > toolAt && spec != nil {
			if n, ok := spec.redact(v, args, i, toolAt); ok {
				skip = i + n
				continue
			}
		}
		if i > toolAt && shells[tool] && isShellC(a) && i+1 < len(args) && depth < maxDepth {
			if words {
				// The rest of the line is the command.
				rest := redactArgv(args[i+1:], true, depth+1)
				for j, w := range rest {
					v.set(i+1+j, w)
				}
				return v.out
			}
			if sub := redactArgv(strings.Split(args[i+1], " "), true, depth+1); len(sub) > 0 {
				v.set(i+1, strings.Join(sub, " "))
			}
			skip = i + 1
			continue
		}
		v.set(i, redactArg(a))
		// An option named for a secret takes the next element as its value.
		if i+1 < len(args) && isSecretOption(a) && !strings.HasPrefix(args[i+1], "-") {
			v.set(i+1, Redacted)
			skip = i + 1
			continue
		}
		if words {
			if n := headerContinuation(v, args, i); n > 0 {
				skip = i + n
			}
		}
	}
	return v.out
}

// shells run their -c argument as a command line.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "ash": true, "busybox": true, "su": true, "runuser": true}

// isShellC tells -c, alone or among other short options (-lc, -ec).
func isShellC(a string) bool {
	if len(a) < 2 || a[0] != '-' || a[1] == '-' {
		return false
	}
	for i := 1; i < len(a); i++ {
		if !('a' <= a[i] && a[i] <= 'z') {
			return false
		}
	}
	return strings.IndexByte(a, 'c') > 0
}

// wrappers run the command that follows them; valueOpts are their options that take the next
// argument.
var wrappers = map[string][]string{
	"sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R"}, "doas": {"-u", "-C"},
	"env": {"-u", "-C", "-S", "--unset", "--chdir"}, "nice": {"-n"}, "ionice": {"-c", "-n", "-p"}, "nohup": nil, "time": nil,
	"exec": nil, "command": nil, "setsid": nil, "stdbuf": nil, "timeout": {"-s", "-k"}, "chrt": nil, "taskset": nil,
}

// toolOf names the command an argv runs, past wrappers and environment assignments, and
// where it is.
func toolOf(args []string) (string, int) {
	i := 0
	for i < len(args) {
		name := path.Base(args[i])
		opts, wrapper := wrappers[name]
		if !wrapper {
			if isAssignment(args[i]) {
				i++
				continue
			}
			return name, i
		}
		i++
		for i < len(args) && (strings.HasPrefix(args[i], "-") || isAssignment(args[i])) {
			takesValue := false
			for _, o := range opts {
				if args[i] == o {
					takesValue = true
				}
			}
			i++
			if takesValue {
				i++
			}
		}
		if name == "timeout" || name == "taskset" || name == "chrt" {
			i++ // the duration, mask or priority
		}
	}
	return "", len(args)
}

// isAssignment tells NAME=value (an environment assignment before a command).
func isAssignment(s string) bool {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return false
	}
	for i := 0; i < eq; i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// redactArg redacts the secrets one argument holds by itself.
func redactArg(a string) string {
	if a == "" || a == Redacted {
		return a
	}
	// name=value at the start: the value runs to the end of the argument.
	if eq := strings.IndexByte(a, '='); eq > 0 {
		name := a[:eq]
		if isSecretName(strings.TrimLeft(name, "-"), !strings.HasPrefix(name, "-") && isUpperName(name)) && !strings.ContainsAny(name, " :/@") {
			return name + "=" + Redacted
		}
	}
	if !mayHoldSecret(a) {
		return a
	}
	a = redactInner(a)
	a = redactURLs(a)
	return a
}

// mayHoldSecret is a quick scan for what an inner rule needs: an '=' (name=value), "://"
// or ':' (URL, header) or the word bearer.
func mayHoldSecret(a string) bool {
	return strings.IndexByte(a, '=') >= 0 || strings.IndexByte(a, ':') >= 0 || containsFold(a, "bearer")
}

// redactInner redacts name=value pairs inside an argument (a query string, a libpq conninfo,
// mount options: the value runs to the next separator), headers (the value runs to the end),
// and a lone bearer token.
func redactInner(a string) string {
	var b strings.Builder
	last := 0
	write := func(upto int) {
		if b.Len() == 0 && last == 0 {
			b.Grow(len(a))
		}
		b.WriteString(a[last:upto])
	}
	for i := 0; i < len(a); i++ {
		if i > 0 && !isSep(a[i-1]) {
			continue
		}
		rest := a[i:]
		if rest[0] == '"' {
			if vs, ve, ok := jsonSecret(a, i); ok {
				write(vs)
				b.WriteString(Redacted)
				last = ve
				i = ve
			}
			continue
		}
		if h, ok := headerAt(rest); ok {
			vs := i + h
			if vs >= len(a) || a[vs:] == Redacted {
				break
			}
			write(vs)
			b.WriteString(Redacted)
			last = len(a)
			break
		}
		if hasPrefixFold(rest, "bearer ") {
			vs := i + len("bearer ")
			ve := vs
			for ve < len(a) && !isSep(a[ve]) {
				ve++
			}
			if ve-vs >= 8 && a[vs:ve] != Redacted {
				write(vs)
				b.WriteString(Redacted)
				last = ve
				i = ve - 1
			}
			continue
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || i == 0 { // at the start: redactArg's rule
			continue
		}
		name := rest[:eq]
		if strings.IndexFunc(name, func(r rune) bool { return !isNameChar(r) }) >= 0 {
			continue
		}
		if !isSecretName(strings.TrimLeft(name, "-"), isUpperName(name)) {
			continue
		}
		vs := i + eq + 1
		ve := vs
		for ve < len(a) && !isValueEnd(a[ve]) {
			ve++
		}
		if ve > vs && a[vs:ve] != Redacted {
			write(vs)
			b.WriteString(Redacted)
			last = ve
		}
		i = ve - 1
	}
	if last == 0 {
		return a
	}
	b.WriteString(a[last:])
	return b.String()
}

// jsonSecret finds "name": "value" at a[i] with a secret name and returns where the value
// is (inside its quotes).
func jsonSecret(a string, i int) (int, int, bool) {
	end := strings.IndexByte(a[i+1:], '"')
	if end < 0 {
		return 0, 0, false
	}
	name := a[i+1 : i+1+end]
	j := i + 1 + end + 1
	for j < len(a) && a[j] == ' ' {
		j++
	}
	if j >= len(a) || a[j] != ':' {
		return 0, 0, false
	}
	j++
	for j < len(a) && a[j] == ' ' {
		j++
	}
	if j >= len(a) || a[j] != '"' || !isSecretName(name, false) {
		return 0, 0, false
	}
	vs := j + 1
	ve := vs
	for ve < len(a) && a[ve] != '"' {
		if a[ve] == '\\' {
			ve++
		}
		ve++
	}
	if ve > len(a) {
		ve = len(a)
	}
	if ve == vs || a[vs:ve] == Redacted {
		return 0, 0, false
	}
	return vs, ve, true
}

func isSep(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '&', '?', ';', ',', '\'', '"', '{', '(', '=':
		return true
	}
	return false
}

func isValueEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '&', ';', ',', '\'', '"', '}', ')':
		return true
	}
	return false
}

func isNameChar(r rune) bool {
	return r == '_' || r == '-' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// secretHeaders are the headers whose value is a credential; authSchemes the scheme words
// kept before it.
var (
	secretHeaders = []string{"authorization:", "proxy-authorization:", "cookie:", "set-cookie:", "x-api-key:", "api-key:", "private-token:", "x-auth-token:", "x-vault-token:"}
	authSchemes   = []string{"bearer", "basic", "token", "digest", "negotiate", "ntlm", "aws4-hmac-sha256", "apikey", "key"}
)

// headerAt reports whether s starts with a secret header, and where its credential starts
// (past the spaces and the scheme word); len(s) when the credential is in the next word.
func headerAt(s string) (int, bool) {
	for _, h := range secretHeaders {
		if hasPrefixFold(s, h) {
			i := len(h)
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if h == "authorization:" || h == "proxy-authorization:" {
				for _, sch := range authSchemes {
					if hasPrefixFold(s[i:], sch+" ") {
						i += len(sch) + 1
						for i < len(s) && s[i] == ' ' {
							i++
						}
						break
					}
				}
			}
			return i, true
		}
	}
	return 0, false
}

// headerContinuation redacts, in a line split into words, a header's credential that is in
// the words after its name (`Authorization: Bearer x`, `Cookie: a=1; b=2`) or a token after a
// lone "Bearer"; it returns how many words it took.
func headerContinuation(v *argv, args []string, i int) int {
	w := args[i]
	for len(w) > 0 && (w[0] == '\'' || w[0] == '"') {
		w = w[1:]
	}
	if w == "" || w[len(w)-1] != ':' && len(w) != len("bearer") {
		return 0
	}
	lw, isHeader := "", false
	for _, h := range secretHeaders {
		if hasSuffixFold(w, h) && (len(w) == len(h) || isSep(w[len(w)-len(h)-1])) {
			lw, isHeader = h, true
		}
	}
	switch {
	case isHeader && i+1 < len(args):
		j := i + 1
		if lw == "authorization:" || lw == "proxy-authorization:" {
			for _, sch := range authSchemes {
				if strings.EqualFold(args[j], sch) && j+1 < len(args) {
					j++
					break
				}
			}
		}
		n := j - i
		for {
			val := args[j]
			v.set(j, Redacted+trailingQuote(val))
			if (lw == "cookie:" || lw == "set-cookie:") && strings.HasSuffix(val, ";") && j+1 < len(args) {
				j++
				n++
				continue
			}
			return n
		}
	case anyEqualFold(w, []string{"bearer"}) && i+1 < len(args) && len(args[i+1]) >= 8:
		v.set(i+1, Redacted+trailingQuote(args[i+1]))
		return 1
	}
	return 0
}

// trailingQuote keeps the closing quote of a word, so a quoted header stays balanced.
func trailingQuote(w string) string {
	if w != Redacted && (strings.HasSuffix(w, "'") || strings.HasSuffix(w, "\"")) {
		return w[len(w)-1:]
	}
	return ""
}

// redactURLs redacts the credentials of every URL in an argument: the password of
// scheme://user:password@host, and a token given as the user alone of an http(s) URL.
func redactURLs(a string) string {
	from := 0
	for {
		k := strings.Index(a[from:], "://")
		if k < 0 {
			return a
		}
		k += from
		start := k + 3
		end := start
		at := -1
		for end < len(a) {
			c := a[end]
			if c == '/' || c == '?' || c == '#' || c == ' ' || c == '\'' || c == '"' {
				break
			}
			if c == '@' {
				at = end
			}
			end++
		}
		from = start
		if at < 0 {
			continue
		}
		userinfo := a[start:at]
		if colon := strings.IndexByte(userinfo, ':'); colon >= 0 {
			if pw := userinfo[colon+1:]; pw != "" && pw != Redacted {
				a = a[:start+colon+1] + Redacted + a[at:]
				from = start + colon + 1 + len(Redacted)
			}
			continue
		}
		scheme := strings.ToLower(a[schemeStart(a, k):k])
		if (scheme == "http" || scheme == "https" || scheme == "git+https" || strings.HasSuffix(scheme, "+https")) && userinfo != "" && userinfo != Redacted {
			a = a[:start] + Redacted + a[at:]
			from = start + len(Redacted)
		}
	}
}

func schemeStart(a string, k int) int {
	i := k
	for i > 0 {
		c := a[i-1]
		if c == '+' || c == '.' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			i--
			continue
		}
		break
	}
	return i
}

// secretSuffixes end the words of names whose value is a secret; secretWords are whole words
// that are (key alone is too common a suffix: monkey, hotkey).
var (
	secretSuffixes = []string{"password", "passwd", "passphrase", "pass", "pwd", "secret", "token", "credential", "credentials", "creds"}
	secretWords    = []string{"key", "apikey", "accesskey", "secretkey", "privatekey", "masterkey", "signingkey", "encryptionkey", "authkey", "licensekey", "psk"}
	envWords       = []string{"pat", "auth"}
	// notTheSecret are last words of names whose value refers to a secret or describes it.
	notTheSecret = []string{"file", "path", "dir", "stdin", "fd", "env", "name", "id", "length", "len", "size", "type", "mode",
		"format", "prompt", "cmd", "command", "helper", "store", "policy", "ttl", "expiry", "expires", "url", "uri", "endpoint",
		"header", "algorithm", "alg", "bits", "count", "required", "min", "max", "reset", "hint", "source", "provider", "ref", "arn"}
	notSecretNames = []string{"pwd", "oldpwd"}
	notSecretWords = []string{"bypass", "compass", "surpass", "passthrough", "keyboard"}
)

// isSecretName tells a name (of an option, variable or parameter) whose value is a secret:
// one of its words, split at - _ . and compared without case, ends with a secret suffix or is
// a secret word, and its last word is not one that names something about the secret.
func isSecretName(name string, env bool) bool {
	if name == "" || len(name) > 128 || anyEqualFold(name, notSecretNames) {
		return false
	}
	secret := false
	last := ""
	for w := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		last = w
		if secret {
			continue
		}
		for _, suf := range secretSuffixes {
			if hasSuffixFold(w, suf) && !anyEqualFold(w, notSecretWords) {
				secret = true
			}
		}
		if anyEqualFold(w, secretWords) || env && anyEqualFold(w, envWords) {
			secret = true
		}
	}
	return secret && !anyEqualFold(last, notTheSecret)
}

// isSecretOption tells an option (-x, --name; no '=') whose value, the next argument, is a
// secret by its name. Options that say what to do about a secret rather than give it
// (--no-password, --ask-password, --with-token) take no value.
func isSecretOption(a string) bool {
	if !strings.HasPrefix(a, "-") || len(a) < 3 || strings.IndexByte(a, '=') >= 0 {
		return false
	}
	name := strings.TrimLeft(a, "-")
	first, _, _ := strings.Cut(strings.ReplaceAll(name, "_", "-"), "-")
	if first != name && anyEqualFold(first, flagVerbs) {
		return false
	}
	return isSecretName(name, false)
}

// flagVerbs begin the names of options that are switches about a secret.
var flagVerbs = []string{"no", "ask", "prompt", "read", "with", "use", "require", "allow", "disable", "enable", "skip", "show", "hide", "save", "store", "change", "reset", "print"}

func anyEqualFold(s string, list []string) bool {
	for _, l := range list {
		if len(s) == len(l) && hasPrefixFold(s, l) {
			return true
		}
	}
	return false
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && hasPrefixFold(s[len(s)-len(suffix):], suffix)
}

// isUpperName tells an environment-style name: upper case letters, digits and underscores.
func isUpperName(s string) bool {
	hasLetter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			hasLetter = true
		case c == '_' || '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return hasLetter
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with the lower-case prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for j := 0; j < len(prefix); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[j] {
			return false
		}
	}
	return true
}
