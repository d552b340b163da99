package telemetry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestWaitingState: Waiting keeps the time the wait began and the latest reason, Resumed
// clears both, and the waiting gauge follows.
func TestWaitingState(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := NewStageCounters(reg, "sink", "crumbs-sink")
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "crumbs_stage_waiting_seconds" {
				return mf.Metric[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no crumbs_stage_waiting_seconds")
		return 0
	}
	if g := gauge(); g != 0 {
		t.Errorf("gauge before waiting = %v, want 0", g)
	}
	first := time.Now().Add(-3 * time.Second)
	c.Waiting(first, "clickhouse: connection refused")
	c.Waiting(time.Now(), "clickhouse: code 252: Too many parts")
	c.Out(5)
	want := Snapshot{Out: 5, WaitingSince: first, WaitReason: "clickhouse: code 252: Too many parts"}
	if diff := cmp.Diff(want, c.Snapshot()); diff != "" {
		t.Errorf("snapshot while waiting (-want +got):\n%s", diff)
	}
	if g := gauge(); g < 3 {
		t.Errorf("gauge while waiting = %v, want at least 3 (seconds since the first failure)", g)
	}
	c.Resumed()
	if diff := cmp.Diff(Snapshot{Out: 5}, c.Snapshot()); diff != "" {
		t.Errorf("snapshot after Resumed (-want +got):\n%s", diff)
	}
	if g := gauge(); g != 0 {
		t.Errorf("gauge after Resumed = %v, want 0", g)
	}
}

// TestConsumerLagGauge: a consumer stage's lag gauge is -1 until measured, then the last
// measure; a collector (no group) has none.
func TestConsumerLagGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := NewStageCounters(reg, "detect", "crumbs-detect")
	NewStageCounters(reg, "collect", "")
	lags := func() []float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []float64
		for _, mf := range mfs {
			if mf.GetName() == "crumbs_stage_consumer_lag" {
				for _, m := range mf.Metric {
					out = append(out, m.GetGauge().GetValue())
				}
			}
		}
		return out
	}
	if d := cmp.Diff([]float64{-1}, lags()); d != "" {
		t.Errorf("before a measure (-want +got):\n%s", d)
	}
	c.SetLag(42)
	if d := cmp.Diff([]float64{42}, lags()); d != "" {
		t.Errorf("after a measure (-want +got):\n%s", d)
	}
}
