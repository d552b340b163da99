package outputs

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// message is one delivery as a sender sees it.
type message struct {
	Alert *schemas.Alert
	Data  *TemplateData
	*rendered
	// Key is the delivery's idempotency key, the same on every attempt and after a restart:
	// alert id "/" output name, and "/v" version for a later version of the alert. Receivers
	// that can deduplicate are given it (webhook Idempotency-Key header, e-mail Message-ID);
	// PagerDuty deduplicates on the alert id.
	Key string
	// First is the key of the alert's first version (Key itself for the first): e-mail threads
	// a later version under it.
	First string
	// Incident is the incident the message stands for (deliver: incidents); nil for an alert.
	Incident *schemas.Incident
	// Raised is when the detector raised the alert (its record's timestamp).
	Raised time.Time
}

// sender delivers alerts to one receiver. Send blocks until the receiver acknowledged the
// alert (nil), refused it for its content (an error wrapping ErrRefused: it is not retried),
// failed otherwise (any other error: retried), or ctx ended. One goroutine calls Send at a
// time. Close releases the sender's connections.
type sender interface {
	Send(ctx context.Context, m *message) error
	Close() error
}

// resolver is a sender that can also resolve an alert at its receiver (PagerDuty).
type resolver interface {
	Resolve(ctx context.Context, alertID string) error
}

// newSender builds the sender of an output whose configuration is valid and defaulted.
func newSender(key string, o OutputConfig, stdout io.Writer) (sender, error) {
	switch o.Type {
	case TypeWebhook:
		return newWebhook(key, o)
	case TypeSlack:
		return newSlack(key, o)
	case TypePagerDuty:
		return newPagerDuty(key, o)
	case TypeAlertmanager:
		return newAlertmanager(key, o)
	case TypeSyslog:
		return newSyslog(key, o)
	case TypeEmail:
		return newEmail(key, o)
	case TypeFile:
		return newFileOutput(key, o, stdout)
	}
	return nil, fmt.Errorf("%s.type: %q: no such output type", key, o.Type)
}
