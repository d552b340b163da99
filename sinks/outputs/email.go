package outputs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// email sends each alert as one plain-text message over SMTP, always after STARTTLS: a
// server that does not offer it gets nothing (the alert is retried, then dead-lettered).
type email struct {
	o        OutputConfig
	host     string
	tls      *tls.Config
	password string
}

func newEmail(key string, o OutputConfig) (*email, error) {
	host, _, err := net.SplitHostPort(o.Address)
	if err != nil {
		return nil, fmt.Errorf("%s.address: %w", key, err)
	}
	c, err := o.TLS.config(key, host)
	if err != nil {
		return nil, err
	}
	pw, err := secretValue(key+".password", o.Password)
	if err != nil {
		return nil, err
	}
	return &email{o: o, host: host, tls: c, password: pw}, nil
}

// Send opens a connection, upgrades it with STARTTLS, authenticates when configured, and
// sends the message. An SMTP 5xx reply to the sender, a recipient or the message refuses the
// alert; 4xx replies, authentication failures and connection errors are transient.
func (e *email) Send(ctx context.Context, m *message) error {
	msg := e.compose(m)
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", e.o.Address)
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", e.o.Address, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		return fmt.Errorf("SMTP greeting from %s: %w", e.o.Address, err)
	}
	defer c.Close()
	if err := c.Hello("crumbs"); err != nil {
		return fmt.Errorf("SMTP EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return fmt.Errorf("SMTP server %s does not offer STARTTLS; crumbs sends no mail in clear", e.o.Address)
	}
	if err := c.StartTLS(e.tls); err != nil {
		return fmt.Errorf("SMTP STARTTLS with %s: %w", e.o.Address, err)
	}
	if e.o.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.o.Username, e.password, e.host)); err != nil {
			return fmt.Errorf("SMTP authentication as %s: %w", e.o.Username, err)
		}
	}
	if err := c.Mail(e.o.From); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	for _, to := range e.o.To {
		if err := c.Rcpt(to); err != nil {
			return smtpErr("RCPT TO "+to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("SMTP write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("end of message", err)
	}
	_ = c.Quit() // the server accepted the message with its reply to the end of DATA
	return nil
}

// smtpErr classifies an SMTP reply: 5xx refuses the alert, but for the replies about
// authentication (530, 534, 535, 538), which say the output's configuration is wrong;
// anything else is transient.
func smtpErr(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 && te.Code != 530 && te.Code != 534 && te.Code != 535 && te.Code != 538 {
		return refused("SMTP %s: %d %s", step, te.Code, te.Msg)
	}
	return fmt.Errorf("SMTP %s: %w", step, err)
}

// compose renders the message: headers with the subject Q-encoded and stripped of line
// breaks, a quoted-printable UTF-8 body. Its Message-ID is the delivery's key, so a replay
// is the same message to the mail system.
func (e *email) compose(m *message) []byte {
	var b bytes.Buffer
	subject := strings.Join(strings.Fields(m.Text), " ")
	domain := e.o.From[strings.LastIndex(e.o.From, "@")+1:]
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", e.o.From)
	hdr("To", strings.Join(e.o.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", m.Raised.Format(time.RFC1123Z))
	msgID := func(key string) string { return "<" + strings.ReplaceAll(key, "/", ".") + "@" + domain + ">" }
	hdr("Message-ID", msgID(m.Key))
	if m.First != "" && m.First != m.Key {
		// A later version of the alert: mail clients thread it under the first.
		hdr("In-Reply-To", msgID(m.First))
		hdr("References", msgID(m.First))
	}
	hdr("X-Crumbs-Alert-Id", m.Alert.AlertID)
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(m.Body, "\r\n", "\n")
	if len(m.Fields) > 0 {
		body += "\n"
		for _, k := range sortedKeys(m.Fields) {
			body += k + ": " + m.Fields[k] + "\n"
		}
	}
	_, _ = qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}

func (e *email) Close() error { return nil }
