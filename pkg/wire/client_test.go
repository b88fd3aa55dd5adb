package wire

import (
	"errors"
	"net"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// backendLogin logs into the private MariaDB as the proxy's test account.
func backendLogin(t *testing.T, cfg ClientConfig) (*Conn, *ServerInfo, error) {
	t.Helper()
	m := testutil.StartMariaDB(t)
	nc, err := net.DialTimeout("tcp", m.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := NewConn(nc, 1<<24)
	info, err := ClientHandshake(c, &cfg)
	return c, info, err
}

func TestClientHandshakeMariaDB(t *testing.T) {
	c, info, err := backendLogin(t, ClientConfig{User: "warden", Password: "warden-pass", DB: "test", Collation: 45,
		Capabilities: gm.CLIENT_SESSION_TRACK | gm.CLIENT_MULTI_STATEMENTS, Attrs: map[string]string{"program_name": "sqlwarden-test"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.ConnectionID == 0 || info.Version == "" || info.Capabilities&gm.CLIENT_SESSION_TRACK == 0 || info.Capabilities&gm.CLIENT_DEPRECATE_EOF != 0 {
		t.Fatalf("server info %+v", info)
	}
	rows, err := SimpleQuery(c, "SELECT DATABASE(), CURRENT_USER(), @@session.character_set_client, NULL")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][0] != "test" || rows[0][1] != "warden@%" || rows[0][2] != "utf8mb4" || rows[0][3] != "" {
		t.Fatalf("rows %q", rows)
	}
	_, _, err = backendLogin(t, ClientConfig{User: "warden", Password: "wrong"})
	var se *ServerError
	if !errors.As(err, &se) || se.Code != 1045 {
		t.Fatalf("wrong password: %v, want ERR 1045", err)
	}
}

// TestSessionTrackMariaDB: with session tracking on the backend leg, the
// OK of every statement that changes a tracked variable names it and its
// new value, and StripSessionTrack leaves the OK a client without tracking
// expects.
func TestSessionTrackMariaDB(t *testing.T) {
	c, _, err := backendLogin(t, ClientConfig{User: "warden", Password: "warden-pass", Collation: 45, Capabilities: gm.CLIENT_SESSION_TRACK})
	if err != nil {
		t.Fatal(err)
	}
	vars := func(q string) (map[string]string, []byte) {
		t.Helper()
		c.Seq = 0
		if err := c.WritePacket(append([]byte{gm.COM_QUERY}, q...)); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		p, _, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p[0] != OKHeader {
			t.Fatalf("%s: packet %x", q, p)
		}
		out, state, err := StripSessionTrack(p)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		if err := SessionSysVars(state, func(n, v []byte) { m[string(n)] = string(v) }); err != nil {
			t.Fatal(err)
		}
		return m, out
	}
	m, _ := vars("SET SESSION session_track_system_variables = '*'")
	if m["session_track_system_variables"] != "*" {
		t.Fatalf("turning tracking on reported %q", m)
	}
	m, out := vars("SET sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'")
	if m["sql_mode"] != "ANSI_QUOTES,NO_BACKSLASH_ESCAPES" {
		t.Fatalf("SET sql_mode reported %q", m)
	}
	ok, err := ParseOK(out)
	if err != nil || ok.Status&ServerSessionStateChanged != 0 || len(out) != 7 {
		t.Fatalf("stripped OK %x: %+v %v", out, ok, err)
	}
	if ok.Status&gm.SERVER_STATUS_NO_BACKSLASH_ESCAPED == 0 {
		t.Errorf("status %#x lacks NO_BACKSLASH_ESCAPES", ok.Status)
	}
	m, _ = vars("SET NAMES latin1")
	if m["character_set_client"] != "latin1" {
		t.Fatalf("SET NAMES reported %q", m)
	}
	m, _ = vars("SET @@session.sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')")
	if m["sql_mode"] != "PIPES_AS_CONCAT,ANSI_QUOTES,NO_BACKSLASH_ESCAPES" {
		t.Fatalf("an expression reported %q", m)
	}
	m, _ = vars("SET session_track_system_variables = ''")
	t.Logf("turning tracking off reports %q", m)
}

func TestStripSessionTrack(t *testing.T) {
	for _, tt := range []struct {
		name      string
		in, out   []byte
		wantState bool
	}{
		{"plain", []byte{0, 1, 0, 2, 0, 0, 0}, []byte{0, 1, 0, 2, 0, 0, 0}, false},
		// The info text is length-prefixed with or without session tracking.
		{"info", []byte{0, 1, 0, 2, 0, 0, 0, 3, 'a', 'b', 'c'}, []byte{0, 1, 0, 2, 0, 0, 0, 3, 'a', 'b', 'c'}, false},
		{"state", []byte{0, 0, 0, 0x02, 0x40, 0, 0, 0, 5, 0, 3, 1, 'x', 0}, []byte{0, 0, 0, 0x02, 0, 0, 0}, true},
		{"info and state", []byte{0, 0, 0, 0x02, 0x40, 0, 0, 1, 'i', 5, 0, 3, 1, 'x', 0}, []byte{0, 0, 0, 0x02, 0, 0, 0, 1, 'i'}, true},
	} {
		out, state, err := StripSessionTrack(append([]byte(nil), tt.in...))
		if err != nil || string(out) != string(tt.out) || (state != nil) != tt.wantState {
			t.Errorf("%s: %x, state %x, %v; want %x", tt.name, out, state, err, tt.out)
		}
	}
	for _, bad := range [][]byte{{0, 0, 0, 0, 0x40, 0, 0}, {0, 0, 0, 0, 0x40, 0, 0, 9, 'a'}, {0, 0, 0, 0, 0x40, 0, 0, 0, 7, 1}, {0xff}} {
		if _, _, err := StripSessionTrack(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

// FuzzStripSessionTrack: never a panic; a result is a prefix of the input
// that ParseOK reads, without the state-changed flag; the state block's
// variables parse or fail cleanly.
func FuzzStripSessionTrack(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0x02, 0x40, 0, 0, 1, 'i', 15, 0, 13, 8, 's', 'q', 'l', '_', 'm', 'o', 'd', 'e', 3, 'A', 'N', 'S'})
	f.Add([]byte{0, 0, 0, 0x02, 0x40, 0, 0, 0, 5, 1, 3, 2, 'd', 'b'})
	f.Fuzz(func(t *testing.T, p []byte) {
		in := append([]byte(nil), p...)
		out, state, err := StripSessionTrack(p)
		if err != nil {
			return
		}
		if len(out) > len(in) || string(out[:1]) != string(in[:1]) {
			t.Fatalf("%x -> %x", in, out)
		}
		ok, err := ParseOK(out)
		if err != nil || ok.Status&ServerSessionStateChanged != 0 {
			t.Fatalf("%x -> %x: %+v %v", in, out, ok, err)
		}
		_ = SessionSysVars(state, func(name, value []byte) {})
	})
}

// FuzzParseGreeting: never a panic on a backend's first packet.
func FuzzParseGreeting(f *testing.F) {
	f.Add([]byte("\x0a10.11.19-MariaDB\x00\x01\x00\x00\x00abcdefgh\x00\xfe\xf7\x2d\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00"))
	f.Add([]byte("\x0a8.0\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		g, scramble, plugin, err := parseGreeting(p)
		if err == nil && (g == nil || plugin == "" || len(scramble) < 8) {
			t.Fatalf("%x: %+v %x %q", p, g, scramble, plugin)
		}
	})
}
