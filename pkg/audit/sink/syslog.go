package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

type syslogSink struct {
	cfg  audit.SyslogConfig
	node string
	tls  *tls.Config
	conn net.Conn
	w    *bufio.Writer
	pid  string
}

func newSyslogSink(cfg audit.SyslogConfig, node string) (*syslogSink, error) {
	if cfg.Address == "" {
		return nil, errors.New("syslog.address is empty")
	}
	if cfg.Facility <= 0 || cfg.Facility > 23 {
		cfg.Facility = 16
	}
	if cfg.AppName == "" {
		cfg.AppName = "sqlwarden"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	tc, err := cfg.TLS.Build()
	if err != nil {
		return nil, err
	}
	if tc != nil && tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(cfg.Address); err == nil {
			tc.ServerName = host
		}
	}
	return &syslogSink{cfg: cfg, node: node, tls: tc, pid: strconv.Itoa(os.Getpid())}, nil
}

func (s *syslogSink) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: s.cfg.Timeout}
	var c net.Conn
	var err error
	if s.tls != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		c, err = td.DialContext(ctx, "tcp", s.cfg.Address)
	} else {
		c, err = d.DialContext(ctx, "tcp", s.cfg.Address)
	}
	if err != nil {
		return fmt.Errorf("dial syslog: %w", err)
	}
	s.conn, s.w = c, bufio.NewWriterSize(c, 64<<10)
	return nil
}

// FormatSyslog renders one entry as an RFC 5424 message (without framing).
func FormatSyslog(facility int, appName, host, procID string, e audit.Entry, ts time.Time, event string, severity int) []byte {
	if event == "" {
		event = "-"
	}
	b := make([]byte, 0, len(e.Line)+200)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facility*8+severity), 10)
	b = append(b, ">1 "...)
	b = append(b, ts.UTC().Format("2006-01-02T15:04:05.000000Z07:00")...)
	b = append(b, ' ')
	b = append(b, sdName(host, 255)...)
	b = append(b, ' ')
	b = append(b, sdName(appName, 48)...)
	b = append(b, ' ')
	b = append(b, sdName(procID, 128)...)
	b = append(b, ' ')
	b = append(b, sdName(event, 32)...)
	b = append(b, ` [sqlwarden@32473 seq="`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `" hash="`...)
	b = append(b, e.Hash...)
	b = append(b, `"] `...)
	b = append(b, e.Line...)
	return b
}

// sdName keeps printable US-ASCII without spaces, as RFC 5424 header fields need.
func sdName(s string, max int) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < max; i++ {
		c := s[i]
		if c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

func (s *syslogSink) Ship(ctx context.Context, entries []audit.Entry) (int, error) {
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return 0, err
		}
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	for _, e := range entries {
		ts, event, sev := time.Now(), "", 6
		if r, err := audit.DecodeLine(e.Line); err == nil {
			ts, event = r.TS, r.Event
			if r.Status == record.StatusBlocked || r.Event == record.EventSessionDenied {
				sev = 5 // notice
			}
		}
		msg := FormatSyslog(s.cfg.Facility, s.cfg.AppName, s.node, s.pid, e, ts, event, sev)
		s.w.WriteString(strconv.Itoa(len(msg)))
		s.w.WriteByte(' ')
		s.w.Write(msg)
	}
	if err := s.w.Flush(); err != nil {
		s.conn.Close()
		s.conn = nil
		return 0, fmt.Errorf("write syslog: %w", err)
	}
	return len(entries), nil
}

func (s *syslogSink) Close() error {
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}
