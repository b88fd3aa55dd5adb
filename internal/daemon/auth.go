package daemon

import (
	"context"
	"errors"

	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

// authAdapter gives the proxy identity's authenticator.
type authAdapter struct{ a *identity.Authenticator }

func (ad authAdapter) Authenticate(ctx context.Context, req *proxy.AuthRequest) (*proxy.Identity, error) {
	var origin *identity.Request
	if o := req.Origin; o != nil {
		origin = &identity.Request{PID: o.PID, StartTime: o.StartTime, CgroupID: o.CgroupID, CgroupPath: req.Workload.Cgroup,
			NetnsCookie: o.NetnsCookie}
	}
	b, err := ad.a.Authenticate(ctx, req.Conn, req.Handshake, origin)
	if err != nil {
		var de *identity.DeniedError
		if errors.As(err, &de) {
			return nil, &proxy.DeniedError{Reason: de.Reason}
		}
		return nil, err
	}
	// identity.Bound and proxy.Identity have the same layout, so the
	// compiler checks they agree.
	return (*proxy.Identity)(b), nil
}
