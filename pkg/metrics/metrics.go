package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Namespace prefixes every metric name.
const Namespace = "sqlwarden"

// Subsystems, one per package whose work a metric measures.
const (
	SubsystemProxy    = "proxy"
	SubsystemPolicy   = "policy"
	SubsystemMasking  = "masking"
	SubsystemIdentity = "identity"
	SubsystemAudit    = "audit"
	SubsystemRedirect = "redirect"
)

// Bucket layouts, in seconds.
var (
	// StatementBuckets spans a point select on loopback (~100µs) to a long
	// report query or a statement held for approval.
	StatementBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// AddedBuckets is the proxy's own share: parse, policy, write-ahead
	// record, approvals (which may hold a statement for minutes).
	AddedBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, 1, 10, 60, 300}
	// SyncBuckets is one fsync of the journal (~200µs on this project's machines).
	SyncBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
)

// Options configure New.
type Options struct {
	// Version is exported as sqlwarden_build_info{version}.
	Version string
	// MaxRules caps the distinct policy rule names exported (default 256);
	// more (after many reloads) are counted as OTHER.
	MaxRules int
	// NoRuntime leaves out the Go runtime and process collectors (tests).
	NoRuntime bool
}

// Metrics holds the daemon's collectors on a private registry. It implements
// the proxy's Observer interface; every method is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	connsActive prometheus.Gauge
	conns       *prometheus.CounterVec
	statements  *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	added       prometheus.Histogram
	bytes       *prometheus.CounterVec
	toClient    prometheus.Counter
	toBackend   prometheus.Counter
	masked      prometheus.Counter
	decisions   *prometheus.CounterVec
	rules       *capped
	identity    *prometheus.CounterVec
	syncs       prometheus.Histogram
	limitHits   *prometheus.CounterVec
	limitNames  *capped
	kinds       []kindSeries // by kindIndex
	ruleSeries  ruleSeriesCache

	pending atomic.Pointer[func() int]
}

// New creates the metrics and registers them on a new private registry.
func New(o Options) *Metrics {
	if o.MaxRules <= 0 {
		o.MaxRules = 256
	}
	m := &Metrics{reg: prometheus.NewRegistry(), rules: newCapped(o.MaxRules), limitNames: newCapped(o.MaxRules),
		kinds:      make([]kindSeries, len(statementKindList)),
		ruleSeries: ruleSeriesCache{m: map[string]*ruleSeries{}, max: 2 * o.MaxRules}}
	m.connsActive = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: SubsystemProxy, Name: "connections_active",
		Help: "Client connections open on the proxy.",
	})
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: SubsystemProxy, Name: "connections_total",
		Help: "Client connections closed, by how they ended (closed, denied, handshake_error, login_limit, backend_error, backend_closed, audit_error, panic).",
	}, []string{"outcome"})
	m.statements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: SubsystemProxy, Name: "statements_total",
		Help: "Statements and commands completed, by kind and audit status (success, error, blocked).",
	}, []string{"kind", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: SubsystemProxy, Name: "statement_duration_seconds",
		Help:    "Time from a statement's arrival to its last reply packet, by kind.",
		Buckets: StatementBuckets,
	}, []string{"kind"})
	m.added = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: SubsystemProxy, Name: "added_latency_seconds",
		Help:    "Time the proxy spent before forwarding a statement (parse, policy, write-ahead record, approval).",
		Buckets: AddedBuckets,
	})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: SubsystemProxy, Name: "bytes_total",
		Help: "Bytes forwarded, by direction (to_client, to_backend).",
	}, []string{"direction"})
	m.toClient = m.bytes.WithLabelValues("to_client")
	m.toBackend = m.bytes.WithLabelValues("to_backend")
	m.masked = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: SubsystemMasking, Name: "values_masked_total",
		Help: "Column values rewritten by masking rules in result rows.",
	})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: SubsystemPolicy, Name: "decisions_total",
		Help: "Policy decisions, by rule name and action (allow, deny, approve).",
	}, []string{"rule", "action"})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: SubsystemPolicy, Name: "approvals_pending",
		Help: "Statements held waiting for a human approval.",
	}, func() float64 {
		if f := m.pending.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.identity = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: SubsystemIdentity, Name: "failures_total",
		Help: "Connections refused for want of a verified workload identity, by reason.",
	}, []string{"reason"})
	m.syncs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: SubsystemAudit, Name: "sync_duration_seconds",
		Help:    "Duration of one fsync of the audit journal.",
		Buckets: SyncBuckets,
	})
	m.limitHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "limit_hits_total",
		Help: "Per-identity limits that refused, stopped or truncated a statement or refused a connection, by limits entry and limit.",
	}, []string{"limit", "kind"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the version label names the running build.",
		ConstLabels: prometheus.Labels{"version": orDefault(o.Version, "dev")},
	})
	build.Set(1)
	m.reg.MustRegister(m.connsActive, m.conns, m.statements, m.duration, m.added, m.bytes,
		m.masked, m.decisions, pending, m.identity, m.syncs, m.limitHits, build)
	if !o.NoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Registry returns the private registry, for registering more collectors
// and for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails leaves its series out instead of failing the scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// ConnOpened counts a client connection accepted by the proxy.
func (m *Metrics) ConnOpened() { m.connsActive.Inc() }

// ConnClosed counts a client connection's end.
func (m *Metrics) ConnClosed(outcome string) {
	m.connsActive.Dec()
	m.conns.WithLabelValues(known(connOutcomes, outcome, "other")).Inc()
}

// Statement counts a completed statement and observes its latencies; added
// is zero when the statement was never forwarded.
func (m *Metrics) Statement(kind, status string, total, added time.Duration) {
	i := kindIndex(kind)
	ks, k := &m.kinds[i], statementKindList[i]
	st := statusIndex(status)
	ks.byStatus[st].get2(m.statements, k, statusLabels[st]).Inc()
	ks.duration.get1(m.duration, k).Observe(total.Seconds())
	if added > 0 {
		m.added.Observe(added.Seconds())
	}
}

// Bytes counts bytes forwarded in each direction.
func (m *Metrics) Bytes(toClient, toBackend int) {
	if toClient > 0 {
		m.toClient.Add(float64(toClient))
	}
	if toBackend > 0 {
		m.toBackend.Add(float64(toBackend))
	}
}

// Decision counts a policy decision. Rule names come from the policy file;
// at most Options.MaxRules distinct ones are exported.
func (m *Metrics) Decision(rule string, action record.Action) {
	rs := m.ruleSeries.get(rule, m.rules.value)
	a := actionIndex(string(action))
	rs.byAction[a].get2(m.decisions, rs.label, actionLabels[a]).Inc()
}

// Masked counts column values rewritten by masking.
func (m *Metrics) Masked(n uint64) {
	if n > 0 {
		m.masked.Add(float64(n))
	}
}

// IdentityFailure counts a connection refused without a verified identity;
// the reason is mapped to a fixed set (see IdentityReason).
func (m *Metrics) IdentityFailure(reason string) {
	m.identity.WithLabelValues(IdentityReason(reason)).Inc()
}

// LimitHit counts a per-identity limit firing. Entry names come from the
// policy file (capped like rule names); kinds from a fixed set.
func (m *Metrics) LimitHit(limit, kind string) {
	m.limitHits.WithLabelValues(m.limitNames.value(limit), known(limitKinds, kind, "other")).Inc()
}

// ObserveSync records one journal fsync; use it as audit.Config.SyncObserver.
func (m *Metrics) ObserveSync(d time.Duration) { m.syncs.Observe(d.Seconds()) }

// SetPendingApprovals sets the function read at scrape time for
// sqlwarden_policy_approvals_pending (for example the length of the
// approvals queue). nil reports 0.
func (m *Metrics) SetPendingApprovals(f func() int) {
	if f == nil {
		m.pending.Store(nil)
		return
	}
	m.pending.Store(&f)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// RegisterApprovalStore exports sqlwarden_policy_approval_store_up{store}:
// 1 while the approval store (memory, or the fleet's NATS bucket) can be
// used, 0 while statements that need an approval are refused for want of it.
func (m *Metrics) RegisterApprovalStore(store string, up func() bool) error {
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: SubsystemPolicy, Name: "approval_store_up",
		Help:        "1 while the approval store is reachable; 0 while approval-needing statements are refused.",
		ConstLabels: prometheus.Labels{"store": store},
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}
