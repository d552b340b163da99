package sigma

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// procRule wraps a detection in a process_creation rule.
func procRule(detection string) string {
	return "title: t\nid: 1\nauthor: a\nlevel: high\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n" + detection
}

func procEvent(fields map[string]any) map[string]any {
	ev := baseEvent(categories["process_creation"])
	for p, v := range fields {
		setPath(ev, p, v)
	}
	return ev
}

func compileOne(t *testing.T, src string) (*Compiled, error) {
	t.Helper()
	rules, err := ParseFile("r.yml", []byte(src))
	if err != nil {
		return nil, err
	}
	if len(rules) != 1 {
		t.Fatalf("parsed %d rules, want 1", len(rules))
	}
	return rules[0].Compile()
}

func TestMatching(t *testing.T) {
	for _, tc := range []struct {
		name      string
		detection string
		event     map[string]any
		want      bool
	}{
		{"exact case-insensitive", "  s:\n    Image: '/USR/bin/Curl'\n  condition: s", map[string]any{"process.file.path": "/usr/bin/curl"}, true},
		{"exact differs", "  s:\n    Image: '/usr/bin/curl'\n  condition: s", map[string]any{"process.file.path": "/usr/bin/curlx"}, false},
		{"cased", "  s:\n    Image|cased: '/USR/bin/curl'\n  condition: s", map[string]any{"process.file.path": "/usr/bin/curl"}, false},
		{"wildcard star", "  s:\n    Image: '/usr/*/curl'\n  condition: s", map[string]any{"process.file.path": "/usr/local/bin/curl"}, true},
		{"wildcard question", "  s:\n    Image: '/usr/bin/cur?'\n  condition: s", map[string]any{"process.file.path": "/usr/bin/curL"}, true},
		{"question needs one char", "  s:\n    Image: '/usr/bin/curl?'\n  condition: s", map[string]any{"process.file.path": "/usr/bin/curl"}, false},
		{"escaped star is literal", "  s:\n    CommandLine: 'a\\*b'\n  condition: s", map[string]any{"process.cmd_line": "axxb"}, false},
		{"escaped star matches star", "  s:\n    CommandLine: 'a\\*b'\n  condition: s", map[string]any{"process.cmd_line": "a*b"}, true},
		{"lone backslash is literal", "  s:\n    CommandLine: 'a\\b'\n  condition: s", map[string]any{"process.cmd_line": `a\b`}, true},
		{"contains", "  s:\n    CommandLine|contains: 'BASE64 -d'\n  condition: s", map[string]any{"process.cmd_line": "echo x | base64 -d | sh"}, true},
		{"startswith", "  s:\n    CommandLine|startswith: 'sh -c'\n  condition: s", map[string]any{"process.cmd_line": "bash -c x"}, false},
		{"endswith", "  s:\n    Image|endswith: '/nc'\n  condition: s", map[string]any{"process.file.path": "/bin/nc"}, true},
		{"contains all", "  s:\n    CommandLine|contains|all: ['-e', '/bin/sh']\n  condition: s", map[string]any{"process.cmd_line": "nc -e /bin/sh 1.2.3.4"}, true},
		{"contains all one missing", "  s:\n    CommandLine|contains|all: ['-e', '/bin/bash']\n  condition: s", map[string]any{"process.cmd_line": "nc -e /bin/sh"}, false},
		{"value list is OR", "  s:\n    Image|endswith: ['/wget', '/curl']\n  condition: s", map[string]any{"process.file.path": "/bin/curl"}, true},
		{"list of maps is OR", "  s:\n    - Image: '/a'\n    - CommandLine: 'b'\n  condition: s", map[string]any{"process.cmd_line": "B"}, true},
		{"map is AND", "  s:\n    Image: '/a'\n    CommandLine: 'b'\n  condition: s", map[string]any{"process.cmd_line": "b"}, false},
		{"number on int field", "  s:\n    LogonId: 0\n  condition: s", map[string]any{"process.login_uid": int64(0)}, true},
		{"number on string field", "  s:\n    CommandLine: 777\n  condition: s", map[string]any{"process.cmd_line": "777"}, true},
		{"null is empty", "  s:\n    CurrentDirectory: null\n  condition: s", map[string]any{}, true},
		{"null not set", "  s:\n    CurrentDirectory: null\n  condition: s", map[string]any{"process.cwd": "/tmp"}, false},
		{"exists", "  s:\n    CurrentDirectory|exists: true\n  condition: s", map[string]any{"process.cwd": "/tmp"}, true},
		{"not exists", "  s:\n    CurrentDirectory|exists: false\n  condition: s", map[string]any{"process.cwd": "/tmp"}, false},
		{"re", "  s:\n    CommandLine|re: 'sh\\s+-c'\n  condition: s", map[string]any{"process.cmd_line": "bash   -c id"}, true},
		{"re is cased", "  s:\n    CommandLine|re: 'SH'\n  condition: s", map[string]any{"process.cmd_line": "sh"}, false},
		{"re i", "  s:\n    CommandLine|re|i: 'SH'\n  condition: s", map[string]any{"process.cmd_line": "sh"}, true},
		{"re m", "  s:\n    CommandLine|re|m: '^b$'\n  condition: s", map[string]any{"process.cmd_line": "a\nb\nc"}, true},
		{"re s", "  s:\n    CommandLine|re|s: 'a.b'\n  condition: s", map[string]any{"process.cmd_line": "a\nb"}, true},
		{"base64", "  s:\n    CommandLine|base64: 'curl'\n  condition: s", map[string]any{"process.cmd_line": "Y3VybA=="}, true},
		{"base64offset contains", "  s:\n    CommandLine|base64offset|contains: 'http://'\n  condition: s", map[string]any{"process.cmd_line": "echo " + "eCBodHRwOi8vZXZpbA==" + " | base64 -d"}, true},
		{"base64offset is cased", "  s:\n    CommandLine|base64offset|contains: 'http://'\n  condition: s", map[string]any{"process.cmd_line": strings.ToUpper("eCBodHRwOi8vZXZpbA==")}, false},
		{"utf16le base64", "  s:\n    CommandLine|wide|base64: 'ab'\n  condition: s", map[string]any{"process.cmd_line": "YQBiAA=="}, true},
		{"windash slash", "  s:\n    CommandLine|windash|contains: ' -f '\n  condition: s", map[string]any{"process.cmd_line": "x /f y"}, true},
		{"windash en dash", "  s:\n    CommandLine|windash|contains: ' -f '\n  condition: s", map[string]any{"process.cmd_line": "x –f y"}, true},
		{"gt", "  s:\n    ProcessId|gt: 100\n  condition: s", map[string]any{"process.pid": int64(101)}, true},
		{"gte equal", "  s:\n    ProcessId|gte: 100\n  condition: s", map[string]any{"process.pid": int64(100)}, true},
		{"lt", "  s:\n    ProcessId|lt: 100\n  condition: s", map[string]any{"process.pid": int64(100)}, false},
		{"lte", "  s:\n    ProcessId|lte: 100\n  condition: s", map[string]any{"process.pid": int32(7)}, true},
		{"fieldref", "  s:\n    Image|fieldref: ParentImage\n  condition: s", map[string]any{"process.file.path": "/bin/sh", "process.parent.file.path": "/BIN/sh"}, true},
		{"fieldref cased", "  s:\n    Image|fieldref|cased: ParentImage\n  condition: s", map[string]any{"process.file.path": "/bin/sh", "process.parent.file.path": "/BIN/sh"}, false},
		{"keywords in cmd_line", "  k:\n    - 'whoami'\n  condition: k", map[string]any{"process.cmd_line": "sudo WHOAMI"}, true},
		{"keywords all", "  k:\n    '|all':\n      - 'grep'\n      - 'password'\n  condition: k", map[string]any{"process.cmd_line": "grep -r password /etc"}, true},
		{"keywords all one missing", "  k:\n    '|all':\n      - 'grep'\n      - 'passwd'\n  condition: k", map[string]any{"process.cmd_line": "grep -r password /etc"}, false},
		{"not", "  s:\n    Image: '/a'\n  f:\n    CommandLine: 'x'\n  condition: s and not f", map[string]any{"process.file.path": "/a", "process.cmd_line": "x"}, false},
		{"parentheses", "  a:\n    Image: '/a'\n  b:\n    Image: '/b'\n  c:\n    CommandLine: 'c'\n  condition: (a or b) and c", map[string]any{"process.file.path": "/b", "process.cmd_line": "c"}, true},
		{"precedence and before or", "  a:\n    Image: '/a'\n  b:\n    Image: '/b'\n  c:\n    CommandLine: 'c'\n  condition: a or b and c", map[string]any{"process.file.path": "/a"}, true},
		{"1 of pattern", "  sel_a:\n    Image: '/a'\n  sel_b:\n    Image: '/b'\n  condition: 1 of sel_*", map[string]any{"process.file.path": "/b"}, true},
		{"all of pattern", "  sel_a:\n    Image: '/a'\n  sel_b:\n    CommandLine: 'b'\n  condition: all of sel_*", map[string]any{"process.file.path": "/a"}, false},
		{"1 of them", "  a:\n    Image: '/a'\n  b:\n    Image: '/b'\n  condition: 1 of them", map[string]any{"process.file.path": "/a"}, true},
		{"all of them skips underscore", "  a:\n    Image: '/a'\n  _b:\n    Image: '/b'\n  condition: all of them", map[string]any{"process.file.path": "/a"}, true},
		{"condition list is OR", "  a:\n    Image: '/a'\n  b:\n    Image: '/b'\n  condition:\n    - a\n    - b", map[string]any{"process.file.path": "/b"}, true},
		{"wrong action", "  s:\n    Image: '/a'\n  condition: s", map[string]any{"process.file.path": "/a", "action": "exit"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileOne(t, procRule(tc.detection))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Cond.Match(engine.Activation(procEvent(tc.event)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("match (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetworkAndFile(t *testing.T) {
	net := "title: t\nlogsource:\n  product: linux\n  category: network_connection\ndetection:\n  s:\n    Initiated: 'true'\n    DestinationIp|cidr: '10.0.0.0/8'\n    DestinationHostname|endswith: '.onion'\n  condition: s\n"
	c, err := compileOne(t, net)
	if err != nil {
		t.Fatal(err)
	}
	ev := baseEvent(categories["network_connection"])
	setPath(ev, "network.direction", "outbound")
	setPath(ev, "network.dst_endpoint.ip", "10.2.3.4")
	setPath(ev, "network.dst_endpoint.hostname", "abc.ONION")
	if !matches(c, ev) {
		t.Error("network rule does not match its event")
	}
	// A summary of short connections (collectors.network.summarize) is connections too;
	// a listening socket is not.
	for action, want := range map[string]bool{"connect_summary": true, "listen": false} {
		ev["action"] = action
		if got := matches(c, ev); got != want {
			t.Errorf("network rule on a %s event: matches %v, want %v", action, got, want)
		}
	}
	ev["action"] = "connect"
	setPath(ev, "network.direction", "inbound")
	if matches(c, ev) {
		t.Error("Initiated true matches an inbound connection")
	}
	file := "title: t\nlogsource:\n  product: linux\n  category: file_event\ndetection:\n  s:\n    TargetFilename|startswith: '/etc/cron.d/'\n  condition: s\n"
	c, err = compileOne(t, file)
	if err != nil {
		t.Fatal(err)
	}
	fe := baseEvent(categories["file_event"])
	setPath(fe, "file.path", "/etc/cron.d/evil")
	if diff := cmp.Diff([]string{"file"}, c.Sources); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if !matches(c, fe) {
		t.Error("file rule does not match its event")
	}
	fe["action"] = "delete"
	if matches(c, fe) {
		t.Error("file_event rule matches a delete")
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want string // substring of the reason
	}{
		{"unmapped field", procRule("  s:\n    OriginalFileName: 'x'\n  condition: s"), "field OriginalFileName: crumbs has no equivalent in process_creation events"},
		{"unknown modifier", procRule("  s:\n    Image|foo: 'x'\n  condition: s"), `modifier "foo": not a Sigma modifier`},
		{"expand", procRule("  s:\n    Image|expand: '%x%'\n  condition: s"), `modifier "expand": placeholders`},
		{"sub-modifier without re", procRule("  s:\n    Image|i: 'x'\n  condition: s"), `modifier "i": is a sub-modifier of re`},
		{"bad regex", procRule("  s:\n    Image|re: '(?<=a)b'\n  condition: s"), "not in the RE2 syntax"},
		{"aggregation", procRule("  s:\n    Image: 'x'\n  condition: s | count() > 5"), "aggregation expressions"},
		{"unknown identifier", procRule("  s:\n    Image: 'x'\n  condition: s and t"), `"t" is not a search identifier`},
		{"pattern matches nothing", procRule("  s:\n    Image: 'x'\n  condition: 1 of f*"), `"f*" matches no search identifier`},
		{"windows", "title: t\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  s:\n    Image: x\n  condition: s\n", "crumbs watches Linux hosts only"},
		{"unknown category", "title: t\nlogsource:\n  product: linux\n  category: dns_query\ndetection:\n  s:\n    QueryName: x\n  condition: s\n", `category "dns_query": crumbs records no equivalent events`},
		{"cidr on bad network", procRule("  s:\n    Image|cidr: 'nope'\n  condition: s"), "not a network"},
		{"gt on string", procRule("  s:\n    ProcessId|gt: 'abc'\n  condition: s"), "must be a number"},
		{"auditd unknown record", "title: t\nlogsource:\n  product: linux\n  service: auditd\ndetection:\n  s:\n    type: USER_LOGIN\n  condition: s\n", "type USER_LOGIN: crumbs records no equivalent"},
		{"auditd syscall register", "title: t\nlogsource:\n  product: linux\n  service: auditd\ndetection:\n  s:\n    type: SYSCALL\n    SYSCALL: execve\n    a0: 5\n  condition: s\n", "field a0 of SYSCALL"},
		{"no title", "logsource:\n  category: process_creation\ndetection:\n  s:\n    Image: x\n  condition: s\n", "title: is required"},
		{"bad level", "title: t\nlevel: severe\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image: x\n  condition: s\n", `level "severe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileOne(t, tc.src)
			if err == nil {
				t.Fatal("rule loaded, want it refused")
			}
			if !strings.HasPrefix(err.Error(), "r.yml: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reason %q, want r.yml: ...%s...", err, tc.want)
			}
		})
	}
}

func TestAuditd(t *testing.T) {
	src := `title: t
logsource:
  product: linux
  service: auditd
detection:
  execve:
    type: EXECVE
    a0: chage
    a1: ['-l', '--list']
  path:
    type: PATH
    name: /etc/login.defs
  condition: 1 of them
`
	c, err := compileOne(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"file", "process"}, c.Sources); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name   string
		target string
		fields map[string]any
		want   bool
	}{
		{"argv", "auditd EXECVE", map[string]any{"process.args": []any{"chage", "-l", "root"}}, true},
		{"argv other", "auditd EXECVE", map[string]any{"process.args": []any{"chage", "-d"}}, false},
		{"path written", "auditd PATH NORMAL file", map[string]any{"file.path": "/etc/login.defs"}, true},
		{"path created", "auditd PATH CREATE file", map[string]any{"file.path": "/etc/login.defs"}, true},
		{"path executed", "auditd PATH NORMAL process", map[string]any{"process.file.path": "/etc/login.defs"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tg target
			for _, x := range auditdTargets {
				if x.Name == tc.target {
					tg = x
				}
			}
			ev := baseEvent(tg)
			for p, v := range tc.fields {
				setPath(ev, p, v)
			}
			if diff := cmp.Diff(tc.want, matches(c, ev)); diff != "" {
				t.Errorf("match (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCollection(t *testing.T) {
	src := `action: global
title: base
author: someone
logsource:
  product: linux
  category: process_creation
detection:
  condition: s
---
id: one
detection:
  s:
    Image: /a
---
action: repeat
id: two
title: second
---
action: reset
---
title: alone
id: three
logsource:
  category: file_event
detection:
  s:
    TargetFilename: /x
  condition: s
`
	rules, err := ParseFile("c.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		ID, Title, Author, Category string
		Image                       any
	}
	var got []summary
	for _, r := range rules {
		s, _ := r.Detection.Searches["s"].(map[string]any)
		got = append(got, summary{r.ID, r.Title, r.Author, r.Logsource.Category, s["Image"]})
		if _, err := r.Compile(); err != nil {
			t.Errorf("compile %s: %v", r.ID, err)
		}
	}
	want := []summary{
		{"one", "base", "someone", "process_creation", "/a"},
		{"two", "second", "someone", "process_creation", "/a"},
		{"three", "alone", "", "file_event", nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

func TestCorrelation(t *testing.T) {
	src := `title: many failed
id: c1
correlation:
  type: event_count
  rules:
    - failed_login
  group-by:
    - User
  timespan: 5m
  condition:
    gte: 10
level: high
`
	rules, err := ParseFile("c.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Correlation{Type: EventCount, Rules: []string{"failed_login"}, GroupBy: []string{"User"},
		Timespan: 5 * time.Minute, Condition: &CorrelationCondition{Op: "gte", Value: 10}}
	if diff := cmp.Diff(want, rules[0].Correlation); diff != "" {
		t.Errorf("correlation (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"bad type", "  type: nope\n  rules: [a]\n  timespan: 1m\n", `type "nope"`},
		{"no timespan", "  type: temporal\n  rules: [a, b]\n", "timespan"},
		{"temporal one rule", "  type: temporal\n  rules: [a]\n  timespan: 1m\n", "at least two rules"},
		{"value_count without field", "  type: value_count\n  rules: [a]\n  timespan: 1h\n  condition:\n    gt: 3\n", "field: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile("c.yml", []byte("title: t\ncorrelation:\n"+tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestIsSigma(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want bool
	}{
		{"detection rule", procRule("  s:\n    Image: x\n  condition: s"), true},
		{"correlation", "title: t\ncorrelation:\n  type: temporal\n", true},
		{"native rule", "id: x\ntitle: t\nsource: process\nkind: match\ncondition: 'true'\n", false},
		{"collection with global", "action: global\nlogsource:\n  category: process_creation\ndetection:\n  condition: s\n---\ntitle: x\n", true},
		{"not yaml", "{{{", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, IsSigma([]byte(tc.data))); diff != "" {
				t.Errorf("IsSigma (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseCompile(f *testing.F) {
	f.Add([]byte(procRule("  s:\n    Image|endswith: '/a'\n    CommandLine|contains|all: ['x', 'y']\n  condition: s")))
	f.Add([]byte(procRule("  s:\n    CommandLine|re|i: 'a.*b'\n  f:\n    - 'k'\n  condition: s and not 1 of f*")))
	f.Add([]byte(procRule("  s:\n    CommandLine|base64offset|contains: 'x'\n  condition: all of them")))
	f.Add([]byte("action: global\ntitle: x\n---\nlogsource:\n  service: auditd\ndetection:\n  s:\n    type: EXECVE\n    a0: x\n  condition: s\n"))
	f.Add([]byte("title: t\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 1m\n  condition: {gte: 2}\n"))
	ev := engine.Activation(procEvent(map[string]any{"process.cmd_line": "a x y b", "process.file.path": "/a"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		IsSigma(data)
		rules, err := ParseFile("f.yml", data)
		if err != nil {
			return
		}
		for _, r := range rules {
			c, err := r.Compile()
			if err != nil {
				continue
			}
			if _, err := c.Cond.Match(ev); err != nil {
				t.Errorf("match: %v", err)
			}
		}
	})
}

func FuzzCondition(f *testing.F) {
	for _, s := range []string{"a and not (b or 1 of c*)", "all of them", "((a)", "not not a", "2 of x*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseCondition(s)
	})
}

func FuzzGlob(f *testing.F) {
	f.Add("a*b?c", "aXXbYc", false)
	f.Add(`\*x*`, "*xyz", true)
	f.Fuzz(func(t *testing.T, pat, s string, cased bool) {
		if !utf8.ValidString(pat) || !utf8.ValidString(s) {
			return // the rune walk reads invalid bytes as U+FFFD; the glob compares bytes
		}
		p := parsePattern(pat)
		g := newGlob(p, cased)
		got := g.matchString(s)
		// The rune walk is the reference for every fast path.
		ref := make([]rune, len(p))
		for i, r := range p {
			if r >= 0 && !cased {
				r = []rune(strings.ToLower(string(r)))[0]
			}
			ref[i] = r
		}
		in := s
		if !cased {
			in = strings.ToLower(s)
		}
		if want := matchRunes(ref, []rune(in)); got != want {
			t.Errorf("glob %q on %q (cased %v) = %v, rune walk says %v", pat, s, cased, got, want)
		}
	})
}

func TestFieldPaths(t *testing.T) {
	c, err := compileOne(t, procRule("  s:\n    Image: /a\n  condition: s"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.FieldPaths("User")
	if diff := cmp.Diff(map[string]string{"process": "process.user.name"}, got); diff != "" || !ok {
		t.Errorf("FieldPaths(User) (-want +got):\n%s", diff)
	}
	if _, ok := c.FieldPaths("TargetUserName"); ok {
		t.Error("FieldPaths found an unmapped field")
	}
}

func TestLintCorrelation(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yml", "title: a\nid: rule-a\nname: shell\nlogsource:\n  category: process_creation\ndetection:\n  s:\n    Image|endswith: /sh\n  condition: s\n")
	write("b.yml", "title: b\ncorrelation:\n  type: event_count\n  rules: [shell]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 3}\n")
	write("c.yml", "title: c\ncorrelation:\n  type: event_count\n  rules: [rule-a]\n  group-by: [TargetUserName]\n  timespan: 1m\n  condition: {gte: 3}\n")
	write("d.yml", "title: d\ncorrelation:\n  type: temporal\n  rules: [rule-a, missing]\n  timespan: 1m\n")
	res, err := LintDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		msg := "loaded"
		if r.Err != nil {
			msg = strings.TrimPrefix(r.Err.Error(), r.File+": ")
		}
		got = append(got, filepath.Base(r.File)+": "+msg)
	}
	want := []string{
		"a.yml: loaded",
		"b.yml: loaded",
		"c.yml: correlation: group-by TargetUserName: crumbs has no equivalent in the events of rule rule-a",
		`d.yml: correlation: rules: "missing" is not a loaded rule id or name`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lint (-want +got):\n%s", diff)
	}
}

// TestSigmaAliasBombRefused: a Sigma file whose aliases would expand to millions of nodes is
// refused with one short reason, without being expanded.
func TestSigmaAliasBombRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString(procRule("  s:\n    Image: x\n  condition: s\n"))
	b.WriteString("tags: &t0 [x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "x%d: &t%d [*t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err := ParseFile("bomb.yml", []byte(b.String()))
	want := "bomb.yml: invalid YAML: YAML input of more than 100000 nodes (aliases counted as what they expand to)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}
