package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/pkg/config"
)

// TestREADMEDocumentsEveryKeyAndCommand: every configuration key and every command is in the
// README, so a user can find what they can set and run.
func TestREADMEDocumentsEveryKeyAndCommand(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, k := range config.Keys(defaultConfig()) {
		if !strings.Contains(readme, "`"+k.Name+"`") {
			t.Errorf("README.md does not document the key `%s`", k.Name)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if !sub.HasSubCommands() && !strings.Contains(readme, sub.CommandPath()) {
				t.Errorf("README.md does not show the command %q", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(newRoot())
}
