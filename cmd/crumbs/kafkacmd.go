package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

func kafkaCmd() *cobra.Command {
	c := &cobra.Command{Use: "kafka", Short: "crumbs' roles and topics on a Kafka cluster"}
	c.AddCommand(kafkaACLsCmd(), kafkaTopicsCmd())
	return c
}

func kafkaACLsCmd() *cobra.Command {
	var auth, mechanism, principal, bootstrap, commandConfig string
	var roles []string
	c := &cobra.Command{
		Use:   "acls",
		Short: "Print crumbs' roles as kafka-acls.sh commands (and SCRAM users) for a real cluster",
		Long: "Print a shell script that gives a real Kafka cluster the roles the embedded broker enforces:\n" +
			"one principal per role (User:crumbs-<role> for SASL/SCRAM, or the principal of each role's\n" +
			"client certificate for mTLS), each allowed what its stage needs and nothing else. With\n" +
			"--auth scram the script also creates the SCRAM users, with passwords from\n" +
			"SCRAM_PASSWORD_<ROLE> variables. Topic names and groups come from the configuration.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			o := kafka.ACLScript{BootstrapServer: bootstrap, CommandConfig: commandConfig, Principal: principal}
			switch auth {
			case "scram":
				if principal == "" {
					o.Principal = "User:crumbs-{role}"
				}
				switch m := strings.ToUpper(mechanism); m {
				case kafka.MechanismScramSHA256, kafka.MechanismScramSHA512:
					o.SCRAMMechanism = m
				default:
					return &exitCode{2, fmt.Errorf("--mechanism %q: must be %s or %s", mechanism, kafka.MechanismScramSHA256, kafka.MechanismScramSHA512)}
				}
			case "mtls":
				if principal == "" {
					o.Principal = "User:CN=crumbs-{role}"
				}
			default:
				return &exitCode{2, fmt.Errorf("--auth %q: must be scram or mtls", auth)}
			}
			if o.BootstrapServer == "" {
				o.BootstrapServer = strings.Join(cfg.Kafka.Brokers, ",")
				if o.BootstrapServer == "" {
					o.BootstrapServer = "localhost:9092"
				}
			}
			for _, name := range roles {
				r, err := kafka.ParseRole(name)
				if err != nil {
					return &exitCode{2, fmt.Errorf("--role: %w", err)}
				}
				o.Roles = append(o.Roles, r)
			}
			if err := cfg.kafkaScope().WriteACLScript(cmd.OutOrStdout(), o); err != nil {
				return &exitCode{2, fmt.Errorf("--principal: %w", err)}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&auth, "auth", "scram", "how clients authenticate: scram (SASL/SCRAM users) or mtls (client certificates)")
	f.StringVar(&mechanism, "mechanism", kafka.MechanismScramSHA512, "SCRAM mechanism of the users (--auth scram)")
	f.StringVar(&principal, "principal", "", "principal of a role, {role} standing for its name (default User:crumbs-{role}, or User:CN=crumbs-{role} with --auth mtls)")
	f.StringVar(&bootstrap, "bootstrap-server", "", "--bootstrap-server of the Kafka tools (default: kafka.brokers)")
	f.StringVar(&commandConfig, "command-config", "admin.properties", "client properties of the cluster administrator running the script")
	f.StringSliceVar(&roles, "role", nil, "print only these roles (repeatable; default all)")
	return c
}

func kafkaTopicsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "topics",
		Short: "Create crumbs' topics that are missing and set every topic's configured retention (admin role)",
		Long: "Create the pipeline's topics that are missing and set kafka.retention.* on all of them,\n" +
			"as the admin role: on the embedded broker with its credentials (as root), on a real\n" +
			"cluster with kafka.security.sasl.* of the crumbs-admin user.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			kcfg, err := roleKafka(cfg, kafka.RoleAdmin, nil)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			cl, err := kgo.NewClient(kcfg.ClientOpts()...)
			if err != nil {
				return fmt.Errorf("kafka client: %w", err)
			}
			defer cl.Close()
			specs := kcfg.AllTopics(cfg.Detector.Group)
			if err := errors.Join(kcfg.EnsureTopics(ctx, cl, specs), kcfg.AlignTopics(ctx, cl, specs)); err != nil {
				return err
			}
			for _, s := range specs {
				fmt.Fprintln(cmd.OutOrStdout(), s.Name)
			}
			return nil
		},
	}
}
