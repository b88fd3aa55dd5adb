package daemon

import (
	"github.com/sqlwarden/sqlwarden/pkg/metrics"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

// setupMetrics makes the metrics (created before the journal, whose fsyncs
// they observe) the proxy's Observer, exports the journal's and the
// redirect's counters and serves /metrics on the admin listener. Call it
// after setupRedirect.
func (d *Daemon) setupMetrics(opts *proxy.Options) error {
	m := d.metrics
	opts.Observer = m
	if d.journal != nil {
		if err := m.RegisterJournal(d.journal.Stats); err != nil {
			return err
		}
	}
	if r := d.redirector; r != nil {
		err := m.RegisterRedirect(func() (metrics.RedirectCounters, error) {
			c, err := r.Counters()
			if err != nil {
				return metrics.RedirectCounters{}, err
			}
			return metrics.RedirectCounters{
				Redirected: c.Redirected, SkippedExcluded: c.SkippedExcluded, SkippedPort: c.SkippedPort,
				SkippedProxyDest: c.SkippedProxyDest, SkippedFailOpen: c.SkippedFailOpen, Denied: c.Denied,
				StorageErrors: c.StorageErrors, TupleErrors: c.TupleErrors, Published: c.Published,
				Released: c.Released, LookupHits: c.LookupHits, LookupMisses: c.LookupMisses,
			}, nil
		})
		if err != nil {
			return err
		}
	}
	d.adminHandlers = append(d.adminHandlers, adminHandler{"/metrics", m.Handler()})
	return nil
}
