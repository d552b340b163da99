package sigma

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// TestIndexKey: a rule whose detection fixes the last path element of a field is keyed by it,
// lower-cased; one that does not is not keyed; the key reads events the way Sigma compares.
func TestIndexKey(t *testing.T) {
	for _, tc := range []struct {
		name, detection string
		want            []string // nil: not keyed
	}{
		{"endswith", "  selection:\n    Image|endswith: '/WhoAmI'\n  condition: selection", []string{"whoami"}},
		{"list and exact", "  selection:\n    Image|endswith: ['/id', 'bin/whoami']\n    CommandLine|contains: x\n  condition: selection", []string{"id", "whoami"}},
		{"exact path", "  selection:\n    Image: '/usr/bin/curl'\n  condition: selection", []string{"curl"}},
		{"fewest values", "  selection:\n    Image|endswith: ['/a', '/b']\n    ParentImage|endswith: '/sshd'\n  condition: selection", []string{"sshd"}},
		{"and not", "  selection:\n    Image|endswith: '/nc'\n  filter:\n    User: root\n  condition: selection and not filter", []string{"nc"}},
		{"no slash", "  selection:\n    Image|endswith: 'whoami'\n  condition: selection", nil},
		{"one value without", "  selection:\n    Image|endswith: ['/id', 'whoami']\n  condition: selection", nil},
		{"contains", "  selection:\n    Image|contains: '/whoami'\n  condition: selection", nil},
		{"cased", "  selection:\n    Image|endswith|cased: '/whoami'\n  condition: selection", nil},
		{"or", "  a:\n    Image|endswith: '/id'\n  b:\n    CommandLine|contains: x\n  condition: a or b", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileOne(t, procRule(tc.detection))
			if err != nil {
				t.Fatal(err)
			}
			k, vals, ok := c.Cond.(engine.KeyedCondition).IndexKey()
			if !ok {
				vals = nil
			}
			if diff := cmp.Diff(tc.want, vals); diff != "" {
				t.Fatalf("key values (-want +got):\n%s", diff)
			}
			if !ok {
				return
			}
			for path, want := range map[string]string{"/usr/bin/WHOAMI": "whoami", "Curl": "curl", "/usr/bin/": ""} {
				if got, present := k.Of(engine.Map(engine.Activation(procEvent(map[string]any{"process.file.path": path})))); tc.name != "fewest values" && (!present || got != want) {
					t.Errorf("key of %q: %q (present %v), want %q", path, got, present, want)
				}
			}
		})
	}
}

// TestLiterals: a rule offers the literals of one conjunct that must hold, lower-cased, in
// the field it reads; an OR offers the literals of every branch; what has no literal offers
// nothing. The engine then evaluates the rule on exactly the events whose text holds one,
// whatever its case.
func TestLiterals(t *testing.T) {
	for _, tc := range []struct {
		name, detection string
		want            map[string][]string // field path -> literals; nil: none
		hit, miss       string              // a command line that holds a literal, one that does not
	}{
		{name: "contains", detection: "  sel:\n    CommandLine|contains: 'Base64 -D'\n  condition: sel",
			want: map[string][]string{"process.cmd_line": {"base64 -d"}}, hit: "echo x | BASE64 -d", miss: "base64"},
		{name: "startswith and endswith", detection: "  sel:\n    CommandLine|startswith: 'nc -e'\n  sel2:\n    CommandLine|endswith: '/dev/tcp'\n  condition: sel or sel2",
			want: map[string][]string{"process.cmd_line": {"nc -e", "/dev/tcp"}}, hit: "x > /DEV/TCP", miss: "nc"},
		{name: "wildcards: the longest run", detection: "  sel:\n    CommandLine: '*wget*http?://*.onion/*'\n  condition: sel",
			want: map[string][]string{"process.cmd_line": {".onion/"}}, hit: "wget https://x.ONION/a", miss: "wget http://x"},
		{name: "question mark", detection: "  sel:\n    CommandLine: 'chmod ?777 /tmp*'\n  condition: sel",
			want: map[string][]string{"process.cmd_line": {"777 /tmp"}}, hit: "chmod 0777 /tmp/x", miss: "chmod 0777"},
		{name: "cased literal lower-cased", detection: "  sel:\n    CommandLine|contains|cased: 'ZWNobw'\n  condition: sel",
			want: map[string][]string{"process.cmd_line": {"zwnobw"}}, hit: "ZWNobw==", miss: "zwnob"},
		{name: "the longest conjunct", detection: "  sel:\n    CommandLine|contains: ' -c '\n    ParentCommandLine|contains: 'crontab -e'\n  condition: sel",
			want: map[string][]string{"process.parent.cmd_line": {"crontab -e"}}},
		{name: "keywords", detection: "  keywords:\n    - 'Mimikatz'\n  condition: keywords",
			want: map[string][]string{"process.cmd_line": {"mimikatz"}}, hit: "./MIMIKATZ", miss: "./mimi"},
		{name: "windash variants", detection: "  sel:\n    CommandLine|windash|contains: ' -exec'\n  condition: sel",
			want: map[string][]string{"process.cmd_line": {" -exec", " /exec", " –exec", " —exec", " ―exec"}}, hit: "find /exec", miss: "find"},
		{name: "regex alone: none", detection: "  sel:\n    CommandLine|re: 'nc\\s+-e'\n  condition: sel"},
		{name: "regex beside a literal", detection: "  sel:\n    CommandLine|re: 'nc\\s+-e'\n    CommandLine|contains: '/bin/sh'\n  condition: sel",
			want: map[string][]string{"process.cmd_line": {"/bin/sh"}}, hit: "nc  -e /BIN/sh", miss: "nc -e"},
		{name: "an OR with a branch without literal: none", detection: "  sel:\n    CommandLine|contains: 'x'\n  sel2:\n    ProcessId|gt: 5\n  condition: sel or sel2"},
		{name: "negation: none", detection: "  sel:\n    CommandLine|contains: 'x'\n  condition: not sel"},
		{name: "empty value: none", detection: "  sel:\n    CommandLine: ''\n  condition: sel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileOne(t, procRule(tc.detection))
			if err != nil {
				t.Fatal(err)
			}
			sets, ok := c.Cond.(engine.LiteralCondition).Literals()
			var got map[string][]string
			if ok {
				got = map[string][]string{}
				for _, s := range sets {
					got[strings.TrimSuffix(strings.TrimPrefix(s.Key.Name, "sigma: "), ", lower-cased")] = s.Values
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("literals (-want +got):\n%s", diff)
			}
			if tc.hit == "" {
				return
			}
			rules := c.MatchRules()
			rules[0].Cond = unkeyed{c.Cond.(*ruleCondition)} // judged by its literals alone
			e, err := engine.New(rules, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.Index(), "1 by literals") {
				t.Fatalf("not indexed by its literals: %s", e.Index())
			}
			for cmd, want := range map[string]bool{tc.hit: true, tc.miss: false} {
				as, err := e.Process(0, procEvent(map[string]any{"process.cmd_line": cmd, "process.parent.cmd_line": cmd}))
				if err != nil {
					t.Fatal(err)
				}
				if got := len(as) > 0; got != want {
					t.Errorf("command line %q: alert %v, want %v", cmd, got, want)
				}
			}
		})
	}
}

// unkeyed is a rule's condition without its key, so that the engine indexes it by literals.
type unkeyed struct{ *ruleCondition }

func (u unkeyed) IndexKey() (engine.IndexKey, []string, bool) { return engine.IndexKey{}, nil, false }
