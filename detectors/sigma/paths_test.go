package sigma

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLooksWindowsPath(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{`\bash`, true},
		{`*\node`, true},
		{`C:\`, true},
		{`c:\windows\system32\cmd.exe`, true},
		{`C:\\Windows`, true}, // Sigma's escaped backslash is still a backslash
		{`\\server\share`, true},
		{`..\..\etc\passwd`, true},
		{`/usr/bin/bash`, false},
		{`/tmp/*`, false},
		{`echo -e '\x41\x42'`, false}, // hex escapes of a command line
		{`printf '\n'`, false},
		{`\101`, false},
		{`grep -E 'a\.b'`, false},
		{`\*`, false}, // an escaped wildcard
		{`http://example.com:8080/x`, false},
		{`sh -c`, false},
	} {
		if got := looksWindowsPath(tc.v); got != tc.want {
			t.Errorf("looksWindowsPath(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestWindowsPathWarnings: lint names the search, field and value of each Windows-style path
// of a Linux rule, leaves regular expressions alone, and the rule still loads.
func TestWindowsPathWarnings(t *testing.T) {
	src := procRule(`  selection_img:
    Image|endswith:
      - '\bash'
      - '/sh'
  selection_cmd:
    CommandLine|contains: 'C:\Windows\Temp'
    CommandLine|re: '\s-c\s'
  keywords:
    - '..\evil'
    - 'plain'
  condition: 1 of selection_* or keywords
`)
	r := LintFile("r.yml", []byte(src))
	if !r.Loaded() {
		t.Fatal(r.Err)
	}
	want := []string{
		`rule "t": keywords: field (keywords): value '..\evil' looks like a Windows path; Linux paths and command lines use '/', so it never matches a Linux event as meant`,
		`rule "t": selection_cmd: field CommandLine|contains: value 'C:\Windows\Temp' looks like a Windows path; Linux paths and command lines use '/', so it never matches a Linux event as meant`,
		`rule "t": selection_img: field Image|endswith: value '\bash' looks like a Windows path; Linux paths and command lines use '/', so it never matches a Linux event as meant`,
	}
	if d := cmp.Diff(want, r.Warnings()); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}

	// SigmaHQ's Shai-Hulud rule for Linux names the node binary as '\node'.
	rel := filepath.Join("rules-emerging-threats", "2025", "Malware", "Shai-Hulud", "proc_creation_lnx_mal_shai_hulud_malicious_npm_package_installation.yml")
	data, err := os.ReadFile(filepath.Join(corpusDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	got := LintFile(rel, data).Warnings()
	if d := cmp.Diff([]string{`rule "Shai-Hulud 2.0 Malicious NPM Package Installation - Linux": selection_img: field Image|endswith: value '\node' looks like a Windows path; Linux paths and command lines use '/', so it never matches a Linux event as meant`}, got); d != "" {
		t.Errorf("corpus warnings (-want +got):\n%s", d)
	}
}
