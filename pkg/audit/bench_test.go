package audit

import (
	"syscall"
	"testing"
	"time"
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
