package daemon

import (
	"context"
	"net/http"

	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

type adminHandler struct {
	pattern string
	handler http.Handler
}

// setupOptional wires the parts that not every deployment has: the eBPF
// redirect, masking, approvals and metrics.
func (d *Daemon) setupOptional(ctx context.Context, opts *proxy.Options) error {
	if err := d.setupRedirect(opts); err != nil {
		return err
	}
	if err := d.setupPods(ctx); err != nil {
		return err
	}
	if err := d.setupMetrics(opts); err != nil {
		return err
	}
	if err := d.setupMasking(opts, d.auditDir); err != nil {
		return err
	}
	if err := d.setupApprovals(ctx, opts); err != nil {
		return err
	}
	return nil
}
