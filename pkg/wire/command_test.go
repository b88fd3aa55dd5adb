package wire

import (
	"bytes"
	"errors"
	"testing"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

func TestCommandDecoding(t *testing.T) {
	exec := []byte{gm.COM_STMT_EXECUTE, 0x01, 0x02, 0x03, 0x04, 0, 1, 0, 0, 0}
	id, err := ParseStmtID(exec)
	if err != nil || id != 0x04030201 {
		t.Fatalf("ParseStmtID = %#x, %v", id, err)
	}
	if !SetStmtID(exec, 7) || !bytes.Equal(exec[:5], StmtCommand(gm.COM_STMT_EXECUTE, 7)) {
		t.Fatalf("SetStmtID wrote % x", exec[:5])
	}
	if _, err := ParseStmtID([]byte{gm.COM_STMT_CLOSE, 1, 2}); !errors.Is(err, ErrMalformed) || err.Error() != "malformed packet: short COM_STMT_CLOSE" {
		t.Fatalf("short close: %v", err)
	}
	if SetStmtID([]byte{gm.COM_STMT_CLOSE}, 1) {
		t.Fatal("SetStmtID on a short payload reported true")
	}

	kill := KillCommand(0x01020304)
	if th, err := ParseKill(kill); err != nil || th != 0x01020304 || kill[0] != gm.COM_PROCESS_KILL {
		t.Fatalf("ParseKill(KillCommand) = %#x, %v", th, err)
	}
	if _, err := ParseKill([]byte{gm.COM_PROCESS_KILL, 1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short kill: %v", err)
	}

	ld, err := ParseLongData([]byte{gm.COM_STMT_SEND_LONG_DATA, 9, 0, 0, 0, 2, 1, 'a', 'b'})
	if err != nil || ld.StmtID != 9 || ld.Param != 0x0102 || string(ld.Data) != "ab" {
		t.Fatalf("ParseLongData = %+v, %v", ld, err)
	}
	if _, err := ParseLongData([]byte{gm.COM_STMT_SEND_LONG_DATA, 9, 0, 0, 0, 2}); err == nil ||
		err.Error() != "malformed packet: short COM_STMT_SEND_LONG_DATA" {
		t.Fatalf("short long data: %v", err)
	}

	for in, want := range map[string]string{"t\x00col%": "t", "t": "t", "": "", "\x00": ""} {
		if got := ParseFieldList(append([]byte{gm.COM_FIELD_LIST}, in...)); string(got) != want {
			t.Errorf("ParseFieldList(%q) = %q, want %q", in, got, want)
		}
	}

	q := Command("\x03SELECT 1")
	if q.Code() != gm.COM_QUERY || q.Name() != "COM_QUERY" || string(q.Arg()) != "SELECT 1" {
		t.Fatalf("Command view: %x %s %q", q.Code(), q.Name(), q.Arg())
	}
	if Command(nil).Arg() != nil || Command(nil).Name() != "COM_UNKNOWN_0xff" {
		t.Fatal("empty Command view")
	}
	if CommandName(0x40) != "COM_UNKNOWN_0x40" {
		t.Fatal(CommandName(0x40))
	}
}

// FuzzCommand feeds any payload to every command decoder: none reads past
// it, fixed fields decode exactly when they are there, and what is decoded
// re-encodes to the same bytes.
func FuzzCommand(f *testing.F) {
	f.Add([]byte{gm.COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{gm.COM_STMT_SEND_LONG_DATA, 1, 0, 0, 0, 0, 0, 'x'})
	f.Add([]byte{gm.COM_PROCESS_KILL, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{gm.COM_FIELD_LIST, 't', 0, '%'})
	f.Add([]byte{gm.COM_STMT_CLOSE, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		c := Command(p)
		if c.Name() == "" {
			t.Fatal("empty command name")
		}
		if len(p) > 0 && !bytes.Equal(c.Arg(), p[1:]) {
			t.Fatal("Arg is not the payload after the command byte")
		}
		id, err := ParseStmtID(p)
		if (err == nil) != (len(p) >= 5) || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Fatalf("ParseStmtID(% x): %v", p, err)
		}
		if err == nil && !bytes.Equal(StmtCommand(p[0], id), p[:5]) {
			t.Fatalf("statement id %d does not re-encode to % x", id, p[:5])
		}
		th, kerr := ParseKill(p)
		if (kerr == nil) != (err == nil) || (kerr == nil && !bytes.Equal(KillCommand(th)[1:], p[1:5])) {
			t.Fatalf("ParseKill(% x) = %d, %v", p, th, kerr)
		}
		ld, err := ParseLongData(p)
		if (err == nil) != (len(p) >= 7) {
			t.Fatalf("ParseLongData(% x): %v", p, err)
		}
		if err == nil && (ld.StmtID != id || len(ld.Data) != len(p)-7) {
			t.Fatalf("ParseLongData(% x) = %+v", p, ld)
		}
		table := ParseFieldList(p)
		if bytes.IndexByte(table, 0) >= 0 || (len(p) > 0 && !bytes.HasPrefix(p[1:], table)) {
			t.Fatalf("ParseFieldList(% x) = %q", p, table)
		}
	})
}
