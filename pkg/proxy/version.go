package proxy

import (
	"context"
	"net"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
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
		dial := s.dialer(&net.Dialer{Timeout: 5 * time.Second, Control: s.opts.DialControl})
		c, info, err := dialLogin(ctx, dial, be.Address, be, s.opts.MaxPacket, &wire.ClientConfig{
			User: cred.User, Password: cred.Password, Collation: 45, // utf8mb4_general_ci
			Attrs: map[string]string{"_client_name": "sqlwarden", "program_name": "sqlwarden-version-probe"},
		})
		cancel()
		if err != nil {
			s.log.Info("backend version probe", "backend", be.Name, "addr", be.Address, "err", err)
			continue
		}
		s.learnVersion(info.Version)
		c.Close()
		return
	}
}
