package daemon

import (
	"net/netip"

	"github.com/sqlwarden/sqlwarden/pkg/config"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/redirect"
)

// RedirectConfig is the redirect section of cfg as the redirect package
// takes it; the CLI verbs that install the redirect use it too.
func RedirectConfig(cfg *config.Config) (redirect.Config, error) {
	listen, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return redirect.Config{}, err
	}
	rc := redirect.Config{ProxyAddr: listen, Ports: cfg.Redirect.Ports, FailMode: cfg.Redirect.FailMode,
		CgroupRoot: cfg.Redirect.CgroupRoot, PinDir: cfg.Redirect.PinDir}
	if cfg.Redirect.NodeAddress != "" {
		rc.NodeAddress, err = netip.ParseAddr(cfg.Redirect.NodeAddress)
		if err != nil {
			return rc, err
		}
	}
	return rc, nil
}

func (d *Daemon) setupRedirect(opts *proxy.Options) error {
	cfg := d.cfg
	if !cfg.Redirect.Enabled {
		return nil
	}
	rc, err := RedirectConfig(cfg)
	if err != nil {
		return err
	}
	rc.Log = d.log.With("component", "redirect")
	r, err := redirect.Open(rc)
	if err != nil {
		return err
	}
	// Close keeps the pins: while the daemon is down, enrolled workloads are
	// refused (fail-closed), never sent around the audit.
	d.closers = append(d.closers, r.Close)
	d.redirector = r
	opts.Origins = r
	opts.DialControl = redirect.MarkControl
	for _, ap := range r.ListenAddrs() {
		if ap.String() == cfg.Listen {
			continue
		}
		d.extraListen = append(d.extraListen, ap.String())
	}
	return nil
}
