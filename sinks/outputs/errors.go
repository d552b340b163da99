package outputs

import (
	"errors"
	"fmt"
	"time"

	"github.com/threatcrumbs/crumbs/pkg/retry"
)

// Why a delivery is dead-lettered rather than delivered; the dead letter's reason wraps one.
var (
	// ErrRefused: the receiver refused the alert for its content (HTTP 400, 413, 415 or 422,
	// which is PagerDuty's invalid event too; an SMTP 5xx reply to the sender, a recipient or
	// the message). Retrying cannot help, so it is not retried.
	ErrRefused error = &contentError{"refused by the receiver"}
	// ErrGaveUp: the delivery kept failing until alerts.outputs[N].retry's bound.
	ErrGaveUp = errors.New("gave up retrying")
	// ErrUnrenderable: a template failed on this alert (found at start where it can be).
	ErrUnrenderable error = &contentError{"template failed on the alert"}
)

// contentError is a refusal of what was sent: pkg/retry classifies it Permanent.
type contentError struct{ msg string }

func (e *contentError) Error() string        { return e.msg }
func (e *contentError) Is(target error) bool { return target == retry.ErrContent }

// refused wraps a receiver's answer as ErrRefused.
func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// retryAfter is a transient failure whose receiver said when to come back (HTTP Retry-After).
type retryAfter struct {
	err   error
	after time.Duration
}

func (r *retryAfter) Error() string { return r.err.Error() }
func (r *retryAfter) Unwrap() error { return r.err }

// permanent decides whether a failed delivery is worth retrying, with the project's classifier
// (pkg/retry): only an alert the receiver refused for its content, or one a template cannot
// render, is not. Everything else (a receiver away, overloaded, timing out, a TLS handshake
// failing) is retried within the output's bound.
func permanent(err error) bool { return retry.IsPermanent(err) }

// hintedBackoff is the wait the receiver asked for, if it did.
func hintedBackoff(err error) (time.Duration, bool) {
	var ra *retryAfter
	if errors.As(err, &ra) && ra.after > 0 {
		return ra.after, true
	}
	return 0, false
}
