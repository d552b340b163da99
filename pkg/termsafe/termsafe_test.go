package termsafe

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestField(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "ls -la /tmp", "ls -la /tmp"},
		{"unicode kept", "café ünïcode 日本", "café ünïcode 日本"},
		{"backslash kept", `C:\x y\n`, `C:\x y\n`},
		{"ESC sequence", "curl \x1b[2J\x1b]0;pwned\a x", `curl \x1b[2J\x1b]0;pwned\a x`},
		{"CR rewrite", "innocent\rrm -rf /", `innocent\rrm -rf /`},
		{"newline and tab", "a\nb\tc", `a\nb\tc`},
		{"DEL and NUL", "a\x7fb\x00", `a\x7fb\x00`},
		{"C1 CSI", "a\u009b2Jb", `a\u009b2Jb`},
		{"bidi override", "evil\u202eexe.txt", `evil\u202eexe.txt`},
		{"bidi isolates", "\u2066a\u2069 \u200f", `\u2066a\u2069 \u200f`},
		{"invalid UTF-8", "a\xff\xfeb", `a\xff\xfeb`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Field(tc.in)); diff != "" {
				t.Errorf("Field(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
	if diff := cmp.Diff("a\nb\tc\\x1b", Text("a\nb\tc\x1b")); diff != "" {
		t.Errorf("Text keeps line feeds and tabs (-want +got):\n%s", diff)
	}
}

func TestJSON(t *testing.T) {
	v := map[string]string{"cmd": "a\x1b[2J \u009b \u202e b\u00e9"}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := JSON(b)
	if got := string(out); got != `{"cmd":"a\u001b[2J \u009b \u202e bé"}` {
		t.Errorf("JSON: %s", got)
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// FuzzField: the output never holds a character a terminal would obey, and JSON stays JSON.
func FuzzField(f *testing.F) {
	f.Add("a\x1b[31mb\u202ec\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := Field(s)
		if i := firstUnsafe(out, false); i >= 0 {
			t.Fatalf("Field(%q) = %q keeps an unsafe character at %d", s, out, i)
		}
		b, _ := json.Marshal(s)
		var back string
		if err := json.Unmarshal(JSON(b), &back); err != nil {
			t.Fatalf("JSON of %q is not JSON: %v", s, err)
		}
	})
}
