package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// rawSession logs in through the proxy and returns the raw transport, so a
// test can then break the protocol on purpose.
func rawSession(t *testing.T, d *harness.Daemon) (*client.Conn, net.Conn) {
	t.Helper()
	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.Conn.Conn
}

// stillServes proves the daemon and other connections are unaffected.
func stillServes(t *testing.T, d *harness.Daemon, other *sql.DB) {
	t.Helper()
	var v int
	if err := other.QueryRow("SELECT 40 + 2").Scan(&v); err != nil || v != 42 {
		t.Fatalf("existing connection broken: %v", err)
	}
	fresh, err := sql.Open("mysql", d.DSN("test", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Ping(); err != nil {
		t.Fatalf("new connection refused: %v", err)
	}
}

func TestMalformedInput(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: "max_packet_size: 1048576\n"})
	other := d.Open(t, "test")
	other.SetMaxOpenConns(1)
	if err := other.Ping(); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		break_ func(t *testing.T, c *client.Conn, raw net.Conn)
		reason string // session.end reason
		record func(r *record.Record) bool
	}{
		{
			name: "truncated packet",
			break_: func(t *testing.T, c *client.Conn, raw net.Conn) {
				// Header says 100 bytes of COM_QUERY; 10 arrive, then the client hangs up.
				raw.Write([]byte{100, 0, 0, 0, 0x03, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', ' '})
				raw.(*net.TCPConn).CloseWrite()
			},
			reason: "client_error",
			record: func(r *record.Record) bool {
				return r.Event == record.EventOutcome && r.Error != nil && strings.Contains(r.Error.Message, "truncated")
			},
		},
		{
			name: "oversized length",
			break_: func(t *testing.T, c *client.Conn, raw net.Conn) {
				// A 16 MiB - 1 first packet: past max_packet_size (1 MiB), refused before reading it.
				raw.Write([]byte{0xff, 0xff, 0xff, 0, 0x03})
				buf := make([]byte, 512)
				raw.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _ := io.ReadAtLeast(raw, buf, 5)
				if n < 5 || buf[4] != 0xff || !strings.Contains(string(buf[:n]), "sqlwarden: packet larger than max_packet_size") {
					t.Errorf("oversized: want an ERR packet, got %q", buf[:n])
				}
			},
			reason: "packet_too_large",
			record: func(r *record.Record) bool {
				return r.Event == record.EventOutcome && r.Error != nil && r.Error.Code == 1153
			},
		},
		{
			name: "empty command",
			break_: func(t *testing.T, c *client.Conn, raw net.Conn) {
				raw.Write([]byte{0, 0, 0, 0})
				buf := make([]byte, 256)
				raw.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _ := io.ReadAtLeast(raw, buf, 5)
				if n < 5 || buf[4] != 0xff {
					t.Errorf("empty command: want an ERR packet, got %q", buf[:n])
				}
			},
			reason: "malformed_packet",
			record: func(r *record.Record) bool {
				return r.Event == record.EventOutcome && r.Error != nil && strings.Contains(r.Error.Message, "empty command")
			},
		},
		{
			name: "command out of sequence",
			break_: func(t *testing.T, c *client.Conn, raw net.Conn) {
				raw.Write([]byte{9, 0, 0, 3, 0x03, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1'}) // sequence id 3
				p, err := readFrame(raw, 5*time.Second)
				if err != nil || len(p) < 3 || p[0] != 0xff || p[1] != 0x84 || p[2] != 0x04 || !strings.Contains(string(p), "sqlwarden: command with sequence id 3, want 0") {
					t.Errorf("out of sequence: want ERR 1156 sqlwarden: ..., got %q %v", p, err)
				}
			},
			reason: "malformed_packet",
			record: func(r *record.Record) bool {
				return r.Event == record.EventOutcome && r.Error != nil && r.Error.Code == 1156
			},
		},
		{
			name: "client disconnects mid-result",
			break_: func(t *testing.T, c *client.Conn, raw net.Conn) {
				q := "SELECT seq, REPEAT('y', 200) FROM seq_1_to_200000"
				pkt := append([]byte{byte(len(q) + 1), 0, 0, 0, 0x03}, q...)
				raw.Write(pkt)
				buf := make([]byte, 4096)
				raw.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(raw, buf); err != nil {
					t.Errorf("mid-result: read: %v", err)
				}
				raw.(*net.TCPConn).SetLinger(0)
				raw.Close() // RST in the middle of the result
			},
			reason: "client_error",
			record: func(r *record.Record) bool {
				return r.Event == record.EventOutcome && r.Error != nil && strings.Contains(r.Error.Message, "client disconnected")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			breakSession(t, d, other, tc.break_, tc.reason, tc.record)
		})
	}
}

// breakSession logs in, lets break_ break the protocol, and checks that the
// session ended for reason with a record of why, and that the daemon and
// the other connection still serve.
func breakSession(t *testing.T, d *harness.Daemon, other *sql.DB, break_ func(t *testing.T, c *client.Conn, raw net.Conn), reason string, why func(r *record.Record) bool) {
	t.Helper()
	before := len(harness.Sessions(d.Records(t)))
	c, raw := rawSession(t, d)
	break_(t, c, raw)
	raw.Close()
	ids := harness.Sessions(d.Records(t))
	if len(ids) <= before {
		t.Fatal("no session recorded")
	}
	id := ids[len(ids)-1]
	recs := d.WaitEnded(t, id)
	end := harness.SessionEvent(recs, record.EventSessionEnd, id)
	if end == nil || end.Reason != reason {
		t.Fatalf("session.end = %+v, want reason %q", end, reason)
	}
	found := false
	for _, r := range recs {
		if r.SessionID == id && why(r) {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit record of why the session ended")
	}
	stillServes(t, d, other)
}

// TestContinuationOutOfOrder: a statement of 16 MiB or more whose
// continuation packet skips a sequence id gets the server's own answer to
// that, ERR 1156, from the proxy — which never joins it into a statement the
// server would read framed in order.
func TestContinuationOutOfOrder(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	other := d.Open(t, "test")
	if err := other.Ping(); err != nil {
		t.Fatal(err)
	}
	breakSession(t, d, other, func(t *testing.T, c *client.Conn, raw net.Conn) {
		first := make([]byte, 4+wire.MaxPayload)
		first[0], first[1], first[2], first[3] = 0xff, 0xff, 0xff, 0
		copy(first[4:], "\x03SELECT '")
		for i := 4 + 9; i < len(first); i++ {
			first[i] = 'x'
		}
		// The continuation says 5 where 1 follows 0.
		if _, err := raw.Write(append(first, 2, 0, 0, 5, '\'', ';')); err != nil {
			t.Fatal(err)
		}
		p, err := readFrame(raw, 10*time.Second)
		if err != nil {
			t.Fatalf("want an ERR packet: %v", err)
		}
		e, err := wire.ParseErr(p)
		if err != nil || e.Code != wire.ErrCodeOutOfOrder || !strings.HasPrefix(e.Message, "sqlwarden: ") || !strings.Contains(e.Message, "out of order") {
			t.Fatalf("reply = %+v (%v), want ERR 1156 sqlwarden: ... out of order", e, err)
		}
	}, "malformed_packet", func(r *record.Record) bool {
		return r.Event == record.EventOutcome && r.Error != nil && r.Error.Code == wire.ErrCodeOutOfOrder
	})
}

func TestBackendDiesMidResult(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	other := d.Open(t, "test")
	if err := other.Ping(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", d.DSN("test", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var thread int64
	if err := conn.QueryRowContext(t.Context(), "SELECT CONNECTION_ID()").Scan(&thread); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(t.Context(), "SELECT seq, REPEAT('z', 500) FROM seq_1_to_2000000")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var scanErr error
	for rows.Next() {
		n++
		if n == 1000 {
			// The database side of this session goes away mid-result.
			if _, err := root.Exec(fmt.Sprintf("KILL CONNECTION %d", thread)); err != nil {
				t.Fatal(err)
			}
		}
	}
	scanErr = rows.Err()
	rows.Close()
	conn.Close()
	if scanErr == nil && n == 2000000 {
		t.Fatal("the result completed although its backend connection was killed")
	}
	var me *gomysql.MySQLError
	if scanErr != nil && !errors.As(scanErr, &me) && !errors.Is(scanErr, gomysql.ErrInvalidConn) {
		t.Logf("client saw %v", scanErr)
	}
	stillServes(t, d, other)
	other.Close()
	recs := d.Settled(t)
	var out *record.Record
	for _, r := range recs {
		if r.Event == record.EventOutcome && r.Error != nil && r.Status == record.StatusError && r.Rows == nil {
			if st := harness.StatementOf(recs, r); st != nil && strings.Contains(st.SQL, "seq_1_to_2000000") {
				out = r
			}
		}
	}
	if out == nil {
		t.Fatal("no error outcome for the statement whose backend died")
	}
}
