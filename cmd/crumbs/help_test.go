package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/threatcrumbs/crumbs/pkg/config"
)

// runRoot runs a fresh root command with args and returns what it printed.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// repoRoot is the repository's top folder (this package is cmd/crumbs).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// leaves are the runnable commands of the tree, help and completion aside.
func leaves(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		if sub.Runnable() {
			out = append(out, sub)
		}
		out = append(out, leaves(sub)...)
	}
	return out
}

// TestHelpShowsOwnFlags: each command's --help lists the flags it defines, names the
// configuration flags in one section instead of listing them, and takes them (and --config)
// only when it reads configuration.
func TestHelpShowsOwnFlags(t *testing.T) {
	nKeys := 0
	for _, k := range config.Keys(defaultConfig()) {
		if k.Name != "alerts.outputs" && k.Name != "console.users" && k.Name != "console.tokens" {
			nKeys++
		}
	}
	for _, c := range leaves(newRoot()) {
		if c.Hidden {
			continue
		}
		path := c.CommandPath()
		t.Run(strings.ReplaceAll(path, " ", "_"), func(t *testing.T) {
			args := append(strings.Fields(path)[1:], "--help")
			out, err := runRoot(t, args...)
			if err != nil {
				t.Fatalf("crumbs %s: %v", strings.Join(args, " "), err)
			}
			// Every flag the command defines itself is listed.
			c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
				if _, isKey := f.Annotations[configKeyAnnotation]; isKey || f.Hidden {
					return
				}
				if !strings.Contains(out, "--"+f.Name+" ") && !strings.Contains(out, "--"+f.Name+"\n") {
					t.Errorf("%s --help does not list its flag --%s:\n%s", path, f.Name, out)
				}
			})
			if listed := strings.Contains(out, "--clickhouse.addr strings"); listed != (path == "crumbs config") {
				t.Errorf("%s --help: configuration keys listed as flags: %v, want only for crumbs config:\n%s", path, listed, out)
			}
			reads := !noConfig[path]
			if got := c.Flags().Lookup("clickhouse.addr") != nil; got != reads {
				t.Errorf("%s takes configuration flags: %v, want %v (it reads configuration: %v)", path, got, reads, reads)
			}
			if got := c.Flags().Lookup("config") != nil; got != reads {
				t.Errorf("%s takes --config: %v, want %v", path, got, reads)
			}
			if reads && path != "crumbs config" {
				if !strings.Contains(out, "Configuration flags:") || !strings.Contains(out, "crumbs config --help") {
					t.Errorf("%s --help does not say where its configuration flags are listed:\n%s", path, out)
				}
				if n := strings.Count(out, "\n"); n > 60 {
					t.Errorf("%s --help is %d lines long:\n%s", path, n, out)
				}
			}
			if !reads && strings.Contains(out, "Configuration flags") {
				t.Errorf("%s reads no configuration but its help names configuration flags:\n%s", path, out)
			}
		})
	}
}

// TestConfigHelpListsEveryKey: `crumbs config --help` (and `crumbs help config`) lists every
// configuration flag with its meaning and environment variable, by section.
func TestConfigHelpListsEveryKey(t *testing.T) {
	for _, args := range [][]string{{"config", "--help"}, {"help", "config"}} {
		out, err := runRoot(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range config.Keys(defaultConfig()) {
			if k.Name == "alerts.outputs" || k.Name == "console.users" || k.Name == "console.tokens" {
				continue // lists of records: set in the file only
			}
			if !strings.Contains(out, "--"+k.Name+" ") {
				t.Errorf("crumbs %s does not list --%s", strings.Join(args, " "), k.Name)
			}
			if !strings.Contains(out, k.Env()) {
				t.Errorf("crumbs %s does not name %s", strings.Join(args, " "), k.Env())
			}
		}
		flat := strings.Join(strings.Fields(out), " ")
		for _, want := range []string{"Configuration flags: Kafka", "native-protocol addresses of the servers (env CRUMBS_CLICKHOUSE_ADDR)", "--markdown"} {
			if !strings.Contains(flat, want) {
				t.Errorf("crumbs %s lacks %q", strings.Join(args, " "), want)
			}
		}
	}
}

// TestConfigFlagsStillSetKeys: a configuration flag on a command sets its key, the
// environment sets what the flag does not, and CRUMBS_CONFIG names the file.
func TestConfigFlagsStillSetKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "crumbs.yaml")
	if err := os.WriteFile(file, []byte("clickhouse:\n  database: fromfile\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRUMBS_CONFIG", file)
	t.Setenv("CRUMBS_KAFKA_CLIENT_ID", "fromenv")
	out, err := runRoot(t, "config", "--log.level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"clickhouse.database": "fromfile", "log.level": "debug", "kafka.client_id": "fromenv"} {
		if got := configValue(out, key); got != want {
			t.Errorf("crumbs config: %s = %q, want %q", key, got, want)
		}
	}
	if _, err := runRoot(t, "version", "--log.level", "debug"); err == nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Errorf("crumbs version --log.level: %v, want an unknown flag", err)
	}
}

func configValue(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == key {
			return f[2]
		}
	}
	return ""
}

// TestVersion: --version and the version command say the same.
func TestVersion(t *testing.T) {
	old := version
	version = "1.2.3-test"
	t.Cleanup(func() { version = old })
	for _, args := range [][]string{{"--version"}, {"version"}, {"-v"}} {
		out, err := runRoot(t, args...)
		if err != nil {
			t.Fatalf("crumbs %s: %v", strings.Join(args, " "), err)
		}
		if out != "crumbs 1.2.3-test\n" {
			t.Errorf("crumbs %s = %q, want %q", strings.Join(args, " "), out, "crumbs 1.2.3-test\n")
		}
	}
}
