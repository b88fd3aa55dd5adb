package audit

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// cpuTime is the process's user+system CPU time so far: on a shared machine
// it moves less with other load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppend reports durable records per second for each sync mode,
// with parallel appenders (group commit) as the proxy has them.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{SyncAlways, SyncBatch, SyncNone} {
		b.Run(mode, func(b *testing.B) {
			j := openTest(b, b.TempDir(), func(c *Config) { c.Sync = mode })
			b.SetParallelism(8) // 8 × GOMAXPROCS concurrent sessions
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				r := stmt(1)
				for pb.Next() {
					r.TS = r.TS.AddDate(0, 0, 0)
					if err := j.Append(r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			st := j.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if st.Writes > 0 {
				b.ReportMetric(float64(st.Records)/float64(st.Writes), "records/write")
			}
			if st.Syncs > 0 {
				b.ReportMetric(float64(st.Records)/float64(st.Syncs), "records/fsync")
			}
		})
	}
}

// BenchmarkAppendSerial is one appender at a time: the latency of one
// statement record on an otherwise idle journal.
func BenchmarkAppendSerial(b *testing.B) {
	for _, mode := range []string{SyncAlways, SyncBatch, SyncNone} {
		b.Run(mode, func(b *testing.B) {
			j := openTest(b, b.TempDir(), func(c *Config) { c.Sync = mode })
			r := stmt(1)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := j.Append(r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// pointSelect is the statement and outcome pair the daemon journals for a
// prepared point select (sysbench's oltp_point_select).
func pointSelect(i int) (stmt, outcome *record.Record) {
	rows, affected, dur := uint64(1), uint64(0), int64(221)
	stmt = &record.Record{Event: record.EventStatement, SessionID: "b330e839ea204af2", StatementID: uint64(i),
		Command: "COM_STMT_EXECUTE", SQL: "SELECT c FROM sbtest1 WHERE id=?",
		Digest: "select `c` from `sbtest1` where `id` = ?", DB: "sqlwarden_bench",
		Params:    []record.Param{{Type: "BIGINT", Value: int64(4358)}},
		Statement: &record.Classification{Kind: "SELECT", TablesRead: []string{"sqlwarden_bench.sbtest1"}, Statements: 1}}
	outcome = &record.Record{Event: record.EventOutcome, SessionID: "b330e839ea204af2", StatementID: uint64(i),
		Status: record.StatusSuccess, Rows: &rows, AffectedRows: &affected, DurationUS: &dur, Columns: []string{"c"},
		Policy: &record.Decision{Rule: "default", Action: "allow"}}
	return stmt, outcome
}

// BenchmarkStatementPair is the journal's part of one statement in the
// daemon's default configuration (sync batch, the write-ahead ring): its
// statement record with Append, its outcome with AppendAsync, from
// concurrent sessions. cpu-ns/op is the whole process's CPU per statement,
// the background writes included.
func BenchmarkStatementPair(b *testing.B) {
	ringDir := filepath.Join("/dev/shm", "sqlwarden-bench-"+strconv.Itoa(os.Getpid()))
	if !isTmpfs("/dev/shm") {
		ringDir = b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(ringDir) })
	j := openTest(b, b.TempDir(), func(c *Config) { c.Sync = SyncBatch; c.RingDir = ringDir })
	if j.ring == nil {
		b.Fatalf("the journal opened without its ring (%s)", ringDir)
	}
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		s, o := pointSelect(1)
		for i := 0; pb.Next(); i++ {
			s.TS, o.TS = time.Time{}, time.Time{}
			s.StatementID, o.StatementID = uint64(i), uint64(i)
			if err := j.Append(s); err != nil {
				b.Error(err)
				return
			}
			if err := j.AppendAsync(o); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	st := j.Stats()
	b.ReportMetric(float64(st.Bytes)/float64(b.N), "bytes/op")
}

// BenchmarkEncodeStatementPair is the encoding of a point select's two
// records alone (no chain, no write).
func BenchmarkEncodeStatementPair(b *testing.B) {
	s, o := pointSelect(1)
	s.TS, o.TS = time.Now().UTC(), time.Now().UTC()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		if buf, ok = appendRecordJSON(buf[:0], s); !ok {
			b.Fatal("statement record not encoded by the fast path")
		}
		if buf, ok = appendRecordJSON(buf[:0], o); !ok {
			b.Fatal("outcome record not encoded by the fast path")
		}
	}
}
