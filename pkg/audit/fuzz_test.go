package audit

import (
	"bytes"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// FuzzLine feeds arbitrary bytes to the journal line reader and record
// decoder: no panics, and a line that checks out re-splits to the same hash.
func FuzzLine(f *testing.F) {
	f.Add([]byte(`{"ts":"2026-11-25T10:00:00Z","event":"statement","session_id":"s1","seq":1,"node":"n","sql":"SELECT 1","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1"}`))
	f.Add([]byte(`{"ts":"2026-11-25T10:00:00Z","event":"outcome","seq":2,"params":[{"type":"LONGLONG","value":18446744073709551615}],"hash":"`))
	f.Add([]byte(`{}`))
	f.Add([]byte("\x00\x00\x00\n"))
	f.Add([]byte("{\"a\":1}\n{\"b\"\x00\x002}\n{\"c\":3}\n\x00\x00\x00"))
	f.Add([]byte("{\"a\":1}\n{\"b\":2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, line := range bytes.Split(data, []byte("\n")) {
			canonical, h, err := SplitLine(line)
			if err == nil {
				if len(h) != 64 || canonical[len(canonical)-1] != '}' {
					t.Fatalf("SplitLine returned %q / %q", canonical, h)
				}
			}
			r, err := CheckLine(line)
			if err == nil && r.Hash != h {
				t.Fatalf("decoded hash %q, line hash %q", r.Hash, h)
			}
			DecodeLine(line)
			if e, ok := parseEntry(line); ok && err == nil && (e.Seq != r.Seq || e.Hash != r.Hash) {
				t.Fatalf("parseEntry %+v disagrees with the decoder (seq %d)", e, r.Seq)
			}
		}
		// readers see exactly the complete lines before the first zero byte
		// (the live segment's preallocated tail)
		end := recordsEnd(data)
		want := bytes.SplitAfter(data[:end], []byte("\n"))
		if len(want[len(want)-1]) == 0 || want[len(want)-1][len(want[len(want)-1])-1] != '\n' {
			want = want[:len(want)-1]
		}
		sc := newLineScanner(bytes.NewReader(data))
		var got [][]byte
		for {
			line, err := sc.next()
			if err != nil {
				break
			}
			got = append(got, append(append([]byte(nil), line...), '\n'))
		}
		if len(got) != len(want) {
			t.Fatalf("scanner returned %d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
		if len(trimZeros(data[sc.off:])) != len(sc.torn) {
			t.Fatalf("torn %d bytes, but %d non-zero bytes follow the lines", len(sc.torn), len(trimZeros(data[sc.off:])))
		}
		if validEnd, _, _, _ := scanTail(data); validEnd > int64(end) {
			t.Fatalf("scanTail's end %d is past the records' end %d", validEnd, end)
		}
	})
}

// FuzzAppendRoundTrip encodes records with arbitrary text through the
// journal's splice-and-hash path and checks the line verifies and decodes
// to the same text.
func FuzzAppendRoundTrip(f *testing.F) {
	f.Add("SELECT 1", "shop", "s1")
	f.Add(`x","seq":0,"y`, "\u2028", "")
	f.Add("\x00\xff<>&", `"seq":0`, `\"`)
	f.Fuzz(func(t *testing.T, sql, db, session string) {
		r := &record.Record{Event: record.EventStatement, SessionID: session, DB: db}
		r.SetSQL(sql)
		var buf bytes.Buffer
		body, err := encodeBody(&buf, r)
		if err != nil {
			return
		}
		canon, err := spliceInto(nil, body, 42, GenesisHash)
		if err != nil {
			t.Fatalf("splice: %v (%s)", err, body)
		}
		line := appendHashSuffix(canon, sha256Sum(canon))
		if bytes.IndexByte(line, 0) >= 0 {
			t.Fatalf("a record holds a zero byte, which readers take for the end of the records: %q", line)
		}
		got, err := CheckLine(line[:len(line)-1])
		if err != nil {
			t.Fatalf("check: %v\n%s", err, line)
		}
		if got.Seq != 42 || got.PrevHash != GenesisHash {
			t.Fatalf("round trip: %+v", got)
		}
		want, _ := DecodeLine(body) // json's own view of the strings (invalid UTF-8 replaced)
		if want != nil && (got.SQL != want.SQL || got.DB != want.DB || got.SessionID != want.SessionID) {
			t.Fatalf("text changed: %q -> %q", want.SQL, got.SQL)
		}
		if got.Text() != sql {
			t.Fatalf("statement bytes changed: %q -> %q", sql, got.Text())
		}
		if e, ok := parseEntry(line[:len(line)-1]); !ok || e.Seq != 42 {
			t.Fatalf("parseEntry: %+v %v", e, ok)
		}
	})
}

// FuzzRingRecords: whatever a ring file holds — torn, overwritten, another
// journal's, garbage — recovery never panics, and replays only lines that
// verify, in order, each chained to the one before from the given head.
func FuzzRingRecords(f *testing.F) {
	lines, _ := chainLines(f, 6)
	ring := ringOf(lines, 700)
	f.Add(ring, uint64(0))
	f.Add(ring, uint64(3))
	f.Add(bytes.Join(lines, nil), uint64(0))
	f.Add([]byte("\n\x00\n{}\n"), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, seq uint64) {
		head := GenesisHash
		out, n, last, lastHash, later := ringRecords(data, seq, head)
		if n > later {
			t.Fatalf("replayed %d of %d records found", n, later)
		}
		prev, want := head, seq+1
		for _, l := range bytes.SplitAfter(out, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			r, err := CheckLine(bytes.TrimSuffix(l, []byte("\n")))
			if err != nil || r.Seq != want || r.PrevHash != prev {
				t.Fatalf("replayed a line that does not continue the chain: %v seq %v prev %v", err, r, prev)
			}
			prev, want = r.Hash, want+1
		}
		if last != want-1 || lastHash != prev || int(want-1-seq) != n {
			t.Fatalf("ringRecords says %d records up to %d, the lines say %d up to %d", n, last, want-1-seq, want-1)
		}
	})
}
