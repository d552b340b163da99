package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/threatcrumbs/crumbs/console"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
)

// consoleStage is the console with what it holds open (its ClickHouse connection and its
// triage producer), closed when it stops.
type consoleStage struct {
	c       *console.Console
	closers []func()
}

func (s *consoleStage) Run(ctx context.Context) error {
	defer func() {
		for _, c := range s.closers {
			c()
		}
	}()
	return s.c.Run(ctx)
}

// triageKafka is the Kafka configuration of the console's triage changes: the triage role's.
func (rt *runtime) triageKafka() (kafka.Config, error) { return rt.kafka(kafka.RoleTriage) }

// queryStore returns a query store over a connection that connects at the first query.
func queryStore(cfg *Config) (*query.Store, func(), error) {
	conn, err := clickhouse.Dial(cfg.ClickHouse)
	if err != nil {
		return nil, nil, err
	}
	return query.New(conn, cfg.ClickHouse.Database, cfg.ClickHouse.Cluster), func() { conn.Close() }, nil
}

// console builds the console stage: the pages over ClickHouse and triage changes to Kafka.
func (rt *runtime) console() (stage, error) {
	store, closeStore, err := queryStore(rt.cfg)
	if err != nil {
		return nil, err
	}
	kcfg, err := rt.triageKafka()
	if err != nil {
		closeStore()
		return nil, err
	}
	tr, err := console.NewTriager(kcfg, store, rt.serde)
	if err != nil {
		closeStore()
		return nil, err
	}
	c, err := console.New(rt.cfg.Console, console.Deps{Store: store, Triager: tr, Log: rt.log})
	if err != nil {
		tr.Close()
		closeStore()
		return nil, err
	}
	return &consoleStage{c: c, closers: []func(){tr.Close, closeStore}}, nil
}

func consoleCmd() *cobra.Command {
	c := &cobra.Command{Use: "console", Short: "Serve the console and the triage API against ClickHouse and Kafka (crumbs up serves it too)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOne(cmd, kafka.RoleTriage, (*runtime).console) }}
	c.AddCommand(&cobra.Command{
		Use:   "hash-password",
		Short: "Read a password from standard input and print its bcrypt hash, for console.users[].password_hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 1024)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			pw := strings.TrimRight(line, "\r\n")
			if len(pw) < 8 {
				return &exitCode{2, errors.New("hash-password: the password must be at least 8 characters")}
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return nil
		},
	})
	return c
}

// triageCmds are `crumbs alerts ack|resolve|reopen|assign|note|false-positive ID`.
func triageCmds() []*cobra.Command {
	var out []*cobra.Command
	for _, a := range []struct{ use, action, short string }{
		{"ack ID", console.ActionAck, "Acknowledge an alert (and take it, when nobody has)"},
		{"resolve ID", console.ActionResolve, "Resolve an alert (its PagerDuty incident resolves)"},
		{"reopen ID", console.ActionReopen, "Reopen an alert (acknowledged again; its suppression ends)"},
		{"assign ID ASSIGNEE", console.ActionAssign, "Assign an alert to someone (empty: nobody)"},
		{"note ID TEXT", console.ActionNote, "Add a note to an alert"},
		{"false-positive ID", console.ActionFalsePositive, "Mark an alert a false positive, suppressing its rule on its host (or group key) for a while"},
	} {
		var (
			note, by, scope string
			suppress        time.Duration
		)
		cmd := &cobra.Command{Use: a.use, Short: a.short, Args: cobra.RangeArgs(1, 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				ch := console.Change{Action: a.action, Note: note, By: by, Scope: scope, SuppressFor: suppress}
				switch a.action {
				case console.ActionAssign:
					if len(args) == 2 {
						ch.Assignee = args[1]
					}
				case console.ActionNote:
					if len(args) != 2 {
						return &exitCode{2, errors.New("note: give the alert id and the note's text")}
					}
					ch.Note = args[1]
				default:
					if len(args) != 1 {
						return &exitCode{2, fmt.Errorf("%s: give the alert id only", a.action)}
					}
				}
				return runTriage(cmd, args[0], ch)
			}}
		fl := cmd.Flags()
		fl.StringVar(&by, "by", defaultActor(), "who makes the change (updated_by)")
		if a.action != console.ActionNote {
			fl.StringVar(&note, "note", "", "a note to add with the change")
		}
		if a.action == console.ActionFalsePositive {
			fl.DurationVar(&suppress, "suppress-for", 7*24*time.Hour, "how long the rule is suppressed on the alert's host or group key (0: no suppression)")
			fl.StringVar(&scope, "scope", "host", "what the suppression covers besides the rule: host or group_key")
		}
		out = append(out, cmd)
	}
	return out
}

// runTriage makes one triage change and says what the alert's state is now.
func runTriage(cmd *cobra.Command, id string, ch console.Change) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg)
	if err != nil {
		return err
	}
	store, closeStore, err := queryStore(cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	// As the triage role: on crumbs up's embedded broker with its credentials file.
	kcfg, err := roleKafka(cfg, kafka.RoleTriage, nil)
	if err != nil {
		return err
	}
	tr, err := console.NewTriager(kcfg, store, rt.serde)
	if err != nil {
		return err
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	st, err := tr.Apply(ctx, id, ch, cfg.Console.MaxSuppressFor)
	switch {
	case errors.Is(err, query.ErrNotFound), errors.Is(err, console.ErrInvalidChange):
		return &exitCode{2, err}
	case err != nil:
		return err
	}
	line := fmt.Sprintf("alert %s: %s", q(id), q(st.State))
	if st.Assignee != "" {
		line += ", assigned to " + q(st.Assignee)
	}
	if st.SuppressUntil > 0 {
		line += fmt.Sprintf(", suppressing %s on %s %s until %s", q(st.RuleID), st.SuppressScope, q(map[string]string{"host": st.Host, "group_key": st.GroupKey}[st.SuppressScope]),
			time.Unix(0, st.SuppressUntil).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s (%d notes; version %d)\n", line, len(st.Notes), st.Version)
	return nil
}

// defaultActor names who runs a CLI triage change: the user behind sudo, else this user.
func defaultActor() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "cli"
}
