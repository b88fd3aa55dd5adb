package audit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, mod func(*Config)) *Journal {
	t.Helper()
	cfg := Config{Dir: dir, Node: "node-a", Log: testLog(), CheckpointInterval: time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	j, err := Open(cfg)
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func stmt(i int) *record.Record {
	return &record.Record{Event: record.EventStatement, SessionID: fmt.Sprintf("s%d", i%4), StatementID: uint64(i),
		Command: "COM_QUERY", SQL: fmt.Sprintf("SELECT %d /* \"seq\":0 <x> */", i), DB: "shop"}
}

// readLines returns every decoded, hash-checked record of a journal.
func readChecked(t *testing.T, dir string) []*record.Record {
	t.Helper()
	var out []*record.Record
	prev := GenesisHash
	segs, err := ListSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		err := readSegment(s.Path, 0, func(line []byte, _ int64) error {
			r, err := CheckLine(line)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Path, err)
			}
			if r.PrevHash != prev {
				return fmt.Errorf("seq %d: prev_hash %s, want %s", r.Seq, short(r.PrevHash), short(prev))
			}
			prev = r.Hash
			out = append(out, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestAppendChainsRecords(t *testing.T) {
	for _, mode := range []string{SyncAlways, SyncBatch, SyncNone} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			j := openTest(t, dir, func(c *Config) { c.Sync = mode })
			for i := 1; i <= 20; i++ {
				r := stmt(i)
				if err := j.Append(r); err != nil {
					t.Fatal(err)
				}
				if r.Seq == 0 || len(r.Hash) != 64 || len(r.PrevHash) != 64 || r.Node != "node-a" || r.TS.IsZero() {
					t.Fatalf("record not filled in: %+v", r)
				}
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			recs := readChecked(t, dir)
			if len(recs) != 22 { // open checkpoint + 20 + close checkpoint
				t.Fatalf("got %d records, want 22", len(recs))
			}
			for i, r := range recs {
				if r.Seq != uint64(i+1) {
					t.Fatalf("record %d has seq %d", i, r.Seq)
				}
			}
			if recs[0].Event != record.EventCheckpoint || !recs[21].Checkpoint.Final {
				t.Fatalf("want opening and final checkpoints, got %s / %+v", recs[0].Event, recs[21].Checkpoint)
			}
			if recs[5].SQL != stmt(5).SQL {
				t.Fatalf("sql round trip: %q", recs[5].SQL)
			}
		})
	}
}

func TestReopenContinuesChain(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, nil)
	for i := 0; i < 5; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	j = openTest(t, dir, func(c *Config) { c.SegmentMaxBytes = 2000 })
	for i := 0; i < 30; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	recs := readChecked(t, dir)
	if len(recs) != 5+30+4 {
		t.Fatalf("got %d records", len(recs))
	}
	segs, _ := ListSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("want rotation into several segments, got %d", len(segs))
	}
	for _, s := range segs {
		var first *record.Record
		readSegment(s.Path, 0, func(line []byte, _ int64) error {
			first, _ = DecodeLine(line)
			return ErrStop
		})
		if first == nil || first.Seq != s.FirstSeq {
			t.Fatalf("segment %s starts with %+v", s.Path, first)
		}
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	var syncs atomic.Int64
	j := openTest(t, dir, func(c *Config) {
		c.Sync = SyncAlways
		c.SyncObserver = func(time.Duration) { syncs.Add(1) }
	})
	const workers, per = 32, 100
	var wg sync.WaitGroup
	seen := make([][]uint64, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				r := stmt(w*per + i)
				if err := j.Append(r); err != nil {
					t.Error(err)
					return
				}
				seen[w] = append(seen[w], r.Seq)
			}
		}(w)
	}
	wg.Wait()
	st := j.Stats()
	j.Close()
	recs := readChecked(t, dir)
	if len(recs) != workers*per+2 {
		t.Fatalf("got %d records, want %d", len(recs), workers*per+2)
	}
	for w := range seen {
		for i := 1; i < len(seen[w]); i++ {
			if seen[w][i] <= seen[w][i-1] {
				t.Fatalf("worker %d: seqs not increasing", w)
			}
		}
	}
	n := syncs.Load()
	t.Logf("%d records, %d writes, %d fsyncs", st.Records, st.Writes, n)
	if n >= int64(workers*per) {
		t.Fatalf("no group commit: %d fsyncs for %d records", n, workers*per)
	}
}

func TestBatchModeSyncsInBackground(t *testing.T) {
	dir := t.TempDir()
	var syncs atomic.Int64
	j := openTest(t, dir, func(c *Config) {
		c.BatchWindow = 5 * time.Millisecond
		c.SyncObserver = func(time.Duration) { syncs.Add(1) }
	})
	if err := j.Append(stmt(1)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		if st := j.Stats(); st.UnsyncedBytes > 0 {
			return fmt.Errorf("batch mode did not fsync: %+v", st)
		}
		return nil
	})
	if j.Stats().UnsyncedBytes != 0 || syncs.Load() == 0 {
		t.Fatalf("batch mode did not fsync: %+v", j.Stats())
	}
}

func TestFailingWritesRefuse(t *testing.T) {
	for _, mode := range []string{SyncAlways, SyncBatch} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var fail atomic.Bool
			j := openTest(t, dir, func(c *Config) {
				c.Sync = mode
				c.WriteHook = func([]byte) error {
					if fail.Load() {
						return errors.New("no space left on device (injected)")
					}
					return nil
				}
			})
			if err := j.Append(stmt(1)); err != nil {
				t.Fatal(err)
			}
			fail.Store(true)
			err := j.Append(stmt(2))
			if !errors.Is(err, ErrJournal) {
				t.Fatalf("append with failing writes: got %v, want ErrJournal", err)
			}
			if j.Healthy() == nil {
				t.Fatal("Healthy() = nil after a failed write")
			}
			fail.Store(false)
			r := stmt(3)
			if err := j.Append(r); err != nil {
				t.Fatal(err)
			}
			if j.Healthy() != nil {
				t.Fatalf("still unhealthy after recovery: %v", j.Healthy())
			}
			j.Close()
			recs := readChecked(t, dir)
			// open checkpoint, stmt 1, stmt 3, close checkpoint: the failed one left no trace in the chain
			if len(recs) != 4 || recs[2].StatementID != 3 || recs[2].Seq != 3 {
				t.Fatalf("unexpected journal after failure: %d records", len(recs))
			}
		})
	}
}

func TestFailOpen(t *testing.T) {
	var fail atomic.Bool
	j := openTest(t, t.TempDir(), func(c *Config) {
		c.FailOpen = true
		c.WriteHook = func([]byte) error {
			if fail.Load() {
				return errors.New("injected")
			}
			return nil
		}
	})
	fail.Store(true)
	if err := j.Append(stmt(1)); err != nil {
		t.Fatalf("fail-open append returned %v", err)
	}
	if j.Stats().Dropped != 1 {
		t.Fatalf("dropped = %d", j.Stats().Dropped)
	}
	fail.Store(false)
}

func TestTornTailRecovered(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, nil)
	for i := 0; i < 10; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	segs, _ := ListSegments(dir)
	last := segs[len(segs)-1].Path
	// simulate kill -9 mid-write: half a record at the end
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"ts":"2026-01-01T00:00:00Z","event":"statement","session_id":"x","seq":13,"sql":"SELE`)
	f.Close()

	j = openTest(t, dir, nil)
	if j.Stats().RecoveredTorn != 1 {
		t.Fatal("torn tail not reported as recovered")
	}
	if err := j.Append(stmt(99)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	recs := readChecked(t, dir)
	if len(recs) != 15 {
		t.Fatalf("got %d records, want 15", len(recs))
	}
	torn, _ := filepath.Glob(last + ".torn-*")
	if len(torn) != 1 {
		t.Fatalf("torn bytes not saved: %v", torn)
	}
	if recs[12].Event != record.EventCheckpoint || recs[12].Reason == "open" {
		t.Fatalf("reopen checkpoint should say it recovered: %+v", recs[12])
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, nil)
	if _, err := Open(Config{Dir: dir, Log: testLog()}); err == nil {
		t.Fatal("second Open of the same dir succeeded")
	}
}

// A statement longer than the reader's old 64 MiB line bound is written,
// read back and verified like any other: the tools read what the journal
// writes.
func TestLongRecordReadBack(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, nil)
	r := stmt(1)
	r.SetSQL("SELECT '" + strings.Repeat("x", 65<<20) + "'")
	if err := j.Append(r); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readChecked(t, dir)
	if len(recs) != 3 || len(recs[1].SQL) != 65<<20+9 {
		t.Fatalf("%d records read back, the statement's %d bytes", len(recs), len(recs[1].SQL))
	}
}
