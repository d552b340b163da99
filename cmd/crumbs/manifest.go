package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/threatcrumbs/crumbs/collectors/file"
)

// manifestCmd is `crumbs manifest build DIR`: the artifact manifest of a build output, as a
// deploy context record a CI pipeline can publish with `crumbs context publish`.
func manifestCmd() *cobra.Command {
	c := &cobra.Command{Use: "manifest", Short: "Artifact manifests of build outputs (deploy context records)"}
	var opts manifestOptions
	build := &cobra.Command{
		Use:   "build DIR",
		Short: "Write the deploy record of DIR's files: path once installed, sha256, owner, group and mode",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return buildManifest(cmd, args[0], opts)
		},
	}
	f := build.Flags()
	f.StringVar(&opts.id, "id", "", "deploy id (required)")
	f.StringVar(&opts.service, "service", "", "service the artifacts belong to (required)")
	f.StringVar(&opts.version, "version", "", "version of the build (required)")
	f.StringVar(&opts.prefix, "prefix", "/", "directory DIR is installed as: DIR/bin/x becomes PREFIX/bin/x")
	f.StringSliceVar(&opts.hosts, "host", nil, "host the build is deployed to (repeatable; none: every host of the service)")
	f.StringVar(&opts.owner, "owner", "", "owner the files have once installed (default: their owner in DIR)")
	f.StringVar(&opts.group, "group", "", "group the files have once installed (default: their group in DIR)")
	f.StringVar(&opts.deployedAt, "deployed-at", "", "deployment time, RFC 3339 (default: omitted)")
	f.StringVarP(&opts.output, "output", "o", "-", "file to write, - for standard output")
	for _, name := range []string{"id", "service", "version"} {
		_ = build.MarkFlagRequired(name)
	}
	c.AddCommand(build)
	return c
}

type manifestOptions struct {
	id, service, version, prefix string
	hosts                        []string
	owner, group, deployedAt     string
	output                       string
}

func buildManifest(cmd *cobra.Command, dir string, o manifestOptions) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return &exitCode{2, fmt.Errorf("manifest build: %s: not a directory", dir)}
	}
	if o.deployedAt != "" {
		if _, err := time.Parse(time.RFC3339, o.deployedAt); err != nil {
			return &exitCode{2, fmt.Errorf("--deployed-at: %q: %w", o.deployedAt, err)}
		}
	}
	arts, err := file.BuildArtifacts(cmd.Context(), dir, o.prefix)
	if err != nil {
		return fmt.Errorf("manifest build %s: %w", dir, err)
	}
	for i := range arts {
		if o.owner != "" {
			arts[i].Owner = o.owner
		}
		if o.group != "" {
			arts[i].Group = o.group
		}
	}
	m := file.DeployManifest{
		Kind: "deploy", ID: o.id, Service: o.service, Version: o.version,
		Hosts: o.hosts, DeployedAt: o.deployedAt, Artifacts: arts,
	}
	if m.Hosts == nil {
		m.Hosts = []string{}
	}
	if m.Artifacts == nil {
		m.Artifacts = []file.Artifact{}
	}
	return writeManifest(cmd.OutOrStdout(), o.output, m)
}

// writeManifest writes v, indented, to path or, for "-", to stdout.
func writeManifest(stdout io.Writer, path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}
