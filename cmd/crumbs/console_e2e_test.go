package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/threatcrumbs/crumbs/pkg/testenv"
)

// TestConsoleInABrowser: `crumbs up` with the console raises a real alert from a real exec
// (a shell started by a service runtime); headless Chromium logs in, opens the inbox, filters
// it, opens the alert, sees its process tree, acknowledges it, and the state is then in
// ClickHouse. A screenshot of every page goes to the test output folder.
func TestConsoleInABrowser(t *testing.T) {
	browser := testenv.RequireBrowser(t)
	dir := tempDir(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse battery"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfgFile := filepath.Join(dir, "crumbs.yaml")
	cfg := fmt.Sprintf("console:\n  listen: 127.0.0.1:%d\n  users:\n    - {name: alice, password_hash: %q, role: triage}\n", port, hash)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The network collector fails on this kernel until issue 13 lands; the console needs none.
	p := newPipeline(t, "CRUMBS_CONFIG="+cfgFile, fmt.Sprintf("CRUMBS_CONSOLE_LISTEN=127.0.0.1:%d", port), "CRUMBS_COLLECTORS_NETWORK_ENABLED=false")
	p.start()
	hostName, _ := os.Hostname()
	inv := filepath.Join(dir, "inventory.json")
	if err := os.WriteFile(inv, []byte(fmt.Sprintf(`{"kind": "inventory", "id": %q, "host": %q, "service": "shop", "environment": "prod", "role": "web"}`, hostName, hostName)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.crumbs("context", "publish", "--kind", "inventory", "-f", inv)
	time.Sleep(time.Second) // the enricher applies the record

	// A shell started by a "java": the built-in rule crumbs-lotl-shell-from-service-runtime.
	java := filepath.Join(dir, "java")
	bash, _ := exec.LookPath("bash")
	data, err := os.ReadFile(bash)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(java, data, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := randomName("crumbs-console-")
	if out, err := exec.Command(java, "-c", "sh -c 'echo "+marker+"'; exit 0").CombinedOutput(); err != nil {
		t.Fatalf("run %s: %v: %s", java, err, out)
	}
	var alertID, severity string
	p.eventually(30*time.Second, "the shell's alert in ClickHouse", func() (bool, string) {
		q := fmt.Sprintf(`SELECT alert_id, severity FROM %s.alerts WHERE rule_id = 'crumbs-lotl-shell-from-service-runtime' AND has(evidence,
			(SELECT any(event_id) FROM %s.process_events WHERE action = 'exec' AND has(args, 'echo %s'))) LIMIT 1`, p.database, p.database, marker)
		err := p.conn.QueryRow(context.Background(), q).Scan(&alertID, &severity)
		return err == nil && alertID != "", fmt.Sprint(err)
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	var opts []chromedp.ExecAllocatorOption
	opts = append(opts, chromedp.ExecPath(browser.Path), chromedp.WindowSize(1400, 1000))
	for _, f := range browser.Flags {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if _, err := chromedp.Run(ctx, a); err != nil {
			t.Fatalf("%s: %v\ncrumbs logs:\n%s", what, err, p.logs.String())
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the window (1400x1000), as PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(browser.OutputDir, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Fatalf("screenshot %s is empty: %v", path, err)
		}
	}

	run("log in", chromedp.Steps(
		chromedp.Navigate(base+"/alerts"), // not logged in: sent to the login page
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#user"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
	))
	shot("login")
	run("submit the login", chromedp.Steps(chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitVisible(chromedp.CSS("#alerts"))))
	row := fmt.Sprintf(`tr[data-alert-id=%q]`, alertID)
	run("the alert in the inbox", chromedp.WaitVisible(chromedp.CSS(row)))
	shot("inbox")

	// Filter by the alert's severity through its facet link, then by a severity it has not.
	run("filter by severity", chromedp.Steps(
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`section[data-facet="severity"] a[data-value=%q]`, severity))),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`section[data-facet="severity"] a.on[data-value=%q]`, severity))),
		chromedp.WaitVisible(chromedp.CSS(row)),
	))
	shot("inbox-filtered")
	other := "informational"
	if severity == other {
		other = "critical"
	}
	run("filter by another severity", chromedp.Steps(
		chromedp.Navigate(base+"/alerts?severity="+other),
		chromedp.WaitVisible(chromedp.CSS("#alerts")),
	))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, row))); err != nil || n != 0 {
		t.Errorf("inbox filtered by severity %s lists the %s alert (%d rows, %v)", other, severity, n, err)
	}

	run("open the alert", chromedp.Steps(
		chromedp.Navigate(base+"/alerts?severity="+severity),
		chromedp.Click(chromedp.CSS(row+" a.open-alert")),
		chromedp.WaitVisible(chromedp.CSS("#process-tree")),
	))
	tree := text("#process-tree")
	for _, want := range []string{java, "/sh", "echo " + marker} {
		if !strings.Contains(tree, want) {
			t.Errorf("process tree does not show %q:\n%s", want, tree)
		}
	}
	if !strings.Contains(text("#process-tree tr.evidence"), "echo "+marker) {
		t.Errorf("the shell is not marked as evidence in the process tree:\n%s", tree)
	}
	if got := text("#state"); got != "new" {
		t.Errorf("state before acknowledging: %q, want new", got)
	}
	shot("alert")

	run("acknowledge", chromedp.Steps(chromedp.Click(chromedp.CSS("#ack")), chromedp.WaitVisible(chromedp.CSS("#done"))))
	if got := text("#state"); got != "acknowledged" {
		t.Errorf("state after acknowledging: %q, want acknowledged\n%s", got, text("#triage"))
	}
	shot("alert-acknowledged")
	var state, assignee, by string
	q := fmt.Sprintf("SELECT argMax(state, version), argMax(assignee, version), argMax(updated_by, version) FROM %s.alert_triage WHERE alert_id = ?", p.database)
	if err := p.conn.QueryRow(context.Background(), q, alertID).Scan(&state, &assignee, &by); err != nil || state != "acknowledged" || by != "alice" || assignee != "alice" {
		t.Errorf("alert_triage: state %q assignee %q by %q (%v); want acknowledged by alice", state, assignee, by, err)
	}

	for _, pg := range []struct{ name, path, sel string }{
		{"timeline", "/timeline?host=" + hostName + "&from=1h", "#entries"},
		{"graph", "/graph?since=1h", "main"},
		{"context", "/context", "#inventory"},
	} {
		run("open "+pg.name, chromedp.Steps(chromedp.Navigate(base+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.sel))))
		shot(pg.name)
	}
	if !strings.Contains(text("#inventory"), hostName) {
		t.Errorf("context page does not list the inventory of %s", hostName)
	}
}
