package audit

import (
	"testing"
	"time"

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
	deadline := time.Now().Add(2 * time.Second)
	for {
		var n int
		if err := ReadAll(dir, func(r *record.Record) error {
			if r.Event == record.EventOutcome {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("async records not flushed: %d of 3 on disk", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
