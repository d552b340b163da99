package engine_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/threatcrumbs/crumbs/detectors/engine"
	"github.com/threatcrumbs/crumbs/detectors/rules"
	"github.com/threatcrumbs/crumbs/schemas"
)

func execEvent(name, parentPath string) map[string]any {
	ev := &schemas.ProcessEvent{
		Envelope: schemas.Envelope{EventID: "e1", Time: 42, Host: schemas.Host{ID: "m", Name: "web-1"}, Kind: "process"},
		Action:   schemas.ActionExec,
		Process: schemas.Process{PID: 10, PPID: 9, File: schemas.File{Path: "/bin/" + name, Name: name},
			Args: []string{name, "-c", "id"}, CmdLine: name + " -c id",
			Parent: schemas.Parent{PID: 9, File: schemas.File{Path: parentPath}}},
		Enrichment: &schemas.Enrichment{Service: "shop"},
	}
	return ev.Native()
}

func TestBuiltinPackLivingOffTheLand(t *testing.T) {
	rs, err := engine.LoadFS(rules.FS, rules.Dir)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(rs, 10)
	for _, tc := range []struct {
		name, exe, parent string
		want              int
	}{
		{"sh from java", "sh", "/opt/app/java", 1},
		{"bash from python3.11", "bash", "/usr/bin/python3.11", 1},
		{"dash from php-fpm8.2", "dash", "/usr/sbin/php-fpm8.2", 1},
		{"sh from sshd", "sh", "/usr/sbin/sshd", 0},
		{"ls from java", "ls", "/opt/app/java", 0},
		{"sh from javac", "sh", "/usr/bin/javac", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alerts, err := e.Evaluate(execEvent(tc.exe, tc.parent))
			if err != nil {
				t.Fatal(err)
			}
			if len(alerts) != tc.want {
				t.Fatalf("got %d alerts, want %d", len(alerts), tc.want)
			}
			if tc.want == 1 {
				a := alerts[0]
				want := &schemas.Alert{
					AlertID: engine.AlertID("crumbs-lotl-shell-from-service-runtime", "web-1|9", "e1"), Time: 42,
					RuleID: "crumbs-lotl-shell-from-service-runtime", Title: "Shell started by a service runtime",
					Severity: "high", Tags: []string{"attack.execution", "attack.t1059.004"}, GroupKey: "web-1|9",
					Host: schemas.Host{ID: "m", Name: "web-1"}, Service: "shop", WindowStart: 42, WindowEnd: 42,
					Count: 1, Evidence: []string{"e1"}, Summary: "Shell started by a service runtime: " + tc.exe + " -c id",
				}
				if d := cmp.Diff(want, a); d != "" {
					t.Errorf("alert (-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestInvalidRulesAreRefusedWithFileAndLine(t *testing.T) {
	fsys := fstest.MapFS{
		"r/bad-field.yaml": {Data: []byte("id: a\ntitle: A\nseverity: high\nsource: process\nkind: match\ncondition: nosuch.field == 1\n")},
		"r/bad-type.yaml":  {Data: []byte("id: b\ntitle: B\nseverity: high\nsource: process\nkind: match\ncondition: action + 1\n")},
		"r/bad-sev.yaml":   {Data: []byte("id: c\ntitle: C\nseverity: urgent\nsource: process\nkind: match\ncondition: action == 'exec'\nextra: 1\n")},
		"r/good.yaml":      {Data: []byte("id: d\ntitle: D\nseverity: low\nsource: process\nkind: match\ncondition: action == 'exec'\n")},
	}
	_, err := engine.LoadFS(fsys, "r")
	if err == nil {
		t.Fatal("rule set with invalid rules was accepted")
	}
	for _, want := range []string{
		"r/bad-field.yaml:6: condition:", "undeclared reference to 'nosuch'",
		"r/bad-type.yaml:6: condition:", "r/bad-sev.yaml:3: severity: \"urgent\"", "r/bad-sev.yaml:7: unknown key \"extra\"",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "good.yaml") {
		t.Errorf("good rule reported: %s", err)
	}
}
