package enrichers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/schemas"
)

// TestManifestIndex looks up every path of a manifest large enough to make the open-addressing
// table probe, paths it does not hold, a path listed twice (the later entry wins), and compares
// sha256 and mode as the join does.
func TestManifestIndex(t *testing.T) {
	var arts []schemas.Artifact
	for i := range 3000 {
		arts = append(arts, schemas.Artifact{Path: fmt.Sprintf("/opt/app/lib/%d.so", i), SHA256: goodSHA, Mode: "0644"})
	}
	arts = append(arts,
		schemas.Artifact{Path: "/opt/app/bin/app", SHA256: strings.Repeat("a", 64), Mode: "0755"},
		schemas.Artifact{Path: "/opt/app/bin/odd", SHA256: "not-hex", Mode: "rwx"},
		schemas.Artifact{Path: "/opt/app/bin/app", SHA256: strings.Repeat("b", 64), Mode: "0700"}, // replaces the first
	)
	m := newManifestIndex(arts)
	for i := range 3000 {
		p := fmt.Sprintf("/opt/app/lib/%d.so", i)
		e := m.lookup(p)
		if e == nil || e.artifact() != i {
			t.Fatalf("lookup(%s) = %v, want artifact %d", p, e, i)
		}
	}
	for _, p := range []string{"/opt/app/lib/3000.so", "/opt/app/lib/1.s", "", "/"} {
		if e := m.lookup(p); e != nil {
			t.Errorf("lookup(%q) = artifact %d, want none", p, e.artifact())
		}
	}
	type result struct {
		Artifact      int
		Same, Decided bool
		Mode          uint32
		ModeOK        bool
	}
	cases := []struct {
		path, sha string
		want      result
	}{
		{"/opt/app/bin/app", strings.Repeat("b", 64), result{Artifact: 3002, Same: true, Decided: true, Mode: 0o700, ModeOK: true}},
		{"/opt/app/bin/app", strings.Repeat("B", 64), result{Artifact: 3002, Same: true, Decided: true, Mode: 0o700, ModeOK: true}},
		{"/opt/app/bin/app", strings.Repeat("a", 64), result{Artifact: 3002, Same: false, Decided: true, Mode: 0o700, ModeOK: true}},
		{"/opt/app/bin/app", "abc", result{Artifact: 3002, Same: false, Decided: true, Mode: 0o700, ModeOK: true}},
		{"/opt/app/bin/odd", "not-hex", result{Artifact: 3001, Same: false, Decided: false}},
	}
	for _, tc := range cases {
		e := m.lookup(tc.path)
		if e == nil {
			t.Fatalf("lookup(%s): none", tc.path)
		}
		var got result
		got.Artifact = e.artifact()
		got.Same, got.Decided = e.sameSHA256(tc.sha)
		got.Mode, got.ModeOK = e.mode()
		if !got.ModeOK {
			got.Mode = 0
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s with sha %.8s (-want +got):\n%s", tc.path, tc.sha, diff)
		}
	}
}

// TestHostIndex adds, finds and removes hosts, with names longer than the inline buffer, once
// with the real hash and once with one under which every name collides (a single chain),
// removing from the chain's head, middle and end.
func TestHostIndex(t *testing.T) {
	long := strings.Repeat("h", 100) + ".example.com"
	names := []string{"web-1", "web-2", long, "a", strings.Repeat("x", 32), strings.Repeat("y", 33)}
	for _, hash := range []struct {
		name string
		fn   func(string) uint64
	}{{"maphash", nil}, {"every name collides", func(string) uint64 { return 7 }}} {
		t.Run(hash.name, func(t *testing.T) {
			x := newHostIndex()
			x.hash = hash.fn
			for _, n := range names {
				if first := x.add(n); x.add(n) != first {
					t.Fatalf("add(%s) twice gave two contexts", n)
				}
			}
			for _, n := range names {
				if h := x.get(n); h == nil || h.name != n {
					t.Errorf("get(%s) = %v", n, h)
				}
			}
			if h := x.get("web-3"); h != nil {
				t.Errorf("get(web-3) = %s, want none", h.name)
			}
			gone := map[string]bool{}
			for _, n := range []string{names[2], names[len(names)-1], names[0], "web-3", names[1], names[3], names[4]} {
				x.remove(n)
				gone[n] = true
				for _, other := range names {
					if got := x.get(other) != nil; got == gone[other] {
						t.Errorf("after removing %s: get(%s) found=%v", n, other, got)
					}
				}
			}
			if x.len() != 0 {
				t.Errorf("len after removing all = %d", x.len())
			}
		})
	}
}
