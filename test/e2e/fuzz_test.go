package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/test/harness"
)

// fuzzPolicy lets single SELECTs through (no sleeping or locking functions,
// no files) and refuses everything else, so fuzzed commands reach every
// decoder of the proxy and, for reads, the real MariaDB, without changing
// the database or holding a backend thread.
const fuzzPolicy = `default: deny
rules:
  - name: reads
    match: >-
      statement.parsed && statement.kind == "SELECT" && statement.count == 1 && !statement.into_outfile &&
      !statement.functions.exists(f, f in ["SLEEP", "BENCHMARK", "GET_LOCK", "LOAD_FILE", "RELEASE_ALL_LOCKS", "MASTER_POS_WAIT", "MASTER_GTID_WAIT"])
    action: allow
masking:
  - name: secrets
    columns: ["fuzz_cmds.t.secret"]
    strategy: partial
    keep: 2
`

// fuzzEnd ends every fuzzed exchange: once its row arrives, the proxy has
// answered everything before it.
const fuzzEnd = "SELECT 'sw-fuzz-end'"

// encodeCommands frames command payloads as the fuzz input: a 2-byte
// little-endian length before each.
func encodeCommands(cmds ...[]byte) []byte {
	var b []byte
	for _, c := range cmds {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	return b
}

func decodeCommands(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 && len(out) < 8 {
		n := int(binary.LittleEndian.Uint16(b))
		b = b[2:]
		if n > len(b) {
			n = len(b)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func writeRawPacket(c net.Conn, seq byte, payload []byte) error {
	hdr := []byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}
	_, err := c.Write(append(hdr, payload...))
	return err
}

func readRawPacket(c net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	p := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	_, err := io.ReadFull(c, p)
	return p, err
}

func cmd(b byte, rest ...byte) []byte { return append([]byte{b}, rest...) }

func cmdText(b byte, s string) []byte { return append([]byte{b}, s...) }

func stmtID(b byte, id uint32, rest ...byte) []byte {
	return append(binary.LittleEndian.AppendUint32([]byte{b}, id), rest...)
}

// FuzzClientCommands logs in to the real daemon (real MariaDB behind it) and
// sends up to eight fuzzed command packets, then a marker query. The proxy
// must answer all of them (the marker's row arrives) or end the session; it
// never hangs, and the daemon keeps serving a connection held open across
// inputs. Every command byte, prepared-statement id, EXECUTE parameter block,
// cursor fetch and long-data chunk goes through the proxy's own decoding.
func FuzzClientCommands(f *testing.F) {
	f.Add(encodeCommands(cmdText(gm.COM_QUERY, "SELECT id, secret FROM t")))
	f.Add(encodeCommands(cmdText(gm.COM_STMT_PREPARE, "SELECT secret FROM t WHERE id = ?"),
		stmtID(gm.COM_STMT_EXECUTE, 1, 0, 1, 0, 0, 0, 0, 1, gm.MYSQL_TYPE_LONG, 0, 1, 0, 0, 0)))
	f.Add(encodeCommands(cmdText(gm.COM_STMT_PREPARE, "SELECT ?"),
		stmtID(gm.COM_STMT_SEND_LONG_DATA, 1, 0, 0, 'a', 'b'),
		stmtID(gm.COM_STMT_EXECUTE, 1, 0, 1, 0, 0, 0, 0, 1, gm.MYSQL_TYPE_BLOB, 0),
		stmtID(gm.COM_STMT_RESET, 1), stmtID(gm.COM_STMT_CLOSE, 1)))
	f.Add(encodeCommands(cmdText(gm.COM_STMT_PREPARE, "SELECT id FROM t"),
		stmtID(gm.COM_STMT_EXECUTE, 1, 1, 1, 0, 0, 0), stmtID(gm.COM_STMT_FETCH, 1, 1, 0, 0, 0)))
	f.Add(encodeCommands(cmdText(gm.COM_INIT_DB, "fuzz_cmds"), cmdText(gm.COM_FIELD_LIST, "t\x00"), cmd(gm.COM_PING),
		cmd(gm.COM_STATISTICS), cmd(gm.COM_SET_OPTION, 0, 0), cmd(gm.COM_RESET_CONNECTION)))
	f.Add(encodeCommands(cmd(gm.COM_PROCESS_KILL, 1, 0, 0, 0), cmdText(gm.COM_QUERY, "KILL QUERY 1"), cmdText(gm.COM_CHANGE_USER, "root\x00")))
	f.Add(encodeCommands(cmdText(gm.COM_QUERY, "DELETE FROM t"), cmdText(gm.COM_QUERY, "SELECT 1; SELECT 2"), cmd(0xee), cmd(gm.COM_BINLOG_DUMP)))
	f.Add(encodeCommands(stmtID(gm.COM_STMT_EXECUTE, 7), stmtID(gm.COM_STMT_FETCH, 0), []byte{}))
	f.Add(encodeCommands(cmdText(gm.COM_QUERY, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t")))

	dir := f.TempDir()
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(fuzzPolicy), 0o600); err != nil {
		f.Fatal(err)
	}
	d := harness.Start(f, harness.Options{Extra: "policy:\n  file: " + pf + "\n"})
	root := d.Maria.Open(f, "")
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS fuzz_cmds",
		"CREATE TABLE IF NOT EXISTS fuzz_cmds.t (id INT PRIMARY KEY, secret VARCHAR(32), b BLOB)",
		"INSERT IGNORE INTO fuzz_cmds.t VALUES (1, 'card-4111111111111111', 'x'), (2, NULL, NULL)",
	} {
		if _, err := root.Exec(q); err != nil {
			f.Fatalf("%s: %v", q, err)
		}
	}
	watch := d.Open(f, "fuzz_cmds")
	watch.SetMaxOpenConns(1)

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "fuzz_cmds")
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		defer c.Close()
		raw := c.Conn.Conn
		deadline := time.Now().Add(20 * time.Second)
		if err := raw.SetDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		// The proxy may answer, refuse or end the session; a closed
		// connection ends the exchange, a timeout fails it.
		ended := func(err error) bool {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the proxy did not answer within 20s (input %x)", data)
			}
			return err != nil
		}
		for _, p := range append(decodeCommands(data), []byte(nil)) {
			if p == nil {
				p = append([]byte{gm.COM_QUERY}, fuzzEnd...)
			}
			if len(p) == 0 {
				continue
			}
			if ended(writeRawPacket(raw, 0, p)) {
				return
			}
			if p[0] == gm.COM_QUIT {
				return
			}
		}
		for {
			p, err := readRawPacket(raw)
			if ended(err) {
				break
			}
			if len(p) > 0 && p[0] != 0xff && bytes.Contains(p, []byte("sw-fuzz-end")) {
				break
			}
		}
		var v int
		if err := watch.QueryRow("SELECT 40 + 2").Scan(&v); err != nil || v != 42 {
			t.Fatalf("the daemon stopped serving another connection: %v (input %x)", err, data)
		}
	})
}
