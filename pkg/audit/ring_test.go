package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// chainLines returns n journal lines chained from the genesis hash, as the
// journal writes them, with the hash of each.
func chainLines(t testing.TB, n int) (lines [][]byte, hashes []string) {
	t.Helper()
	prev := GenesisHash
	for i := 1; i <= n; i++ {
		var buf bytes.Buffer
		body, err := encodeBody(&buf, &record.Record{TS: time.Unix(int64(i), 0).UTC(), Event: record.EventStatement,
			SessionID: "s", StatementID: uint64(i), SQL: strings.Repeat("x", i%37)})
		if err != nil {
			t.Fatal(err)
		}
		line, err := spliceInto(nil, body, uint64(i), prev)
		if err != nil {
			t.Fatal(err)
		}
		line = appendHashSuffix(line, sha256.Sum256(line))
		h := string(line[len(line)-3-64 : len(line)-3])
		lines, hashes = append(lines, line), append(hashes, h)
		prev = h
	}
	return lines, hashes
}

// ringOf lays lines out in a ring of size bytes as the journal does: each at
// its journal offset modulo the size, later ones over earlier ones.
func ringOf(lines [][]byte, size int) []byte {
	r := &ring{data: make([]byte, size)}
	var off int64
	for _, l := range lines {
		r.put(off, l)
		off += int64(len(l))
	}
	return r.data
}

func seqsOf(t *testing.T, out []byte) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, l := range bytes.SplitAfter(out, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		r, err := CheckLine(bytes.TrimSuffix(l, []byte("\n")))
		if err != nil {
			t.Fatalf("replayed line does not verify: %v", err)
		}
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

// Recovery finds the chain after the segments' last record wherever the
// ring has wrapped, including the line split across its end, and stops
// where the ring no longer holds the next record.
func TestRingRecordsFollowTheChain(t *testing.T) {
	lines, hashes := chainLines(t, 200)
	total := 0
	for _, l := range lines {
		total += len(l)
	}
	for _, size := range []int{total + 100, total / 3, total/3 + 1, total/3 + 57, 4096} {
		data := ringOf(lines, size)
		// which records are still whole in the ring: the newest that fit
		oldest, held := len(lines), 0
		for oldest > 0 && held+len(lines[oldest-1]) <= size {
			oldest--
			held += len(lines[oldest])
		}
		for _, after := range []int{oldest, oldest + 5, 150, 199, 200} {
			if after < oldest {
				continue
			}
			head := GenesisHash
			if after > 0 {
				head = hashes[after-1]
			}
			out, n, last, lastHash, _ := ringRecords(data, uint64(after), head)
			if n != 200-after || last != 200 || lastHash != hashes[199] {
				t.Fatalf("ring %d bytes, after seq %d: %d records up to %d, want %d up to 200", size, after, n, last, 200-after)
			}
			seqs := seqsOf(t, out)
			for i, s := range seqs {
				if s != uint64(after+1+i) {
					t.Fatalf("ring %d bytes: replay out of order: %v", size, seqs)
				}
			}
		}
		// a chain head the ring cannot continue (its next record was
		// overwritten): nothing is replayed, and the valid later records
		// are counted as not replayed
		if oldest >= 3 {
			_, n, _, _, later := ringRecords(data, uint64(oldest-2), hashes[oldest-3])
			if n != 0 || later == 0 {
				t.Fatalf("ring %d bytes: continued a chain it does not hold (n=%d later=%d)", size, n, later)
			}
		}
	}
}

// A record the ring had no room for is written to the segment before any
// later one is copied into the ring; the ring then holds the later records
// over another lap's bytes, and recovery must find the first of them all
// the same (it once took the old lap's last bytes for the start of it).
func TestRingRecordsAfterARecordNotInTheRing(t *testing.T) {
	lines, hashes := chainLines(t, 120)
	for _, size := range []int{5000, 7919, 1 << 16} {
		r := &ring{data: make([]byte, size)}
		var off int64
		for i, l := range lines {
			if i != 114 { // seq 115 is not copied: the segment has it
				r.put(off, l)
			}
			off += int64(len(l))
		}
		// the segment ends at seq 115; what follows is only in the ring
		_, n, last, _, _ := ringRecords(r.data, 115, hashes[114])
		if n != 5 || last != 120 {
			t.Fatalf("ring %d bytes: replayed %d up to %d, want 5 up to 120", size, n, last)
		}
	}
}

// A record of another chain — same seq, another prev_hash — is never
// replayed; nor is a line a crash left half copied, nor what follows a
// cleared stretch unless it continues the chain.
func TestRingRecordsRejectWhatDoesNotChain(t *testing.T) {
	lines, hashes := chainLines(t, 20)
	data := ringOf(lines, 1<<16)
	// record 11 torn: its last bytes never copied
	var off int
	for _, l := range lines[:10] {
		off += len(l)
	}
	clear(data[off+len(lines[10])-20 : off+len(lines[10])])
	_, n, last, _, _ := ringRecords(data, 5, hashes[4])
	if n != 5 || last != 10 {
		t.Fatalf("replayed %d up to %d, want 5 up to 10 (stop at the torn record)", n, last)
	}
	// another journal's records (another genesis) after seq 0
	other, _ := chainLines(t, 3)
	for i := range other {
		other[i] = bytes.Replace(other[i], []byte(GenesisHash), []byte(strings.Repeat("1", 64)), 1)
	}
	_, n, _, _, _ = ringRecords(ringOf(other, 4096), 0, GenesisHash)
	if n != 0 {
		t.Fatalf("replayed %d records of a chain that does not start at the head", n)
	}
}

func ringJournal(t *testing.T, dir, ringDir string, mod func(*Config)) *Journal {
	return openTest(t, dir, func(c *Config) {
		c.RingDir = ringDir
		c.BatchWindow = 5 * time.Millisecond
		if mod != nil {
			mod(c)
		}
	})
}

// With a ring, Append returns once the record is in the ring: a write that
// does not come back (held here by the write hook) holds no statement.
// The background loop writes the records within the batch window, many to
// a write.
func TestRingAppendDoesNotWaitForTheWrite(t *testing.T) {
	dir, ringDir := t.TempDir(), t.TempDir()
	release, held := make(chan struct{}), make(chan struct{}, 1)
	var holding atomic.Bool
	j := ringJournal(t, dir, ringDir, func(c *Config) {
		c.WriteHook = func([]byte) error {
			if holding.Load() {
				select {
				case held <- struct{}{}:
				default:
				}
				<-release
			}
			return nil
		}
	})
	if j.ring == nil {
		t.Fatal("no ring with ring_dir set and sync batch")
	}
	holding.Store(true)
	for i := 1; i <= 50; i++ {
		done := make(chan error, 1)
		go func() {
			done <- j.Append(&record.Record{Event: record.EventStatement, SessionID: "s", StatementID: uint64(i)})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Append %d waited for a held write", i)
		}
	}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the background loop never wrote the records")
	}
	holding.Store(false)
	close(release)
	testutil.Eventually(t, 5*time.Second, func() error {
		if seq := j.LastSeq(); seq < 51 {
			return fmt.Errorf("last seq %d, want 51", seq)
		}
		return nil
	})
	if s := j.Stats(); s.Writes >= 25 {
		t.Fatalf("%d writes for 50 records: the ring should batch them", s.Writes)
	}
}

// copyDir copies the regular files of src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// The records a crash left only in the ring are in the journal after the
// next Open, which says so in its opening checkpoint; the journal verifies
// and a clean Close removes the ring. A ring left by another journal
// directory is not replayed. The crash is a snapshot: the journal's files
// and its ring copied while its background write is held, so the segments
// lack what the ring has.
func TestRingReplayAtOpen(t *testing.T) {
	dir, ringDir := t.TempDir(), t.TempDir()
	release := make(chan struct{})
	var holding atomic.Bool
	j := ringJournal(t, dir, ringDir, func(c *Config) {
		c.WriteHook = func([]byte) error {
			if holding.Load() {
				<-release
			}
			return nil
		}
	})
	holding.Store(true)
	appendStatements(t, j, "s", 20)
	crashed, err := os.ReadFile(ringPath(ringDir, dir))
	if err != nil {
		t.Fatal(err)
	}
	snap := copyDir(t, dir)
	holding.Store(false)
	close(release)
	if err := os.WriteFile(ringPath(ringDir, snap), crashed, 0o600); err != nil {
		t.Fatal(err)
	}
	statements := func(d string) map[uint64]bool {
		seen := map[uint64]bool{}
		if err := ReadAll(d, func(r *record.Record) error {
			if r.Event == record.EventStatement {
				seen[r.StatementID] = true
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if seen := statements(snap); len(seen) != 0 {
		t.Fatalf("statements in the segments at the crash: %v; the test wants them only in the ring", seen)
	}
	// verify, before the restart, says where the missing records are
	if err := os.WriteFile(filepath.Join(snap, ringPathFile), []byte(ringPath(ringDir, snap)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	ringWarned := false
	for _, w := range rep.Warnings {
		ringWarned = ringWarned || (w.Kind == ProblemRing && strings.HasPrefix(w.Reason, "20 records after seq"))
	}
	if !ringWarned {
		t.Fatalf("verify before the restart does not tell of the 20 records in the ring: %+v", rep.Warnings)
	}
	other := t.TempDir()
	if err := os.WriteFile(ringPath(ringDir, other), crashed, 0o600); err != nil {
		t.Fatal(err)
	}

	ringJournal(t, snap, ringDir, nil).Close()
	if seen := statements(snap); len(seen) != 20 {
		t.Fatalf("after the replay the journal has statements %v, want 1..20", seen)
	}
	var reason string
	ReadAll(snap, func(r *record.Record) error {
		if r.Event == record.EventCheckpoint && strings.Contains(r.Reason, "ring") {
			reason = r.Reason
		}
		return nil
	})
	if !strings.Contains(reason, "replayed 20 records from the ring") {
		t.Fatalf("opening checkpoint reason %q does not tell of the replay", reason)
	}
	if rep, err := Verify(snap, nil); err != nil || !rep.OK {
		t.Fatalf("verify after replay: %v %+v", err, rep)
	} else {
		for _, w := range rep.Warnings {
			if w.Kind == ProblemRing {
				t.Fatalf("verify after the replay still warns of the ring: %v", w)
			}
		}
	}
	if _, err := os.Stat(ringPath(ringDir, snap)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the ring outlived a clean close: %v", err)
	}

	// the other directory's journal has its own id: nothing replayed
	ringJournal(t, other, ringDir, nil).Close()
	if seen := statements(other); len(seen) != 0 {
		t.Fatalf("another journal's ring replayed %d statements into this one", len(seen))
	}
}

// A write that fails after records were acknowledged from the ring rolls
// the chain back as without a ring, and clears their copies: the seqs are
// given again, and a later Open must not find two records for one seq.
// Until a write succeeds Append waits for its own write again (and is
// refused while writes fail).
func TestRingFailedWriteClearsItsRecords(t *testing.T) {
	dir, ringDir := t.TempDir(), t.TempDir()
	var fail atomic.Bool
	j := ringJournal(t, dir, ringDir, func(c *Config) {
		c.WriteHook = func([]byte) error {
			if fail.Load() {
				return errors.New("injected write error")
			}
			return nil
		}
	})
	fail.Store(true)
	appendStatements(t, j, "lost", 5)
	testutil.Eventually(t, 5*time.Second, func() error {
		if j.Stats().WriteErrors == 0 {
			return errors.New("no write error counted")
		}
		return nil
	})
	err := j.Append(&record.Record{Event: record.EventStatement, SessionID: "refused", StatementID: 1})
	if !errors.Is(err, ErrJournal) {
		t.Fatalf("append after a failed write: %v, want ErrJournal", err)
	}
	fail.Store(false)
	appendStatements(t, j, "kept", 5)
	data, err := os.ReadFile(ringPath(ringDir, dir))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(`"session_id":"lost"`)) {
		t.Fatal("the ring still holds records whose write failed")
	}
	if !bytes.Contains(data, []byte(`"session_id":"kept"`)) {
		t.Fatal("the ring holds none of the records after the failure: the test shows nothing")
	}
	j.Close()
	if rep, err := Verify(dir, nil); err != nil || !rep.OK {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// appendStatements appends statement records 1..n of one session, each
// acknowledged.
func appendStatements(t *testing.T, j *Journal, session string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := j.Append(&record.Record{Event: record.EventStatement, SessionID: session, StatementID: uint64(i)}); err != nil {
			t.Fatalf("append %s %d: %v", session, i, err)
		}
	}
}

func TestRingDirAuto(t *testing.T) {
	got := resolveRingDir(RingAuto)
	if isTmpfs("/dev/shm") != (got == "/dev/shm/sqlwarden") {
		t.Fatalf("auto resolved to %q", got)
	}
	for _, off := range []string{"", RingOff} {
		if d := resolveRingDir(off); d != "" {
			t.Fatalf("%q resolved to %q", off, d)
		}
	}
	if p := ringPath("/dev/shm", "/var/lib/sqlwarden/audit"); filepath.Dir(p) != "/dev/shm" || p == ringPath("/dev/shm", "/var/lib/sqlwarden/audit2") {
		t.Fatalf("ring path %q", p)
	}
}

// When a write fails for records the ring did not take (here: the ring is
// full, and the write of what follows is refused, as a full disk refuses a
// segment that must grow), the records Append acknowledged from the ring
// ahead of them in the batch are written all the same: only the waiting
// Append is refused.
func TestRingStagedRecordsSurviveAFailedBatch(t *testing.T) {
	dir, ringDir := t.TempDir(), t.TempDir()
	j := ringJournal(t, dir, ringDir, func(c *Config) {
		c.RingBytes = 64 << 10
		c.BatchWindow = time.Hour // nothing written but by the Append that waits
		c.WriteHook = func(p []byte) error {
			if bytes.Contains(p, []byte(`"session_id":"over"`)) {
				return errors.New("injected: no space left on device")
			}
			return nil
		}
	})
	sql := strings.Repeat("x", 1000)
	staged := uint64(0)
	for j.Stats().PendingBytes < 60<<10 {
		staged++
		if err := j.Append(&record.Record{Event: record.EventStatement, SessionID: "staged", StatementID: staged, SQL: sql}); err != nil {
			t.Fatal(err)
		}
	}
	err := j.Append(&record.Record{Event: record.EventStatement, SessionID: "over", StatementID: 1, SQL: strings.Repeat("y", 8000)})
	if !errors.Is(err, ErrJournal) {
		t.Fatalf("the record the ring had no room for: %v, want ErrJournal", err)
	}
	j.Close()
	got := uint64(0)
	if err := ReadAll(dir, func(r *record.Record) error {
		switch r.SessionID {
		case "staged":
			got++
		case "over":
			t.Errorf("the refused record is in the journal")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != staged {
		t.Fatalf("%d of %d records acknowledged from the ring are in the journal", got, staged)
	}
	if rep, err := Verify(dir, nil); err != nil || !rep.OK {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// dirWithMode makes a directory with exactly this mode (no umask).
func dirWithMode(t *testing.T, mode os.FileMode) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "ring")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// A ring directory another user could write to (or that is not this user's)
// is not used: such a user could read the records in the ring, or forge
// records that chain for the next start to replay. The journal runs without
// the ring (each statement waits for its write) and says why.
func TestRingRefusesASharedDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T) string
	}{
		{"world-writable", func(t *testing.T) string { return dirWithMode(t, 0o777) }},
		{"sticky world-writable", func(t *testing.T) string { return dirWithMode(t, 0o777|os.ModeSticky) }},
		{"another user's", func(t *testing.T) string {
			d := dirWithMode(t, 0o700)
			uid := 65534 // nobody; when not root, the test's own directory
			if os.Geteuid() != 0 {
				return "/"
			}
			if err := os.Chown(d, uid, uid); err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"a symbolic link", func(t *testing.T) string {
			target := t.TempDir()
			d := filepath.Join(t.TempDir(), "ring")
			if err := os.Symlink(target, d); err != nil {
				t.Fatal(err)
			}
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, ringDir := t.TempDir(), tc.make(t)
			j := ringJournal(t, dir, ringDir, nil)
			if j.ring != nil {
				t.Fatalf("the journal uses a ring in %s", ringDir)
			}
			if err := j.Append(&record.Record{Event: record.EventStatement, SessionID: "s", StatementID: 1}); err != nil {
				t.Fatal(err)
			}
			if j.LastSeq() < 2 {
				t.Fatal("without the ring, Append returned before its write")
			}
		})
	}
}
