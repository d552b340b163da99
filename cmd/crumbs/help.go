package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/threatcrumbs/crumbs/pkg/config"
)

// configKeyAnnotation marks a flag that sets a configuration key: a command's help names it
// under "Configuration flags" in one line, not among the command's own flags.
const configKeyAnnotation = "crumbs_config_key"

// noConfig lists the runnable commands that read no configuration: they take no
// configuration flag. Every other runnable command does (TestHelpShowsOwnFlags holds the two
// apart by running them).
var noConfig = map[string]bool{
	"crumbs version":               true,
	"crumbs manifest build":        true,
	"crumbs rules lint":            true,
	"crumbs rules test":            true,
	"crumbs console hash-password": true,
	"crumbs up-stages":             true, // its configuration comes from crumbs up, over a socket
}

// addConfigFlags gives every runnable command that reads configuration the --config flag and
// one flag per configuration key, local to it; commands that read none get neither.
func addConfigFlags(c *cobra.Command) {
	if c.Runnable() && !noConfig[c.CommandPath()] && c.Name() != "help" && c.Name() != "completion" && c.Parent() != nil && c.Parent().Name() != "completion" {
		fs := c.Flags()
		fs.StringP("config", "c", "", "YAML configuration file (env CRUMBS_CONFIG)")
		// A default read from the environment would print as a default in --help and in the
		// shell's completion: loadConfig reads CRUMBS_CONFIG itself when the flag is not set.
		keys := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
		config.AddFlags(keys, defaultConfig())
		keys.VisitAll(func(f *pflag.Flag) {
			f.Annotations = map[string][]string{configKeyAnnotation: {"true"}}
			if d, ok := keyDocs[f.Name]; ok {
				f.Usage = plainText(d.Meaning) + " (env " + config.Key{Name: f.Name}.Env() + ")"
			}
			fs.AddFlag(f)
		})
	}
	for _, sub := range c.Commands() {
		addConfigFlags(sub)
	}
}

// usage prints a command's usage: its own flags, then configuration flags in one line that
// says where they are listed (`crumbs config --help` lists them in full).
func usage(c *cobra.Command) error {
	w := c.OutOrStderr()
	fmt.Fprintln(w, "Usage:")
	if c.Runnable() {
		fmt.Fprintf(w, "  %s\n", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "  %s [command]\n", c.CommandPath())
	}
	if c.HasExample() {
		fmt.Fprintf(w, "\nExamples:\n%s\n", c.Example)
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintln(w, "\nAvailable Commands:")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(w, "  %-*s %s\n", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	own, keys := splitFlags(c.LocalFlags())
	inherited, inheritedKeys := splitFlags(c.InheritedFlags())
	if own.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", own.FlagUsages())
	}
	if inherited.HasAvailableFlags() {
		fmt.Fprintf(w, "\nGlobal Flags:\n%s", inherited.FlagUsages())
	}
	if n := keys + inheritedKeys; n > 0 {
		if c.CommandPath() == "crumbs config" {
			writeConfigFlags(w, c)
		} else {
			fmt.Fprintf(w, "\nConfiguration flags:\n  --KEY VALUE for each of the %d configuration keys (e.g. --clickhouse.addr, --log.level),\n  also set by CRUMBS_KEY variables and --config FILE; `crumbs config --help` lists them\n", n)
		}
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nUse \"%s [command] --help\" for more information about a command.\n", c.CommandPath())
	}
	return nil
}

// splitFlags returns the flags of fs that are not configuration keys, and how many are.
func splitFlags(fs *pflag.FlagSet) (*pflag.FlagSet, int) {
	own := pflag.NewFlagSet("own", pflag.ContinueOnError)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[configKeyAnnotation]; ok {
			n++
			return
		}
		own.AddFlag(f)
	})
	return own, n
}

// writeConfigFlags lists every configuration flag of c by section, with its meaning.
func writeConfigFlags(w io.Writer, c *cobra.Command) {
	for _, sec := range configSections {
		fs := pflag.NewFlagSet(sec.Title, pflag.ContinueOnError)
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Annotations[configKeyAnnotation]; ok && sec.has(f.Name) {
				fs.AddFlag(f)
			}
		})
		if fs.HasFlags() {
			fmt.Fprintf(w, "\nConfiguration flags: %s\n%s", sec.Title, fs.FlagUsagesWrapped(100))
		}
	}
}

func (s configSection) has(key string) bool {
	for _, p := range s.Prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

var mdLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// plainText turns the Markdown of a key's meaning into terminal text: links become their
// text, code loses its backticks.
func plainText(md string) string {
	return strings.ReplaceAll(mdLink.ReplaceAllString(md, "$1"), "`", "")
}
