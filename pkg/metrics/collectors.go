package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

// journalCollector reads the journal's counters at scrape time.
type journalCollector struct {
	stats func() audit.Stats
	sinks *capped

	records, bytes, writes, syncs, writeErrs, syncErrs, dropped, checkpoints, segments, torn *prometheus.Desc
	lastSeq, unsynced, pendingBytes                                                          *prometheus.Desc
	sinkLag, sinkShipped, sinkBatches, sinkErrors, sinkLastShip                              *prometheus.Desc
}

func auditDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, SubsystemAudit, name), help, labels, nil)
}

// RegisterJournal exports the audit journal's and its sinks' counters, read
// through stats (audit.Journal.Stats) at every scrape.
func (m *Metrics) RegisterJournal(stats func() audit.Stats) error {
	c := &journalCollector{
		stats:        stats,
		sinks:        newCapped(32),
		records:      auditDesc("records_total", "Records appended to the journal, checkpoints included."),
		bytes:        auditDesc("written_bytes_total", "Bytes written to the journal."),
		writes:       auditDesc("writes_total", "Batches written to the journal (one pwrite each); records_total/writes_total is the group-commit factor."),
		syncs:        auditDesc("syncs_total", "fdatasync calls on the journal."),
		writeErrs:    auditDesc("write_errors_total", "Journal writes that failed (statements were refused, or dropped with fail_open)."),
		syncErrs:     auditDesc("sync_errors_total", "Journal fsyncs that failed."),
		dropped:      auditDesc("dropped_records_total", "Records lost to write errors under fail_open."),
		checkpoints:  auditDesc("checkpoints_total", "Signed checkpoints written."),
		segments:     auditDesc("segments_opened_total", "Journal segments opened by this process."),
		torn:         auditDesc("recovered_torn_tails_total", "Torn final records truncated when the journal was opened."),
		lastSeq:      auditDesc("last_sequence", "Sequence number of the last record written."),
		unsynced:     auditDesc("unsynced_bytes", "Bytes written but not yet fsynced (the power-loss window)."),
		pendingBytes: auditDesc("pending_bytes", "Bytes appended but not yet written."),
		sinkLag:      auditDesc("sink_lag_records", "Records in the journal that the sink has not durably accepted yet.", "sink", "type"),
		sinkShipped:  auditDesc("sink_shipped_records_total", "Records shipped to the sink by this process.", "sink", "type"),
		sinkBatches:  auditDesc("sink_batches_total", "Batches shipped to the sink by this process.", "sink", "type"),
		sinkErrors:   auditDesc("sink_errors_total", "Failed attempts to ship to the sink.", "sink", "type"),
		sinkLastShip: auditDesc("sink_last_ship_timestamp_seconds", "Unix time of the sink's last successful shipment (0: none yet).", "sink", "type"),
	}
	return m.reg.Register(c)
}

func (c *journalCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.bytes, c.writes, c.syncs, c.writeErrs, c.syncErrs, c.dropped,
		c.checkpoints, c.segments, c.torn, c.lastSeq, c.unsynced, c.pendingBytes,
		c.sinkLag, c.sinkShipped, c.sinkBatches, c.sinkErrors, c.sinkLastShip} {
		ch <- d
	}
}

func (c *journalCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter(c.records, s.Records)
	counter(c.bytes, s.Bytes)
	counter(c.writes, s.Writes)
	counter(c.syncs, s.Syncs)
	counter(c.writeErrs, s.WriteErrors)
	counter(c.syncErrs, s.SyncErrors)
	counter(c.dropped, s.Dropped)
	counter(c.checkpoints, s.Checkpoints)
	counter(c.segments, s.Segments)
	counter(c.torn, s.RecoveredTorn)
	gauge(c.lastSeq, float64(s.LastSeq))
	gauge(c.unsynced, float64(s.UnsyncedBytes))
	gauge(c.pendingBytes, float64(s.PendingBytes))
	seen := map[[2]string]bool{}
	for _, sk := range s.Sinks {
		l := [2]string{c.sinks.value(sk.Name), known(sinkTypes, sk.Type, "other")}
		if seen[l] {
			continue // two sinks beyond the cap both map to OTHER: keep the series unique
		}
		seen[l] = true
		gauge(c.sinkLag, float64(sk.Lag), l[0], l[1])
		counter(c.sinkShipped, sk.Shipped, l[0], l[1])
		counter(c.sinkBatches, sk.Batches, l[0], l[1])
		counter(c.sinkErrors, sk.Errors, l[0], l[1])
		var last float64
		if !sk.LastShipAt.IsZero() {
			last = float64(sk.LastShipAt.UnixNano()) / 1e9
		}
		gauge(c.sinkLastShip, last, l[0], l[1])
	}
}

var sinkTypes = set("nats", "webhook", "syslog", "file")

// RedirectCounters are the eBPF redirect's counters (redirect.Counters,
// copied field by field by the daemon so this package needn't import the
// BPF loader).
type RedirectCounters struct {
	Redirected       uint64 // connects rewritten to the proxy
	SkippedExcluded  uint64 // the daemon's own cgroup or marked sockets
	SkippedPort      uint64 // enrolled cgroup, port not enrolled
	SkippedProxyDest uint64 // destination already is the proxy
	SkippedFailOpen  uint64 // fail-open with a stale heartbeat
	Denied           uint64 // connects refused (fail-closed without a target)
	StorageErrors    uint64 // socket storage unavailable
	TupleErrors      uint64 // 4-tuple map update failed
	Published        uint64 // 4-tuple records written at TCP connect
	Released         uint64 // unconsumed records removed at socket release
	LookupHits       uint64 // the proxy found a connection's origin
	LookupMisses     uint64 // the proxy found none
}

// redirectCollector reads the BPF per-CPU counters at scrape time.
type redirectCollector struct {
	read                                           func() (RedirectCounters, error)
	connects, errors, published, released, lookups *prometheus.Desc
	readErrors                                     prometheus.Counter
}

func redirectDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, SubsystemRedirect, name), help, labels, nil)
}

// RegisterRedirect exports the eBPF redirect's counters, read through read
// at every scrape. A failed read leaves the series out of that scrape and
// counts sqlwarden_redirect_bpf_read_errors_total.
func (m *Metrics) RegisterRedirect(read func() (RedirectCounters, error)) error {
	c := &redirectCollector{
		read:      read,
		connects:  redirectDesc("connects_total", "connect() calls seen by the BPF program, by result (redirected, skipped_excluded, skipped_port, skipped_proxy_dest, skipped_fail_open, denied).", "result"),
		errors:    redirectDesc("bpf_errors_total", "BPF-side failures, by kind (storage: socket storage unavailable, tuple: 4-tuple map update failed).", "kind"),
		published: redirectDesc("tuples_published_total", "Connection records published at TCP connect for the proxy to look up."),
		released:  redirectDesc("tuples_released_total", "Connection records removed at socket release without being looked up."),
		lookups:   redirectDesc("lookups_total", "Origin lookups by the proxy for accepted connections, by result (hit, miss).", "result"),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: SubsystemRedirect, Name: "bpf_read_errors_total",
			Help: "Scrapes that could not read the BPF counters.",
		}),
	}
	if err := m.reg.Register(c.readErrors); err != nil {
		return err
	}
	return m.reg.Register(c)
}

func (c *redirectCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connects
	ch <- c.errors
	ch <- c.published
	ch <- c.released
	ch <- c.lookups
}

func (c *redirectCollector) Collect(ch chan<- prometheus.Metric) {
	v, err := c.read()
	if err != nil {
		c.readErrors.Inc()
		return
	}
	counter := func(d *prometheus.Desc, n uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), l...)
	}
	counter(c.connects, v.Redirected, "redirected")
	counter(c.connects, v.SkippedExcluded, "skipped_excluded")
	counter(c.connects, v.SkippedPort, "skipped_port")
	counter(c.connects, v.SkippedProxyDest, "skipped_proxy_dest")
	counter(c.connects, v.SkippedFailOpen, "skipped_fail_open")
	counter(c.connects, v.Denied, "denied")
	counter(c.errors, v.StorageErrors, "storage")
	counter(c.errors, v.TupleErrors, "tuple")
	counter(c.published, v.Published)
	counter(c.released, v.Released)
	counter(c.lookups, v.LookupHits, "hit")
	counter(c.lookups, v.LookupMisses, "miss")
}
