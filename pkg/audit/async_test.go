package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func TestAppendAsyncWrittenInOrder(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, nil)
	// Async records alone reach the file within the batch window.
	for i := 0; i < 3; i++ {
		if err := j.AppendAsync(&record.Record{Event: record.EventOutcome, SessionID: "s", StatementID: uint64(i + 1), Status: record.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		var n int
		if err := ReadAll(dir, func(r *record.Record) error {
			if r.Event == record.EventOutcome {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			return fmt.Errorf("async records not flushed: %d of 3 on disk", n)
		}
		return nil
	})
	// Mixed with synchronous appends, the chain keeps append order.
	for i := 0; i < 50; i++ {
		r := &record.Record{Event: record.EventStatement, SessionID: "s", StatementID: uint64(100 + i), SQL: "SELECT 1"}
		if i%2 == 0 {
			if err := j.Append(r); err != nil {
				t.Fatal(err)
			}
		} else if err := j.AppendAsync(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	if err := ReadAll(dir, func(r *record.Record) error {
		if r.Seq <= last {
			t.Fatalf("seq %d after %d", r.Seq, last)
		}
		last = r.Seq
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir, j.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("journal with async records does not verify: %+v", rep.Problems)
	}
}

// TestKickWakesOncePerTimer: between two disarms the background loop is
// sent one wake-up however many records ask, and after a disarm the next
// record wakes it again (an async record is never left without a timer).
func TestKickWakesOncePerTimer(t *testing.T) {
	k := newKick()
	for i := 0; i < 100; i++ {
		k.send()
	}
	if n := len(k.c); n != 1 {
		t.Fatalf("%d wake-ups queued for 100 sends, want 1", n)
	}
	<-k.c
	k.send()
	if n := len(k.c); n != 0 {
		t.Fatalf("a send while the timer runs woke the loop (%d queued)", n)
	}
	k.disarm()
	k.send()
	if n := len(k.c); n != 1 {
		t.Fatalf("a send after the timer fired did not wake the loop (%d queued)", n)
	}
}

// TestAppendAsyncAfterFlush: a record appended after the loop's flush timer
// fired still reaches the file on its own (the timer is armed again).
func TestAppendAsyncAfterFlush(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, nil)
	w0 := j.Stats().Writes
	for round := 1; round <= 3; round++ {
		if err := j.AppendAsync(&record.Record{Event: record.EventOutcome, SessionID: "s", StatementID: uint64(round), Status: record.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 2*time.Second, func() error {
			if w := j.Stats().Writes; w < w0+uint64(round) {
				return fmt.Errorf("round %d: the async record was not written (%d writes)", round, w)
			}
			return nil
		})
	}
}
