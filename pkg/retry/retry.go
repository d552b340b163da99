// Package retry decides, for every stage that writes somewhere (the ClickHouse sink, the alert
// outputs), whether a failed write is worth trying again, and how long to wait before the
// next attempt.
//
// In: the error of a failed write. Out: its Class, Transient or Permanent, and for
// transient ones a Backoff with jitter. The rule, after Kafka Connect's errors.tolerance: a
// store or output that is away, overloaded, read-only, shutting down or timing out is
// Transient, and the stage holds its batch (and its offsets) and tries again without limit;
// only a record the store refuses for its content is Permanent, and goes to the dead-letter
// topic. An error nobody recognises is Transient: waiting loses nothing while Kafka holds
// the data, whereas dead-lettering a whole batch because the classifier did not know an
// error would. The exception is a ClickHouse server exception: the server received the rows
// and answered, so a code not known as transient is a refusal of what was sent.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Class is what a caller does with a failed write.
type Class int

const (
	// Transient: the destination could not take the write now; try the same write again later.
	Transient Class = iota
	// Permanent: the destination refused what was written; trying it again gives the same
	// answer. A writer of many records isolates the refused ones and dead-letters them.
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "transient"
}

// ErrContent marks an error as a refusal of the content written (Permanent). Wrap it
// (fmt.Errorf("...: %w", retry.ErrContent)) or use MarkPermanent where a writer knows better
// than the classifier, e.g. an HTTP output answered 400.
var ErrContent = errors.New("content refused")

// MarkPermanent returns err classified as Permanent; it still unwraps to err.
func MarkPermanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrContent }

// Classify returns the Class of a failed write's error; nil is Transient (nothing to refuse).
//
// Permanent: errors wrapping ErrContent; ClickHouse server exceptions other than those in
// transientCodes; the ClickHouse driver's refusals to encode a value for its column type;
// Kafka errors that are neither retriable (kerr.IsRetriable) nor about authentication or
// authorisation (a broker refusing a record as too large or invalid).
//
// Transient: everything else, in particular connection refused or reset, timeouts and
// context deadlines, a connection closed mid-write (a server shutting down), ClickHouse
// overloaded, out of memory, read-only, with too many parts or without its table, Kafka's
// retriable errors and its authorisation errors (an operator mends ACLs; the data waits).
func Classify(err error) Class {
	if err == nil {
		return Transient
	}
	if errors.Is(err, ErrContent) {
		return Permanent
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		if transientCodes[ex.Code] {
			return Transient
		}
		return Permanent
	}
	var colErr *column.Error
	var convErr *column.ColumnConverterError
	if errors.As(err, &colErr) || errors.As(err, &convErr) {
		return Permanent
	}
	var kerrErr *kerr.Error
	if errors.As(err, &kerrErr) {
		if kerr.IsRetriable(err) || kafkaAuthCodes[kerrErr.Code] {
			return Transient
		}
		return Permanent
	}
	return Transient
}

// IsPermanent reports whether Classify(err) is Permanent.
func IsPermanent(err error) bool { return err != nil && Classify(err) == Permanent }

// transientCodes are the ClickHouse exception codes (ErrorCodes.cpp) that say the server
// could not take the write now, not that it refused its content.
var transientCodes = map[int32]bool{
	3:    true, // UNEXPECTED_END_OF_FILE
	23:   true, // CANNOT_READ_FROM_ISTREAM
	24:   true, // CANNOT_WRITE_TO_OSTREAM
	32:   true, // ATTEMPT_TO_READ_AFTER_EOF
	60:   true, // UNKNOWN_TABLE: the schema is being (re)created; not the rows' fault
	81:   true, // UNKNOWN_DATABASE
	159:  true, // TIMEOUT_EXCEEDED
	160:  true, // TOO_SLOW
	164:  true, // READONLY
	173:  true, // CANNOT_ALLOCATE_MEMORY
	192:  true, // UNKNOWN_USER: credentials are an operator's to mend
	193:  true, // WRONG_PASSWORD
	194:  true, // REQUIRED_PASSWORD
	195:  true, // IP_ADDRESS_NOT_ALLOWED
	201:  true, // QUOTA_EXPIRED
	202:  true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203:  true, // NO_FREE_CONNECTION
	209:  true, // SOCKET_TIMEOUT
	210:  true, // NETWORK_ERROR
	218:  true, // TABLE_IS_DROPPED (a table shutting down)
	225:  true, // NO_ZOOKEEPER
	236:  true, // ABORTED (the server shutting down)
	241:  true, // MEMORY_LIMIT_EXCEEDED
	242:  true, // TABLE_IS_READ_ONLY
	243:  true, // NOT_ENOUGH_SPACE
	252:  true, // TOO_MANY_PARTS
	279:  true, // ALL_CONNECTION_TRIES_FAILED
	285:  true, // TOO_FEW_LIVE_REPLICAS
	286:  true, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
	290:  true, // LIMIT_EXCEEDED
	319:  true, // UNKNOWN_STATUS_OF_INSERT
	373:  true, // SESSION_IS_LOCKED
	394:  true, // QUERY_WAS_CANCELLED
	425:  true, // SYSTEM_ERROR
	439:  true, // CANNOT_SCHEDULE_TASK
	497:  true, // ACCESS_DENIED
	516:  true, // AUTHENTICATION_FAILED
	999:  true, // KEEPER_EXCEPTION
	1000: true, // POCO_EXCEPTION (network errors inside the server)
}

// kafkaAuthCodes are Kafka error codes about who the client is, not what it sent.
var kafkaAuthCodes = map[int16]bool{
	kerr.TopicAuthorizationFailed.Code:           true,
	kerr.GroupAuthorizationFailed.Code:           true,
	kerr.ClusterAuthorizationFailed.Code:         true,
	kerr.TransactionalIDAuthorizationFailed.Code: true,
	kerr.SaslAuthenticationFailed.Code:           true,
	kerr.IllegalSaslState.Code:                   true,
	kerr.UnsupportedSaslMechanism.Code:           true,
	kerr.DelegationTokenAuthorizationFailed.Code: true,
}

// Reason returns a short, one-line account of err for a status line: "connection refused",
// "code 252: Too many parts ...", cut to 120 bytes.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var s string
	var ex *ch.Exception
	var errno syscall.Errno
	switch {
	case errors.As(err, &ex):
		s = fmt.Sprintf("code %d: %s", ex.Code, ex.Message)
	case errors.As(err, &errno):
		s = errno.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		s = rootCause(err).Error()
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s = "timeout"
		} else {
			s = rootCause(err).Error()
		}
	}
	for i, r := range s {
		if r == '\n' || r == '\r' {
			s = s[:i]
			break
		}
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// rootCause follows single-error Unwrap chains to the innermost error.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// Backoff is an exponential backoff with jitter: the n-th wait is drawn uniformly from
// [d/2, d] where d = Initial·2ⁿ capped at Max, so that writers that failed together do not
// come back together. The zero value waits 500ms to 30s. Not safe for concurrent use.
type Backoff struct {
	// Initial is the first wait's upper bound. Default 500ms.
	Initial time.Duration
	// Max caps every wait. Default 30s.
	Max      time.Duration
	attempts int
}

// Next returns the wait before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	initial, maxD := b.Initial, b.Max
	if initial <= 0 {
		initial = 500 * time.Millisecond
	}
	if maxD <= 0 {
		maxD = 30 * time.Second
	}
	d := initial
	for i := 0; i < b.attempts && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	b.attempts++
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts the backoff over, after a success.
func (b *Backoff) Reset() { b.attempts = 0 }

// Attempts is how many waits Next handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Do runs write until it succeeds or fails with a Permanent error, waiting b.Next() after
// each Transient failure; onWait, when set, is told about each failure and the wait that
// follows. It returns nil, the Permanent error, or ctx's error (joined with the last
// failure) when ctx ends first. For writers that cannot block their caller, use Classify
// and Backoff directly.
func Do(ctx context.Context, b *Backoff, write func(context.Context) error, onWait func(err error, wait time.Duration)) error {
	for {
		err := write(ctx)
		if err == nil {
			b.Reset()
			return nil
		}
		if Classify(err) == Permanent {
			return err
		}
		wait := b.Next()
		if onWait != nil {
			onWait(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}
