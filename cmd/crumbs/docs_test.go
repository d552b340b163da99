package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/config"
)

// TestDocsDocumentEveryKeyAndCommand: every configuration key is in docs/configuration.md and
// every command in docs/commands.md, so a user can find what they can set and run.
func TestDocsDocumentEveryKeyAndCommand(t *testing.T) {
	conf := readDoc(t, "docs/configuration.md")
	for _, k := range config.Keys(defaultConfig()) {
		if !strings.Contains(conf, "`"+k.Name+"`") {
			t.Errorf("docs/configuration.md does not document the key `%s`", k.Name)
		}
	}
	commands := readDoc(t, "docs/commands.md")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if !sub.HasSubCommands() && !strings.Contains(commands, sub.CommandPath()) {
				t.Errorf("docs/commands.md does not show the command %q", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(newRoot())
}

// TestConfigurationDocIsCurrent: docs/configuration.md is what `crumbs config --markdown`
// prints, and every key has its meaning written in configdoc.go. -update rewrites the page.
func TestConfigurationDocIsCurrent(t *testing.T) {
	for _, k := range config.Keys(defaultConfig()) {
		if d, ok := keyDocs[k.Name]; !ok || d.Meaning == "" {
			t.Errorf("configuration key %s has no meaning in cmd/crumbs/configdoc.go (keyDocs)", k.Name)
		}
		in := 0
		for _, s := range configSections {
			if s.has(k.Name) {
				in++
			}
		}
		if in != 1 {
			t.Errorf("configuration key %s is in %d sections of configSections, want 1", k.Name, in)
		}
	}
	known := map[string]bool{}
	for _, k := range config.Keys(defaultConfig()) {
		known[k.Name] = true
	}
	for name := range keyDocs {
		if !known[name] {
			t.Errorf("keyDocs documents %s, which is no configuration key", name)
		}
	}
	out, err := runRoot(t, "config", "--markdown")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(repoRoot(t), "docs", "configuration.md")
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(readDoc(t, "docs/configuration.md"), out); diff != "" {
		t.Errorf("docs/configuration.md is out of date; run go test ./cmd/crumbs -run TestConfigurationDocIsCurrent -update (-want +got):\n%s", diff)
	}
	for _, want := range []string{"| `clickhouse.addr` | `CRUMBS_CLICKHOUSE_ADDR` | `[127.0.0.1:9000]` |", "| `kafka.transaction_timeout` | `CRUMBS_KAFKA_TRANSACTION_TIMEOUT` | `1m` |", "| `kafka.brokers` | `CRUMBS_KAFKA_BROKERS` | `[]` |"} {
		if !strings.Contains(out, want) {
			t.Errorf("crumbs config --markdown lacks the row %q", want)
		}
	}
}

// pendingPages are pages linked from the docs that another branch of the same issue writes;
// the test fails once one exists, so that it leaves this list.
var pendingPages = map[string]string{}

var mdLinkTarget = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinksResolve: every relative link of README.md and docs/*.md names a file of the
// repository, and a link to a heading names one the page has.
func TestDocLinksResolve(t *testing.T) {
	root := repoRoot(t)
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	for rel, why := range pendingPages {
		if _, err := os.Stat(filepath.Join(root, rel)); err == nil {
			t.Errorf("%s exists now (%s): remove it from pendingPages", rel, why)
		}
	}
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := filepath.Rel(root, page)
		for _, m := range mdLinkTarget.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(link, "#")
			target := page
			if file != "" {
				target = filepath.Join(filepath.Dir(page), file)
			}
			relTarget, _ := filepath.Rel(root, target)
			if _, ok := pendingPages[relTarget]; ok {
				continue
			}
			tb, err := os.ReadFile(target)
			if err != nil {
				if st, serr := os.Stat(target); serr == nil && st.IsDir() {
					continue
				}
				t.Errorf("%s links to %s: %v", name, link, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !headingAnchors(string(tb))[anchor] {
				t.Errorf("%s links to %s: %s has no heading with the anchor #%s", name, link, relTarget, anchor)
			}
		}
	}
}

// headingAnchors are the anchors GitHub gives a page's headings: lower case, punctuation
// dropped, spaces as hyphens; a repeated heading gets -1, -2 ...
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inCode := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[a+"-"+string(rune('0'+n))] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMEShortAndEveryPageReachable: the README fits on a few screens, says the two
// commands, and every page of docs/ can be reached from it by following links.
func TestREADMEShortAndEveryPageReachable(t *testing.T) {
	root := repoRoot(t)
	readme := readDoc(t, "README.md")
	if n := strings.Count(readme, "\n"); n > 100 {
		t.Errorf("README.md is %d lines; keep it to what crumbs is, the two commands, a first alert and the contents (at most 100)", n)
	}
	for _, want := range []string{"make run", "make test", "docs/configuration.md", "docs/design.md"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not mention %s", want)
		}
	}
	seen := map[string]bool{}
	queue := []string{filepath.Join(root, "README.md")}
	for len(queue) > 0 {
		page := queue[0]
		queue = queue[1:]
		if seen[page] {
			continue
		}
		seen[page] = true
		b, err := os.ReadFile(page)
		if err != nil {
			continue // TestDocLinksResolve names broken links
		}
		for _, m := range mdLinkTarget.FindAllStringSubmatch(string(b), -1) {
			file, _, _ := strings.Cut(m[1], "#")
			if strings.HasSuffix(file, ".md") && !strings.Contains(file, "://") {
				queue = append(queue, filepath.Clean(filepath.Join(filepath.Dir(page), file)))
			}
		}
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if !seen[p] {
			t.Errorf("%s cannot be reached from README.md by its links", p)
		}
	}
}
