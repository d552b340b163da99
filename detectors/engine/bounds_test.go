package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
)

// laughs is an alias bomb: levels of anchors, each ten aliases of the one before.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("id: a\ntitle: A\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\ntags: &t0 [x]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x%d: &t%d [*t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d, *t%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

// TestRuleInputsAreBounded: an alias bomb is refused with one short problem, without being
// expanded; a file with thousands of problems reports a hundred and sums up the rest.
func TestRuleInputsAreBounded(t *testing.T) {
	_, ps := engine.ParseRule("bomb.yaml", []byte(laughs(9)))
	want := engine.Problems{{File: "bomb.yaml", Line: 1, Msg: "YAML input of more than 100000 nodes (aliases counted as what they expand to)"}}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("alias bomb (-want +got):\n%s", diff)
	}

	var b strings.Builder
	b.WriteString("id: a\ntitle: A\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "unknown%d: 1\n", i)
	}
	_, ps = engine.ParseRule("many.yaml", []byte(b.String()))
	if len(ps) != engine.MaxProblems+1 {
		t.Fatalf("%d problems, want %d", len(ps), engine.MaxProblems+1)
	}
	if diff := cmp.Diff(engine.Problem{File: "many.yaml", Line: 107, Msg: "and 400 more problems"}, ps[engine.MaxProblems]); diff != "" {
		t.Errorf("last problem (-want +got):\n%s", diff)
	}
	if lines := strings.Count(engine.Problems(append(ps, ps...)).Error(), "\n"); lines != engine.MaxProblems {
		t.Errorf("error of %d lines, want %d", lines+1, engine.MaxProblems+1)
	}
}

// TestRuleFilesMustBeRegular: a FIFO among the rule files is refused without blocking, and an
// oversized file unread.
func TestRuleFilesMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 8<<20+1)
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := engine.LoadFS(os.DirFS(dir), ".")
	want := "big.yaml:1: 8388609 bytes: larger than the limit of 8388608\npipe.yaml:1: not a regular file (mode p---------)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want\n%s", err, want)
	}
}
