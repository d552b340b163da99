package outputs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// facilities are the syslog facility codes (RFC 5424, 6.2.1).
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
	"local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogSeverity maps crumbs' severities onto syslog's (RFC 5424, 6.2.1).
var syslogSeverity = map[string]int{"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}

// maxUDPMessage bounds a datagram: what IPv4 carries in one UDP packet.
const maxUDPMessage = 65507

// syslogOutput writes RFC 5424 messages over UDP (one per datagram, RFC 5426), TCP
// (octet-counting framing, RFC 6587) or TLS (RFC 5425). A stream connection is kept between
// alerts and opened again after an error. Syslog has no acknowledgement: over TCP and TLS an
// alert is delivered when it is written to a connection the receiver has not closed; over
// UDP when its datagram is sent.
type syslogOutput struct {
	o        OutputConfig
	facility int
	procID   string
	tls      *tls.Config
	conn     net.Conn
}

func newSyslog(key string, o OutputConfig) (*syslogOutput, error) {
	s := &syslogOutput{o: o, facility: facilities[o.Facility], procID: strconv.Itoa(os.Getpid())}
	if o.Network == "tls" {
		host, _, _ := net.SplitHostPort(o.Address)
		c, err := o.TLS.config(key, host)
		if err != nil {
			return nil, err
		}
		s.tls = c
	}
	return s, nil
}

func (s *syslogOutput) Send(ctx context.Context, m *message) error {
	msg := formatRFC5424(s.facility, m, s.o.AppName, s.procID, s.o.SDID)
	if s.o.Network == "udp" && len(msg) > maxUDPMessage {
		msg = msg[:maxUDPMessage]
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	}
	var frame []byte
	if s.o.Network == "udp" {
		frame = msg
	} else {
		frame = append(strconv.AppendInt(nil, int64(len(msg)), 10), ' ')
		frame = append(frame, msg...)
	}
	if _, err := s.conn.Write(frame); err != nil {
		s.drop()
		return fmt.Errorf("write syslog message to %s: %w", s.o.Address, err)
	}
	return nil
}

// connect opens the connection, or checks that the receiver has not closed the one kept: a
// syslog receiver never writes, so anything to read on the socket (its end of stream, a reset,
// a TLS close_notify) means the connection is dead, and the message goes on a new one rather
// than into a socket whose peer is gone.
func (s *syslogOutput) connect(ctx context.Context) error {
	if s.conn != nil && s.o.Network != "udp" && !alive(s.conn) {
		s.drop()
	}
	if s.conn != nil {
		return nil
	}
	network := s.o.Network
	if network == "tls" {
		network = "tcp"
	}
	d := net.Dialer{}
	c, err := d.DialContext(ctx, network, s.o.Address)
	if err != nil {
		return fmt.Errorf("connect to syslog receiver %s: %w", s.o.Address, err)
	}
	if s.tls != nil {
		tc := tls.Client(c, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return fmt.Errorf("TLS handshake with syslog receiver %s: %w", s.o.Address, err)
		}
		c = tc
	}
	s.conn = c
	return nil
}

// alive peeks at the socket without blocking or consuming: nothing to read (EAGAIN) is alive.
func alive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		ok = errors.Is(rerr, unix.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && ok
}

func (s *syslogOutput) drop() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func (s *syslogOutput) Close() error { s.drop(); return nil }

// formatRFC5424 renders one message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID alert_id="..." ...] BOM MSG
//
// The timestamp is when the alert was raised, the hostname the alert's host, the message the
// output's text; the alert's fields and the output's templated fields are structured data.
func formatRFC5424(facility int, m *message, appName, procID, sdID string) []byte {
	a := m.Alert
	sev, ok := syslogSeverity[a.Severity]
	if !ok {
		sev = 4
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s %s %s alert [%s", facility*8+sev, m.Raised.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		headerField(a.Host.Name, 255), headerField(appName, 48), headerField(procID, 128), sdID)
	param := func(name, value string) {
		b.WriteString(" " + sdName(name) + `="` + sdEscape(value) + `"`)
	}
	param("alert_id", a.AlertID)
	param("rule_id", a.RuleID)
	param("severity", a.Severity)
	param("title", a.Title)
	param("host_id", a.Host.ID)
	if a.Service != "" {
		param("service", a.Service)
	}
	param("count", strconv.FormatInt(a.Count, 10))
	param("group_key", a.GroupKey)
	param("version", strconv.FormatInt(a.Version, 10))
	if a.Final {
		param("final", "true")
	}
	if a.IncidentID != "" {
		param("incident_id", a.IncidentID)
	}
	if in := m.Incident; in != nil {
		param("events", strconv.FormatInt(in.Events, 10))
		for _, r := range in.Rules {
			param("rule", r.RuleID)
		}
	}
	for _, t := range a.Tags {
		param("tag", t)
	}
	for _, k := range sortedKeys(m.Fields) {
		param(k, m.Fields[k])
	}
	if m.Data.URL != "" {
		param("url", m.Data.URL)
	}
	b.WriteString("] \xef\xbb\xbf")
	b.WriteString(m.Text)
	return []byte(b.String())
}

// headerField makes s a header field: printable US-ASCII, at most n bytes, "-" when empty.
func headerField(s string, n int) string {
	out := strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(out) > n {
		out = out[:n]
	}
	if out == "" {
		return "-"
	}
	return out
}

// sdName makes s a PARAM-NAME: printable US-ASCII but '=', ' ', ']' and '"', at most 32.
func sdName(s string) string {
	out := strings.Map(func(r rune) rune {
		if r < 33 || r > 126 || r == '=' || r == ']' || r == '"' {
			return '_'
		}
		return r
	}, s)
	if len(out) > 32 {
		out = out[:32]
	}
	if out == "" {
		return "_"
	}
	return out
}

// sdEscape escapes a PARAM-VALUE: '"', '\' and ']' take a backslash (RFC 5424, 6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(strings.ToValidUTF8(s, "\uFFFD"))
}
