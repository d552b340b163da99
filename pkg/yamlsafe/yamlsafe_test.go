package yamlsafe

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// laughs is the classic alias bomb: levels of anchors, each a list of ten aliases of the level
// before, so the last one stands for 10^levels scalars in a few hundred bytes.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("a0: &a0 lol\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// AliasBody builds the 2.9 MB context body of issue 14: nested anchors of inventory records,
// then a list of aliases of the last level until the body is size bytes long.
func aliasBody(size int) string {
	var b strings.Builder
	b.WriteString("- &r0 {kind: inventory, id: web-1, host: web-1, service: shop}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "- &r%d [", i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*r%d", i-1)
		}
		b.WriteString("]\n")
	}
	for b.Len() < size {
		b.WriteString("- *r8\n")
	}
	return b.String()
}

func TestParseLimits(t *testing.T) {
	lim := Limits{MaxBytes: 1 << 20, MaxNodes: 1000, MaxDocuments: 3}
	cases := []struct {
		name  string
		in    string
		nodes int    // nodes of the parsed tree, aliases expanded, when accepted
		want  string // the error, "" when accepted
	}{
		{"mapping", "a: 1\nb: [x, y]\n", 8, ""},
		{"JSON", `{"a": 1, "b": ["x", "y"]}`, 8, ""},
		{"aliases within the limit", "a: &x [1, 2, 3]\nb: *x\nc: *x\n", 17, ""},
		{"several documents", "a: 1\n---\nb: 2\n", 8, ""},
		{"empty", "", 0, ""},
		{"too large", strings.Repeat("#", 1<<20+1), 0, "YAML input of 1048577 bytes: larger than the limit of 1048576"},
		{"too many nodes before parsing", "[" + strings.Repeat("1,", 400) + "1]", 0, "YAML input of more than 1000 nodes (aliases counted as what they expand to)"},
		{"too many nodes after parsing", strings.Repeat("- [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n", 60), 0,
			"YAML input of more than 1000 nodes (aliases counted as what they expand to)"},
		{"alias bomb", laughs(9), 0, "YAML input of more than 1000 nodes (aliases counted as what they expand to)"},
		{"too many documents", "a: 1\n---\nb: 2\n---\nc: 3\n---\nd: 4\n", 0, "YAML input of more than 3 documents"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Parse([]byte(tc.in), lim)
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrLimit) {
					t.Errorf("error %v is not ErrLimit", err)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("error (-want +got):\n%s", diff)
			}
			nodes, counted := 0, 0
			for _, d := range docs {
				nodes += expanded(d)
				if err := count(d, lim.MaxNodes, &counted); err != nil {
					t.Fatal(err)
				}
			}
			if nodes != tc.nodes || counted != tc.nodes {
				t.Errorf("%d nodes expanded, %d counted; want %d", nodes, counted, tc.nodes)
			}
		})
	}
}

// expanded counts the nodes of a tree by expanding every alias (only for small trees).
func expanded(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		return expanded(n.Alias)
	}
	s := 1
	for _, c := range n.Content {
		s += expanded(c)
	}
	return s
}

// TestAliasBodyRefusedQuickly: the 2.9 MB alias body of issue 14 (it allocated 626 MiB and
// returned 43 MiB of errors) is refused with one short error, allocating little, and so is an
// alias bomb small enough to be parsed.
func TestAliasBodyRefusedQuickly(t *testing.T) {
	for _, in := range []string{aliasBody(2_900_000), laughs(9)} {
		data := []byte(in)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Parse(data, DefaultLimits())
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrLimit) {
			t.Fatalf("%d bytes: error %v, want ErrLimit", len(data), err)
		}
		if len(err.Error()) > 200 {
			t.Errorf("%d bytes: error of %d bytes", len(data), len(err.Error()))
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%d bytes: %d KiB allocated to refuse it", len(data), alloc>>10)
		}
	}
}

// TestRecursiveAlias: an alias inside the node it names is refused, not followed forever.
func TestRecursiveAlias(t *testing.T) {
	_, err := Parse([]byte("a: &x [1, *x]\n"), DefaultLimits())
	if err == nil {
		t.Fatal("recursive alias accepted")
	}
}

func TestUnmarshalKnownFields(t *testing.T) {
	var v struct {
		A int `yaml:"a"`
	}
	if err := Unmarshal([]byte("a: 1\nb: 2\n"), &v, DefaultLimits(), true); err == nil || !strings.Contains(err.Error(), "field b not found") {
		t.Errorf("unknown field: error %v", err)
	}
	if err := Unmarshal([]byte("a: 1\nb: 2\n"), &v, DefaultLimits(), false); err != nil || v.A != 1 {
		t.Errorf("a=%d, error %v", v.A, err)
	}
	if err := Unmarshal([]byte(laughs(9)), &v, DefaultLimits(), true); !errors.Is(err, ErrLimit) {
		t.Errorf("alias bomb: error %v", err)
	}
}

// FuzzParse: no input panics the parser or the counter, and an accepted input decodes into Go
// values within the node limit.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a: 1", laughs(3), "- &a [*a]", "[a, {b: c}]", "a: &x [1]\nb: *x\n---\nc: 2", "? a\n: b", "{a, b, c}"} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBytes: 1 << 16, MaxNodes: 2000, MaxDocuments: 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse(data, lim)
		if err != nil {
			return
		}
		for _, d := range docs {
			var v any
			_ = d.Decode(&v)
		}
	})
}
