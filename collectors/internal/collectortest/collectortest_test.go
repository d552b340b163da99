package collectortest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeCollector emits its events, then blocks until ctx is done and returns err.
type fakeCollector struct {
	events []int
	err    error
}

func (f fakeCollector) Run(ctx context.Context, emit func(int)) error {
	for _, e := range f.events {
		emit(e)
	}
	<-ctx.Done()
	return f.err
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) { r.errors = append(r.errors, format) }

func TestRunAndWaitEvent(t *testing.T) {
	tests := []struct {
		name       string
		collector  fakeCollector
		buffer     int
		want       int
		wantErrors []string
	}{
		{name: "first match", collector: fakeCollector{events: []int{1, 2, 3, 4}}, buffer: 4, want: 3},
		{name: "emit blocks on a full buffer until the match is read", collector: fakeCollector{events: []int{1, 2, 3, 4, 5, 6}}, buffer: 1, want: 3},
		{name: "Run error reported at cleanup", collector: fakeCollector{events: []int{3}, err: errors.New("boom")}, buffer: 1, want: 3, wantErrors: []string{"Run: %v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec *recorder
			t.Run("inner", func(t *testing.T) {
				rec = &recorder{TB: t}
				events := Run(rec, tt.collector.Run, tt.buffer)
				got := WaitEvent(t, events, 10*time.Second, "odd above 2", func(e int) bool { return e > 2 && e%2 == 1 })
				if got != tt.want {
					t.Errorf("WaitEvent: want %d, got %d", tt.want, got)
				}
			})
			if diff := cmp.Diff(tt.wantErrors, rec.errors); diff != "" {
				t.Errorf("errors reported at cleanup (-want +got):\n%s", diff)
			}
		})
	}
}
