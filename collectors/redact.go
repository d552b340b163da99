package collectors

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/threatcrumbs/crumbs/schemas"
)

// Redacted replaces every secret the Redactor finds.
const Redacted = "[REDACTED]"

// RedactConfig configures the redaction of secrets in command lines (keys under
// `collectors.redact.`).
type RedactConfig struct {
	// Enabled turns redaction on. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Patterns are Go regexps (RE2 syntax) added to the built-in ones. When a pattern has
	// a capture group, the text of its first group is replaced; otherwise the whole match.
	// They are tried on every command line, so keep them anchored on a literal.
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

// secretWords end the names of options and variables whose value is a secret. A name must
// end with one (GITHUB_TOKEN, --db-password, AWS_SECRET_ACCESS_KEY), so --tokenizer or
// --password-file are left alone.
const secretWords = `(?:password|passwd|passphrase|secret|token|api[-_]?key|access[-_]?key|secret[-_]?key|private[-_]?key|credentials?)`

// builtinRules are the default patterns; group is the submatch holding the secret, and a
// rule runs only on strings holding one of its needles (lower case), which keeps the
// regexps off the many command lines that cannot match.
var builtinRules = []struct {
	expr    string
	group   int
	needles []string
}{
	// name=value: --password=x, token=x, AWS_SECRET_ACCESS_KEY=x, X_SECRET=x, ?token=x&
	{`(?i)(?:^|[\s'"&?;,])-{0,2}[a-z0-9_.-]*` + secretWords + `=([^\s&'";,]+)`, 1, secretNeedles},
	// --name value (the next word, unless it is another option): --password x
	{`(?i)(?:^|\s)--?[a-z0-9_.-]*` + secretWords + `\s+([^\s-]\S*)`, 1, secretNeedles},
	// credentials in a URL: scheme://user:secret@host
	{`(?i)\b[a-z][a-z0-9+.-]*://[^\s/:@]*:([^\s/@]+)@`, 1, []string{"://"}},
	// HTTP credentials: Authorization: Bearer x, Authorization: Basic x, Bearer x
	{`(?i)\bauthorization:\s*(?:(?:bearer|basic|token|digest|negotiate)\s+)?([^\s'"]+)`, 1, []string{"authorization:"}},
	{`(?i)\bbearer\s+([a-z0-9._~+/=-]{8,})`, 1, []string{"bearer"}},
	// API key headers: X-Api-Key: x, Private-Token: x, X-Auth-Token: x
	{`(?i)\b(?:x-api-key|api-key|private-token|x-auth-token):\s*([^\s'"]+)`, 1, []string{"-key:", "-token:"}},
}

// secretNeedles are what every name in secretWords contains.
var secretNeedles = []string{"pass", "secret", "token", "key", "cred"}

// allNeedles are the needles of every built-in rule: a string with none of them is left as
// it is after one pass over it.
var allNeedles = []string{"pass", "secret", "token", "key", "cred", "://", "authorization:", "bearer", "-token:"}

// toolFlags are options of well-known tools whose value is a secret although their name does
// not say so. attached: the secret follows the option in the same word (mysql -pSECRET);
// separate: it is the next word (sshpass -p SECRET). For mysql, `-p x` means "prompt for the
// password", and x is the database, so only the attached form is redacted.
var toolFlags = map[string]struct{ attached, separate []string }{
	"mysql":         {attached: []string{"-p"}},
	"mysqldump":     {attached: []string{"-p"}},
	"mysqladmin":    {attached: []string{"-p"}},
	"mysqlimport":   {attached: []string{"-p"}},
	"mysqlshow":     {attached: []string{"-p"}},
	"mysqlcheck":    {attached: []string{"-p"}},
	"mysqlpump":     {attached: []string{"-p"}},
	"mariadb":       {attached: []string{"-p"}},
	"mariadb-dump":  {attached: []string{"-p"}},
	"mariadb-admin": {attached: []string{"-p"}},
	"sshpass":       {attached: []string{"-p"}, separate: []string{"-p"}},
	"redis-cli":     {separate: []string{"-a", "--pass", "--user"}},
	"mongo":         {separate: []string{"-p"}},
	"mongosh":       {separate: []string{"-p"}},
	"mongodump":     {separate: []string{"-p"}},
	"ldapsearch":    {separate: []string{"-w"}},
	"ldapmodify":    {separate: []string{"-w"}},
	"ldapadd":       {separate: []string{"-w"}},
	"ldapdelete":    {separate: []string{"-w"}},
	"curl":          {separate: []string{"-u", "--user", "--proxy-user", "-U"}},
}

type rule struct {
	re      *regexp.Regexp
	group   int
	needles []string // nil: always run
}

// Redactor replaces secrets in command lines and arguments with [REDACTED]. It is safe for
// concurrent use; a nil *Redactor redacts nothing.
type Redactor struct {
	builtin []rule
	custom  []rule
}

// NewRedactor compiles the built-in and the configured patterns; it returns nil (redact
// nothing) when redaction is disabled.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled {
		return nil, nil
	}
	r := &Redactor{}
	for _, b := range builtinRules {
		r.builtin = append(r.builtin, rule{re: regexp.MustCompile(b.expr), group: b.group, needles: b.needles})
	}
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

// String returns s with its secrets redacted; s itself when it has none.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	if containsAnyFold(s, allNeedles) {
		for _, ru := range r.builtin {
			if containsAnyFold(s, ru.needles) {
				s = ru.apply(s)
			}
		}
	}
	for _, ru := range r.custom {
		s = ru.apply(s)
	}
	return r.toolWords(s)
}

// CmdLine redacts a command line (arguments joined by spaces), tool options included.
func (r *Redactor) CmdLine(s string) string { return r.String(s) }

// Args returns args with their secrets redacted, sharing args when nothing changed. An
// option that takes a secret as its next argument (--password x) redacts that argument.
func (r *Redactor) Args(args []string) []string {
	if r == nil || len(args) == 0 {
		return args
	}
	out := args
	set := func(i int, v string) {
		if v == out[i] {
			return
		}
		if &out[0] == &args[0] {
			out = append([]string(nil), args...)
		}
		out[i] = v
	}
	tool := toolFlags[path.Base(args[0])]
	secretNext := false
	for i, a := range args {
		if secretNext {
			set(i, Redacted)
			secretNext = false
			continue
		}
		set(i, r.String(a))
		secretNext = i+1 < len(args) && takesSecret(a, tool.separate) && !strings.HasPrefix(args[i+1], "-")
		for _, f := range tool.attached {
			if i > 0 && len(a) > len(f) && strings.HasPrefix(a, f) {
				set(i, f+Redacted)
			}
		}
	}
	return out
}

// takesSecret reports whether an argument is an option whose value is the next argument
// and a secret: a name ending in a secret word, or one of the tool's options.
func takesSecret(a string, toolSeparate []string) bool {
	for _, f := range toolSeparate {
		if a == f {
			return true
		}
	}
	if !strings.HasPrefix(a, "-") || strings.ContainsRune(a, '=') {
		return false
	}
	return secretOption.MatchString(a)
}

var secretOption = regexp.MustCompile(`(?i)^--?[a-z0-9_.-]*` + secretWords + `$`)

// toolWords applies the tool options of the command (its first word) to a command line.
func (r *Redactor) toolWords(s string) string {
	first, _, _ := strings.Cut(s, " ")
	if _, ok := toolFlags[path.Base(first)]; !ok {
		return s
	}
	words := strings.Split(s, " ")
	red := r.toolOnly(words)
	return strings.Join(red, " ")
}

// toolOnly applies only the tool options to words (the other rules already ran).
func (r *Redactor) toolOnly(words []string) []string {
	tool := toolFlags[path.Base(words[0])]
	for i := 1; i < len(words); i++ {
		w := words[i]
		for _, f := range tool.separate {
			if w == f && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
				words[i+1] = Redacted
			}
		}
		for _, f := range tool.attached {
			if len(w) > len(f) && strings.HasPrefix(w, f) && w != f+Redacted {
				words[i] = f + Redacted
			}
		}
	}
	return words
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

// containsAnyFold reports whether s holds one of the lower-case needles, ignoring ASCII
// case, without allocating.
func containsAnyFold(s string, needles []string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		for _, n := range needles {
			if c == n[0] && hasPrefixFold(s[i:], n) {
				return true
			}
		}
	}
	return false
}

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

// Event redacts, in place, the command lines of an event: a generated event value (a
// process event's command line, argv and parent's command line; the acting process's
// command line of a network, file or identity event) or goavro's native form (see Native).
func (r *Redactor) Event(v any) {
	if r == nil {
		return
	}
	switch e := v.(type) {
	case *schemas.ProcessEvent:
		p := &e.Process
		p.CmdLine, p.Args, p.Parent.CmdLine = r.CmdLine(p.CmdLine), r.Args(p.Args), r.CmdLine(p.Parent.CmdLine)
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
// process.cmd_line, process.args and process.parent.cmd_line, wherever present. Every event
// kind names the process that caused it under "process", so one walk serves all kinds.
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
	redactField(r, p, "cmd_line")
	switch args := p["args"].(type) {
	case []any:
		strs := make([]string, 0, len(args))
		for _, a := range args {
			s, ok := a.(string)
			if !ok {
				return
			}
			strs = append(strs, s)
		}
		if len(strs) == 0 {
			break
		}
		red := r.Args(strs)
		if &red[0] != &strs[0] {
			for i := range args {
				args[i] = red[i]
			}
		}
	case []string:
		p["args"] = r.Args(args)
	}
	if par, ok := p["parent"].(map[string]any); ok {
		redactField(r, par, "cmd_line")
	}
}

func redactField(r *Redactor, m map[string]any, key string) {
	if s, ok := m[key].(string); ok {
		m[key] = r.CmdLine(s)
	}
}
