package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/query"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse"
	"github.com/threatcrumbs/crumbs/sinks/clickhouse/clickhousetest"
)

// TestTriageCommands: crumbs alerts ack, note and false-positive publish to crumbs.triage; the
// sink lands the changes; crumbs alerts lists and shows the alert with its state and notes.
func TestTriageCommands(t *testing.T) {
	cfg := clickhousetest.Config(t)
	s := clickhousetest.New(time.Now())
	st := query.New(clickhousetest.Land(t, cfg, s).Conn(), cfg.Database, "")
	emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = emb.Addrs()
	cl, err := kgo.NewClient(kcfg.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kcfg.EnsureTopics(ctx, cl, kcfg.AllTopics()); err != nil {
		t.Fatal(err)
	}
	cfg.BatchMaxAge = 50 * time.Millisecond
	sink, err := clickhouse.New(cfg, kcfg, clickhouse.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sink.Run(sctx) }()
	defer func() { stop(); <-done }()

	const id = "alert-ssh-then-unknown-binary"
	triage := func(args ...string) string {
		t.Helper()
		out, err := runQueryCmd(t, cfg, append(append([]string{"alerts"}, args...), "--kafka.brokers", kcfg.Brokers[0], "--by", "carol")...)
		if err != nil {
			t.Fatalf("crumbs alerts %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	wait := func(state string, notes int) *query.Triage {
		t.Helper()
		for ctx.Err() == nil {
			if tr, err := st.Triage(ctx, id); err == nil && tr != nil && tr.State == state && len(tr.Notes) == notes {
				return tr
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("triage of %s never became %s with %d notes", id, state, notes)
		return nil
	}
	if out := triage("ack", id); !strings.Contains(out, "acknowledged, assigned to carol") {
		t.Errorf("ack said %q", out)
	}
	wait("acknowledged", 0)
	triage("note", id, "the binary came from a \x1b[31mpaste\x1b[0m site")
	wait("acknowledged", 1)
	out := triage("false-positive", id, "--suppress-for", "2h", "--scope", "group_key")
	if !strings.Contains(out, "suppressing") {
		t.Errorf("false-positive said %q", out)
	}
	tr := wait("false_positive", 1)
	if tr.SuppressScope != "group_key" || tr.UpdatedBy != "carol" || tr.SuppressUntil.Before(time.Now().Add(time.Hour)) {
		t.Errorf("triage %+v: want a suppression by carol for the group key, for 2h", tr)
	}

	out, err = runQueryCmd(t, cfg, "alerts", "--since", s.Start.Format(time.RFC3339), "--state", "false_positive", "--format", "json")
	var as []query.AlertRow
	if err != nil || json.Unmarshal([]byte(out), &as) != nil || len(as) != 1 || as[0].ID != id || as[0].Assignee != "carol" {
		t.Errorf("alerts --state false_positive: %v %s", err, out)
	}
	out, err = runQueryCmd(t, cfg, "alerts", "show", id)
	if err != nil || !strings.Contains(out, `false_positive, assigned to carol`) || !strings.Contains(out, `\x1b[31mpaste`) {
		t.Errorf("alerts show: %v, want the state and the note with its escape sequence quoted:\n%s", err, out)
	}
	for _, bad := range [][]string{{"note", id}, {"false-positive", id, "--scope", "everything"}, {"ack", "no-such-alert"}} {
		out, err := runQueryCmd(t, cfg, append(append([]string{"alerts"}, bad...), "--kafka.brokers", kcfg.Brokers[0])...)
		if code, ok := err.(*exitCode); !ok || code.code != 2 {
			t.Errorf("alerts %s: %v, want exit code 2\n%s", strings.Join(bad, " "), err, out)
		}
	}
}
