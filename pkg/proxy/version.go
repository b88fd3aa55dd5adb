package proxy

import (
	"context"
	"net"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// probeVersion logs into the first backend with a fixed address once, at
// start, so that even the first client's greeting carries the database's
// own server version (drivers enable features by it); sessions keep
// mirroring what their backends report afterwards. Failures are only
// logged: the backend may come up later.
func (s *Server) probeVersion() {
	for _, be := range s.opts.Backends {
		if be.Address == "" {
			continue
		}
		cred, err := be.Credential()
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		dialer := &net.Dialer{Timeout: 5 * time.Second, Control: s.opts.DialControl}
		opt := func(c *client.Conn) error {
			if err := c.SetCollation("utf8mb4_general_ci"); err != nil {
				return err
			}
			if be.TLS != nil {
				c.SetTLSConfig(be.TLS)
			}
			c.SetAttributes(map[string]string{"_client_name": "sqlwarden", "program_name": "sqlwarden-version-probe"})
			return nil
		}
		bc, err := client.ConnectWithDialer(ctx, "tcp", be.Address, cred.User, cred.Password, "", s.dialer(dialer), opt)
		cancel()
		if err != nil {
			s.log.Info("backend version probe", "backend", be.Name, "addr", be.Address, "err", err)
			continue
		}
		s.learnVersion(bc.GetServerVersion())
		bc.Close()
		return
	}
}
