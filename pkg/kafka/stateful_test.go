package kafka_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threatcrumbs/crumbs/pkg/kafka"
)

// TestStatefulTickProducesInItsOwnTransaction: with nothing to consume, Tick is still called,
// and what it returns is committed in a transaction without consumed offsets; a failing Tick
// rolls the stage back (OnAborted) and the next tick's records are the ones committed.
func TestStatefulTickProducesInItsOwnTransaction(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failFirst   bool
		wantAborted int64
	}{
		{name: "committed"},
		{name: "first tick fails", failFirst: true, wantAborted: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emb, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Port: 0})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(emb.Close)
			kcfg := kafka.DefaultConfig()
			kcfg.Brokers = emb.Addrs()
			kcfg.Partitions = 1
			kcfg.TransactionTimeout = 10 * time.Second
			cl, err := kgo.NewClient(kcfg.ClientOpts()...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			const in, out, state = "in", "out", "state"
			if err := kcfg.EnsureTopics(context.Background(), cl, []kafka.TopicSpec{{Name: in}, {Name: out}, {Name: state, Compacted: true}}); err != nil {
				t.Fatal(err)
			}

			var ticks, aborted atomic.Int64
			produced := make(chan struct{})
			var once sync.Once
			sc := kafka.StatefulConfig{
				TransactConfig: kafka.TransactConfig{Stage: "test", Group: "g", TransactionalID: "g-0", Topics: []string{in},
					Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
					OnRecords: func(_, n, _ int) {
						if n > 0 {
							once.Do(func() { close(produced) })
						}
					}},
				ManualPartitionTopics: []string{state},
				TickInterval:          50 * time.Millisecond,
				OnAborted:             func(context.Context) { aborted.Add(1) },
				Tick: func(context.Context) ([]*kgo.Record, []*kgo.Record, error) {
					n := ticks.Add(1)
					if tc.failFirst && n == 1 {
						return nil, nil, errors.New("tick failed on purpose")
					}
					if n > 1+int64(btoi(tc.failFirst)) {
						return nil, nil, nil
					}
					return []*kgo.Record{{Topic: out, Value: []byte("alert")}},
						[]*kgo.Record{{Topic: state, Partition: 0, Key: []byte("k"), Value: []byte("v")}}, nil
				},
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- kafka.RunStateful(ctx, kcfg, sc, func(*kgo.Record) ([]*kgo.Record, error) { return nil, nil })
			}()
			select {
			case <-produced:
			case err := <-done:
				t.Fatalf("RunStateful returned before a tick was committed: %v", err)
			case <-time.After(60 * time.Second):
				t.Fatal("no tick committed within a minute")
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("RunStateful: %v", err)
			}

			got := map[string][]string{}
			for _, topic := range []string{out, state} {
				err := kafka.ReadPartitions(context.Background(), kcfg, topic, []int32{0}, func(r *kgo.Record) error {
					got[topic] = append(got[topic], string(r.Value))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			want := map[string][]string{out: {"alert"}, state: {"v"}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("committed records (-want +got):\n%s", d)
			}
			if n := aborted.Load(); n != tc.wantAborted {
				t.Errorf("OnAborted calls: got %d, want %d", n, tc.wantAborted)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
