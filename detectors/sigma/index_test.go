package sigma

import (
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
				if got, present := k.Of(engine.Activation(procEvent(map[string]any{"process.file.path": path}))); tc.name != "fewest values" && (!present || got != want) {
					t.Errorf("key of %q: %q (present %v), want %q", path, got, present, want)
				}
			}
		})
	}
}
