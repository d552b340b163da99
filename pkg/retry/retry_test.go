package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestClassify(t *testing.T) {
	exception := func(code int32, msg string) error {
		return fmt.Errorf("insert into process_events: send: %w", &ch.Exception{Code: code, Message: msg})
	}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, Transient},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), Transient},
		{"closed mid-write", io.ErrUnexpectedEOF, Transient},
		{"deadline", context.DeadlineExceeded, Transient},
		{"driver acquire timeout", ch.ErrAcquireConnTimeout, Transient},
		{"unknown error", errors.New("something odd"), Transient},
		{"too many parts", exception(252, "Too many parts (300)"), Transient},
		{"read-only", exception(242, "Table is in readonly mode"), Transient},
		{"memory limit", exception(241, "Memory limit exceeded"), Transient},
		{"server shutting down", exception(236, "Aborted"), Transient},
		{"table missing", exception(60, "Table crumbs.process_events doesn't exist"), Transient},
		{"wrong password", exception(193, "Wrong password"), Transient},
		{"string too long", exception(131, "String too long for type FixedString(64)"), Permanent},
		{"cannot parse", exception(6, "Cannot parse string 'x' as UInt32"), Permanent},
		{"unknown server code", exception(4242, "new in some release"), Permanent},
		{"driver column", &column.Error{ColumnType: "Enum8", Err: errors.New("unknown element")}, Permanent},
		{"driver conversion", fmt.Errorf("append: %w", &column.ColumnConverterError{Op: "Append", To: "Int32", From: "string"}), Permanent},
		{"marked", MarkPermanent(errors.New("400 Bad Request")), Permanent},
		{"content sentinel", fmt.Errorf("webhook: %w", ErrContent), Permanent},
		{"kafka retriable", kerr.NotLeaderForPartition, Transient},
		{"kafka authorisation", fmt.Errorf("produce: %w", kerr.TopicAuthorizationFailed), Transient},
		{"kafka too large", kerr.MessageTooLarge, Permanent},
		{"kafka invalid record", kerr.InvalidRecord, Permanent},
	}
	got, want := map[string]string{}, map[string]string{}
	for _, tc := range tests {
		got[tc.name], want[tc.name] = Classify(tc.err).String(), tc.want.String()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Classify (-want +got):\n%s", diff)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), "connection refused"},
		{fmt.Errorf("send: %w", &ch.Exception{Code: 252, Message: "Too many parts\nstack"}), "code 252: Too many parts"},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, Reason(tc.err)); diff != "" {
			t.Errorf("Reason(%v) (-want +got):\n%s", tc.err, diff)
		}
	}
}

func TestBackoffGrowsWithJitterUpToMax(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	bounds := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, hi := range bounds {
		hi *= time.Millisecond
		d := b.Next()
		if d < hi/2 || d > hi {
			t.Errorf("wait %d = %s, want within [%s, %s]", i, d, hi/2, hi)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset: %s, want at most 100ms", d)
	}
}

func TestDoStopsAtPermanentAndRetriesTransient(t *testing.T) {
	refused := MarkPermanent(errors.New("refused"))
	calls := 0
	waits := 0
	err := Do(context.Background(), &Backoff{Initial: time.Millisecond, Max: time.Millisecond}, func(context.Context) error {
		calls++
		if calls < 3 {
			return syscall.ECONNREFUSED
		}
		return refused
	}, func(error, time.Duration) { waits++ })
	if !errors.Is(err, refused) || calls != 3 || waits != 2 {
		t.Errorf("Do: err %v after %d calls and %d waits, want the permanent error after 3 calls and 2 waits", err, calls, waits)
	}
}
