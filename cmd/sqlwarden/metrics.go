package main

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/metrics"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

// daemonMetrics is the running daemon's metrics (a process runs one daemon).
// The journal opens before the metrics exist, so its fsync hook and later
// wiring (approvals) reach them through here.
var daemonMetrics atomic.Pointer[metrics.Metrics]

// observeJournalSync is audit.Config.SyncObserver: it records an fsync's
// duration once setupMetrics has run (earlier ones, at Open, are not kept).
func observeJournalSync(d time.Duration) {
	if m := daemonMetrics.Load(); m != nil {
		m.ObserveSync(d)
	}
}

// setPendingApprovals wires sqlwarden_policy_approvals_pending to a count
// read at scrape time; safe to call before or without metrics.
func setPendingApprovals(f func() int) {
	if m := daemonMetrics.Load(); m != nil {
		m.SetPendingApprovals(f)
	}
}

// setApprovalStoreUp exports the approval store's state; safe to call
// without metrics.
func setApprovalStoreUp(store string, up func() bool) {
	if m := daemonMetrics.Load(); m != nil {
		if err := m.RegisterApprovalStore(store, up); err != nil {
			slog.Warn("register approval store metric", "err", err)
		}
	}
}

// setupMetrics creates the private registry, makes it the proxy's Observer,
// exports the journal's and the redirect's counters and serves /metrics on
// the admin listener. Call it after setupRedirect.
func (d *daemon) setupMetrics(opts *proxy.Options) error {
	m := metrics.New(metrics.Options{Version: version})
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
	daemonMetrics.Store(m)
	d.adminHandlers = append(d.adminHandlers, adminHandler{"/metrics", m.Handler()})
	return nil
}
