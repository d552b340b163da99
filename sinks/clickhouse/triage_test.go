package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/avro"
	"github.com/threatcrumbs/crumbs/pkg/kafka"
	"github.com/threatcrumbs/crumbs/schemas"
)

// TestTriageLandsInAlertTriage: triage states on crumbs.triage land in alert_triage, notes and
// suppression included; the highest version of an alert is the one read; a replay of the
// topic changes nothing read; a tombstone reads as deleted.
func TestTriageLandsInAlertTriage(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.BatchMaxAge = 100, 100*time.Millisecond
	kcfg, cl := startKafka(t)
	serde, err := avro.NewBuiltinSerde()
	if err != nil {
		t.Fatal(err)
	}
	topic := kcfg.Topics().Triage()
	now := time.Now().UnixNano()
	ack := &schemas.TriageState{AlertID: "a-1", Version: now, State: schemas.TriageAcknowledged, Assignee: "alice", UpdatedAt: now, UpdatedBy: "alice",
		Notes: []schemas.TriageNote{{At: now, By: "alice", Text: "looking; <script>alert(1)</script>"}}, RuleID: "r", Host: "web-1", GroupKey: "web-1"}
	fp := *ack
	fp.Version, fp.State, fp.SuppressUntil, fp.SuppressScope = now+1, schemas.TriageFalsePositive, now+int64(time.Hour), schemas.SuppressHost
	fp.Notes = append(fp.Notes, schemas.TriageNote{At: now + 1, By: "bob", Text: "a backup job"})
	gone := &schemas.TriageState{AlertID: "a-2", Version: now, State: schemas.TriageResolved, UpdatedAt: now}
	var recs []*kgo.Record
	for _, st := range []*schemas.TriageState{ack, &fp, gone} {
		v, err := serde.Encode(nil, schemas.TriageSchema, st)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(st.AlertID), Value: v})
	}
	recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("a-2"), Timestamp: time.Unix(0, now+2)}) // tombstone
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kcfg.EnsureTopics(ctx, cl, []kafka.TopicSpec{{Name: topic, Compacted: true}}); err != nil {
		t.Fatal(err)
	}

	type row struct {
		ID, State, Assignee, Scope string
		Notes                      []string
		Until                      uint64
		Deleted                    uint8
	}
	read := func() ([]row, error) {
		st, err := Connect(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		q := "SELECT alert_id, argMax(state, version), argMax(assignee, version), argMax(suppress_scope, version), argMax(note_text, version), argMax(suppress_until, version), argMax(deleted, version) FROM " +
			cfg.Database + ".alert_triage GROUP BY alert_id ORDER BY alert_id"
		rs, err := st.Conn().Query(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		var out []row
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.ID, &r.State, &r.Assignee, &r.Scope, &r.Notes, &r.Until, &r.Deleted); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, rs.Err()
	}
	want := []row{
		{ID: "a-1", State: "false_positive", Assignee: "alice", Scope: "host", Notes: []string{"looking; <script>alert(1)</script>", "a backup job"}, Until: uint64(fp.SuppressUntil)},
		{ID: "a-2", Notes: []string{}, Deleted: 1},
	}
	for round := range 2 { // the second round replays every record
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		_, stop := runSink(t, cfg, kcfg, nil)
		var got []row
		waitFor(t, fmt.Sprintf("round %d: triage in alert_triage", round), func() (bool, string) {
			got, err = read()
			return cmp.Diff(want, got) == "", fmt.Sprint(got, err)
		})
		stop()
	}
}
